"""The stack's deliberate defects: each is a realistic bug with a switch in the code where it
lives, the set spans every component, and the healthy stack is the default."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from chaoskit.probes.acknowledged import misdirection
from chaoskit.stack.bank_client import BankChannelClient
from chaoskit.stack.config import StackConfig
from chaoskit.stack.defects import CATALOGUE, DEFECTS, MUTANTS
from chaoskit.stack.ledger import CLEARING, PAYER, entry_params, postings
from chaoskit.stack.metrics import StackMetrics
from tests.mutants.runner import EXPECTED

STACK = Path(__file__).resolve().parents[2] / "chaoskit" / "stack"


def test_at_least_ten_mutants_across_every_component() -> None:
    assert len(MUTANTS) >= 10
    assert {d.component for d in MUTANTS} == {"gateway", "worker", "scheduler", "ledger",
                                              "bank-client"}
    assert len(DEFECTS) == len(CATALOGUE)  # names are unique


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_is_switched_where_it_lives_and_tried_first_where_expected(
        name: str) -> None:
    source = "\n".join(p.read_text() for p in STACK.glob("*.py") if p.name != "defects.py")
    assert f'"{name}"' in source, f"no switch for {name} in chaoskit/stack"
    assert name in EXPECTED
    assert StackConfig.from_env({"CHAOSKIT_BROKEN": name}).is_broken(name)
    assert not StackConfig.from_env({}).broken


def test_ledger_defects_change_only_what_they_say() -> None:
    assert postings("refund", "m-1", {"refund-legs-reversed"}) == (PAYER, "merchant:m-1")
    assert postings("payment", "m-1", {"refund-legs-reversed"}) == (PAYER, "merchant:m-1")
    assert postings("final_payment", "m-1", {"final-payment-to-clearing"}) == (PAYER, CLEARING)
    rounded = entry_params("f", "final_payment", "m-1", Decimal("20.50"), "CNY",
                           {"legs-rounded"})
    assert rounded["amount"] == Decimal("21")


def test_bank_client_defects() -> None:
    def client(*broken: str) -> BankChannelClient:
        return BankChannelClient({"alpha": "http://x"}, StackMetrics("n"), broken=broken)
    healthy = client()
    assert (healthy.operation("refund"), healthy.key("ref_1"), healthy.amount(Decimal("1.5"))
            ) == ("refund", "ref_1", "1.5")
    assert client("refund-sent-as-charge").operation("refund") == "charge"
    fresh = client("fresh-bank-key")
    assert fresh.key("ref_1") != fresh.key("ref_1") and fresh.key("ref_1").startswith("ref_1")
    assert client("amount-in-cents").amount(Decimal("12.34")) == "1234"


@pytest.mark.parametrize("moves, moved, amount, problem", [
    ("from-customer", "-12.30", "12.30", None),
    ("to-customer", "1.00", "1.00", None),
    ("to-customer", "-1.00", "1.00", "money moved from the customer, not to-customer"),
    ("from-customer", "0", "5.00", "no money moved for the customer"),
    ("from-customer", "-5", "5.40", "moved 5 for a request of 5.40"),
    ("from-customer", "-5", None, None),
])
def test_what_clients_were_told_against_the_customers_change(
        moves: str, moved: str, amount: str | None, problem: str | None) -> None:
    assert misdirection(moves, moved, amount) == problem


def test_a_kill_needs_an_item_the_healthy_stack_held() -> None:
    """On a busy machine a latency item may fail on the healthy stack too: such a failure
    proves nothing about a defect, so it kills no mutant."""
    from tests.mutants.runner import Verdict

    healthy = Verdict("x", "failed", 1, 1.0, failing=["gateway-p99 [during]"])
    noise = Verdict("x", "failed", 1, 1.0, failing=["gateway-p99 [during]"])
    caught = Verdict("x", "aborted", 3, 1.0, failing=[
        "gateway-p99 [during]", "guardrail books-unbalanced: 2 > 0"])
    assert not noise.kills_beyond(healthy) and noise.kills_beyond(None)
    assert caught.kills_beyond(healthy)
    assert caught.beyond(healthy) == ["guardrail books-unbalanced: 2 > 0"]
    assert not Verdict("x", "inconclusive", 5, 1.0, failing=["a [after]"]).kills_beyond(None)
