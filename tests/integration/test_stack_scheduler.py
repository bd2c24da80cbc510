"""Scheduler leader election with real processes: the standby takes over, windows still open."""

from __future__ import annotations

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


@pytest.fixture
def fleet(stack_services: ServiceFleet, database_url: str) -> ServiceFleet:
    stack_services.env.update({"CHAOSKIT_DATABASE_URL": database_url,
                               "CHAOSKIT_LEASE_TTL": f"{TTL}s", "CHAOSKIT_TIME_SCALE": "60",
                               "CHAOSKIT_BANK_LATENCY": "5ms"})
    return stack_services


def is_leader(process: ServiceProcess) -> bool:
    return bool(httpx.get(process.url + "/healthz", timeout=2).json()["leader"])



def start_pair(fleet: ServiceFleet, **env: str) -> tuple[ServiceProcess, ServiceProcess]:
    leader = fleet.start("scheduler", instance="sched-a")
    wait_for(lambda: is_leader(leader), 5, "the first scheduler to lead")
    standby = fleet.start("scheduler", instance="sched-b", **env)
    return leader, standby


def post(gateway: ServiceProcess, path: str, body: dict[str, str]) -> dict[str, str]:
    answer = httpx.post(gateway.url + path, json=body,
                        headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code in (201, 202), answer.text
    return dict(answer.json())


def test_standby_takes_over_after_the_leader_is_killed(fleet: ServiceFleet) -> None:
    leader, standby = start_pair(fleet)
    time.sleep(TTL)
    assert not is_leader(standby)
    leader.kill()
    takeover = wait_for(lambda: is_leader(standby), TTL * 4, "the standby to lead")
    print(f"\nscheduler takeover: {takeover:.2f}s after SIGKILL (lease TTL {TTL}s)")
    # the lease must expire first: the standby cannot lead much before the TTL ran out
    assert takeover >= TTL / 3 - 0.05


def test_new_leader_opens_the_window_and_fires_charges(fleet: ServiceFleet,
                                                       database_url: str) -> None:
    bank = fleet.start("bank")
    fleet.env["CHAOSKIT_BANK_URLS"] = f"alpha={bank.url}"
    gateway = fleet.start("gateway")
    fleet.start("worker")
    leader, standby = start_pair(fleet)
    leader.kill()  # first, so only the standby can be the one that opens the window
    window = post(gateway, "/v1/windows", {"opens_in": "2m", "length": "10m"})  # 2s real
    orders = [post(gateway, "/v1/orders", {"window_id": window["id"], "deposit": "10",
                                           "balance": "90", "currency": "CNY",
                                           "merchant": f"m-{i}"}) for i in range(5)]
    wait_for(lambda: httpx.get(f"{gateway.url}/v1/windows/{window['id']}").json()["status"]
             == "open", 8, "the window to open")
    opened = httpx.get(f"{gateway.url}/v1/windows/{window['id']}").json()
    assert opened["opened_by"] == "sched-b"
    assert "payments_window_open_lag_seconds_count{node=\"sched-b\"} 1.0" in httpx.get(
        standby.url + "/metrics").text
    wait_for(lambda: _completed_finals(database_url) == len(orders), 10, "automatic charges")
    assert _completed_finals(database_url) == len(orders)  # one charge per order, not more


def _completed_finals(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM flows WHERE kind = 'final_payment'"
                           " AND status = 'completed' AND completed_at <= due_at").fetchone()
    return int(row[0]) if row else 0


def test_frozen_leader_steps_down_after_it_thaws(fleet: ServiceFleet) -> None:
    leader, standby = start_pair(fleet)
    leader.signal(signal.SIGSTOP)
    wait_for(lambda: is_leader(standby), TTL * 4, "the standby to lead")
    leader.signal(signal.SIGCONT)
    wait_for(lambda: not is_leader(leader), TTL * 2, "the thawed leader to step down")
    assert is_leader(standby)


def test_no_standby_defect_never_takes_over(fleet: ServiceFleet) -> None:
    leader, standby = start_pair(fleet, CHAOSKIT_BROKEN="no-standby")
    leader.kill()
    time.sleep(TTL * 3)
    assert not is_leader(standby)


def test_a_leader_stopped_gracefully_resigns_at_once(stack_services: ServiceFleet,
                                                     database_url: str) -> None:
    ttl = 6.0  # long, so resigning (<= ttl/3 to take over) is told apart from expiry (>= 2ttl/3)
    stack_services.env.update({"CHAOSKIT_DATABASE_URL": database_url,
                               "CHAOSKIT_LEASE_TTL": f"{ttl:g}s"})
    leader, standby = start_pair(stack_services)
    assert leader.stop() is not None
    takeover = wait_for(lambda: is_leader(standby), ttl, "the standby to lead")
    print(f"\nscheduler takeover after a graceful stop: {takeover:.2f}s (lease TTL {ttl:g}s)")
    assert takeover < ttl * 2 / 3
