"""The reference stack's declared money checks and its bank reconciliation, on real PostgreSQL:
healthy books pass every one, and each class of defect planted in them is seen by the checks
whose names say what went wrong (and by no check that has nothing to say about it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from chaoskit.probes.acknowledged import AcknowledgedProbe, AcknowledgedProbeConfig
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.money import MoneyProbe, MoneyProbeConfig
from chaoskit.probes.reconciliation import ReconciliationProbe, ReconciliationProbeConfig
from chaoskit.spec.system import SystemSpec
from chaoskit.stack.bank_record import SCHEMA as BANK_SCHEMA
from chaoskit.testing import FakePlatform
from tests.fixtures.mariadb import run_sql
from tests.fixtures.systems import reference

pytestmark = pytest.mark.integration
Conn = psycopg.Connection[Any]
PAYER = "payer:cards"


def context(url: str) -> ProbeContext:
    platform = FakePlatform()
    platform.set_address("database", url)
    return ProbeContext(platform, "/tmp", system=reference())


def add_flow(conn: Conn, fid: str, kind: str, amount: str, status: str = "completed", *,
             payment: str | None = None, order: str | None = None, legs: bool = True,
             bank: str | None = "alpha") -> None:
    conn.execute(
        "INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant,"
        " payment_id, order_id, bank, due_at, completed_at) VALUES (%s, %s, %s, %s, %s, 'CNY',"
        " 'm-1', %s, %s, %s, now() + interval '1 minute',"
        " CASE WHEN %s = 'completed' THEN now() - interval '1 minute' END)",
        (fid, kind, f"key-{fid}", status, amount, payment, order,
         bank if kind != "payment" else None, status))
    if legs and status == "completed":
        sign = -1 if kind == "refund" else 1
        leg(conn, fid, PAYER, f"{-sign * float(amount):.2f}")
        leg(conn, fid, "merchant:m-1", f"{sign * float(amount):.2f}")
    if kind != "payment" and status == "completed":
        executed(conn, fid, "refund" if kind == "refund" else "charge", amount)


def leg(conn: Conn, fid: str, account: str, amount: str) -> None:
    conn.execute("INSERT INTO ledger_entries (flow_id, account, amount, currency)"
                 " VALUES (%s, %s, %s, 'CNY')", (fid, account, amount))


def executed(conn: Conn, ref: str, operation: str, amount: str, key: str | None = None,
             bank: str = "alpha") -> None:
    conn.execute("INSERT INTO bank_operations (bank, idempotency_key, operation, reference,"
                 " amount, currency, executed_at) VALUES (%s, %s, %s, %s, %s, 'CNY',"
                 " now() - interval '1 minute')", (bank, key or ref, operation, ref, amount))


@pytest.fixture
def books(ledger_db: str) -> str:
    """Healthy books: payments, refunds (done, pending), final payments (done, failed) and a
    pre-sale order with its deposit and balance, and the bank's statement of what it did."""
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        conn.execute(BANK_SCHEMA)
        add_flow(conn, "pay_1", "payment", "10.00")
        add_flow(conn, "pay_2", "payment", "4.00")
        add_flow(conn, "ref_1", "refund", "1.00", payment="pay_1")
        add_flow(conn, "ref_2", "refund", "3.00", "pending", payment="pay_1")
        add_flow(conn, "fin_1", "final_payment", "20.40")
        add_flow(conn, "fin_2", "final_payment", "7.00", "failed")
        conn.execute("INSERT INTO windows (id, opens_at, closes_at, status) VALUES"
                     " ('w1', now() - interval '2 minutes', now() + interval '1 minute', 'open')")
        add_flow(conn, "pay_dep", "payment", "5.00", order="o1")
        add_flow(conn, "fin_o1", "final_payment", "30.00", order="o1")
        conn.execute("INSERT INTO orders (id, window_id, merchant, currency, deposit, balance,"
                     " deposit_flow_id, final_flow_id) VALUES ('o1', 'w1', 'm-1', 'CNY', 5, 30,"
                     " 'pay_dep', 'fin_o1')")
    return ledger_db


def unbooked_refund(conn: Conn) -> None:
    conn.execute("DELETE FROM ledger_entries WHERE flow_id = 'ref_1'")


def reversed_refund(conn: Conn) -> None:
    conn.execute("UPDATE ledger_entries SET amount = -amount WHERE flow_id = 'ref_1'")


def rounded_legs(conn: Conn) -> None:
    conn.execute("UPDATE ledger_entries SET amount = round(amount) WHERE flow_id = 'fin_1'")


def credited_elsewhere(conn: Conn) -> None:
    conn.execute("UPDATE ledger_entries SET account = 'platform:clearing'"
                 " WHERE flow_id = 'fin_o1' AND account LIKE 'merchant:%'")


def booked_while_pending(conn: Conn) -> None:
    leg(conn, "ref_2", "merchant:m-1", "-3.00")
    leg(conn, "ref_2", PAYER, "3.00")


