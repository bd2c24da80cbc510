"""The journal: a run's single source of truth, as JSON lines (see `records` for the kinds).

The engine writes it; reports, JUnit, `compare`, `recover` and the watchdog read it. It depends
on nothing of chaoskit but its errors, so every other layer may depend on it.
"""

from chaoskit.journal.reader import (
    header,
    intents,
    is_closed,
    needs_recovery,
    outstanding_intents,
    read_journal,
    result,
    tail_result,
)
from chaoskit.journal.records import DURABLE, Intent, Kind, Record
from chaoskit.journal.writer import JournalWriter

__all__ = ["DURABLE", "Intent", "JournalWriter", "Kind", "Record", "header", "intents",
           "is_closed", "needs_recovery", "outstanding_intents", "read_journal", "result",
           "tail_result"]
