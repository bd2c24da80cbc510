"""The journal writer: appends records, fsyncs the durable ones, and never blocks a rollback.

A run must not inject what it cannot record, and must not stop reverting because it cannot
record. So an intent that cannot be written durably to the journal raises (the fault is then
not applied), while every other record that cannot be written goes to a fallback file (and
stderr says where), so that the revert and the audit carry on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from chaoskit.errors import JournalError
from chaoskit.journal.records import DURABLE, Kind, Record

FALLBACK_ENV = "CHAOSKIT_JOURNAL_FALLBACK"


def fallback_dirs() -> list[Path]:
    """Where records go when the journal's disk refuses them: memory first (another disk)."""
    dirs = [Path(p) for p in (os.environ.get(FALLBACK_ENV), "/dev/shm") if p]
    return [*dirs, Path(tempfile.gettempdir())]


class JournalWriter:
    """Appends JSON lines; fsyncs intents and phase boundaries so a crash leaves what to undo.

    `required=False` (recovery, the watchdog) opens the journal even when its file cannot be
    opened: the records then go to the fallback from the start.
    """

    def __init__(self, path: Path, observer: Callable[[Record], None] | None = None, *,
                 required: bool = True) -> None:
        self.path = path
        self.observer = observer
        self.fallback: Path | None = None
        self.failure: str | None = None  # why the journal stopped taking records
        self._file: TextIO | None = None
        self._spare: TextIO | None = None
        self._t0 = time.monotonic()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the run
        except OSError as exc:
            if required:
                raise JournalError(f"cannot open the journal {path}: {exc.strerror or exc}",
                                   hint="check the output folder (--out) is writable and has "
                                        "space; nothing was injected") from None
            self._degrade(exc)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    @property
    def degraded(self) -> bool:
        return self.failure is not None

    def write(self, kind: Kind | str, **fields: Any) -> Record:
        record = {"kind": str(kind), "t": round(self.elapsed(), 4), "ts": time.time(), **fields}
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        stored = self._append(line, durable=kind in DURABLE)
        if kind == Kind.INTENT and not stored:
            raise JournalError(f"cannot record the intent of fault '{fields.get('fault')}' in "
                               f"{self.path}: {self.failure}",
                               hint="free space on the output folder's disk (or choose another "
                                    "with --out); the fault was not applied")
        if self.observer is not None:
            self._observe(record)
        return record

    def _observe(self, record: Record) -> None:
        """Show the record (the live display, the exporter); one that fails (a closed pipe,
        `| head`, a full disk under stdout) is dropped: it must never stop the run."""
        assert self.observer is not None
        try:
            self.observer(record)
        except Exception as exc:  # noqa: BLE001 - any display failure, the run goes on
            self.observer = None
            with contextlib.suppress(Exception):
                print(f"chaoskit: the display stopped ({exc!r}); the run goes on, its journal "
                      f"is {self.path}", file=sys.stderr, flush=True)

    def _append(self, line: str, *, durable: bool) -> bool:
        """True when the line is in the journal itself (fsynced if durable)."""
        if self._file is not None and self.failure is None:
            try:
                self._file.write(line)
                if durable:
                    self._sync(self._file)
                else:  # readers (the watchdog, a live tail, reports) see every record at once
                    self._file.flush()
                return True
            except OSError as exc:
                self._degrade(exc)
        self._to_fallback(line)
        return False

    @staticmethod
    def _sync(file: TextIO) -> None:
        file.flush()
        os.fsync(file.fileno())

    def _degrade(self, exc: OSError) -> None:
        self.failure = exc.strerror or str(exc)
        for directory in fallback_dirs():
            try:
                directory.mkdir(parents=True, exist_ok=True)
                name = f"chaoskit-journal-{self.path.parent.name}-{os.getpid()}.jsonl"
                self._spare = open(directory / name, "a", encoding="utf-8")  # noqa: SIM115
                self.fallback = directory / name
                break
            except OSError:
                continue
        where = str(self.fallback) if self.fallback else "stderr (no fallback file either)"
        print(f"chaoskit: cannot write the journal {self.path} ({self.failure}); its records "
              f"continue in {where}; faults are still reverted", file=sys.stderr, flush=True)

    def _to_fallback(self, line: str) -> None:
        if self._spare is not None:
            try:
                self._spare.write(line)
                self._sync(self._spare)
                return
            except OSError:
                self._spare = None
        sys.stderr.write("journal: " + line)

    def sync(self) -> None:
        if self._file is not None and self.failure is None:
            try:
                self._sync(self._file)
            except OSError as exc:
                self._degrade(exc)

    def close(self) -> None:
        for file in (self._file, self._spare):
            if file is not None and not file.closed:
                try:
                    self._sync(file)
                    file.close()
                except OSError:
                    continue
