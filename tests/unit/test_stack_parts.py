"""Pure parts of the stack: bank choice, postings, request hashing, settlement folding, bank app."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from chaoskit.errors import PlatformError
from chaoskit.stack import bank
from chaoskit.stack.bank_client import pick_bank
from chaoskit.stack.config import StackConfig
from chaoskit.stack.idempotency import request_hash
from chaoskit.stack.ledger import PAYER, entry_params, postings
from chaoskit.stack.offline import Settlement


def test_a_flow_always_goes_to_the_same_bank_and_work_spreads() -> None:
    banks = ["beta", "alpha", "gamma"]
    assert pick_bank("ref_1", banks) == pick_bank("ref_1", list(reversed(banks)))
    spread = Counter(pick_bank(f"ref_{i}", banks) for i in range(3000))
    assert set(spread) == set(banks) and min(spread.values()) > 800
    with pytest.raises(PlatformError):
        pick_bank("ref_1", [])


def test_postings_move_money_the_right_way() -> None:
    assert postings("payment", "m-1") == (PAYER, "merchant:m-1")
    assert postings("final_payment", "m-1") == (PAYER, "merchant:m-1")
    assert postings("refund", "m-1") == ("merchant:m-1", PAYER)
    params = entry_params("f", "refund", "m-1", Decimal("5.00"), "CNY")
    assert params["debit"] == "merchant:m-1" and params["amount"] == Decimal("5.00")
    with pytest.raises(ValueError):
        postings("gift", "m-1")


def test_request_hash_ignores_key_order_but_not_values_or_route() -> None:
    a = request_hash("payments", {"amount": "1", "currency": "CNY"})
    assert a == request_hash("payments", {"currency": "CNY", "amount": "1"})
    assert a != request_hash("payments", {"amount": "2", "currency": "CNY"})
    assert a != request_hash("refunds", {"amount": "1", "currency": "CNY"})


def test_settlement_folds_pages_into_totals_and_a_digest() -> None:
    state = Settlement(units=3, rounds=10, page_size=2)
    state.fold([(1, "f1", PAYER, Decimal(-5), "CNY"), (2, "f1", "merchant:m", Decimal(5),
                                                         "CNY")])
    state.fold([(3, "f2", PAYER, Decimal(-1), "USD")])
    assert state.last_id == 3 and state.entries == 3 and state.progress == pytest.approx(2 / 3)
    assert not state.balanced and state.totals["CNY"] == 0
    other = Settlement(units=3, rounds=10)
    other.fold([(1, "f1", PAYER, Decimal(-5), "CNY")])
    assert other.digest != state.digest


def _bank_app(**env: str) -> TestClient:
    config = StackConfig.from_env({"CHAOSKIT_BANK_LATENCY": "0s", **env})
    return TestClient(bank.build_app(config))


def test_bank_executes_a_key_once_and_replays_it() -> None:
    with _bank_app() as client:
        first = client.post("/v1/banks/alpha/charge", json={"amount": "1.00"},
                            headers={"Idempotency-Key": "fin_1"})
        again = client.post("/v1/banks/alpha/charge", json={"amount": "1.00"},
                            headers={"Idempotency-Key": "fin_1"})
        client.post("/v1/banks/beta/refund", json={"amount": "1.00"},
                    headers={"Idempotency-Key": "fin_1"})
        stats = client.get("/v1/banks").json()["banks"]
    assert first.status_code == again.status_code == 200 and again.json()["replayed"]
    assert stats["alpha"] == {"charges": 1, "refunds": 0, "replays": 1, "errors": 0}
    assert stats["beta"]["refunds"] == 1


def test_bank_errors_at_its_rate_and_books_nothing_then() -> None:
    with _bank_app(CHAOSKIT_BANK_ERROR_RATE="100%") as client:
        failed = client.post("/v1/banks/alpha/charge", json={"amount": "1"},
                             headers={"Idempotency-Key": "k"})
        refused = client.post("/v1/banks/alpha/charge", json={"amount": "1"})
        stats = client.get("/v1/banks").json()
    assert failed.status_code == 503 and refused.status_code == 400
    assert stats["operations"] == 0 and stats["banks"]["alpha"]["errors"] == 1

