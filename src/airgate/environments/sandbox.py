"""Where a tenant's code runs: every process of an environment (each Airflow component and
its tasks, pip for its requirements, its startup script, `airflow db migrate`, commands from
its CLI endpoint) is started through this module's `Confinement`, never with a bare command.

What isolates an environment depends on what the machine allows, decided once at start by
`detect` and stated plainly by `Sandbox.description`:

- **own user + namespaces** (airgate runs as root, bubblewrap is installed): every
  environment runs under a uid of its own, outside the range of real accounts, with no
  capabilities and `no_new_privs`, in mount, PID and IPC namespaces of its own (Debian's
  `bubblewrap`). It sees the system's programs and libraries, the Airflow runtime, its own
  folder and its DAGs; nothing of airgate's home, store, keys or logs, no other
  environment's files, and no process but its own.
- **namespaces** (airgate is not root, unprivileged user namespaces are allowed): the same
  view of files and processes, under airgate's own uid.
- **none** (no bubblewrap, or the kernel refuses namespaces): nothing isolates environments
  from airgate or from each other. airgate says so at start; `--sandbox required` refuses to
  start instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_log = logging.getLogger("airgate.sandbox")

MODES = ("auto", "required", "off")
# Environments' uids: one per installation and environment name, far above real accounts
# (below 65,536 in practice) and below 2^31, since some programs still treat ids as signed
# (gunicorn masks a gid to 31 bits before setgid, which then fails).
UID_BASE = 2_000_000_000
UID_SPAN = 1 << 24
SANDBOX_USER = "airflow"  # what an environment's processes are called inside, as on MWAA
# What every environment may read of the machine: programs, libraries, configuration.
_SYSTEM_READ_ONLY = ("/usr", "/etc", "/sys")
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(RuntimeError):
    """`--sandbox required` on a machine where environments can't be isolated."""


@dataclass(frozen=True, slots=True)
class View:
    """What one environment's processes see of the filesystem, besides the system's own
    programs and libraries: `root` read-only (its keys, logs, requirements, startup script,
    plugins), the folders in `writable` read-write (AIRFLOW_HOME, HOME, site-packages),
    `tmp` as /tmp, and `readable` read-only at their own paths (the Airflow runtime, DAGs).
    """

    name: str
    root: Path
    writable: tuple[Path, ...]
    readable: tuple[Path, ...]
    tmp: Path
    workdir: Path


@dataclass(frozen=True, slots=True)
class Launch:
    """Arguments for `subprocess.Popen` / `subprocess.run` that start one command in an
    environment's sandbox."""

    args: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()


# Runs as the environment (after the uid is dropped): reads the command's environment,
# NUL-separated, from a descriptor, then becomes the command. So nothing the environment
# controls (LD_PRELOAD, PATH, ...) reaches bwrap or setpriv, which run as airgate, and
# nothing secret (the database password, the Fernet key) appears in a command line.
_LAUNCHER = ('fd=$1; shift; while IFS= read -r -d "" kv; do export "$kv"; done <&"$fd"; '
             'exec {fd}<&-; exec "$@"')


@dataclass(frozen=True, slots=True)
class Confinement:
    """How to run commands inside one environment's sandbox."""

    prefix: tuple[str, ...]  # () when environments are not isolated
    user: str  # the account name the processes see (USER, LOGNAME)
    uid: int | None = None  # the environment's own uid, when it has one
    # The environment of the process airgate starts (bwrap), besides the launcher's: what
    # finds it again after a crash (environments/leftovers.py), and a PATH.
    marker: tuple[tuple[str, str], ...] = ()

    @contextlib.contextmanager
    def launch(self, command: Sequence[str], env: Mapping[str, str]) -> Iterator[Launch]:
        """Popen's arguments for `command` with environment `env` inside the sandbox; the
        descriptor carrying `env` is closed when the block ends (after the spawn)."""
        if not self.prefix:
            yield Launch(list(command), dict(env))
            return
        fd = os.memfd_create("airgate-environment", 0)
        try:
            os.write(fd, b"".join(f"{key}={value}".encode() + b"\0"
                                  for key, value in env.items()))
            os.lseek(fd, 0, os.SEEK_SET)
            yield Launch([*self.prefix, "/bin/bash", "--noprofile", "--norc", "-c", _LAUNCHER,
                          "launch", str(fd), *command],
                         {"PATH": _SAFE_PATH, **dict(self.marker)}, (fd,))
        finally:
            os.close(fd)


