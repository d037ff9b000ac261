"""The seam between the MWAA API and whatever runs environments.

The provider records what the caller asked for and then hands the environment to a runtime,
which brings it up, changes or removes it in the background and reports every status change
back through the `EnvironmentStore`. Nothing in the API layer knows how environments run.
"""

from __future__ import annotations

from typing import Any, Protocol

from airgate.environments.store import EnvironmentRecord, EnvironmentStore


class Runtime(Protocol):
    @property
    def supported_versions(self) -> tuple[str, ...]:
        """Airflow versions this runtime can run; the first is the default."""
        ...

    def check_spec(self, spec: dict[str, Any]) -> None:
        """ValidationException for settings this runtime can't honour (e.g. blocked options)."""

    def begin_create(self, environment: EnvironmentRecord) -> None:
        """Start bringing the environment up (it is CREATING)."""

    def begin_update(self, environment: EnvironmentRecord, previous_spec: dict[str, Any]) -> None:
        """Start applying the new spec (it is UPDATING); on failure restore `previous_spec`."""

    def begin_delete(self, environment: EnvironmentRecord) -> None:
        """Start removing the environment (it is DELETING); remove the record when done."""

    def webserver_url(self, environment: EnvironmentRecord) -> str | None:
        """Where the environment's Airflow UI answers, once it does."""


class RecordOnlyRuntime:
    """Keeps environments as records and runs nothing.

    Used until a process runtime is configured: environments stay CREATING (nothing claims
    they run), and deletion removes the record at once since there is nothing to stop.
    """

    def __init__(self, store: EnvironmentStore, versions: tuple[str, ...]) -> None:
        self._store = store
        self._versions = versions

    @property
    def supported_versions(self) -> tuple[str, ...]:
        return self._versions

    def check_spec(self, spec: dict[str, Any]) -> None:
        return None

    def begin_create(self, environment: EnvironmentRecord) -> None:
        return None

    def begin_update(self, environment: EnvironmentRecord, previous_spec: dict[str, Any]) -> None:
        return None

    def begin_delete(self, environment: EnvironmentRecord) -> None:
        self._store.remove(environment.name)

    def webserver_url(self, environment: EnvironmentRecord) -> str | None:
        return None
