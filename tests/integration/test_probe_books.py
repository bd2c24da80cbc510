"""The books probes against real databases: promises and money checks declared as a user
declares them, on the reference stack's PostgreSQL schema and on a MariaDB of another shape."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.acknowledged import AcknowledgedProbe, AcknowledgedProbeConfig
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.money import MoneyProbe, MoneyProbeConfig
from chaoskit.probes.schedule import ScheduleProbe, ScheduleProbeConfig
from chaoskit.spec.system import SystemSpec
from chaoskit.testing import FakePlatform
from tests.fixtures.mariadb import run_sql
from tests.fixtures.systems import reference

pytestmark = pytest.mark.integration


def flow(url: str, fid: str, kind: str = "refund", status: str = "completed", *,
         due: float | None = None, done: float | None = None, key: str | None = None,
         legs: int = 0, amount: str = "10.00", currency: str = "CNY") -> None:
    """A flow due and completed `due`/`done` seconds from now, with `legs` balanced entries."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant,"
            " due_at, completed_at) VALUES (%s, %s, %s, %s, %s, %s, 'm-1',"
            " now() + make_interval(secs => %s), now() + make_interval(secs => %s))",
            (fid, kind, key, status, amount, currency, due, done))
        for leg in range(legs):
            entry(conn, fid, ("-" if leg % 2 == 0 else "") + amount, currency)


def entry(conn: psycopg.Connection[Any], fid: str, amount: str, currency: str = "CNY") -> None:
    conn.execute("INSERT INTO ledger_entries (flow_id, account, amount, currency)"
                 " VALUES (%s, 'acct', %s, %s)", (fid, amount, currency))


def context(url: str, system: SystemSpec | None = None, acks: Path | None = None
            ) -> ProbeContext:
    platform = FakePlatform()
    platform.set_address("database", url)
    return ProbeContext(platform, "/tmp", str(acks) if acks else None,
                        system=system or reference())


def schedule(url: str, system: SystemSpec | None = None, **options: object) -> ScheduleProbe:
    config = ScheduleProbeConfig.model_validate(options)
    return ScheduleProbe(config, context(url, system))


def money(url: str, check: str) -> MoneyProbe:
    return MoneyProbe(MoneyProbeConfig(check=check), context(url))


@pytest.fixture
def refunds(ledger_db: str) -> str:
    flow(ledger_db, "A", due=-30, done=-40)                     # on time, lag -10
    flow(ledger_db, "B", due=-20, done=-5)                      # late, lag 15
    flow(ledger_db, "C", status="pending", due=-10)             # open past due, lag >= 10
    flow(ledger_db, "D", due=100, done=-1)                      # kept early, lag -101
    flow(ledger_db, "E", status="pending", due=100)             # not decided yet
    flow(ledger_db, "F", due=-200, done=-100)                   # due before the window
    flow(ledger_db, "G", status="failed", due=-15, done=-14)    # failed at the bank
    flow(ledger_db, "H", "final_payment", "pending", due=-5)    # another promise
    return ledger_db


def windowed(url: str, promise: str, measure: str) -> float | None:
    """A probe over the last minute (its first look starts there, not at its own birth)."""
    return read_once(schedule(url, promise=promise, measure=measure, window="60s"))


@pytest.mark.parametrize(("measure", "expected"), [
    ("due", 5), ("completed_on_time", 2), ("late", 1), ("open_past_due", 1), ("failed", 1),
    ("on_time_ratio", 2 / 5), ("lag_p50", -10), ("lag_p99", 15), ("lag_max", 15),
])
def test_schedule_measures_of_declared_promises_in_a_window(refunds: str, measure: str,
                                                            expected: float) -> None:
    probe = schedule(refunds, promise="refund", measure=measure, window="60s")

    async def twice() -> float | None:  # the first look fixes "now"; a window reaches back
        await probe.sample()
        try:
            return await probe.sample()
        finally:
            await probe.close()
    assert asyncio.run(twice()) == pytest.approx(expected, rel=0.02, abs=0.05)


