"""Durable state in one SQL store: SQLite in AIRGATE_HOME by default, PostgreSQL by URL."""
