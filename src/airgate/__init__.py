"""airgate: a self-hosted control plane for Apache Airflow that speaks the Amazon MWAA API."""

__version__ = "0.1.0"