def test_open_promises_show_as_growing_lag(refunds: str) -> None:
    probe = schedule(refunds, promise="final_payment", measure="lag_max", window="60s")

    async def look() -> tuple[float | None, float | None]:
        await probe.sample()
        first = await probe.sample()
        await asyncio.sleep(0.3)
        try:
            return first, await probe.sample()
        finally:
            await probe.close()
    first, later = asyncio.run(look())
    assert first == pytest.approx(5, abs=1) and later is not None and later > first


def test_nothing_due_is_no_evidence_not_on_time(ledger_db: str) -> None:
    assert read_once(schedule(ledger_db, promise="refund", measure="on_time_ratio")) is None
    assert read_once(schedule(ledger_db, promise="refund", measure="lag_p99")) is None
    assert read_once(schedule(ledger_db, promise="refund", measure="due")) == 0.0


def test_default_window_is_since_the_probe_was_built(ledger_db: str) -> None:
    probe = schedule(ledger_db, promise="refund", measure="due")  # the run begins
    flow(ledger_db, "old", status="pending", due=-3600)   # due before it: not counted
    flow(ledger_db, "new", due=0.2, done=0.5)             # due after it: late by 0.3 s
    asyncio.run(asyncio.sleep(0.4))
    assert read_once(probe) == 1


def test_an_unmapped_state_word_is_a_probe_error_naming_it(ledger_db: str) -> None:
    flow(ledger_db, "odd", status="completed", due=-1, done=-2)
    system = SystemSpec.model_validate({"promises": {"refund": {
        "query": "SELECT status AS state, due_at, completed_at FROM flows",
        "states": {"completed": ["done"], "pending": ["pending"]}}}})
    with pytest.raises(ProbeError, match=r"state words \['completed'\]"):
        read_once(schedule(ledger_db, system, promise="refund", measure="due", window="60s"))


def test_unreachable_or_wrong_databases_are_probe_errors_without_secrets(
        postgres_url: str) -> None:
    with pytest.raises(ProbeError) as err:
        read_once(schedule("postgresql://u:secret@127.0.0.1:9/x", promise="refund",
                           timeout="1s"))
    assert "cannot read the books" in err.value.message and "secret" not in err.value.message
    with pytest.raises(ProbeError, match='relation "flows" does not exist'):
        read_once(schedule(postgres_url, promise="refund"))


def test_a_query_that_writes_is_refused_by_the_database_too(ledger_db: str) -> None:
    """Validation refuses write statements by name; the session is read-only besides."""
    system = SystemSpec.model_validate({"checks": {"sneaky": {
        "query": "SELECT * FROM flows, LATERAL (SELECT nextval('ledger_entries_id_seq')) s"}}})
    probe = MoneyProbe(MoneyProbeConfig(check="sneaky"), context(ledger_db, system))
    with pytest.raises(ProbeError, match="tried to write"):
        read_once(probe)


def test_money_checks_count_violating_rows_and_show_examples(ledger_db: str) -> None:
    flow(ledger_db, "p1", "payment", key="k1", legs=2)
    assert read_once(money(ledger_db, "books-balance")) == 0.0
    flow(ledger_db, "z", "payment", key="k-z", amount="5.00")
    flow(ledger_db, "w", "payment", key="k-w", amount="3.00", currency="USD")
    flow(ledger_db, "p2", "payment", key="k1#retry-1", legs=2)   # idempotency off: twice
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        entry(conn, "z", "5.00")
        entry(conn, "w", "-3.00", "USD")
    probe = money(ledger_db, "books-balance")
    assert read_once(probe) == 2.0  # CNY and USD
    assert {e["currency"] for e in probe.detail()["examples"]} == {"CNY", "USD"}  # type: ignore[index]
    assert read_once(money(ledger_db, "applied-once")) == 1.0


def ack(key: str, flow_name: str = "pay") -> str:
    return json.dumps({"key": key, "flow": flow_name, "status": 201}) + "\n"


