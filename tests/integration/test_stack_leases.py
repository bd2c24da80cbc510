"""Work leases with real workers: a dead worker's flow is taken over, a frozen one is fenced."""

from __future__ import annotations

import re
import signal
import time
import uuid

import httpx
import psycopg
import pytest

from chaoskit.stack.process import ServiceFleet, ServiceProcess
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.integration
TTL = 1.0
BANK_LATENCY = 1.0


@pytest.fixture
def lab(stack_services: ServiceFleet, database_url: str) -> tuple[ServiceFleet, ServiceProcess,
                                                                  ServiceProcess]:
    """A slow bank (so work is caught mid-flight), a gateway, a short lease TTL."""
    stack_services.env.update({"CHAOSKIT_DATABASE_URL": database_url,
                               "CHAOSKIT_LEASE_TTL": f"{TTL}s",
                               "CHAOSKIT_BANK_LATENCY": f"{BANK_LATENCY}s"})
    bank = stack_services.start("bank")
    stack_services.env["CHAOSKIT_BANK_URLS"] = f"alpha={bank.url},beta={bank.url}"
    return stack_services, bank, stack_services.start("gateway")


def create_refund(gateway: ServiceProcess) -> str:
    key = uuid.uuid4().hex
    paid = httpx.post(f"{gateway.url}/v1/payments", headers={"Idempotency-Key": key},
                      json={"amount": "20.00", "currency": "CNY", "merchant": "m-1"}).json()
    refund = httpx.post(f"{gateway.url}/v1/refunds", headers={"Idempotency-Key": key + "r"},
                        json={"payment_id": paid["id"], "amount": "20.00"})
    assert refund.status_code == 202
    return str(refund.json()["id"])


def flow_row(url: str, flow_id: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute("SELECT status, lease_owner, takeovers, attempts,"
                              " (SELECT count(*) FROM ledger_entries WHERE flow_id = f.id)"
                              " FROM flows f WHERE id = %s", (flow_id,))
        status, owner, takeovers, attempts, entries = cursor.fetchone()  # type: ignore[misc]
    return {"status": status, "owner": owner, "takeovers": takeovers, "attempts": attempts,
            "entries": entries}



def metric(process: ServiceProcess, name: str) -> float:
    text = httpx.get(process.url + "/metrics").text
    values = [float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)]
    return sum(values)


def bank_refunds(bank: ServiceProcess) -> int:
    banks = httpx.get(bank.url + "/v1/banks").json()["banks"]
    return sum(b["refunds"] for b in banks.values())


def test_killed_worker_lease_is_taken_over_and_completes_once(lab, database_url: str) -> None:
    fleet, bank, gateway = lab
    first = fleet.start("worker", instance="worker-a")
    flow = create_refund(gateway)
    wait_for(lambda: flow_row(database_url, flow)["owner"] == "worker-a", 5, "worker-a's claim")
    first.kill()
    killed_at = time.monotonic()
    second = fleet.start("worker", instance="worker-b")
    wait_for(lambda: flow_row(database_url, flow)["status"] == "completed", 10, "completion")
    print(f"\ntakeover: flow completed {time.monotonic() - killed_at:.2f}s after the kill "
          f"(lease TTL {TTL}s, bank latency {BANK_LATENCY}s)")
    row = flow_row(database_url, flow)
    assert row["takeovers"] == 1 and row["entries"] == 2
    assert metric(second, "payments_lease_takeovers_total") == 1
    assert bank_refunds(bank) == 1  # the killed call and the retry shared one idempotency key


def test_frozen_worker_that_thaws_after_takeover_does_not_complete_twice(
        lab, database_url: str) -> None:
    fleet, bank, gateway = lab
    frozen = fleet.start("worker", instance="worker-frozen")
    flow = create_refund(gateway)
    wait_for(lambda: flow_row(database_url, flow)["owner"] == "worker-frozen", 5, "the claim")
    frozen.signal(signal.SIGSTOP)
    fleet.start("worker", instance="worker-live")
    wait_for(lambda: flow_row(database_url, flow)["status"] == "completed", 10, "takeover")
    frozen.signal(signal.SIGCONT)
    wait_for(lambda: metric(frozen, "payments_fenced_completions_total") == 1, 5,
             "the thawed worker to find its token stale")
    row = flow_row(database_url, flow)
    assert row["takeovers"] == 1 and row["entries"] == 2 and row["status"] == "completed"
    assert metric(frozen, "payments_flows_completed_total") == 0
    assert bank_refunds(bank) == 1


def test_no_takeover_defect_leaves_a_dead_workers_flow_pending(lab, database_url: str) -> None:
    fleet, _bank, _gateway = lab
    hasty = fleet.start("gateway", instance="gateway-2s", CHAOSKIT_REFUND_SLA="2s")
    first = fleet.start("worker", instance="worker-a")
    flow = create_refund(hasty)
    wait_for(lambda: flow_row(database_url, flow)["owner"] == "worker-a", 5, "worker-a's claim")
    first.kill()
    second = fleet.start("worker", instance="worker-b", CHAOSKIT_BROKEN="no-takeover")
    time.sleep(TTL * 3 + BANK_LATENCY)
    assert flow_row(database_url, flow)["status"] == "pending"
    assert metric(second, "payments_lease_takeovers_total") == 0
    # the broken promise is counted once it is broken, not when (if ever) the flow completes
    assert metric(second, "payments_deadline_misses_total") == 1
    assert metric(second, "payments_overdue_flows") == 1


def test_many_refunds_complete_once_across_two_workers(lab, database_url: str) -> None:
    fleet, bank, gateway = lab
    flows = [create_refund(gateway) for _ in range(20)]
    fleet.start("worker", instance="worker-a")
    fleet.start("worker", instance="worker-b")
    wait_for(lambda: all(flow_row(database_url, f)["status"] == "completed" for f in flows),
             15, "all refunds")
    assert bank_refunds(bank) == 20
    with psycopg.connect(database_url) as conn:
        owners = conn.execute("SELECT count(DISTINCT bank) FROM flows WHERE kind = 'refund'")
        assert owners.fetchone()[0] == 2  # type: ignore[index]  # both banks got work


def test_a_worker_stopped_gracefully_hands_its_work_back(stack_services: ServiceFleet,
                                                         database_url: str) -> None:
    stack_services.env.update({"CHAOSKIT_DATABASE_URL": database_url,
                               "CHAOSKIT_LEASE_TTL": "30s", "CHAOSKIT_BANK_LATENCY": "1s"})
    bank = stack_services.start("bank")
    stack_services.env["CHAOSKIT_BANK_URLS"] = f"alpha={bank.url}"
    gateway = stack_services.start("gateway")
    leaving = stack_services.start("worker", instance="worker-leaving")
    flow = create_refund(gateway)
    wait_for(lambda: flow_row(database_url, flow)["owner"] == "worker-leaving", 5, "the claim")
    leaving.stop()
    stack_services.start("worker", instance="worker-staying")
    # far sooner than the 30 s lease: the flow was released, not taken over
    wait_for(lambda: flow_row(database_url, flow)["status"] == "completed", 10, "completion")
    row = flow_row(database_url, flow)
    assert row["takeovers"] == 0 and row["entries"] == 2
    assert bank_refunds(bank) == 1
