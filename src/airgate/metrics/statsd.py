"""Each environment's own Airflow metrics: Airflow sends StatsD to airgate, which keeps them
and re-exposes them at `/metrics` with an `environment` label, named as statsd_exporter
names them (`scheduler_heartbeat` -> `airflow_scheduler_heartbeat`; timers in seconds, as
histograms named `..._seconds`).

Which environment sent a sample is told by its StatsD prefix, a key derived from the
environment's name with a secret of airgate's: an environment knows its own key only, so
tenant code can't write another environment's metrics (the StatsD port is reachable by
every process on the machine). Airflow's own tags (its InfluxDB line format) become labels;
tags that grow without bound (run, job, task, try) are switched off in Airflow's options,
and each environment keeps at most MAX_SERIES series, so no environment can blow up the
scrape.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import logging
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

_log = logging.getLogger("airgate.metrics")

MAX_SERIES = 2000  # per environment
MAX_LABEL_VALUE = 200
# Tags Airflow would add that name runs, jobs, tasks or tries: unbounded, so never sent.
UNBOUNDED_TAGS = ("job_id", "run_id", "task_id", "map_index", "try_number", "ti_id")
# Timers, in seconds: from a quick query to a long DAG run.
TIMER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                 120.0, 300.0, 600.0, 1800.0, 3600.0, float("inf"))
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
_KINDS = {"c": "counter", "g": "gauge", "ms": "histogram", "h": "histogram",
          "d": "histogram"}


@dataclass(slots=True)
class _Series:
    value: float = 0.0  # a counter's total or a gauge's value; a histogram's sum
    buckets: list[int] = field(default_factory=list)  # a histogram's counts, not cumulative
    count: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One StatsD line, read: the metric's Prometheus name, kind, labels and value."""

    name: str
    kind: str
    labels: tuple[tuple[str, str], ...]
    value: float
    delta: bool = False  # a gauge's "+N" or "-N"


def parse_line(line: str, prefix: str) -> Sample | None:
    """A StatsD line (`prefix.name[,tag=value...]:value|type[|@rate]`) whose name starts
    with `prefix.`, or None when it is malformed or not of that prefix."""
    head, colon, rest = line.rpartition(":")
    if not colon:
        return None
    fields = rest.split("|")
    if len(fields) < 2 or fields[1] not in _KINDS:
        return None
    name, *tags = head.split(",")
    if not name.startswith(prefix + ".") or len(name) <= len(prefix) + 1:
        return None
    kind = _KINDS[fields[1]]
    text = fields[0].strip()
    delta = kind == "gauge" and text[:1] in ("+", "-")
    try:
        value = float(text)
        rate = next((float(f[1:]) for f in fields[2:] if f.startswith("@")), 1.0)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")) or not 0 < rate <= 1:
        return None
    if kind == "counter":
        value /= rate
    elif kind == "histogram":
        value /= 1000.0  # StatsD timers are milliseconds
    labels: dict[str, str] = {}
    for tag in tags:
        key, equals, tag_value = tag.partition("=")
        key = _NAME_UNSAFE.sub("_", key)
        if not equals or not key or key[0].isdigit() or key.startswith("__"):
            return None
        if key == "environment":  # airgate's own label wins, as Prometheus renames
            key = "exported_environment"
        labels[key] = tag_value[:MAX_LABEL_VALUE]
    metric = "airflow_" + _NAME_UNSAFE.sub("_", name[len(prefix) + 1:])
    if kind == "histogram":
        metric += "_seconds"
    return Sample(metric, kind, tuple(sorted(labels.items())), value, delta)


