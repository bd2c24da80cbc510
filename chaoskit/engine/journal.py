"""The journal: a run's single source of truth, JSON lines written incrementally and fsynced."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from chaoskit.errors import JournalError

Record = dict[str, Any]

# Records that must survive a crash the moment they are written: fsync right away.
DURABLE_KINDS = frozenset({"header", "phase", "intent", "applied", "reverted", "revert-failed",
                           "abort", "audit", "result"})


class JournalWriter:
    """Appends records; fsyncs intents and phase boundaries so a crash leaves what to undo."""

    def __init__(self, path: Path, observer: Callable[[Record], None] | None = None) -> None:
        self.path = path
        self.observer = observer
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with run
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def write(self, kind: str, **fields: Any) -> Record:
        record = {"kind": kind, "t": round(self.elapsed(), 4), "ts": time.time(), **fields}
        self._file.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        if kind in DURABLE_KINDS:
            self.sync()
        if self.observer is not None:
            self.observer(record)
        return record

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()


def read_journal(path: str | Path) -> list[Record]:
    """All complete records; a torn last line (the writer died mid-write) is ignored."""
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
    if not records or records[0].get("kind") != "header":
        raise JournalError(f"{path} is not a chaoskit journal (no header record)",
                           hint="pass the journal.jsonl written by `chaoskit run`")
    return records


def is_closed(path: Path) -> bool:
    """Whether a journal ends with its result. Reads only the tail: the watchdog polls it, and
    `chaoskit recover` scans every run's."""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - 65536))
        return b'"kind":"result"' in file.read()


def header(records: list[Record]) -> Record:
    return records[0]


def result(records: Iterable[Record]) -> Record | None:
    return next((r for r in records if r["kind"] == "result"), None)


def outstanding_intents(records: Iterable[Record]) -> list[Record]:
    """Intents written but not yet marked reverted: what a recovery must undo, oldest last."""
    intents: dict[str, Record] = {}
    for record in records:
        if record["kind"] == "intent":
            intents[record["fault"]] = record
        elif record["kind"] == "reverted":
            intents.pop(record["fault"], None)
    return list(reversed(intents.values()))
