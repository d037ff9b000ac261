"""Fixtures: the state store on SQLite and on PostgreSQL, and airgate servers over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RunningAirgate, postgres_database, running_airgate

pytest_plugins = ["tests.leak_scan"]  # after the run: no secret in any log or error answer


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
