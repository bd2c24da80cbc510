"""Reading journals back: whole records, the tail check the watchdog polls, and intents."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from chaoskit.errors import JournalError
from chaoskit.journal.records import Kind, Record

TAIL_BYTES = 65536


def read_journal(path: str | Path, first: str = Kind.HEADER) -> list[Record]:
    """All complete records; a torn last line (the writer died mid-write) is ignored. `first`:
    the kind that opens it (a game day's plan journal opens with `day`)."""
    path = Path(path)
    if not path.is_file():
        raise JournalError(f"no journal at {path}",
                           hint="pass the journal.jsonl of a run (see `chaoskit run` output)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise JournalError(f"{path}:{number}: not a journal record",
                                   hint="the file is damaged; recover from the last good line"
                                   ) from None
    if not records or records[0].get("kind") != first:
        raise JournalError(f"{path} is not a chaoskit journal (no {first} record)",
                           hint="pass the journal.jsonl written by `chaoskit run`")
    return records


def is_closed(path: Path) -> bool:
    """Whether a journal ends with its result. Reads only the tail: the watchdog polls it, and
    `chaoskit recover` scans every run's."""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_BYTES))
        return b'"kind":"result"' in file.read()


def tail_result(path: Path) -> Record | None:
    """The last result record, read from the file's tail only (None: the run never closed)."""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_BYTES))
        lines = file.read().splitlines()
    for line in reversed(lines):
        if b'"kind":"result"' in line:
            try:
                found: Record = json.loads(line)
                return found
            except json.JSONDecodeError:
                continue
    return None


def needs_recovery(closing: Record | None) -> bool:
    """A run that never closed, or closed with faults outstanding or residue left."""
    if closing is None:
        return True
    return bool(closing.get("outstanding")) or not (closing.get("audit") or {}).get("clean",
                                                                                     True)


def header(records: list[Record]) -> Record:
    return records[0]


def result(records: Iterable[Record]) -> Record | None:
    """The last result: a recovery after the run's end appends a newer one."""
    found = None
    for record in records:
        if record["kind"] == Kind.RESULT:
            found = record
    return found


def intents(records: Iterable[Record]) -> list[Record]:
    return [r for r in records if r["kind"] == Kind.INTENT]


def outstanding_intents(records: Iterable[Record]) -> list[Record]:
    """Intents written but not yet marked reverted: what a recovery must undo, newest first."""
    pending: dict[str, Record] = {}
    for record in records:
        if record["kind"] == Kind.INTENT:
            pending[record["fault"]] = record
        elif record["kind"] == Kind.REVERTED:
            pending.pop(record["fault"], None)
    return list(reversed(pending.values()))
