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
