"""What airgate needs of Airflow itself: tokens it trusts, and its configuration."""
