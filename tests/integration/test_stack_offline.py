"""The offline settlement batch against a real ledger: it finishes, reports, and records its run."""

from __future__ import annotations

import signal
import time
import uuid

import httpx
import psycopg
import pytest

from chaoskit.stack.process import ServiceFleet

pytestmark = pytest.mark.integration


def test_settlement_scans_the_ledger_and_exits_zero(stack_services: ServiceFleet,
                                                    database_url: str) -> None:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    gateway = stack_services.start("gateway")
    for i in range(30):
        httpx.post(f"{gateway.url}/v1/payments", headers={"Idempotency-Key": uuid.uuid4().hex},
                   json={"amount": f"{i + 1}.00", "currency": "CNY" if i % 2 else "USD",
                         "merchant": "m-1"}).raise_for_status()
    batch = stack_services.start("offline", wait=False, CHAOSKIT_OFFLINE_UNITS="40",
                                 CHAOSKIT_OFFLINE_ROUNDS="500", CHAOSKIT_OFFLINE_WINDOW="1h",
                                 CHAOSKIT_OFFLINE_LINGER="30s")
    batch.wait_healthy()
    progress = 0.0
    for _ in range(200):
        text = httpx.get(batch.url + "/metrics").text
        line = next(ln for ln in text.splitlines()
                    if ln.startswith("payments_offline_progress_ratio{"))
        progress = float(line.split()[-1])
        if progress == 1.0:
            break
        time.sleep(0.05)
    assert progress == 1.0
    assert "payments_offline_units_total" in text and 'job="settlement"' in text
    batch.signal(signal.SIGTERM)
    batch.popen.wait(10)
    with psycopg.connect(database_url) as conn:
        run = conn.execute("SELECT units, entries, balanced, finished_at <= deadline"
                           " FROM settlement_runs").fetchone()
    assert run == (40, 60, True, True)


def test_settlement_exits_zero_by_itself(stack_services: ServiceFleet, database_url: str) -> None:
    stack_services.env["CHAOSKIT_DATABASE_URL"] = database_url
    batch = stack_services.start("offline", wait=False, CHAOSKIT_OFFLINE_UNITS="5",
                                 CHAOSKIT_OFFLINE_ROUNDS="100")
    assert batch.popen.wait(30) == 0
