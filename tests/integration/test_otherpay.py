"""otherpay, the second payment service, works end to end and its broken variants show."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.waiting import eventually
from tests.otherpay import queries
from tests.otherpay.launcher import OtherPay

pytestmark = pytest.mark.integration


def rid() -> str:
    return f"req-{uuid.uuid4().hex}"


def charge(op: OtherPay, cents: int = 10_000, ccy: str = "EUR", merchant: str = "shop-1"
           ) -> dict[str, Any]:
    response = op.post(f"/api/v2/merchants/{merchant}/charges",
                       {"request_id": rid(), "amount_cents": cents, "ccy": ccy})
    assert response.status_code == 200, response.text
    return dict(response.json()["charge"])


def refund(op: OtherPay, charge_ref: str, cents: int) -> dict[str, Any]:
    response = op.post(f"/api/v2/charges/{charge_ref}/refunds",
                       {"request_id": rid(), "amount_cents": cents})
    assert response.status_code == 202, response.text
    return dict(response.json()["refund"])


def settled(op: OtherPay, kind: str, ref: str, timeout: float = 15) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        row = op.get(f"/api/v2/{kind}/{ref}").json()
        body = row["refund" if kind == "refunds" else "balance"]
        return body if body["state"] == "SETTLED" else None
    return dict(eventually(check, timeout, f"{kind} {ref} settled", interval=0.1))


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def bank_ops_for(op: OtherPay, ref: str) -> list[dict[str, Any]]:
    return [o for o in op.bank_ops() if o["movement_ref"] == ref]


def test_charge_replays_its_first_answer_for_the_same_request_id(otherpay: OtherPay) -> None:
    body = {"request_id": rid(), "amount_cents": 2_500, "ccy": "EUR"}
    first = otherpay.post("/api/v2/merchants/shop-7/charges", body)
    again = otherpay.post("/api/v2/merchants/shop-7/charges", body)
    assert first.status_code == again.status_code == 200
    assert first.json()["charge"]["state"] == "CAPTURED"
    assert again.json() == first.json() and again.headers["Otherpay-Replayed"] == "true"
    changed = otherpay.post("/api/v2/merchants/shop-7/charges", {**body, "amount_cents": 1})
    assert changed.status_code == 422
    assert otherpay.post("/api/v2/merchants/shop-7/charges", {"amount_cents": 1}).status_code == 400


def test_concurrent_sends_of_one_request_id_capture_once(otherpay: OtherPay) -> None:
    body = {"request_id": rid(), "amount_cents": 4_200, "ccy": "USD"}
    start = threading.Barrier(4)

    def send(_: int) -> httpx.Response:
        start.wait()
        return otherpay.post("/api/v2/merchants/shop-race/charges", body)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    assert {a.status_code for a in answers} == {200}
    refs = {a.json()["charge"]["charge_ref"] for a in answers}
    assert len(refs) == 1
    lines = otherpay.query("SELECT delta_cents FROM op_journal WHERE movement_ref = %s",
                           (refs.pop(),))
    assert sorted(line["delta_cents"] for line in lines) == [-4_200, 4_200]
    assert len(otherpay.query("SELECT 1 FROM op_charges WHERE merchant = 'shop-race'")) == 1


def test_refund_is_settled_by_the_worker_before_its_promise(otherpay: OtherPay) -> None:
    paid = charge(otherpay, 10_000)
    asked = refund(otherpay, paid["charge_ref"], 6_000)
    assert asked["state"] == "REQUESTED" and asked["promised_by"]
    over = otherpay.post(f"/api/v2/charges/{paid['charge_ref']}/refunds",
                         {"request_id": rid(), "amount_cents": 4_001})
    assert over.status_code == 422 and over.json()["error"]["refundable_cents"] == 4_000
    unknown = otherpay.post("/api/v2/charges/ch_nope/refunds",
                            {"request_id": rid(), "amount_cents": 1})
    assert unknown.status_code == 404
    done = settled(otherpay, "refunds", asked["refund_ref"])
    assert at(done["settled_at"]) <= at(done["promised_by"])
    assert len(bank_ops_for(otherpay, asked["refund_ref"])) == 1


def test_balance_of_a_presale_order_is_collected_on_time(otherpay: OtherPay) -> None:
    placed = otherpay.post("/api/v2/presales/sale-11/orders", {
        "request_id": rid(), "deposit_cents": 1_000, "balance_cents": 9_000, "ccy": "EUR"})
    assert placed.status_code == 201, placed.text
    order_no = placed.json()["order"]["order_no"]
    asked = otherpay.post(f"/api/v2/orders/{order_no}/balance", {"request_id": rid()})
    assert asked.status_code == 202, asked.text
    balance = asked.json()["balance"]
    assert balance["state"] == "REQUESTED" and balance["amount_cents"] == 9_000
    twice = otherpay.post(f"/api/v2/orders/{order_no}/balance", {"request_id": rid()})
    assert twice.status_code == 409
    assert twice.json()["error"]["balance_ref"] == balance["balance_ref"]
    done = settled(otherpay, "balances", balance["balance_ref"])
    assert at(done["settled_at"]) <= at(done["promised_by"])
    order = otherpay.get(f"/api/v2/orders/{order_no}").json()["order"]
    assert order["state"] == "PAID_IN_FULL"


def test_bank_timeouts_are_retried_with_the_same_key(otherpay: OtherPay) -> None:
    paid = charge(otherpay, 3_000)
    toxiproxy = otherpay.toxiproxy
    toxiproxy.add_toxic(otherpay.bank_proxy, "slow-bank", "latency", {"latency": 1_500})
    try:
        asked = refund(otherpay, paid["charge_ref"], 3_000)
        ref = asked["refund_ref"]
        eventually(lambda: otherpay.query("SELECT 1 FROM op_refund_requests WHERE refund_ref "
                                          "= %s AND tries >= 2", (ref,)), 15, "two tries")
    finally:
        toxiproxy.remove_toxic(otherpay.bank_proxy, "slow-bank")
    settled(otherpay, "refunds", ref)
    assert len(bank_ops_for(otherpay, ref)) == 1
    assert "otherpay_bank_replays_total" in httpx.get(otherpay.bank_url + "/metrics").text


def test_the_database_is_reached_through_its_proxy(otherpay: OtherPay) -> None:
    otherpay.toxiproxy.set_enabled(otherpay.db_proxy, False)
    try:
        down = otherpay.post("/api/v2/merchants/shop-3/charges",
                             {"request_id": rid(), "amount_cents": 100, "ccy": "EUR"})
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert not otherpay.healthy("api") and not otherpay.healthy("worker")
    finally:
        otherpay.toxiproxy.set_enabled(otherpay.db_proxy, True)
    eventually(lambda: otherpay.healthy("api") and otherpay.healthy("worker"), 15, "recovery")
    charge(otherpay, 100)


def test_books_bank_and_acknowledged_requests_agree(otherpay: OtherPay) -> None:
    acknowledged = []
    for ccy in ("EUR", "CNY"):
        body = {"request_id": rid(), "amount_cents": 7_000, "ccy": ccy}
        answer = otherpay.post("/api/v2/merchants/shop-9/charges", body)
        acknowledged.append(body["request_id"])
        body = {"request_id": rid(), "amount_cents": 7_000}
        ref = answer.json()["charge"]["charge_ref"]
        refunded = otherpay.post(f"/api/v2/charges/{ref}/refunds", body)
        acknowledged.append(body["request_id"])
        settled(otherpay, "refunds", refunded.json()["refund"]["refund_ref"])
    eventually(lambda: not otherpay.query(
        "SELECT 1 FROM (" + queries.PROMISES + ") p WHERE state <> 'SETTLED'"), 15, "all settled")
    for name, sql in queries.MONEY_CHECKS.items():
        assert otherpay.query(sql) == [], name
    assert otherpay.query(queries.ACKNOWLEDGED_NOT_BOOKED,
                          {"acknowledged": [*acknowledged, "never-sent"]}) == [
        {"request_id": "never-sent", "movement_ref": None, "kind": None, "state": None,
         "lines": None}]
    promises = otherpay.query(queries.PROMISES)
    assert {queries.PROMISE_STATES[p["state"]] for p in promises} == {"completed"}
    settled_refs = {p["id"] for p in promises}
    assert {o["movement_ref"] for o in otherpay.bank_ops()} == settled_refs
    assert otherpay.query("SELECT count(*) AS n FROM opbank.op_bank_ledger")[0]["n"] == len(
        settled_refs)
    metrics = httpx.get(otherpay.urls["worker"] + "/metrics").text
    assert 'otherpay_worker_completed_total{kind="refund",outcome="settled"}' in metrics
    api_metrics = otherpay.get("/api/v2/metrics").text
    assert 'otherpay_http_requests_total{method="POST",route="/api/v2/merchants/{merchant}' \
           '/charges",status="200"}' in api_metrics


@pytest.mark.parametrize("otherpay_broken", ["unbooked-refunds"], indirect=True)
def test_unbooked_refunds_settle_without_journal_lines(otherpay_broken: OtherPay) -> None:
    paid = charge(otherpay_broken, 5_000)
    ref = refund(otherpay_broken, paid["charge_ref"], 2_000)["refund_ref"]
    settled(otherpay_broken, "refunds", ref)
    assert [row["refund_ref"] for row in otherpay_broken.query(
        queries.SETTLED_REFUND_UNBOOKED)] == [ref]
    assert len(bank_ops_for(otherpay_broken, ref)) == 1  # the money did leave
    assert otherpay_broken.query(queries.JOURNAL_UNBALANCED) == []  # invisible to a sum check


@pytest.mark.parametrize("otherpay_broken", [
    ("slow-worker", {"OTHERPAY_REFUND_SLA": "1s", "OTHERPAY_SLOW_DELAY": "2s"})], indirect=True)
def test_slow_worker_breaks_the_refund_promise(otherpay_broken: OtherPay) -> None:
    op = otherpay_broken
    paid = charge(op, 5_000)
    done = settled(op, "refunds", refund(op, paid["charge_ref"], 2_000)["refund_ref"])
    assert at(done["settled_at"]) > at(done["promised_by"])
    late = op.query("SELECT id FROM (" + queries.PROMISES + ") p WHERE completed_at > due_at")
    assert [row["id"] for row in late] == [done["refund_ref"]]
    held = refund(op, paid["charge_ref"], 3_000)["refund_ref"]
    time.sleep(0.5)  # the worker holds it, pausing
    op.kill("worker", signal.SIGTERM)  # a graceful stop gives it back untouched
    assert op.latest["worker"].returncode == 0 and not op.pidfiles["worker"].exists()
    assert op.query("SELECT state, tries FROM op_refund_requests WHERE refund_ref = %s",
                    (held,)) == [{"state": "REQUESTED", "tries": 0}]


@pytest.mark.parametrize("otherpay_broken", ["double-bank-charge"], indirect=True)
def test_double_bank_charge_executes_a_retried_refund_twice(otherpay_broken: OtherPay) -> None:
    paid = charge(otherpay_broken, 8_000)
    proxy = otherpay_broken.bank_proxy
    otherpay_broken.toxiproxy.add_toxic(proxy, "slow-bank", "latency", {"latency": 1_500})
    try:
        ref = refund(otherpay_broken, paid["charge_ref"], 8_000)["refund_ref"]
        eventually(lambda: len(bank_ops_for(otherpay_broken, ref)) >= 2, 15, "a second payout")
    finally:
        otherpay_broken.toxiproxy.remove_toxic(proxy, "slow-bank")
    settled(otherpay_broken, "refunds", ref)
    problems = otherpay_broken.query(queries.BANK_NOT_IN_BOOKS)
    assert problems and {p["problem"] for p in problems} == {"executed more than once"}
    assert {p["movement_ref"] for p in problems} == {ref}


@pytest.mark.parametrize("otherpay_broken", [("", {"OTHERPAY_REFUND_SLA": "1s"})],
                         indirect=True)
def test_killed_worker_leaves_refunds_due_until_restarted(otherpay_broken: OtherPay) -> None:
    op = otherpay_broken
    killed = op.kill("worker")
    paid = charge(op, 6_000)
    ref = refund(op, paid["charge_ref"], 6_000)["refund_ref"]
    overdue = "SELECT id FROM (" + queries.PROMISES + ") p WHERE state = 'REQUESTED' " \
              "AND due_at < now()"
    eventually(lambda: op.query(overdue), 10, "the refund falls due", interval=0.1)
    op.start("worker")
    op.wait_healthy(("worker",))
    assert op.pid("worker") not in (None, killed)
    done = settled(op, "refunds", ref)
    assert at(done["settled_at"]) > at(done["promised_by"])
    assert op.query(queries.SETTLED_REFUND_UNBOOKED) == []
