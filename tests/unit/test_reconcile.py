"""Reconciliation's comparison (pure): two records of the same operations, both ways."""

from __future__ import annotations

from decimal import Decimal

from chaoskit.probes.reconcile import comparable, compare, count

BANK = [{"ref": "r1", "operation": "refund", "amount": Decimal("1.00"), "at": 1},
        {"ref": "r2", "operation": "charge", "amount": Decimal("20.4"), "at": 1}]
BOOKS = [{"ref": "r1", "operation": "refund", "amount": "1", "bank": "alpha", "at": 2},
         {"ref": "r2", "operation": "charge", "amount": 20.40, "at": 2}]


def problems(theirs: list[dict], ours: list[dict], **kw: object) -> list[tuple[str, str]]:
    return [(m.problem, m.ref) for m in compare(theirs, ours, **kw)]  # type: ignore[arg-type]


def test_records_that_agree_have_no_mismatch() -> None:
    assert compare(BANK, BOOKS) == []  # 1.00 = "1", 20.4 = 20.40; `bank` only on one side


def test_each_way_the_records_can_disagree() -> None:
    theirs = [*BANK, {"ref": "r2", "operation": "charge", "amount": 20.4},  # executed twice
              {"ref": "r3", "operation": "refund", "amount": 1}]             # never booked
    ours = [{**BOOKS[0], "operation": "charge"}, BOOKS[1],                   # the wrong way
            {"ref": "r4", "operation": "charge", "amount": 9}]               # never executed
    assert problems(theirs, ours) == [("differing", "r1"), ("repeated", "r2"),
                                      ("counterparty_only", "r3"), ("books_only", "r4")]
    found = compare(theirs, ours)
    assert found[0].says == "operation: refund at the counterparty, charge in the books"
    assert count(found, "mismatches") == 4 and count(found, "repeated") == 1


def test_a_young_row_on_one_side_is_still_in_flight() -> None:
    theirs = [{"ref": "r9", "amount": 1, "at": 0}]
    assert problems(theirs, [], settled=lambda row, side: False) == []
    assert problems(theirs, [], settled=lambda row, side: True) == [("counterparty_only", "r9")]


def test_values_compare_as_numbers_when_they_are_numbers() -> None:
    assert comparable("12.30") == comparable(Decimal("12.3")) == comparable(12.3)
    assert comparable("charge") == "charge" and comparable(None) is None
    assert comparable("1200") != comparable("12.00")
