"""The fixtures teams use in Python tests, on a real lab: chaoskit_lab, chaoskit_inject, probes."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.fixtures.real import require_real
from tests.fixtures.systems import REFERENCE_FILE

pytestmark = pytest.mark.integration


def _pay(entry: str) -> float:
    started = time.perf_counter()
    answer = httpx.post(f"{entry}/v1/payments", timeout=10,
                        json={"amount": "12.00", "currency": "CNY", "merchant": "m-1"},
                        headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 201, answer.text
    return time.perf_counter() - started


def test_inject_in_python_on_a_running_lab(chaoskit_lab, chaoskit_inject, chaoskit_probe) -> None:
    require_real("toxiproxy-server")
    entry = chaoskit_lab.entry_url()
    healthy = min(_pay(entry) for _ in range(3))
    with chaoskit_inject("latency", chaoskit_lab, name="py-slow-db",
                         target={"dependency": "postgres"}, latency="250ms") as intent:
        assert intent["proxies"]
        slowed = min(_pay(entry) for _ in range(3))
    after = min(_pay(entry) for _ in range(3))
    assert slowed >= healthy + 0.2, (healthy, slowed)
    assert after < slowed - 0.2, (slowed, after)
    assert chaoskit_probe("money", chaoskit_lab, check="books-balance",
                          system=REFERENCE_FILE) == 0
