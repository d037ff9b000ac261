"""Fixtures: the state store on SQLite and on PostgreSQL, and airgate servers over them.

Hypothesis: every run draws new inputs from a seed chosen for the run (or given with
`--hypothesis-seed=N` / AIRGATE_HYPOTHESIS_SEED=N). The seed is printed at the start and the
end of the run, so any run, a CI run included, can be replayed exactly with it. Hypothesis's
database is not kept between CI runs, so an input that once failed belongs in the test as an
`@example`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningAirgate, postgres_database, running_airgate

pytest_plugins = ["tests.leak_scan"]  # after the run: no secret in any log or error answer

HYPOTHESIS_SEED_VARIABLE = "AIRGATE_HYPOTHESIS_SEED"


@pytest.hookimpl(tryfirst=True)  # before hypothesis's own plugin reads the option
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_seed", None) is None:
        seed = os.environ.get(HYPOTHESIS_SEED_VARIABLE) or str(
            random.SystemRandom().randrange(2**32))
        config.option.hypothesis_seed = seed


# Markers that say what a test needs; a test that needs Airflow or a browser is slow.
IMPLIES_SLOW = ("airflow", "browser")
# A scheduler's log, as airgate's runtime writes it for each real environment, in an airgate
# home made in a temporary folder (the folder itself, or one or two levels down).
_SCHEDULER_LOGS = tuple(f"{'*/' * depth}environments/*/logs/scheduler.log"
                        for depth in range(3))
# The temporary folders made while each test module runs (its tests' and its fixtures').
_made_in_module: dict[str, list[Path]] = {}
_BEFORE = pytest.StashKey[set[Path]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in IMPLIES_SLOW):
            item.add_marker(pytest.mark.slow)


def _scheduler_logs(module: str) -> set[Path]:
    return {path.resolve() for folder in _made_in_module.get(module, [])
            for pattern in _SCHEDULER_LOGS for path in folder.glob(pattern)}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Note the temporary folders the test's module makes, and the real environments in
    them before the test, so its teardown report can tell whether it started one."""
    module = item.nodeid.split("::")[0]
    original = pytest.TempPathFactory.mktemp

    def noted(factory: pytest.TempPathFactory, basename: str, numbered: bool = True) -> Path:
        made = original(factory, basename, numbered)
        _made_in_module.setdefault(module, []).append(made)
        return made

    item.stash[_BEFORE] = _scheduler_logs(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pytest.TempPathFactory, "mktemp", noted)
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A test not marked `airflow` that started real Airflow fails: `-m 'not slow'` must
    stay quick, and the markers must say what each test needs. Found by the scheduler log
    on disk, not by asking airgate (the product's word is not the test's oracle)."""
    outcome = yield
    if call.when != "teardown" or item.get_closest_marker("airflow"):
        return
    module = item.nodeid.split("::")[0]
    started = _scheduler_logs(module) - item.stash.get(_BEFORE, set())
    report = outcome.get_result()
    if started and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started real Airflow ({sorted(map(str, started))})"
                           " but is not marked `airflow`")


def _replay_hint(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    return (f"hypothesis seed {seed}: replay this run's generated inputs with "
            f"--hypothesis-seed={seed} (or {HYPOTHESIS_SEED_VARIABLE}={seed})")


def pytest_report_header(config: pytest.Config) -> str:
    return _replay_hint(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    terminalreporter.write_line(_replay_hint(config))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the airgate home, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def airgate_server(tmp_path: Path, database_url: str | None) -> Iterator[RunningAirgate]:
    with running_airgate(tmp_path / "home", database_url) as server:
        yield server
