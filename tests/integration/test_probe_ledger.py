"""Schedule and ledger probes against real PostgreSQL with the stack's own schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.ledger import LedgerProbe, LedgerProbeConfig
from chaoskit.probes.schedule import ScheduleProbe, ScheduleProbeConfig

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
            sign = "-" if leg % 2 == 0 else ""
            entry(conn, fid, sign + amount, currency)


def entry(conn: psycopg.Connection[Any], fid: str, amount: str, currency: str = "CNY") -> None:
    conn.execute("INSERT INTO ledger_entries (flow_id, account, amount, currency)"
                 " VALUES (%s, 'acct', %s, %s)", (fid, amount, currency))


def read(probe: Any) -> float:
    return read_once(probe)


def schedule(url: str, **options: object) -> ScheduleProbe:
    config = ScheduleProbeConfig.model_validate({"database_url": url, **options})
    return ScheduleProbe(config, ProbeContext(platform=None, run_dir="/tmp"))


def ledger(url: str, acks: Path | None = None, **options: object) -> LedgerProbe:
    config = LedgerProbeConfig.model_validate({"database_url": url, **options})
    context = ProbeContext(platform=None, run_dir="/tmp",
                           acknowledged_path=str(acks) if acks else None)
    return LedgerProbe(config, context)


@pytest.fixture
def refunds(ledger_db: str) -> str:
    flow(ledger_db, "A", due=-30, done=-40)                     # on time, lag -10
    flow(ledger_db, "B", due=-20, done=-5)                      # late, lag 15
    flow(ledger_db, "C", status="pending", due=-10)             # open past due, lag >= 10
    flow(ledger_db, "D", due=100, done=-1)                      # kept early, lag -101
    flow(ledger_db, "E", status="pending", due=100)             # not decided yet
    flow(ledger_db, "F", due=-200, done=-100)                   # due before the window
    flow(ledger_db, "G", status="failed", due=-15, done=-14)    # failed at the bank
    flow(ledger_db, "H", "final_payment", "pending", due=-5)    # another flow kind
    return ledger_db


@pytest.mark.parametrize(("measure", "expected"), [
    ("due", 5), ("completed_on_time", 2), ("late", 1), ("open_past_due", 1), ("failed", 1),
    ("on_time_ratio", 2 / 5), ("lag_p50", -10), ("lag_p99", 15), ("lag_max", 15),
])
def test_schedule_measures_of_refunds_in_a_window(refunds: str, measure: str,
                                                  expected: float) -> None:
    value = read(schedule(refunds, flow="refund", measure=measure, window="60s"))
    assert value == pytest.approx(expected, abs=0.01)


def test_open_flows_show_as_growing_lag(refunds: str) -> None:
    assert read(schedule(refunds, flow="final_payment", measure="lag_max",
                         window="60s")) == pytest.approx(5, abs=1)
    assert read(schedule(refunds, flow="final_payment", measure="open_past_due",
                         window="60s")) == 1


def test_nothing_due_is_on_time_with_no_lag(ledger_db: str) -> None:
    assert read(schedule(ledger_db, flow="refund", measure="on_time_ratio")) == 1.0
    assert read(schedule(ledger_db, flow="refund", measure="lag_p99")) == 0.0


def test_default_window_is_since_the_run_began(ledger_db: str) -> None:
    probe = schedule(ledger_db, flow="refund", measure="due")
    flow(ledger_db, "old", status="pending", due=-3600)   # due before the probe existed
    flow(ledger_db, "new", due=0.2, done=0.5)             # due after it: late by 0.3 s
    asyncio.run(asyncio.sleep(0.4))
    assert read(probe) == 1
    assert read(schedule(ledger_db, flow="refund", measure="late", window="2h")) == 1


def test_unreachable_database_is_a_probe_error() -> None:
    with pytest.raises(ProbeError) as err:
        read(schedule("postgresql://u:secret@127.0.0.1:9/x", flow="refund", timeout="1s"))
    assert "cannot read the ledger" in err.value.message and "secret" not in err.value.message


def test_database_without_the_stack_schema(postgres_url: str) -> None:
    with pytest.raises(ProbeError, match="tables are missing"):
        read(schedule(postgres_url, flow="refund"))


def test_no_database_url_anywhere() -> None:
    with pytest.raises(ProbeError) as err:
        ScheduleProbe(ScheduleProbeConfig(flow="refund"), ProbeContext(None, "/tmp"))
    assert "database_url" in err.value.hint


class LedgerPlatform:
    def __init__(self, url: str) -> None:
        self.url = url

    def database_url(self) -> str:
        return self.url


def test_balanced_books_are_safe_and_the_platform_url_is_used(ledger_db: str) -> None:
    flow(ledger_db, "p1", "payment", key="k-p1", legs=2)
    flow(ledger_db, "r1", "refund", key="k-r1", legs=2, due=10, done=0, amount="3.50")
    probe = LedgerProbe(LedgerProbeConfig(), ProbeContext(LedgerPlatform(ledger_db), "/tmp"))
    assert read(probe) == 0.0


def test_imbalance_sums_each_currency_unbalance(ledger_db: str) -> None:
    flow(ledger_db, "p1", "payment", key="k-p1", legs=2)
    flow(ledger_db, "z", "payment", key="k-z", amount="5.00")
    flow(ledger_db, "w", "payment", key="k-w", amount="3.00", currency="USD")
    with psycopg.connect(ledger_db, autocommit=True) as conn:
        entry(conn, "z", "5.00")
        entry(conn, "w", "-3.00", "USD")
    assert read(ledger(ledger_db, measure="imbalance")) == 8.0
    assert read(ledger(ledger_db, measure="duplicates")) == 0.0


def test_duplicates_count_extra_flows_per_key_and_extra_legs(ledger_db: str) -> None:
    flow(ledger_db, "p1", "payment", key="k1", legs=2)
    flow(ledger_db, "p2", "payment", key="k1#retry-1", legs=2)    # idempotency off: twice
    flow(ledger_db, "p3", "payment", key="k2", legs=4)            # booked twice
    flow(ledger_db, "p4", "refund", key="k3", legs=2, due=5, done=0)
    flow(ledger_db, "p5", "refund", "failed", key="k3#x", due=5)  # failed: moved nothing
    assert read(ledger(ledger_db, measure="duplicates")) == 2.0
    assert read(ledger(ledger_db, measure="imbalance")) == 0.0


def ack_line(key: str, fid: str | None, flow_name: str = "pay") -> str:
    return json.dumps({"key": key, "flow": flow_name, "id": fid, "status": 201}) + "\n"


def test_lost_acknowledgements_and_ones_applied_twice(ledger_db: str, tmp_path: Path) -> None:
    flow(ledger_db, "pay_a1", "payment", key="a1", legs=2)
    flow(ledger_db, "pay_k1", "payment", key="k1", legs=2)
    flow(ledger_db, "pay_k1b", "payment", key="k1#n", legs=2)
    acks = tmp_path / "acknowledged.jsonl"
    acks.write_text(ack_line("a1", "pay_a1") + ack_line("a1", "pay_a1")   # a replay: fine
                    + ack_line("a2", "pay_missing")                        # lost
                    + ack_line("k1", "pay_k1")                             # applied twice
                    + ack_line("w1", "win_1", "windows")                   # creates no flow
                    + '{"key": "a3", "flow": "pay", "id": "pay_a')       # torn, still writing
    probe = ledger(ledger_db, acks, measure="lost")
    assert read(probe) == 2.0
    with acks.open("a") as file:
        file.write('3"}\n' + ack_line("a4", "pay_a4"))
    assert read(probe) == 4.0  # a3 and a4 are acknowledged but nowhere in the ledger
    assert read(ledger(ledger_db, acks, measure="money_at_risk")) == 4.0 + 1.0


def test_lost_needs_an_acknowledgement_file(ledger_db: str, tmp_path: Path) -> None:
    with pytest.raises(ProbeError) as err:
        ledger(ledger_db, measure="lost")
    assert "acknowledged" in err.value.hint
    assert read(ledger(ledger_db, tmp_path / "not-yet-written.jsonl", measure="lost")) == 0.0
