"""A full disk or an unwritable airgate home: a clear error, no traceback, no corruption.
The disks are small tmpfs mounts the test makes (CI runs as root, like these machines)."""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest

from tests.support import create_environment_args, free_port, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.root]

ARN = "arn:aws:airflow:us-east-1:000000000000:environment/{}"


@contextlib.contextmanager
def small_disk(where: Path, size: str = "16m", read_only: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"these tests need to mount a tmpfs (run as root): {mounted.stderr}")
    try:
        yield where
    finally:
        keep_for_the_secret_scan(where)
        subprocess.run(["umount", "-l", str(where)], check=True)


def keep_for_the_secret_scan(disk: Path) -> None:
    """Copy what is on the disk beside it before it goes: the run's secret scan
    (tests/leak_scan.py) reads every log and every secret file under the temporary folder."""
    shutil.copytree(disk, disk.with_name(disk.name + "-kept"), dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("filler"))


def fill(disk: Path) -> Path:
    """Write until the disk is full; the file is the space to give back."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_gives_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk, running_airgate(disk / "home") as server:
        admin = server.client()
        admin.create_environment(**create_environment_args("before"), Tags={"kept": "yes"})
        filler = fill(disk)

        for attempt in (lambda: admin.create_environment(**create_environment_args("during")),
                        lambda: admin.tag_resource(ResourceArn=ARN.format("before"),
                                                   Tags={"more": "tags"})):
            with pytest.raises(botocore.exceptions.ClientError) as failed:
                attempt()
            error = failed.value.response["Error"]
            assert error["Code"] == "InternalServerException"
            assert "no space left" in error["Message"].lower(), error
            assert "Traceback" not in error["Message"]
        # Reading still works, and shows nothing half-made.
        assert admin.list_environments()["Environments"] == ["before"]
        assert admin.get_environment(Name="before")["Environment"]["Tags"] == {"kept": "yes"}

        filler.unlink()
        admin.create_environment(**create_environment_args("after"))
        assert admin.list_environments()["Environments"] == ["after", "before"]
        with contextlib.closing(sqlite3.connect(disk / "home" / "airgate.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_unwritable_home_is_one_clear_sentence(tmp_path: Path) -> None:
    with small_disk(tmp_path / "ro", "1m", read_only=True) as disk:
        started = subprocess.run(
            [sys.executable, "-m", "airgate.cli", "up", "--home", str(disk / "home"),
             "--port", str(free_port()), "--no-default-environment"],
            capture_output=True, text=True, timeout=60)
    # The README's promise: one sentence on stderr and exit status 2.
    assert started.returncode == 2, started.stderr
    assert len(started.stderr.strip().splitlines()) == 1, started.stderr
    assert "can't be written" in started.stderr and "Read-only file system" in started.stderr
    assert "Traceback" not in started.stderr


def test_a_home_that_became_read_only_is_left_intact(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk):
        home = disk / "home"
        with running_airgate(home) as server:
            server.client().create_environment(**create_environment_args("kept"))
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        started = subprocess.run(
            [sys.executable, "-m", "airgate.cli", "up", "--home", str(home),
             "--port", str(free_port()), "--no-default-environment"],
            capture_output=True, text=True, timeout=60)
        assert started.returncode == 2 and "Traceback" not in started.stderr
        assert len(started.stderr.strip().splitlines()) == 1, started.stderr
        assert "can't be written" in started.stderr
        with contextlib.closing(sqlite3.connect(f"file:{home / 'airgate.db'}?immutable=1",
                                                uri=True)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT name FROM environments").fetchall() == [("kept",)]