class StatsdMetrics(Collector):
    """A StatsD receiver on a local UDP port, and the collector of what it received."""

    def __init__(self, key: bytes, host: str = "127.0.0.1", port: int = 0,
                 max_series: int = MAX_SERIES) -> None:
        self._key = key
        self._max_series = max_series
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, port))
        self._socket.settimeout(0.5)
        self.host, self.port = self._socket.getsockname()[:2]
        self._lock = threading.Lock()
        self._environments: dict[str, str] = {}  # prefix -> environment
        self._kinds: dict[str, str] = {}  # metric -> kind, the first one seen
        self._series: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], _Series]] = {}
        self._dropped: dict[str, int] = {}  # reason -> samples
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- environments ----------------------------------------------------------------

    def prefix_for(self, environment: str) -> str:
        """The environment's StatsD prefix (its key); samples with it are the
        environment's from now on."""
        digest = hmac.new(self._key, environment.encode(), hashlib.sha256).hexdigest()
        prefix = f"airgate{digest[:24]}"
        with self._lock:
            self._environments[prefix] = environment
        return prefix

    def forget(self, environment: str) -> None:
        """A deleted environment: its series go, and its prefix is no longer accepted."""
        with self._lock:
            for prefix in [p for p, name in self._environments.items() if name == environment]:
                del self._environments[prefix]
            self._series.pop(environment, None)

    def airflow_options(self, environment: str) -> dict[str, str]:
        """The `[metrics]` options that make the environment's Airflow send here."""
        return {
            "metrics.statsd_on": "True",
            "metrics.statsd_host": str(self.host),
            "metrics.statsd_port": str(self.port),
            "metrics.statsd_prefix": self.prefix_for(environment),
            # Airflow's tags, as labels; the names with ids in them are not sent (Airflow 3).
            "metrics.statsd_influxdb_enabled": "True",
            "metrics.legacy_names_on": "False",
            "metrics.statsd_disabled_tags": ",".join(UNBOUNDED_TAGS),
        }

    # --- receiving -------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._receive, daemon=True,
                                        name="statsd-receiver")
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._socket.close()

    def _receive(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.receive(datagram)

    def receive(self, datagram: bytes) -> None:
        """Take in one datagram of StatsD lines."""
        try:
            text = datagram.decode("utf-8")
        except UnicodeDecodeError:
            self._drop("malformed")
            return
        for line in text.splitlines():
            if line.strip():
                self._take(line.strip())

    def _take(self, line: str) -> None:
        prefix = line.partition(".")[0]
        with self._lock:
            environment = self._environments.get(prefix)
            if environment is None:
                self._drop("unknown_prefix")
                return
            sample = parse_line(line, prefix)
            if sample is None:
                self._drop("malformed")
                return
            if self._kinds.setdefault(sample.name, sample.kind) != sample.kind:
                self._drop("type_conflict")
                return
            series = self._series.setdefault(environment, {})
            key = (sample.name, sample.labels)
            current = series.get(key)
            if current is None:
                if len(series) >= self._max_series:
                    self._drop("series_limit")
                    return
                current = series[key] = _Series(
                    buckets=[0] * len(TIMER_BUCKETS) if sample.kind == "histogram" else [])
            if sample.kind == "counter" or sample.delta:
                current.value += sample.value
            elif sample.kind == "gauge":
                current.value = sample.value
            else:
                current.value += sample.value
                current.count += 1
                current.buckets[bisect.bisect_left(TIMER_BUCKETS, sample.value)] += 1

    def _drop(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    # --- the collector ---------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families: dict[str, Metric] = {}
            for environment, series in self._series.items():
                for (name, labels), state in series.items():
                    kind = self._kinds[name]
                    family = families.get(name)
                    if family is None:
                        family = families[name] = Metric(
                            name, f"Airflow's {name[len('airflow_'):]} (StatsD)", kind)
                    _add_samples(family, kind, {"environment": environment, **dict(labels)},
                                 state)
            dropped = CounterMetricFamily(
                "airgate_statsd_samples_dropped", "StatsD samples airgate did not keep: "
                "from no known environment, malformed, of another type than the metric's "
                "first, or past an environment's series limit", labels=["reason"])
            for reason, count in sorted(self._dropped.items()):
                dropped.add_metric([reason], float(count))
        yield from families.values()
        yield dropped


def _add_samples(family: Metric, kind: str, labels: dict[str, str], state: _Series) -> None:
    name = family.name
    if kind == "counter":
        family.add_sample(name + "_total", labels, state.value)
    elif kind == "gauge":
        family.add_sample(name, labels, state.value)
    else:
        cumulative = 0
        for bound, count in zip(TIMER_BUCKETS, state.buckets, strict=True):
            cumulative += count
            family.add_sample(name + "_bucket", {**labels, "le": _bound(bound)}, cumulative)
        family.add_sample(name + "_count", labels, float(state.count))
        family.add_sample(name + "_sum", labels, state.value)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
