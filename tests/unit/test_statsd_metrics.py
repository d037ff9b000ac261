"""The StatsD receiver: lines as Airflow's StatsD client writes them, read back through
Prometheus's own parser, per environment, bounded."""

from __future__ import annotations

import socket
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from airgate.metrics.statsd import StatsdMetrics, parse_line


def _scrape(statsd: StatsdMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}}, as a Prometheus server would read them."""
    registry = CollectorRegistry()
    registry.register(statsd)
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def _receiver(**kwargs: int) -> StatsdMetrics:
    return StatsdMetrics(b"k" * 32, **kwargs)


def test_counters_gauges_and_timers_of_two_environments_are_told_apart() -> None:
    statsd = _receiver()
    try:
        one, two = statsd.prefix_for("one"), statsd.prefix_for("two")
        assert one != two
        statsd.receive(f"{one}.scheduler_heartbeat:1|c\n{one}.scheduler_heartbeat:1|c\n"
                       f"{two}.scheduler_heartbeat:1|c|@0.5".encode())
        statsd.receive(f"{one}.pool.open_slots,pool_name=default_pool:128|g".encode())
        statsd.receive(f"{one}.pool.open_slots,pool_name=default_pool:-3|g".encode())
        statsd.receive(f"{one}.dagrun.duration.success,dag_id=etl:1500|ms\n"
                       f"{one}.dagrun.duration.success,dag_id=etl:40|ms".encode())
        samples = _scrape(statsd)
    finally:
        statsd.close()
    heartbeats = samples["airflow_scheduler_heartbeat_total"]
    assert heartbeats == {(("environment", "one"),): 2.0, (("environment", "two"),): 2.0}
    assert samples["airflow_pool_open_slots"] == {
        (("environment", "one"), ("pool_name", "default_pool")): 125.0}
    labels = (("dag_id", "etl"), ("environment", "one"))
    assert samples["airflow_dagrun_duration_success_seconds_count"] == {labels: 2.0}
    assert samples["airflow_dagrun_duration_success_seconds_sum"] == {labels: 1.54}
    buckets = samples["airflow_dagrun_duration_success_seconds_bucket"]
    assert buckets[((*labels[:1], labels[1], ("le", "0.025")))] == 0.0
    assert buckets[((*labels[:1], labels[1], ("le", "0.05")))] == 1.0
    assert buckets[((*labels[:1], labels[1], ("le", "2.5")))] == 2.0
    assert buckets[((*labels[:1], labels[1], ("le", "+Inf")))] == 2.0


def test_samples_without_a_known_prefix_or_malformed_are_dropped_and_counted() -> None:
    statsd = _receiver()
    try:
        mine = statsd.prefix_for("mine")
        guessed = "airgate" + "0" * 24
        statsd.receive(f"{guessed}.ti_successes:1|c".encode())  # another's key, guessed
        statsd.receive(f"airflow.ti_successes:1|c\n{mine}.x:abc|c\n{mine}.x:1|zz\n"
                       f"{mine}.x,=v:1|c\n{mine}.:1|c\n{mine}.y:nan|g".encode())
        statsd.receive(b"\xff\xfe")
        statsd.receive(f"{mine}.ti_successes:1|c\n{mine}.ti_successes:5|g".encode())
        samples = _scrape(statsd)
        statsd.forget("mine")
        statsd.receive(f"{mine}.ti_successes:1|c".encode())
        after = _scrape(statsd)
    finally:
        statsd.close()
    assert samples["airflow_ti_successes_total"] == {(("environment", "mine"),): 1.0}
    assert samples["airgate_statsd_samples_dropped_total"] == {
        (("reason", "malformed"),): 6.0, (("reason", "type_conflict"),): 1.0,
        (("reason", "unknown_prefix"),): 2.0}
    assert "airflow_ti_successes_total" not in after
    assert after["airgate_statsd_samples_dropped_total"][(("reason", "unknown_prefix"),)] == 3


def test_an_environment_keeps_at_most_its_series_limit() -> None:
    statsd = _receiver(max_series=3)
    try:
        noisy, quiet = statsd.prefix_for("noisy"), statsd.prefix_for("quiet")
        statsd.receive("\n".join(f"{noisy}.dag.loaded,dag_id=d{i}:1|c"
                                 for i in range(10)).encode())
        statsd.receive(f"{noisy}.dag.loaded,dag_id=d0:1|c\n{quiet}.dag.loaded,dag_id=q:1|c"
                       .encode())
        samples = _scrape(statsd)
    finally:
        statsd.close()
    loaded = samples["airflow_dag_loaded_total"]
    assert sorted(dict(labels)["dag_id"] for labels in loaded) == ["d0", "d1", "d2", "q"]
    assert loaded[(("dag_id", "d0"), ("environment", "noisy"))] == 2.0
    assert samples["airgate_statsd_samples_dropped_total"] == {
        (("reason", "series_limit"),): 7.0}


def test_labels_and_names_are_made_safe_for_prometheus() -> None:
    sample = parse_line("p.dag_processing.last_duration,file_path=/dags/a-b.py,"
                        "environment=spoofed,9x=1:12|ms", "p")
    assert sample is None  # a label name starting with a digit is not a label
    sample = parse_line("p.dag_processing.last-duration,file-path=/dags/a.py,"
                        "environment=spoofed:12|ms", "p")
    assert sample is not None
    assert sample.name == "airflow_dag_processing_last_duration_seconds"
    assert dict(sample.labels) == {"file_path": "/dags/a.py",
                                   "exported_environment": "spoofed"}
    assert sample.value == 0.012


def test_datagrams_arrive_over_udp() -> None:
    statsd = _receiver()
    statsd.start()
    try:
        prefix = statsd.prefix_for("udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{prefix}.ti_failures:1|c".encode(), (statsd.host, statsd.port))
        deadline = time.monotonic() + 10
        while "airflow_ti_failures_total" not in _scrape(statsd):
            assert time.monotonic() < deadline, "the datagram never arrived"
            time.sleep(0.05)
    finally:
        statsd.close()
