"""`airgate status`: every environment at a glance, from the store, with what the running
airgate says of its components (read from its /metrics, so a status command never needs to
be the server).

`--watch` prints a line for each change (status, a start's step, the last update), so a
create or an update can be followed step by step.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from airgate.environments.executors import DEFAULT_PARALLELISM, WORKER_PREFIX, LocalExecution
from airgate.environments.store import EnvironmentRecord
from airgate.environments.supervisor import ComponentState

# Statuses an environment stays in until something is done to it.
SETTLED = frozenset({"AVAILABLE", "CREATE_FAILED", "UPDATE_FAILED", "UNAVAILABLE",
                     "DELETED"})
Components = Mapping[str, Mapping[str, ComponentState]]


def describe(record: EnvironmentRecord,
             components: Mapping[str, ComponentState] | None) -> dict[str, Any]:
    """One environment, as `--json` prints it (MWAA's member names where MWAA has one)."""
    spec = record.spec
    steps: dict[str, float] = dict(record.runtime.get("Steps") or {})
    executor = str(record.runtime.get("Executor") or LocalExecution.executor)
    workers: int | None
    if executor == LocalExecution.executor:
        # The LocalExecutor's worker processes: one per task slot, MaxWorkers of them.
        workers = spec.get("MaxWorkers") or DEFAULT_PARALLELISM
    else:  # Celery workers running now, as many as the autoscaler wants
        workers = None if components is None else sum(
            1 for name, state in components.items()
            if name.startswith(WORKER_PREFIX) and state.up)
    view: dict[str, Any] = {
        "Name": record.name,
        "Status": record.status,
        "AirflowVersion": spec.get("AirflowVersion"),
        "Executor": executor,
        "Workers": workers,
        "MinWorkers": spec.get("MinWorkers"),
        "MaxWorkers": spec.get("MaxWorkers"),
        "WebserverUrl": record.runtime.get("WebserverUrl"),
        "StartSteps": steps,
        "LastUpdate": record.last_update,
        "Components": None if components is None else {
            name: {"Up": state.up, "Restarts": state.restarts}
            for name, state in sorted(components.items())},
    }
    return view


def describe_all(records: Iterable[EnvironmentRecord],
                 components: Components | None) -> list[dict[str, Any]]:
    return [describe(record, None if components is None else components.get(record.name, {}))
            for record in records]


# --- as a person reads it -----------------------------------------------------------------

_COLUMNS = ("NAME", "STATUS", "AIRFLOW", "EXECUTOR", "COMPONENTS", "WEB UI", "LAST UPDATE")


def table(views: Sequence[Mapping[str, Any]]) -> str:
    rows = [_COLUMNS] + [(view["Name"], _status(view), view["AirflowVersion"] or "-",
                          f"{view['Executor']} x{view['Workers']}", _components(view),
                          view["WebserverUrl"] or "-", _last_update(view))
                         for view in views]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = ["  ".join([*(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                       strict=False)),
                        str(row[-1])]).rstrip() for row in rows]
    if not views:
        lines.append("(no environments)")
    return "\n".join(lines)


def _status(view: Mapping[str, Any]) -> str:
    steps = view["StartSteps"]
    if view["Status"] in SETTLED or not steps:
        return str(view["Status"])
    last = list(steps)[-1]
    return f"{view['Status']} ({last} done)"


def _components(view: Mapping[str, Any]) -> str:
    components = view["Components"]
    if components is None:
        return "?"  # no running airgate answered
    if not components:
        return "-"
    up = [name for name, state in components.items() if state["Up"]]
    restarts = sum(state["Restarts"] for state in components.values())
    text = f"{len(up)}/{len(components)} up"
    down = sorted(set(components) - set(up))
    if down:
        text += f" ({', '.join(down)} down)"
    if restarts:
        text += f", {restarts} restart{'s' if restarts > 1 else ''}"
    return text


def _last_update(view: Mapping[str, Any]) -> str:
    update = view["LastUpdate"]
    if not update:
        return "-"
    when = str(update.get("CreatedAt", ""))[:19].replace("T", " ")
    text = f"{update.get('Status', '?')} {when}".strip()
    error = update.get("Error")
    if error:
        text += f": {error.get('ErrorCode')}: {error.get('ErrorMessage')}"
    return text


# --- following changes --------------------------------------------------------------------

def changes(before: Mapping[str, Mapping[str, Any]],
            after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What changed between two looks, as lines a person follows."""
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if new is None:
            lines.append(f"{name}: deleted")
            continue
        if old is None:
            lines.append(f"{name}: {new['Status']}")
        old_steps = {} if old is None else old["StartSteps"]
        for step, seconds in new["StartSteps"].items():
            if step not in old_steps:
                lines.append(f"{name}: {step} done ({seconds:.1f} s)")
        if old is not None and old["Status"] != new["Status"]:  # after the steps that led
            lines.append(f"{name}: {new['Status']}")
        if old is not None and old["LastUpdate"] != new["LastUpdate"] and new["LastUpdate"]:
            lines.append(f"{name}: last update {_last_update(new)}")
    return lines


def watch(look: Callable[[], list[dict[str, Any]]], names: Sequence[str], out: TextIO,
          interval: float = 1.0, as_json: bool = False,
          sleep: Callable[[float], None] = time.sleep) -> None:
    """Print each change until every named environment is settled (or gone); without
    names, until interrupted."""
    seen: dict[str, dict[str, Any]] = {}
    while True:
        views = [view for view in look() if not names or view["Name"] in names]
        current = {view["Name"]: view for view in views}
        now = datetime.datetime.now().strftime("%H:%M:%S")
        for line in changes(seen, current):
            name, _, said = line.partition(": ")
            out.write(json.dumps({"Time": now, "Name": name, "Change": said}) + "\n"
                      if as_json else f"{now} {line}\n")
        out.flush()
        seen = current
        if names and all(name not in current or current[name]["Status"] in SETTLED
                         for name in names):
            return
        sleep(interval)


# --- the running airgate's view of components -----------------------------------------------

def live_components(endpoint_url: str, token: str | None = None,
                    verify: str | bool = True) -> Components | None:
    """Each environment's components as the running airgate at `endpoint_url` reports them
    on /metrics; None when it does not answer."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(f"{endpoint_url}/metrics", headers=headers, verify=verify,
                           timeout=5)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    up: dict[tuple[str, str], bool] = {}
    restarts: dict[tuple[str, str], int] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = (sample.labels.get("environment", ""), sample.labels.get("component", ""))
            if sample.name == "airgate_environment_component_up":
                up[key] = sample.value == 1
            elif sample.name == "airgate_environment_component_restarts_total":
                restarts[key] = int(sample.value)
    found: dict[str, dict[str, ComponentState]] = {}
    for (environment, component), running in up.items():
        found.setdefault(environment, {})[component] = ComponentState(
            running, restarts.get((environment, component), 0))
    return found
