"""The stack's configuration, read once from CHAOSKIT_* environment variables."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.spec.units import parse_duration, parse_ratio
from chaoskit.stack.defects import DEFECTS


def _config_error(name: str, value: str, reason: str, example: str) -> PlatformError:
    return PlatformError(f"{name}={value!r} is invalid: {reason}",
                         hint=f"set {name} like {example}")


def _duration(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default)
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise _config_error(name, raw, str(exc), f"{name}={default}") from None
    if seconds < 0:
        raise _config_error(name, raw, "must not be negative", f"{name}={default}")
    return seconds


def _positive_duration(env: Mapping[str, str], name: str, default: str) -> float:
    seconds = _duration(env, name, default)
    if seconds <= 0:
        raise _config_error(name, env.get(name, default), "must be > 0", f"{name}={default}")
    return seconds


def _ratio(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default)
    try:
        return parse_ratio(raw)
    except ValueError as exc:
        raise _config_error(name, raw, str(exc), f"{name}={default}") from None


def _positive_number(env: Mapping[str, str], name: str, default: str, kind: type) -> Any:
    raw = env.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise _config_error(name, raw, "not a number", f"{name}={default}") from None
    if value <= 0:
        raise _config_error(name, raw, "must be > 0", f"{name}={default}")
    return value


def parse_bank_urls(raw: str) -> dict[str, str]:
    """'alpha=http://h:1,beta=http://h:2' -> {'alpha': ..., 'beta': ...}, order kept."""
    banks: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise _config_error("CHAOSKIT_BANK_URLS", raw, f"bad item {item!r}",
                                "alpha=http://127.0.0.1:8101,beta=http://127.0.0.1:8102")
        banks[name.strip()] = url.strip().rstrip("/")
    return banks


def parse_listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise _config_error("CHAOSKIT_LISTEN", raw, "expected host:port", "127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_broken(raw: str) -> frozenset[str]:
    defects = frozenset(filter(None, (part.strip() for part in raw.split(","))))
    unknown = defects - set(DEFECTS)
    if unknown:
        raise _config_error("CHAOSKIT_BROKEN", raw, f"unknown defect(s) {sorted(unknown)}",
                            "CHAOSKIT_BROKEN=refund-unbooked (known: "
                            + ", ".join(sorted(DEFECTS)) + ")")
    return defects


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack process needs; durations are seconds (scenario or real, as named)."""

    database_url: str = ""
    bank_urls: dict[str, str] = field(default_factory=dict)
    listen: str = "127.0.0.1:8080"
    node: str = "local"
    instance: str = "local-0"
    time_scale: float = 1.0
    refund_sla: float = 7200.0  # scenario seconds
    final_window: float = 7200.0  # scenario seconds
    lease_ttl: float = 2.0  # real seconds
    bank_latency: float = 0.02  # real seconds
    bank_error_rate: float = 0.0
    offline_units: int = 1000
    offline_window: float = 1800.0  # scenario seconds
    broken: frozenset[str] = frozenset()
    db_pool_size: int = 10
    worker_concurrency: int = 16
    offline_rounds: int = 20000  # PBKDF2 rounds per unit: ~10 ms of CPU
    offline_linger: float = 0.0  # real seconds
    idempotency_wait: float = 5.0  # real seconds
    db_timeout: float = 10.0  # real seconds: a database step that takes longer is abandoned
    bank_timeout: float = 3.0  # real seconds: a bank call unanswered this long is retried
    bank_database_url: str = ""  # where the bank keeps its own record (default: database_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if env is None else env
        node = env.get("CHAOSKIT_NODE") or socket.gethostname()
        return cls(
            database_url=env.get("CHAOSKIT_DATABASE_URL", ""),
            bank_urls=parse_bank_urls(env.get("CHAOSKIT_BANK_URLS", "")),
            listen=env.get("CHAOSKIT_LISTEN", "127.0.0.1:8080"),
            node=node,
            instance=env.get("CHAOSKIT_INSTANCE") or f"{node}-{os.getpid()}",
            time_scale=_positive_number(env, "CHAOSKIT_TIME_SCALE", "1", float),
            refund_sla=_positive_duration(env, "CHAOSKIT_REFUND_SLA", "2h"),
            final_window=_positive_duration(env, "CHAOSKIT_FINAL_WINDOW", "2h"),
            lease_ttl=_positive_duration(env, "CHAOSKIT_LEASE_TTL", "2s"),
            bank_latency=_duration(env, "CHAOSKIT_BANK_LATENCY", "20ms"),
            bank_error_rate=_ratio(env, "CHAOSKIT_BANK_ERROR_RATE", "0%"),
            offline_units=_positive_number(env, "CHAOSKIT_OFFLINE_UNITS", "1000", int),
            offline_window=_positive_duration(env, "CHAOSKIT_OFFLINE_WINDOW", "30m"),
            broken=parse_broken(env.get("CHAOSKIT_BROKEN", "")),
            **_tuning(env),
        )

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def real(self, scenario_seconds: float) -> float:
        """Real seconds that pass while `scenario_seconds` pass in the scenario."""
        return scenario_seconds / self.time_scale

    def is_broken(self, defect: str) -> bool:
        return defect in self.broken

    def require_database(self) -> str:
        if not self.database_url:
            raise PlatformError("CHAOSKIT_DATABASE_URL is not set",
                                hint="set it to postgresql://user@host:port/dbname")
        return self.database_url


def _tuning(env: Mapping[str, str]) -> dict[str, Any]:
    """Knobs beyond the contract: pool sizes, worker concurrency, offline cost per unit."""
    return {
        "db_pool_size": _positive_number(env, "CHAOSKIT_DB_POOL_SIZE", "10", int),
        "worker_concurrency": _positive_number(env, "CHAOSKIT_WORKER_CONCURRENCY", "16", int),
        "offline_rounds": _positive_number(env, "CHAOSKIT_OFFLINE_ROUNDS", "20000", int),
        "offline_linger": _duration(env, "CHAOSKIT_OFFLINE_LINGER", "0s"),
        "idempotency_wait": _positive_duration(env, "CHAOSKIT_IDEMPOTENCY_WAIT", "5s"),
        "db_timeout": _positive_duration(env, "CHAOSKIT_DB_TIMEOUT", "10s"),
        "bank_timeout": _positive_duration(env, "CHAOSKIT_BANK_TIMEOUT", "3s"),
        "bank_database_url": env.get("CHAOSKIT_BANK_DATABASE_URL")
        or env.get("CHAOSKIT_DATABASE_URL", ""),
    }