UNCONFINED = Confinement((), SANDBOX_USER)


def run(sandbox: Confinement, command: Sequence[str], env: Mapping[str, str], cwd: Path,
        timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run `command` in the sandbox to the end, its output captured. On timeout the whole
    process group goes (bwrap and what runs inside), then TimeoutExpired is raised."""
    with sandbox.launch(command, env) as launch, subprocess.Popen(
            launch.args, env=launch.env, pass_fds=launch.pass_fds, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)


class Sandbox(Protocol):
    @property
    def isolated(self) -> bool:
        """Whether environments are kept from airgate and each other at all."""

    @property
    def description(self) -> str:
        """One sentence for the operator: what isolates environments here."""

    def uid_of(self, name: str) -> int | None:
        """The uid the environment's processes run under, if it has one of its own."""

    def confine(self, view: View) -> Confinement:
        """Prepare the environment's files for its sandbox, and say how to run in it.
        Called before each start, with none of the environment's processes running."""


class Unsandboxed:
    """Environments run as airgate itself: only for machines that allow nothing better."""

    isolated = False

    def __init__(self, reason: str) -> None:
        self.description = (f"environments are NOT isolated ({reason}): code in a DAG, "
                            "plugin, requirement or startup script runs as airgate and can "
                            "read airgate's home, keys and store")

    def uid_of(self, name: str) -> int | None:
        return None

    def confine(self, view: View) -> Confinement:
        return Confinement((), os.environ.get("USER", SANDBOX_USER))


class Bubblewrap:
    """Each environment in namespaces of its own (bubblewrap), under a uid of its own when
    airgate runs as root."""

    isolated = True

    def __init__(self, installation: str, own_users: bool, tools: Mapping[str, str]) -> None:
        self._installation = installation
        self._own_users = own_users
        # Absolute paths, found once: never looked up on a PATH an environment could set.
        self._bwrap, self._setpriv, self._env = tools["bwrap"], tools["setpriv"], tools["env"]
        self.description = (
            "each environment runs under a uid of its own in mount, PID and IPC namespaces "
            "(bubblewrap): it sees only the system, the Airflow runtime, its own folder and "
            "its DAGs" if own_users else
            "each environment runs in mount, PID and IPC namespaces of its own (bubblewrap, "
            "unprivileged): it sees only the system, the Airflow runtime, its own folder and "
            "its DAGs, but runs under airgate's uid")

    def uid_of(self, name: str) -> int | None:
        if not self._own_users:
            return None
        digest = hashlib.sha256(f"{self._installation}/{name}".encode()).digest()
        return UID_BASE + int.from_bytes(digest[:4], "big") % UID_SPAN

    def confine(self, view: View) -> Confinement:
        uid = self.uid_of(view.name)
        if uid is not None:
            _hand_over(view, uid)
        mounts = self._mounts(view, uid)
        # bwrap itself ignores SIGTERM, so that stopping a component's process group ends
        # the component (which then takes its namespace with it), not just bwrap; the
        # command gets SIGTERM's default action back.
        prefix = [self._env, "--ignore-signal=TERM", self._bwrap, *mounts, "--clearenv",
                  "--setenv", "PATH", _SAFE_PATH, "--", self._env, "--default-signal=TERM"]
        if uid is not None:
            prefix += [self._setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return Confinement(tuple(prefix), SANDBOX_USER if uid is not None
                           else os.environ.get("USER", SANDBOX_USER), uid,
                           (("AIRFLOW_HOME", str(view.workdir)),))

    def _mounts(self, view: View, uid: int | None) -> list[str]:
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try"]
        if not self._own_users:
            args.append("--unshare-user")
        made: set[Path] = set()
        for system in _SYSTEM_READ_ONLY:
            if Path(system).is_dir():
                args += ["--ro-bind", system, system]
        for link in _SYSTEM_LINKS:
            target = Path(link)
            if target.is_symlink():
                args += ["--symlink", os.readlink(target), link]
            elif target.is_dir():
                args += ["--ro-bind", link, link]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
                 "--bind", str(view.tmp), "/tmp"]
        if uid is not None:
            # The environment's own account database: its uid is `airflow`, as on MWAA.
            passwd, group = _account_files(view, uid)
            args += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group),
                     "/etc/group"]
        binds: list[tuple[str, Path]] = [
            ("--ro-bind", view.root), *(("--ro-bind", p) for p in view.readable),
            *(("--bind", p) for p in view.writable)]
        for option, path in binds:
            if any(Path(system) in path.parents for system in _SYSTEM_READ_ONLY):
                continue  # already there, read-only (a Python installed under /usr)
            args += _parents(path, made)
            args += [option, str(path.resolve()), str(path)]
        args += ["--chdir", str(view.workdir)]
        return args


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Directories bwrap would otherwise create with mode 0700 (it mirrors the host's /root
    and the like), which another uid could not pass through."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made or str(parent) in _SYSTEM_READ_ONLY:
            continue
        made.add(parent)
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _account_files(view: View, uid: int) -> tuple[Path, Path]:
    folder = view.root / "sandbox"
    folder.mkdir(exist_ok=True)
    home = next((p for p in view.writable if p.name == "home"), view.workdir)
    passwd, group = folder / "passwd", folder / "group"
    passwd.write_text("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                      f"{SANDBOX_USER}:x:{uid}:{uid}:Apache Airflow:{home}:/bin/bash\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group.write_text(f"root:x:0:\n{SANDBOX_USER}:x:{uid}:\nnogroup:x:65534:\n")
    for path in (passwd, group):
        path.chmod(0o644)
    return passwd, group


def _hand_over(view: View, uid: int) -> None:
    """The environment's uid owns its writable folders and reads its own key; airgate keeps
    everything else. Walks with directory descriptors and never follows a link, so a link
    planted by the environment can't turn this into a chown of airgate's files."""
    view.root.chmod(0o755)
    for folder in (*view.writable, view.tmp):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, uid, uid, follow_symlinks=False)
        folder.chmod(0o700)
        for _, dirs, files, fd in os.fwalk(folder, follow_symlinks=False):
            for entry in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    os.chown(entry, uid, uid, dir_fd=fd, follow_symlinks=False)


