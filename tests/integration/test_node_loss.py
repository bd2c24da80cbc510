"""Node loss on the real lab: kill, freeze and isolate a node while refunds are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chaoskit.engine.roles import declared_target
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.lab import haproxy
from chaoskit.platforms.local.platform import LocalPlatform
from chaoskit.toxiproxy import ToxiproxyServer
from tests.fixtures.lab import RunningLab
from tests.fixtures.systems import reference, role_node
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.integration
BANKS = ("bank-alpha", "bank-beta", "bank-gamma")
SLOW_MS = 3000  # bank calls outlast the 2 s lease TTL: workers hold leases while we strike
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="netns nodes need root")


@contextlib.contextmanager
def slow_bank(platform: LocalPlatform, ms: int) -> Iterator[None]:
    """Latency on every bank proxy, so workers hold their leases long enough to be caught."""
    server = ToxiproxyServer(platform.toxiproxy_url())
    for proxy in BANKS:
        server.add_toxic(proxy, "test-slow-bank", "latency", "downstream", 1.0,
                         {"latency": ms, "jitter": 0})
    try:
        yield
    finally:
        for proxy in BANKS:
            server.remove_toxic(proxy, "test-slow-bank")


def leases_held(platform: LocalPlatform, node: str) -> int:
    """Work leases the node's workers hold, as their own `payments_leases_held` gauge says."""
    held = 0
    for process in platform.lab().processes:
        if process.service == "worker" and process.node == node:
            page = httpx.get(f"http://{process.listen}/metrics", trust_env=False, timeout=2).text
            for family in text_string_to_metric_families(page):
                if family.name == "payments_leases_held":
                    held += int(sum(sample.value for sample in family.samples))
    return held


def role_target(platform: LocalPlatform, role: str) -> dict[str, str]:
    """`{role: R}` resolved as a run resolves it, through the reference stack's declaration."""
    return asyncio.run(declared_target({"role": role}, reference(), platform))


def create_payments(entry: str, count: int) -> list[str]:
    """Paid (and settled) payments to refund later: paying calls the bank in-line, so this
    happens before the bank is slowed down."""
    ids = []
    with httpx.Client(base_url=entry, trust_env=False, timeout=10) as http:
        for _ in range(count):
            paid = http.post("/v1/payments", headers={"Idempotency-Key": uuid.uuid4().hex},
                             json={"amount": "20.00", "currency": "CNY", "merchant": "m-node"})
            assert paid.status_code == 201, paid.text
            ids.append(str(paid.json()["id"]))
    return ids


def refund(entry: str, payment_ids: list[str]) -> list[str]:
    """Refunds answer 202 at once; workers then call the (slow) bank under a lease."""
    ids = []
    with httpx.Client(base_url=entry, trust_env=False, timeout=10) as http:
        for payment in payment_ids:
            response = http.post("/v1/refunds", headers={"Idempotency-Key": uuid.uuid4().hex},
                                 json={"payment_id": payment, "amount": "20.00"})
            assert response.status_code == 202, response.text
            ids.append(str(response.json()["id"]))
    return ids


def create_refunds(entry: str, count: int) -> list[str]:
    return refund(entry, create_payments(entry, count))



