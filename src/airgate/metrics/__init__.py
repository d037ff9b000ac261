"""What airgate and its environments are doing, as Prometheus metrics at `/metrics`.

`calls` counts the calls airgate serves, `state` reads what is true right now (environment
status, components, admission) at each scrape, `statsd` receives each environment's own
Airflow metrics, and `endpoint` serves them all in the Prometheus text format.
"""
