"""otherpay's configuration, read only from OTHERPAY_* environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

BROKEN_MODES = frozenset({"unbooked-refunds", "slow-worker", "double-bank-charge"})
DEFAULT_LISTEN = {"api": "127.0.0.1:8300", "worker": "127.0.0.1:8301", "bank": "127.0.0.1:8302"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


class ConfigError(ValueError):
    """A variable is missing or malformed (the process exits with status 4)."""


def seconds(name: str, default: float) -> float:
    """A duration variable: `5`, `5s`, `500ms` or `1m`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    match = _DURATION.match(raw)
    if match is None:
        raise ConfigError(f"{name}={raw!r} is not a duration (write 5, 5s, 500ms or 1m)")
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * factor


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def listen_address(service: str) -> tuple[str, int]:
    raw = os.environ.get("OTHERPAY_LISTEN", "").strip() or DEFAULT_LISTEN[service]
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"OTHERPAY_LISTEN={raw!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def broken_modes() -> frozenset[str]:
    raw = os.environ.get("OTHERPAY_BROKEN", "")
    modes = frozenset(word.strip() for word in raw.split(",") if word.strip())
    unknown = modes - BROKEN_MODES
    if unknown:
        raise ConfigError(f"OTHERPAY_BROKEN: unknown mode(s) {sorted(unknown)}; "
                          f"known: {sorted(BROKEN_MODES)}")
    return modes


def bank_schema() -> str:
    schema = os.environ.get("OTHERPAY_BANK_SCHEMA", "").strip() or "opbank"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(f"OTHERPAY_BANK_SCHEMA={schema!r} is not a plain lower-case name")
    return schema


@dataclass(frozen=True)
class Settings:
    """Everything a service reads from its environment."""

    service: str
    database_url: str
    listen: tuple[str, int]
    instance: str
    pidfile: str
    bank_url: str
    bank_timeout: float
    bank_latency: float
    bank_decline_above: int
    bank_database_url: str
    bank_schema: str
    refund_sla: float
    balance_sla: float
    broken: frozenset[str]
    slow_delay: float
    poll_interval: float
    retry_backoff: float
    concurrency: int
    pool_size: int
    db_timeout: float
    startup_timeout: float

    @classmethod
    def from_env(cls, service: str) -> Settings:
        database_url = os.environ.get("OTHERPAY_DATABASE_URL", "").strip()
        if service != "bank" and not database_url:
            raise ConfigError("OTHERPAY_DATABASE_URL is required")
        bank_url = os.environ.get("OTHERPAY_BANK_URL", "").strip().rstrip("/")
        if service == "worker" and not bank_url:
            raise ConfigError("OTHERPAY_BANK_URL is required for the worker")
        return cls(
            service=service,
            database_url=database_url,
            listen=listen_address(service),
            instance=os.environ.get("OTHERPAY_INSTANCE", "").strip() or f"{service}-{os.getpid()}",
            pidfile=os.environ.get("OTHERPAY_PIDFILE", "").strip(),
            bank_url=bank_url,
            bank_timeout=seconds("OTHERPAY_BANK_TIMEOUT", 3.0),
            bank_latency=seconds("OTHERPAY_BANK_LATENCY", 0.0),
            bank_decline_above=integer("OTHERPAY_BANK_DECLINE_ABOVE", 0),
            bank_database_url=os.environ.get("OTHERPAY_BANK_DATABASE_URL", "").strip(),
            bank_schema=bank_schema(),
            refund_sla=seconds("OTHERPAY_REFUND_SLA", 5.0),
            balance_sla=seconds("OTHERPAY_BALANCE_SLA", 8.0),
            broken=broken_modes(),
            slow_delay=seconds("OTHERPAY_SLOW_DELAY", 10.0),
            poll_interval=seconds("OTHERPAY_POLL_INTERVAL", 0.2),
            retry_backoff=seconds("OTHERPAY_RETRY_BACKOFF", 0.5),
            concurrency=max(1, integer("OTHERPAY_WORKER_CONCURRENCY", 4)),
            pool_size=max(2, integer("OTHERPAY_POOL_SIZE", 8)),
            db_timeout=seconds("OTHERPAY_DB_TIMEOUT", 5.0),
            startup_timeout=seconds("OTHERPAY_STARTUP_TIMEOUT", 30.0),
        )
