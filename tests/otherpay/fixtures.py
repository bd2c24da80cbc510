"""Pytest plug-in: `otherpay` (a healthy instance per module) and `otherpay_broken`.

Both start bank, api and worker as real processes on free loopback ports, on a fresh database of
the session's PostgreSQL reached through a Toxiproxy proxy (the bank through another), and stop
everything after, failing if a process ignored SIGTERM or is left running.
`otherpay_broken` takes its defect by indirect parametrisation: a mode of OTHERPAY_BROKEN
("unbooked-refunds", "slow-worker", "double-bank-charge", comma-separated for several, "" for
none), or a (modes, {OTHERPAY_VAR: value}) pair to tune the services too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.otherpay.launcher import OtherPay, launch

__all__ = ["OtherPay", "otherpay", "otherpay_broken"]


@pytest.fixture(scope="module")
def otherpay(postgres_url: str, toxiproxy_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherPay]:
    with launch(postgres_url, toxiproxy_url, tmp_path_factory.mktemp("otherpay")) as op:
        yield op


@pytest.fixture
def otherpay_broken(request: pytest.FixtureRequest, postgres_url: str, toxiproxy_url: str,
                    tmp_path: Path) -> Iterator[OtherPay]:
    param = getattr(request, "param", "unbooked-refunds")
    modes, env = (param, {}) if isinstance(param, str) else param
    broken = tuple(mode.strip() for mode in modes.split(",") if mode.strip())
    with launch(postgres_url, toxiproxy_url, tmp_path / "otherpay", broken, dict(env)) as op:
        yield op
