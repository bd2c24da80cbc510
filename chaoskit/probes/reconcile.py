"""Two records of the same operations compared both ways (pure): the counterparty's (a bank's
statement) and the books. Rows are matched by `ref`; every other column both sides return
(except `at`, when the row was written) must agree.

    counterparty_only  executed by the counterparty, absent from the books (money moved that
                       nobody booked)
    books_only         booked, never executed by the counterparty (booked money that never
                       moved)
    repeated           a ref more than once on one side (executed or booked twice)
    differing          on both sides once, but a shared column differs (amount, operation...)

A ref on one side only is not a mismatch while its row is younger than the reconciliation's
`settle` (the other side may still be writing it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PROBLEMS = ("counterparty_only", "books_only", "repeated", "differing")
Row = dict[str, Any]


@dataclass(frozen=True)
class Mismatch:
    """One way the two records disagree about one ref."""

    problem: str  # one of PROBLEMS
    ref: str
    says: str  # what is wrong, in words

    def shown(self) -> dict[str, str]:
        return {"ref": self.ref, "problem": self.problem.replace("_", " "), "says": self.says}


def comparable(value: Any) -> Any:
    """Numbers as numbers (12.3 and "12.30" agree), everything else as text."""
    if value is None or isinstance(value, bool):
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return number.normalize() if number.is_finite() else str(value)


def by_ref(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[str(row["ref"])].append(row)
    return grouped


def compare(counterparty: list[Row], books: list[Row],
            settled: Callable[[Row, str], bool] = lambda row, side: True) -> list[Mismatch]:
    """Every mismatch between the two records. `settled(row, side)` says whether a row is old
    enough to be missed on the other side (side: "counterparty" or "books")."""
    theirs, ours = by_ref(counterparty), by_ref(books)
    found: list[Mismatch] = []
    for ref in sorted(theirs.keys() | ours.keys()):
        c, b = theirs.get(ref, []), ours.get(ref, [])
        if len(c) > 1:
            found.append(Mismatch("repeated", ref, f"{len(c)} times at the counterparty"))
        if len(b) > 1:
            found.append(Mismatch("repeated", ref, f"{len(b)} times in the books"))
        if c and not b and all(settled(row, "counterparty") for row in c):
            found.append(Mismatch("counterparty_only", ref,
                                  "at the counterparty, not in the books"))
        elif b and not c and all(settled(row, "books") for row in b):
            found.append(Mismatch("books_only", ref, "in the books, not at the counterparty"))
        elif len(c) == 1 and len(b) == 1:
            differences = differing(c[0], b[0])
            if differences:
                found.append(Mismatch("differing", ref, "; ".join(differences)))
    return found


def differing(theirs: Row, ours: Row) -> list[str]:
    """The shared columns (but ref and at) on which the two rows disagree, in words."""
    shared = sorted((theirs.keys() & ours.keys()) - {"ref", "at"})
    return [f"{column}: {theirs[column]} at the counterparty, {ours[column]} in the books"
            for column in shared if comparable(theirs[column]) != comparable(ours[column])]


def count(mismatches: list[Mismatch], measure: str) -> int:
    """How many mismatches a measure counts (`mismatches`: all of them)."""
    return sum(1 for m in mismatches if measure in ("mismatches", m.problem))
