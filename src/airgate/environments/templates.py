"""Metadata migrated once per Airflow runtime, copied into each new environment.

`airflow db migrate` on an empty database builds Airflow's whole schema, which is most of
what a new environment waits for before its components can start (bench/
environment_startup.py). So the first environment of each Airflow version pays for one
migration into a template (an SQLite file, or a PostgreSQL template database) and every new
environment of that version starts from a copy of it. The environment's own `airflow db
migrate` still runs, in its sandbox and with its own configuration: it finds the schema at
Airflow's head and only adds what that configuration decides (the default pool, which the
template leaves out for that reason, and the log file template), so an environment made from
a copy holds what one migrated from scratch would.

The template is made by Airflow's own code from the runtime airgate installed, with no
tenant's configuration, DAGs, plugins or requirements, in a folder of airgate's: nothing of
any environment reaches it, and no environment can write it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from airgate.airflow.major import AirflowMajor
from airgate.environments.airflow_config import SYSTEM_PATH, option_variables
from airgate.environments.metadata import MetadataDatabases
from airgate.environments.provision import ProvisionError

MIGRATE_TIMEOUT = 600.0
DEFAULT_POOL = "default_pool"  # made by each environment's own migration, with its slots
_log = logging.getLogger("airgate.templates")


class MetadataTemplates:
    """One migrated template per Airflow version (and metadata server), made on first use."""

    def __init__(self, folder: Path, databases: MetadataDatabases) -> None:
        self._folder = folder
        self._databases = databases
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def seed(self, name: str, version: str, interpreter: Path, major: AirflowMajor,
             sqlite_file: Path) -> bool:
        """Give environment `name` a copy of `version`'s migrated metadata, unless it has
        metadata already (an existing environment keeps its own); whether it got one."""
        with self._lock(version):
            if self._databases.on_server:
                if self._databases.exists(name):
                    return False
                template = self._template(version, interpreter, major)
                self._databases.create_from(name, template)
            else:
                if sqlite_file.exists():
                    return False
                template = self._template(version, interpreter, major)
                _copy_into(self._sqlite(version), sqlite_file)
        _log.info("environment metadata copied from a migrated template",
                  extra={"fields": {"environment": name, "template": template}})
        return True

    def _template(self, version: str, interpreter: Path, major: AirflowMajor) -> str:
        """The template's name, made first if it is missing or was made by another runtime."""
        stamp = self._folder / version / ("server" if self._databases.on_server else "sqlite")
        made_by = f"{interpreter}\n{version}\n"
        template = self._databases.template_name(version) or str(self._sqlite(version))
        if stamp.exists() and stamp.read_text() == made_by \
                and (self._databases.on_server or self._sqlite(version).exists()):
            return template
        stamp.unlink(missing_ok=True)
        (self._folder / version).mkdir(parents=True, exist_ok=True)
        self._make(version, interpreter, major)
        stamp.write_text(made_by)
        return template

    def _make(self, version: str, interpreter: Path, major: AirflowMajor) -> None:
        scratch = self._folder / version / "making"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        database = scratch / "airflow.db"
        url = self._databases.empty_template(version)
        options = major.migration_options(url, database)
        env = {"PATH": f"{interpreter.parent}:{SYSTEM_PATH}", "LANG": "C.UTF-8",
               "HOME": str(scratch), "AIRFLOW_HOME": str(scratch),
               **option_variables({"core.load_examples": "False", **options}),
               **major.environment(major.database_options(url, database))}
        _log.info("migrating a metadata template", extra={"fields": {"version": version}})
        result = self._migrate([str(interpreter), "-m", "airflow", "db", "migrate"], env,
                               scratch)
        (scratch / "migrate.log").write_bytes(self._databases.redact(result.stderr))
        if result.returncode != 0:
            # Airflow's output names the administrator's server: the operator's log gets it,
            # the environment's error (which its callers read) only says where to look.
            tail = self._databases.redact(result.stderr).decode(errors="replace")[-1500:]
            _log.error("migrating a metadata template failed", extra={"fields": {
                "version": version, "exit": result.returncode, "output": tail}})
            raise ProvisionError("AIRFLOW_DB_MIGRATE_FAILED",
                                 f"migrating Airflow {version}'s metadata template failed "
                                 f"(exit {result.returncode}); see airgate's log")
        if url is not None:
            self._databases.finish_template(version, DEFAULT_POOL)
        else:
            with contextlib.closing(sqlite3.connect(database)) as connection, connection:
                connection.execute("DELETE FROM slot_pool WHERE pool = ?", (DEFAULT_POOL,))
            final = self._sqlite(version)
            database.replace(final)
            final.chmod(0o600)
        shutil.rmtree(scratch, ignore_errors=True)

    def _migrate(self, command: list[str], env: dict[str, str],
                 cwd: Path) -> subprocess.CompletedProcess[bytes]:
        """Run the migration in a process group of its own, which `close` ends."""
        with self._guard:
            if self._closed:
                raise ProvisionError("INTERRUPTED", "airgate is shutting down")
            process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
            self._running.add(process)
        try:
            stdout, stderr = process.communicate(timeout=MIGRATE_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.communicate()
            raise ProvisionError("AIRFLOW_DB_MIGRATE_FAILED", "migrating the metadata "
                                 f"template did not finish within {MIGRATE_TIMEOUT:.0f} s") \
                from None
        finally:
            with self._guard:
                self._running.discard(process)
        if self._closed:
            raise ProvisionError("INTERRUPTED", "airgate is shutting down")
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def close(self) -> None:
        """End migrations under way (airgate is stopping): nothing is left running."""
        with self._guard:
            self._closed = True
            running = list(self._running)
        for process in running:
            _kill(process)

    def _sqlite(self, version: str) -> Path:
        return self._folder / version / "airflow.db"

    @contextlib.contextmanager
    def _lock(self, version: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(version, threading.Lock())
        with lock:
            yield


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _copy_into(template: Path, database: Path) -> None:
    """A copy of `template` at `database`, in a folder the environment writes: made under a
    new name of airgate's choosing (O_EXCL, so no link planted there is followed) and renamed
    into place (a link at `database` itself is replaced, not followed)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=database.parent, prefix=".airgate-copy-")
    try:
        with os.fdopen(descriptor, "wb") as sink, template.open("rb") as source:
            shutil.copyfileobj(source, sink)
        os.replace(partial, database)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
