"""Preparing an environment before its processes start: keys, files from its bucket,
requirements, the startup script and the metadata database.

Every step is safe to repeat (an update or a restart provisions again) and fails with a
`ProvisionError` whose code and message end up in the environment's LastUpdate.Error.
"""

from __future__ import annotations

import secrets
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet

from airgate.airflow.tokens import SigningKey, write_jwks
from airgate.airflow.v3 import OWN_KEY_ID
from airgate.auth.secrets import write_private
from airgate.environments import sandbox as sandboxed
from airgate.environments.layout import EnvironmentLayout
from airgate.environments.sandbox import Confinement, Sandbox, View
from airgate.environments.sources import BucketFolders

AIRGATE_KEY_ID = "airgate"
REQUIREMENTS_TIMEOUT = 600.0
STARTUP_SCRIPT_TIMEOUT = 300.0  # MWAA allows its startup script five minutes
MIGRATE_TIMEOUT = 300.0
_ERROR_TAIL = 900  # characters of a failing command's output kept in the error message


class ProvisionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        # LastUpdate.Error.ErrorMessage is one line of at most 1024 characters.
        self.message = " | ".join(line.strip() for line in message.splitlines()
                                  if line.strip())[:1024] or code


class ObjectSource(Protocol):
    def fetch(self, bucket_arn: str, key: str, version: str | None,
              destination: Path) -> None: ...


def keys(layout: EnvironmentLayout, trust_own: bool = True) -> SigningKey:
    """The environment's own key and airgate's key for it; the JWKS trusting airgate's (and
    the environment's own, where Airflow signs tokens with it); its Fernet key and web
    server secret."""
    own = SigningKey.load_or_create(layout.own_key, OWN_KEY_ID)
    airgate = SigningKey.load_or_create(layout.airgate_key, AIRGATE_KEY_ID)
    write_jwks(layout.jwks, *((own, airgate) if trust_own else (airgate,)))
    if not layout.fernet_key.exists():
        write_private(layout.fernet_key, Fernet.generate_key())
    if not layout.web_secret.exists():
        write_private(layout.web_secret, secrets.token_urlsafe(32).encode())
    return airgate


def fetch_object(source: ObjectSource, spec: Mapping[str, Any], member: str,
                 destination: Path) -> bool:
    """Fetch the object `spec[member]` names (e.g. PluginsS3Path); False if none is set."""
    key = spec.get(f"{member}S3Path")
    if not key:
        destination.unlink(missing_ok=True)
        return False
    try:
        source.fetch(spec["SourceBucketArn"], key, spec.get(f"{member}S3ObjectVersion"),
                     destination)
    except FileNotFoundError as error:
        raise ProvisionError("S3_OBJECT_NOT_FOUND", str(error)) from None
    return True


def unpack_plugins(archive: Path, folder: Path) -> None:
    """plugins.zip into the plugins folder, refusing members that would land outside it."""
    for old in sorted(folder.rglob("*"), reverse=True):
        old.unlink() if old.is_file() or old.is_symlink() else old.rmdir()
    try:
        with zipfile.ZipFile(archive) as bundle:
            root = folder.resolve()
            for member in bundle.namelist():
                target = (folder / member).resolve()
                if target != root and root not in target.parents:
                    raise ProvisionError("PLUGINS_INVALID",
                                         f"plugins.zip member {member!r} escapes the folder")
            bundle.extractall(folder)
    except zipfile.BadZipFile as error:
        raise ProvisionError("PLUGINS_INVALID", f"plugins.zip is not a zip file: {error}") \
            from None


def install_requirements(interpreter: Path, requirements: Path, target: Path,
                         constraints: Path, env: Mapping[str, str], log: Path,
                         sandbox: Confinement) -> None:
    """pip install, in the environment's sandbox, into its own folder, never a shared one.

    The constraints pin every package the runtime already has, so a requirement can't swap
    out a version Airflow depends on: pip fails instead, and says why.
    """
    command = [str(interpreter), "-m", "pip", "install", "--disable-pip-version-check",
               "--no-input", "--target", str(target), "--upgrade", "-r", str(requirements),
               "-c", str(constraints)]
    _run("REQUIREMENTS_INSTALL_FAILED", "pip install -r requirements.txt", command, env, log,
         REQUIREMENTS_TIMEOUT, sandbox)


def write_constraints(interpreter: Path, cache: Path, destination: Path) -> None:
    """The runtime's installed versions, as a pip constraints file: made once per runtime
    (in `cache`, airgate's), copied to `destination` where the environment's pip reads it."""
    if not cache.exists():
        frozen = subprocess.run([str(interpreter), "-m", "pip", "freeze", "--exclude-editable"],
                                capture_output=True, text=True, check=True, timeout=120,
                                env={"PATH": "/usr/bin:/bin"}).stdout
        pins = [line for line in frozen.splitlines()
                if "==" in line and not line.startswith("-e")]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("\n".join(pins) + "\n")
    destination.write_bytes(cache.read_bytes())


