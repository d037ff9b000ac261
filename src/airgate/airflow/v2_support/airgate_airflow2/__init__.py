"""airgate's code inside an Airflow 2 environment: the API auth backend that accepts
airgate's tokens (`api_auth`). Copied by airgate into the environment, read-only to it; it
imports Airflow 2, never airgate."""