def grant_read(path: Path, uid: int | None) -> None:
    """Let the environment's uid read one of airgate's files about it (its own key)."""
    if uid is not None and path.exists():
        os.chown(path, uid, uid, follow_symlinks=False)
        path.chmod(0o400)


def detect(mode: str, installation: str) -> Bubblewrap | Unsandboxed:
    """The best isolation this machine allows (`auto`), that or refusal (`required`), or
    none at all (`off`)."""
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return Unsandboxed("turned off with --sandbox off")
    tools = {tool: shutil.which(tool, path=_SAFE_PATH) for tool in ("bwrap", "setpriv", "env")}
    missing = [tool for tool, path in tools.items() if path is None]
    reason: str | None
    if missing:
        reason = f"{', '.join(missing)} not installed (Debian: apt-get install bubblewrap)"
    else:
        sandbox = Bubblewrap(installation, own_users=os.geteuid() == 0,
                             tools={tool: str(path) for tool, path in tools.items()})
        reason = _probe(sandbox)
        if reason is None:
            return sandbox
    if mode == "required":
        raise SandboxUnavailable(f"environments can't be isolated on this machine: {reason}")
    return Unsandboxed(reason)


def _probe(sandbox: Bubblewrap) -> str | None:
    """None if a sandboxed `true` runs here, else why not (bwrap's own words)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="airgate-sandbox-probe-") as scratch:
        root = Path(scratch)
        view = View("probe", root, (root / "home",), (), root / "tmp", root)
        (root / "tmp").mkdir()
        try:
            with sandbox.confine(view).launch(["true"], {"PATH": _SAFE_PATH}) as launch:
                done = subprocess.run(launch.args, env=launch.env, pass_fds=launch.pass_fds,
                                      capture_output=True, timeout=30,
                                      stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"bubblewrap could not run: {error}"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap failed: {said[-1] if said else f'exit {done.returncode}'}"
    return None
