"""The schedule probe on offline batches: did reconciliation finish inside its window?"""

from __future__ import annotations

import psycopg
import pytest

from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.schedule import ScheduleProbe, ScheduleProbeConfig
from chaoskit.testing import FakePlatform
from tests.fixtures.systems import reference

pytestmark = pytest.mark.integration


def _run(url: str, started: float, deadline: float, finished: float | None,
         balanced: bool | None = True) -> None:
    """A settlement run whose times are seconds from now."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO settlement_runs (job, instance, started_at, deadline, finished_at,"
            " units, balanced) VALUES ('reconciliation', 'offline-node-1',"
            " now() + make_interval(secs => %s), now() + make_interval(secs => %s),"
            " now() + make_interval(secs => %s), 100, %s)",
            (started, deadline, finished, balanced))


def _measure(url: str, measure: str) -> float | None:
    """The reference stack's declared `settlement` promise (its batch runs' windows)."""
    platform = FakePlatform()
    platform.set_address("database", url)
    config = ScheduleProbeConfig(promise="settlement", measure=measure, window="1h")
    return read_once(ScheduleProbe(config, ProbeContext(platform, ".", system=reference())))


def test_batches_are_judged_against_their_windows(ledger_db: str) -> None:
    _run(ledger_db, -100, -10, -40)          # finished 30 s before its deadline
    _run(ledger_db, -100, -60, -20)          # finished 40 s late
    _run(ledger_db, -100, -5, None, None)    # still running past its deadline
    _run(ledger_db, -100, 50, None, None)    # still running, deadline ahead: not judged yet
    assert _measure(ledger_db, "due") == 3
    assert _measure(ledger_db, "completed_on_time") == 1
    assert _measure(ledger_db, "late") == 1
    assert _measure(ledger_db, "open_past_due") == 1
    assert _measure(ledger_db, "on_time_ratio") == pytest.approx(1 / 3)


def test_a_batch_that_found_the_books_unbalanced_is_a_failure(ledger_db: str) -> None:
    _run(ledger_db, -100, -10, -40, balanced=False)
    assert _measure(ledger_db, "failed") == 1
    assert _measure(ledger_db, "on_time_ratio") == 0.0