def test_acknowledged_requests_missing_from_or_twice_in_the_books(ledger_db: str,
                                                                  tmp_path: Path) -> None:
    flow(ledger_db, "pay_a1", "payment", key="a1", legs=2)
    flow(ledger_db, "pay_k1", "payment", key="k1", legs=2)
    flow(ledger_db, "pay_k1b", "payment", key="k1#n", legs=2)
    acks = tmp_path / "acknowledged.jsonl"
    acks.write_text(ack("a1") + ack("a1") + ack("a2") + ack("k1") + '{"key": "a3", "fl')

    def probe(measure: str) -> AcknowledgedProbe:
        config = AcknowledgedProbeConfig(measure=measure, grace="1ms")
        return AcknowledgedProbe(config, context(ledger_db, acks=acks))
    missing = probe("missing")

    async def look() -> list[float | None]:
        first = await missing.sample()
        await asyncio.sleep(0.01)
        second = await missing.sample()  # a2 is past its grace now
        with acks.open("a") as file:
            file.write('ow": "pay"}\n' + ack("a4"))
        await asyncio.sleep(0.01)
        await missing.sample()
        await asyncio.sleep(0.01)
        third = await missing.sample()
        await missing.close()
        return [first, second, third]
    first, second, third = asyncio.run(look())
    assert second == 1.0 and third == 3.0  # a2; then a3 and a4 too
    assert read_once(probe("duplicated")) == 1.0  # k1


def test_no_acknowledgement_yet_is_no_data(ledger_db: str, tmp_path: Path) -> None:
    config = AcknowledgedProbeConfig(measure="missing")
    probe = AcknowledgedProbe(config, context(ledger_db, acks=tmp_path / "not-yet.jsonl"))
    assert read_once(probe) is None


# -- another stack's books on MariaDB -------------------------------------------------------
MARIADB_SCHEMA = """
CREATE TABLE payouts (ref VARCHAR(20) PRIMARY KEY, phase VARCHAR(12) NOT NULL,
                      promised DATETIME(6) NOT NULL, finished DATETIME(6) NULL);
CREATE TABLE journal (movement VARCHAR(20) NOT NULL, delta_cents BIGINT NOT NULL,
                      ccy CHAR(3) NOT NULL)
"""


def mariadb_system(url: str) -> SystemSpec:
    return SystemSpec.model_validate({
        "databases": {"books": {"url": url}},
        "promises": {"payout": {
            "query": "SELECT phase AS state, promised AS due_at, finished AS completed_at "
                     "FROM payouts",
            "states": {"completed": ["PAID"], "pending": ["QUEUED", "SENDING"],
                       "failed": ["BOUNCED"]}}},
        "checks": {"journal-balance": {
            "query": "SELECT ccy, SUM(delta_cents) AS off FROM journal GROUP BY ccy "
                     "HAVING SUM(delta_cents) <> 0"}}})


def test_promises_and_checks_on_a_mariadb_of_another_shape(mariadb_database: str) -> None:
    for statement in MARIADB_SCHEMA.split(";"):
        run_sql(mariadb_database, statement)
    run_sql(mariadb_database, """INSERT INTO payouts VALUES
        ('p1', 'PAID', NOW(6) - INTERVAL 20 SECOND, NOW(6) - INTERVAL 30 SECOND),
        ('p2', 'PAID', NOW(6) - INTERVAL 20 SECOND, NOW(6) - INTERVAL 10 SECOND),
        ('p3', 'SENDING', NOW(6) - INTERVAL 5 SECOND, NULL),
        ('p4', 'BOUNCED', NOW(6) - INTERVAL 3 SECOND, NULL)""")
    run_sql(mariadb_database, "INSERT INTO journal VALUES ('p1', -500, 'EUR'), "
                              "('p1', 500, 'EUR'), ('p2', 700, 'EUR')")
    system = mariadb_system(mariadb_database)
    context_ = context(mariadb_database, system)

    def measure(name: str) -> float | None:
        probe = ScheduleProbe(ScheduleProbeConfig(promise="payout", measure=name,
                                                  window="60s"), context_)

        async def twice() -> float | None:
            await probe.sample()
            try:
                return await probe.sample()
            finally:
                await probe.close()
        return asyncio.run(twice())
    assert measure("due") == 4 and measure("completed_on_time") == 1
    assert measure("late") == 1 and measure("open_past_due") == 1 and measure("failed") == 1
    assert measure("lag_max") == pytest.approx(10, abs=0.5)
    check = MoneyProbe(MoneyProbeConfig(check="journal-balance"), context_)
    assert read_once(check) == 1.0