def run_startup_script(script: Path, env: Mapping[str, str], log: Path,
                       sandbox: Confinement) -> dict[str, str]:
    """Run the startup script as MWAA does, in the environment's sandbox, before the
    components; the variables it exports are added to their environment."""
    command = ["/bin/bash", "-c", 'set -a; source "$1" 1>&2; env -0', "startup", str(script)]
    output = _run("STARTUP_SCRIPT_FAILED", "the startup script", command, env, log,
                  STARTUP_SCRIPT_TIMEOUT, sandbox, capture_stdout=True)
    exported = dict(item.split("=", 1) for item in output.split("\0") if "=" in item)
    return {k: v for k, v in exported.items() if env.get(k) != v and not k.startswith("AIRFLOW")
            and k not in ("PWD", "SHLVL", "_", "OLDPWD")}


def migrate_database(interpreter: Path, env: Mapping[str, str], log: Path,
                     sandbox: Confinement) -> None:
    _run("AIRFLOW_DB_MIGRATE_FAILED", "airflow db migrate",
         [str(interpreter), "-m", "airflow", "db", "migrate"], env, log, MIGRATE_TIMEOUT,
         sandbox)


def _run(code: str, what: str, command: list[str], env: Mapping[str, str], log: Path,
         timeout: float, sandbox: Confinement, capture_stdout: bool = False) -> str:
    """Run a setup command in the environment's sandbox, its output in `log`; a failure's
    tail becomes the error."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = sandboxed.run(sandbox, command, env, Path(env["AIRFLOW_HOME"]), timeout)
    except subprocess.TimeoutExpired:
        raise ProvisionError(code, f"{what} did not finish within {timeout:.0f} s") from None
    with open(log, "ab") as sink:
        sink.write(f"$ {' '.join(command)}\n".encode())  # the command, not the sandbox's
        if not capture_stdout:
            sink.write(result.stdout)
        sink.write(result.stderr)
    if result.returncode != 0:
        text = (result.stderr or result.stdout).decode(errors="replace")
        relevant = [line for line in text.splitlines()
                    if "ERROR" in line or "error" in line.lower()] or text.splitlines()
        raise ProvisionError(code, f"{what} failed (exit {result.returncode}): "
                             + "\n".join(relevant)[-_ERROR_TAIL:])
    return result.stdout.decode(errors="replace")



def dags_folder(sources: Any, spec: Mapping[str, Any], layout: EnvironmentLayout) -> str:
    """Where the environment's Airflow reads its DAGs: a bucket folder in place, or a copy
    of the S3 prefix in the environment's folder."""
    if isinstance(sources, BucketFolders):
        return str(sources.dags_folder(spec["SourceBucketArn"], spec["DagS3Path"]))
    try:
        sources.sync(spec["SourceBucketArn"], spec["DagS3Path"], layout.dags)
    except Exception as error:
        raise ProvisionError("S3_SYNC_FAILED", f"could not read DAGs from S3: {error}") \
            from None
    return str(layout.dags)


def tenant_code(sources: ObjectSource, spec: Mapping[str, Any], layout: EnvironmentLayout,
                interpreter: Path, constraints_cache: Path, env: dict[str, str], log: Path,
                sandbox: Confinement) -> None:
    """The environment's plugins, requirements and startup script, as MWAA takes them:
    plugins first (requirements may name wheels shipped in plugins.zip), the startup
    script last, its exports added to `env`. All of it runs in the sandbox."""
    plugins = layout.root / "plugins.zip"
    if fetch_object(sources, spec, "Plugins", plugins):
        unpack_plugins(plugins, layout.plugins)
    requirements = layout.root / "requirements.txt"
    if fetch_object(sources, spec, "Requirements", requirements):
        constraints = layout.root / "constraints.txt"
        write_constraints(interpreter, constraints_cache, constraints)
        install_requirements(interpreter, requirements, layout.site_packages, constraints, env,
                             log, sandbox)
    script = layout.root / "startup.sh"
    if fetch_object(sources, spec, "StartupScript", script):
        env.update(run_startup_script(script, env, log, sandbox))


def confine(sandbox: Sandbox, name: str, layout: EnvironmentLayout, runtime: tuple[Path, ...],
            dags: Path) -> Confinement:
    """The environment's sandbox: it writes its AIRFLOW_HOME, HOME and site-packages,
    reads its own folder, its Airflow `runtime` (versions.runtime_folders) and its DAGs,
    and nothing else of airgate's."""
    inside = layout.root == dags or layout.root in dags.parents
    view = View(name, layout.root,
                writable=(layout.airflow_home, layout.home, layout.site_packages),
                readable=(*runtime, *(() if inside else (dags,))),
                tmp=layout.tmp, workdir=layout.airflow_home)
    confinement = sandbox.confine(view)
    sandboxed.grant_read(layout.own_key, confinement.uid)  # Airflow signs with it
    return confinement
