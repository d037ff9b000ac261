"""Nothing secret leaks: a pytest plugin that, once the whole run is over, scans every log
file the run produced (airgate's, each environment's Airflow logs, the CLI's) and every error
response airgate sent, for the secrets the run issued or sent.

What counts as a leak:
- an environment's execution-role token (the Authorization its SDKs send for credentials);
- a secret access key or session token issued during the run: recorded as issued in this
  process, printed by an `airgate` subprocess (`remember_secret`), or found at rest after
  the run in any airgate home below the run's temporary folder (each bootstrap
  administrator's credentials.json, master.key, each environment's Fernet key, web secret
  and signing key);
- anything shaped like a JWT (Airflow tokens, CLI and web-login tokens);
- a canary: a value a test put in an InvokeRestApi Body or an Airflow response
  (`remember_canary`), which must never be logged or echoed in an error message.

Error responses are recorded by tests.support.running_airgate. RestApiClientException and
RestApiServerException carry RestApiResponse by MWAA's model, so that one member is left
out of the scan. The run fails if anything is found; the figures go to
test-artifacts/secret-scan.json.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airgate.auth.identities import Identities
from airgate.environments.execution_role import ExecutionRoles
from airgate.logs import JsonFormatter
from tests.browser import ARTIFACTS

ERROR_RESPONSES = "error-responses.log"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}")
_secrets: set[str] = set()
_canaries: set[str] = set()
_scanned: dict[str, Path] = {}


def remember_secret(value: str) -> str:
    """A secret the test saw outside this process (a subprocess printed it)."""
    _secrets.add(value)
    return value


def remember_canary(value: str) -> str:
    _canaries.add(value)
    return value


@pytest.fixture(scope="session", autouse=True)
def _record_issued_secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Remember every secret the run issues, and keep airgate's in-process logs in a file
    (as `airgate up` does), so that both can be scanned at the end."""
    base = tmp_path_factory.getbasetemp()
    _scanned["base"] = base
    handler = logging.FileHandler(base / "airgate-in-process.log")
    handler.setFormatter(JsonFormatter())
    watched = [logging.getLogger(name) for name in ("airgate", "uvicorn", "uvicorn.error")]
    for logger in watched:
        logger.addHandler(handler)
    with pytest.MonkeyPatch.context() as patch:
        for method in ("create_access_key", "assume_role", "get_session_token"):
            patch.setattr(Identities, method, _remembering(getattr(Identities, method)))
        token = ExecutionRoles.token
        patch.setattr(ExecutionRoles, "token",
                      lambda roles, record: remember_secret(token(roles, record)))
        yield
    for logger in watched:
        logger.removeHandler(handler)
    handler.close()


def _remembering(method: Any) -> Any:
    def issuing(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        credentials = result.get("Credentials", result)
        for member in ("SecretAccessKey", "SessionToken"):
            if credentials.get(member):
                _secrets.add(credentials[member])
        return result
    return issuing


def _secrets_at_rest(base: Path) -> set[str]:
    """The secrets every airgate home below `base` keeps on disk, in-process or not."""
    found: set[str] = set()
    for path in base.rglob("*"):
        try:
            if path.name == "credentials.json" and path.is_file():
                secret = json.loads(path.read_text()).get("SecretAccessKey")
                if secret:
                    found.add(secret)
            elif path.name == "master.key" or (path.parent.name == "keys" and path.name in (
                    "fernet.key", "web-secret")):
                found.add(path.read_text().strip())
            elif path.name == "airflow.pem" and path.parent.name == "keys":
                found.update(line for line in path.read_text().splitlines()
                             if line and not line.startswith("-----"))
        except (OSError, ValueError, AttributeError):
            continue  # unreadable or not what it seemed: nothing to learn from it
    return {secret for secret in found if len(secret) >= 20}


def _scanned_files(base: Path) -> Iterator[Path]:
    for path in base.rglob("*"):
        if path.is_file() and (path.suffix == ".log" or "logs" in path.parts):
            yield path


def _hits(text: str) -> list[str]:
    found = [f"secret {value[:4]}…" for value in _secrets if value in text]
    found += [f"canary {value}" for value in _canaries if value in text]
    found += [f"JWT {match[:12]}…" for match in _JWT.findall(text)]
    return found


def _error_response_text(line: str) -> str:
    """An error response as scanned: RestApiResponse is the modeled answer from Airflow."""
    try:
        document = json.loads(line)
        body = json.loads(document.get("body", ""))
    except ValueError:
        return line
    if isinstance(body, dict):
        body.pop("RestApiResponse", None)
    return json.dumps({**document, "body": body})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    base = _scanned.get("base")
    if base is None or not base.exists():
        return
    _secrets.update(_secrets_at_rest(base))
    files = scanned_bytes = 0
    leaks: list[str] = []
    for path in _scanned_files(base):
        text = path.read_text(errors="replace")
        files += 1
        scanned_bytes += len(text)
        if path.name == ERROR_RESPONSES:
            text = "\n".join(_error_response_text(line) for line in text.splitlines())
        leaks += [f"{path.relative_to(base)}: {hit}" for hit in _hits(text)]
    report = {"files": files, "bytes": scanned_bytes, "secrets_issued": len(_secrets),
              "canaries": len(_canaries), "leaks": leaks}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "secret-scan.json").write_text(json.dumps(report, indent=1))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"secret scan: {files} log files, {scanned_bytes} bytes, {len(_secrets)} issued "
            f"secrets, {len(_canaries)} canaries: {len(leaks)} leaks")
        for leak in leaks[:20]:
            reporter.write_line(f"  LEAK {leak}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