def booked_twice(conn: Conn) -> None:
    leg(conn, "pay_2", PAYER, "-4.00")
    leg(conn, "pay_2", "merchant:m-1", "4.00")


def half_booked(conn: Conn) -> None:
    conn.execute("DELETE FROM ledger_entries WHERE flow_id = 'fin_1' AND account = %s",
                 (PAYER,))


def refunded_twice_over(conn: Conn) -> None:
    add_flow(conn, "ref_3", "refund", "9.00", payment="pay_1")


def order_charged_twice(conn: Conn) -> None:
    add_flow(conn, "fin_o1_again", "final_payment", "30.00", order="o1")


def executed_twice(conn: Conn) -> None:
    executed(conn, "fin_1", "charge", "20.40", key="fin_1:retry")


def executed_unbooked(conn: Conn) -> None:
    conn.execute("UPDATE flows SET status = 'failed', completed_at = now() WHERE id = 'ref_1'")
    conn.execute("DELETE FROM ledger_entries WHERE flow_id = 'ref_1'")


def booked_unexecuted(conn: Conn) -> None:
    conn.execute("DELETE FROM bank_operations WHERE reference = 'fin_1'")


def refund_charged(conn: Conn) -> None:
    conn.execute("UPDATE bank_operations SET operation = 'charge' WHERE reference = 'ref_1'")


def bank_amount_off(conn: Conn) -> None:
    conn.execute("UPDATE bank_operations SET amount = amount * 100 WHERE reference = 'fin_1'")


CHECKS = ("books-balance", "applied-once", "completed-unbooked", "booked-unfinished",
          "money-direction", "legs-match-flows", "refunds-within-payment", "orders-charged-once")
RECONCILIATION = ("counterparty_only", "books_only", "repeated", "differing")
PLANTED: list[tuple[Callable[[Conn], None], set[str]]] = [
    (unbooked_refund, {"completed-unbooked", "legs-match-flows"}),
    (reversed_refund, {"money-direction", "legs-match-flows"}),
    (rounded_legs, {"legs-match-flows"}),
    (credited_elsewhere, {"legs-match-flows"}),
    (booked_while_pending, {"booked-unfinished"}),
    (booked_twice, {"applied-once", "legs-match-flows"}),
    (half_booked, {"books-balance", "legs-match-flows"}),
    (refunded_twice_over, {"refunds-within-payment"}),
    (order_charged_twice, {"orders-charged-once"}),
    (executed_twice, {"repeated"}),
    (executed_unbooked, {"counterparty_only"}),
    (booked_unexecuted, {"books_only"}),
    (refund_charged, {"differing"}),
    (bank_amount_off, {"differing"}),
]


def seen(url: str) -> dict[str, float | None]:
    found = {c: read_once(MoneyProbe(MoneyProbeConfig(check=c), context(url))) for c in CHECKS}
    for measure in RECONCILIATION:
        config = ReconciliationProbeConfig(reconciliation="bank", measure=measure)  # type: ignore[arg-type]
        found[measure] = read_once(ReconciliationProbe(config, context(url)))
    return found


def test_healthy_books_pass_every_check(books: str) -> None:
    assert seen(books) == dict.fromkeys(CHECKS + RECONCILIATION, 0.0)


@pytest.mark.parametrize("plant, expected", PLANTED, ids=[p.__name__ for p, _ in PLANTED])
def test_a_planted_defect_is_seen_by_the_checks_named_for_it(
        books: str, plant: Callable[[Conn], None], expected: set[str]) -> None:
    with psycopg.connect(books, autocommit=True) as conn:
        plant(conn)
    flagged = {name for name, value in seen(books).items() if value}
    assert flagged == expected


def test_young_rows_on_one_side_are_in_flight_not_missing(books: str) -> None:
    """The bank executed a moment ago and the worker has not booked it yet: not a mismatch
    until the reconciliation's `settle` (10 s) has passed."""
    with psycopg.connect(books, autocommit=True) as conn:
        add_flow(conn, "ref_9", "refund", "1.00", "pending", payment="pay_2")
        conn.execute("INSERT INTO bank_operations (bank, idempotency_key, operation, reference,"
                     " amount, currency) VALUES ('alpha', 'ref_9', 'refund', 'ref_9', 1, 'CNY')")
    assert seen(books)["counterparty_only"] == 0.0
    with psycopg.connect(books, autocommit=True) as conn:
        conn.execute("UPDATE bank_operations SET executed_at = now() - interval '11 seconds'"
                     " WHERE reference = 'ref_9'")
    probe = ReconciliationProbe(ReconciliationProbeConfig(reconciliation="bank"), context(books))
    assert read_once(probe) == 1.0
    assert probe.detail() == {"examples": [{"ref": "ref_9", "problem": "counterparty only",
                                            "says": "at the counterparty, not in the books"}]}


