"""What differs between Airflow's major versions, asked of one object per major version.

The runtime (which processes an environment runs, how they are configured, when they are
healthy), the InvokeRestApi proxy (which REST prefix) and the front (how a browser is
signed in) ask `major_of(version)` instead of comparing version numbers themselves, so that
Airflow 2 and Airflow 3 each live in one module: `airflow/v2.py` and `airflow/v3.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy.engine import URL

LOOPBACK = "127.0.0.1"
EVERY_ADDRESS = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class Ports:
    api: int  # the environment's Airflow web server / api-server
    worker_logs: int
    trigger_logs: int
    web: int  # airgate's front for the environment: its WebServerHostname
    # Where its web server / api-server listens: loopback, or every address when other
    # machines reach it (airgate up --advertise-address).
    listen: str = LOOPBACK

    def as_dict(self) -> dict[str, int]:
        return {"api": self.api, "worker_logs": self.worker_logs,
                "trigger_logs": self.trigger_logs, "web": self.web}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an environment's Airflow finds what airgate prepared for it."""

    name: str
    airflow_home: Path
    own_key: Path  # the environment's own signing key (Airflow 3 signs its tokens with it)
    jwks: Path  # the public keys it trusts for airgate's tokens
    support: Path  # airgate's code for this major version, if it has any (importable)
    web_secret: str  # the web server's session secret, the environment's own
    ports: Ports
    web_scheme: str  # how users reach the front: http or https


class AirflowMajor(Protocol):
    @property
    def number(self) -> int:
        """2 or 3."""

    @property
    def rest_prefix(self) -> str:
        """Where InvokeRestApi's Path is rooted: /api/v1 or /api/v2."""

    @property
    def components(self) -> tuple[str, ...]:
        """The long-running processes of an environment, the web server first."""

    @property
    def blocked_options(self) -> frozenset[str]:
        """`section.option` keys only airgate may set (besides the common ones)."""

    @property
    def blocked_sections(self) -> frozenset[str]:
        """Whole configuration sections only airgate may set."""

    def argv(self, component: str, ports: Ports) -> list[str]:
        """`airflow ...` arguments that start `component`."""

    def health_url(self, port: int) -> str:
        """Airflow's own health report, on the web server."""

    def is_healthy(self, report: Mapping[str, Any]) -> bool:
        """Whether every component in `report` says healthy (Airflow answers 200 anyway)."""

    def options(self, placement: Placement) -> dict[str, str]:
        """The configuration this major version needs from airgate."""

    def database_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        """How Airflow reaches its metadata: PostgreSQL at `url`, or SQLite."""

    def migration_options(self, url: URL | None, sqlite_file: Path) -> dict[str, str]:
        """How `airflow db migrate` reaches the metadata (it may need another driver)."""

    @property
    def signs_own_tokens(self) -> bool:
        """Whether Airflow signs tokens with the environment's own key (and so trusts it
        besides airgate's)."""

    def python_path(self, placement: Placement) -> tuple[Path, ...]:
        """Folders of airgate's code the environment's processes import (before its own
        site-packages)."""

    def environment(self, database: Mapping[str, str]) -> dict[str, str]:
        """Process variables (not options) this major version needs."""

    def write_support(self, placement: Placement) -> None:
        """Files airgate puts into the environment for this major version (airgate's own
        code and configuration, read-only to the environment)."""

    def warm_up(self, client: httpx.Client, port: int) -> None:
        """What to request once healthy, so that the first caller doesn't pay for it."""

    def worker_options(self, api_url: str) -> dict[str, str]:
        """What a Celery worker on another machine needs to reach the environment, whose
        web server / api-server that machine reaches at `api_url`."""


def major_of(version: str) -> AirflowMajor:
    """The object that knows Airflow `version`'s major version."""
    from airgate.airflow import v2, v3

    majors: dict[str, AirflowMajor] = {"2": v2.AIRFLOW_2, "3": v3.AIRFLOW_3}
    try:
        return majors[version.split(".", 1)[0]]
    except KeyError:
        raise ValueError(f"Airflow {version} is neither 2.x nor 3.x") from None