def flow_facts(platform: LocalPlatform, ids: list[str]) -> dict[str, tuple[str, int]]:
    """flow id -> (status, number of ledger entries)."""
    with psycopg.connect(platform.database_url()) as conn:
        rows = conn.execute("SELECT f.id, f.status, (SELECT count(*) FROM ledger_entries e"
                            " WHERE e.flow_id = f.id) FROM flows f WHERE f.id = ANY(%s)",
                            (ids,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def all_completed(platform: LocalPlatform, ids: list[str]) -> bool:
    facts = flow_facts(platform, ids)
    return len(facts) == len(ids) and all(s == "completed" for s, _ in facts.values())


def assert_ledger_balances(platform: LocalPlatform) -> None:
    with psycopg.connect(platform.database_url()) as conn:
        rows = conn.execute("SELECT currency, sum(amount) FROM ledger_entries"
                            " GROUP BY currency HAVING sum(amount) <> 0").fetchall()
    assert rows == []


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def feed_until_held(platform: LocalPlatform, node: str, payments: list[str]) -> list[str]:
    """Refunds in small rounds until `node`'s worker holds a lease: one worker may claim a
    whole batch (up to its concurrency), so a single batch could all land elsewhere."""
    ids: list[str] = []
    for start in range(0, len(payments), 4):
        ids += refund(platform.entry_url(), payments[start:start + 4])
        try:
            wait_for(lambda: leases_held(platform, node) > 0, 1.0, f"leases on {node}")
            return ids
        except AssertionError:
            continue
    raise AssertionError(f"{node}'s worker never held a lease over {len(ids)} refunds")


def test_killing_the_leader_node_keeps_refunds_flowing(lab: RunningLab) -> None:
    platform, driver = lab.platform, NodeLoss(lab.platform)
    paid = create_payments(platform.entry_url(), 40)
    with slow_bank(platform, SLOW_MS):
        victim = role_node(platform, "scheduler-leader")
        ids = feed_until_held(platform, victim, paid[:36])
        config = NodeLossConfig(mode="kill", recovery_timeout=30)
        intent = driver.plan("kill-leader", role_target(platform, "scheduler-leader"), config,
                             random.Random(7))
        assert intent["node"] == victim
        facts = run(driver.inject(intent))
        during = refund(platform.entry_url(), paid[36:])  # HAProxy routes around the dead node
        effect = run(driver.measure_effect(intent))
    print(f"\nkill {victim}: leases held {facts['leases_held']}, takeover after "
          f"{effect['first_takeover_s']}s, new leader after {effect['leader_s']}s, "
          f"recovered in {effect['recovery_s']}s")
    assert facts["killed_pids"] and effect["recovered"], effect
    assert effect["leader_changed"] and effect["first_takeover_s"] is not None
    assert role_node(platform, "scheduler-leader") != victim
    wait_for(lambda: all_completed(platform, ids + during), 60, "refunds to complete")
    assert {n for _, n in flow_facts(platform, ids + during).values()} == {2}
    reverted = run(driver.revert(intent))
    assert reverted["node_healthy"] and len(reverted["restarted"]) == 3
    assert run(driver.verify_reverted(intent)) == []
    assert run(driver.revert(intent))["restarted"] == []  # idempotent
    assert_ledger_balances(platform)


def test_frozen_node_thawed_after_lease_expiry_does_not_complete_twice(lab: RunningLab) -> None:
    platform, driver = lab.platform, NodeLoss(lab.platform)
    paid = create_payments(platform.entry_url(), 12)
    with slow_bank(platform, SLOW_MS):
        ids = refund(platform.entry_url(), paid)
        wait_for(lambda: any(leases_held(platform, n.name) for n in platform.nodes()), 10,
                 "leases")
        config = NodeLossConfig(mode="freeze", recovery_timeout=30)
        intent = driver.plan("hang", role_target(platform, "worker-most-leases"), config,
                             random.Random(1))
        facts = run(driver.inject(intent))
        assert facts["leases_held"] and platform.node_residue(intent["node"])
        effect = run(driver.measure_effect(intent))
    print(f"\nfreeze {intent['node']}: {facts['leases_held']} leases taken over after "
          f"{effect['first_takeover_s']}s")
    assert effect["first_takeover_s"] is not None, effect
    wait_for(lambda: all_completed(platform, ids), 60, "refunds to complete")
    reverted = run(driver.revert(intent))  # the hung worker wakes with stale leases
    assert reverted["node_healthy"]
    time.sleep(3.0)  # let it try to finish what it held
    assert {n for _, n in flow_facts(platform, ids).values()} == {2}
    assert run(driver.verify_reverted(intent)) == []
    assert_ledger_balances(platform)


@needs_root
@pytest.mark.root
def test_isolated_node_leaves_rotation_and_returns(lab: RunningLab) -> None:
    platform, driver = lab.platform, NodeLoss(lab.platform)
    socket_path = platform.lab().haproxy_socket
    intent = driver.plan("cut", {"node": "node-3"}, NodeLossConfig(mode="isolate"),
                         random.Random(0))
    run(driver.inject(intent))
    try:
        assert "off the bridge" in " ".join(platform.node_residue("node-3"))
        took = wait_for(lambda: haproxy.server_states(socket_path).get("node-3") == "DOWN", 10,
                        "HAProxy to mark node-3 down")
        print(f"\nisolated node-3 marked down by HAProxy after {took:.2f}s")
        ids = create_refunds(platform.entry_url(), 4)
        wait_for(lambda: all_completed(platform, ids), 30, "refunds without node-3")
    finally:
        reverted = run(driver.revert(intent))
    assert reverted["node_healthy"]
    wait_for(lambda: haproxy.server_states(socket_path).get("node-3") == "UP", 10,
             "node-3 back in rotation")
    assert run(driver.verify_reverted(intent)) == []
    run(driver.revert(intent))  # idempotent
    assert run(driver.verify_reverted(intent)) == []


def test_reverting_a_fault_never_applied_is_clean(lab: RunningLab) -> None:
    driver = NodeLoss(lab.platform)
    before = {p.id: p.pid for p in lab.platform.lab().processes}
    for mode in ("kill", "freeze") + (("isolate",) if os.geteuid() == 0 else ()):
        intent = driver.plan(f"never-{mode}", {"node": "any"}, NodeLossConfig(mode=mode),
                             random.Random(3))
        run(driver.revert(intent))
        run(driver.revert(intent))
        assert run(driver.verify_reverted(intent)) == []
    assert {p.id: p.pid for p in lab.platform.lab().processes} == before