def told(tmp_path: Any, *pairs: tuple[str, str]) -> str:
    """The load engine's acknowledgements: (key, flow) as clients were told they succeeded."""
    path = tmp_path / "acknowledged.jsonl"
    path.write_text("".join(json.dumps({"key": k, "flow": f, "status": 202}) + "\n"
                            for k, f in pairs))
    return str(path)


def misdirected(url: str, acks: str) -> AcknowledgedProbe:
    config = AcknowledgedProbeConfig(measure="misdirected")
    platform = FakePlatform()
    platform.set_address("database", url)
    return AcknowledgedProbe(config, ProbeContext(platform, "/tmp", acks, system=reference()))


ACKED = (("key-pay_1", "pay"), ("key-ref_1", "refund"), ("key-ref_2", "refund"),
         ("key-fin_1", "final_payment"), ("key-fin_2", "final_payment"),
         ("key-pay_dep", "presale_order"))


def test_what_clients_were_told_agrees_with_the_books(books: str, tmp_path: Any) -> None:
    probe = misdirected(books, told(tmp_path, *ACKED))
    assert read_once(probe) == 0.0  # in flight (ref_2) and failed (fin_2) are not judged
    assert probe.judged == {"key-pay_1", "key-ref_1", "key-fin_1", "key-pay_dep"}


def test_nothing_done_yet_is_no_evidence(books: str, tmp_path: Any) -> None:
    assert read_once(misdirected(books, told(tmp_path, ("key-ref_2", "refund")))) is None


@pytest.mark.parametrize("plant, key, problem", [
    (reversed_refund, "key-ref_1", "money moved from the customer, not to-customer"),
    (unbooked_refund, "key-ref_1", "no money moved for the customer"),
    (rounded_legs, "key-fin_1", "moved 20.00 for a request of 20.40"),
])
def test_books_that_move_money_otherwise_than_clients_were_told(
        books: str, tmp_path: Any, plant: Callable[[Conn], None], key: str,
        problem: str) -> None:
    with psycopg.connect(books, autocommit=True) as conn:
        plant(conn)
    probe = misdirected(books, told(tmp_path, *ACKED))
    assert read_once(probe) == 1.0
    (example,) = probe.detail()["examples"]  # type: ignore[index]
    assert (example["key"], example["problem"]) == (key, problem)


def test_a_refund_filed_as_a_charge_is_seen_from_the_clients_side(books: str,
                                                                  tmp_path: Any) -> None:
    """The books are consistent with themselves (a final payment, booked as one); only what
    the client was told, a refund, shows the money went the wrong way."""
    with psycopg.connect(books, autocommit=True) as conn:
        add_flow(conn, "fin_r", "final_payment", "1.00", payment="pay_2")
    assert {n for n, v in seen(books).items() if v} == set()
    probe = misdirected(books, told(tmp_path, *ACKED, ("key-fin_r", "refund")))
    assert read_once(probe) == 1.0


def test_a_users_counterparty_in_another_database_reconciled_with_the_books(
        books: str, mariadb_database: str) -> None:
    """Any two queries the user names, on two databases: a bank statement in MariaDB (cents,
    its own words) against the completed flows of the books in PostgreSQL."""
    run_sql(mariadb_database, "CREATE TABLE statement (txn VARCHAR(40) PRIMARY KEY, cents BIGINT,"
                              " side VARCHAR(8), posted DATETIME(6))")
    run_sql(mariadb_database, "INSERT INTO statement VALUES"
                              " ('ref_1', 100, 'refund', NOW(6) - INTERVAL 1 MINUTE),"
                              " ('fin_1', 2040, 'charge', NOW(6) - INTERVAL 1 MINUTE),"
                              " ('fin_o1', 3100, 'charge', NOW(6) - INTERVAL 1 MINUTE),"
                              " ('fin_x', 500, 'charge', NOW(6) - INTERVAL 1 MINUTE),"
                              " ('fin_y', 500, 'charge', NOW(6))")
    system = SystemSpec.model_validate({
        "databases": {"bank": {"url": mariadb_database}, "books": {"url": books}},
        "reconciliations": {"statement": {
            "counterparty": "SELECT txn AS ref, cents / 100 AS amount, side AS operation,"
                            " posted AS at FROM statement",
            "counterparty_database": "bank",
            "books": "SELECT id AS ref, amount, CASE kind WHEN 'refund' THEN 'refund'"
                     " ELSE 'charge' END AS operation, completed_at AS at FROM flows"
                     " WHERE status = 'completed' AND kind <> 'payment'",
            "books_database": "books", "settle": "10s"}}})
    probe = ReconciliationProbe(ReconciliationProbeConfig(reconciliation="statement"),
                                ProbeContext(FakePlatform(), "/tmp", system=system))
    assert read_once(probe) == 2.0  # fin_y is a second old: still in flight
    found = {(e["ref"], e["problem"]) for e in probe.detail()["examples"]}  # type: ignore[index]
    assert found == {("fin_o1", "differing"), ("fin_x", "counterparty only")}
