"""Refunds in the load mix behave like customers: each acknowledged purchase refunded once."""

from __future__ import annotations

import json

from chaoskit.load.requests import RequestMix


def _body(request: bytes) -> dict:
    return json.loads(request.split(b"\r\n\r\n", 1)[1])


def test_each_payment_is_refunded_at_most_once() -> None:
    mix = RequestMix(["pay", "refund"], "127.0.0.1", 8080, "", "run1")
    for pid in ("pay_1", "pay_2"):
        mix.payments.append(pid)
    refunded = [_body(mix.build(k, 1)[0]).get("payment_id") for k in range(3)]
    assert refunded[:2] == ["pay_1", "pay_2"]
    assert refunded[2] is None  # none left: sent as a payment instead, and counted
    assert mix.refunds_as_payments == 1
