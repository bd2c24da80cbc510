"""Requests from the user's declarations: templates rendered per arrival, captures consumed,
success judged by status and body, a fallback flow while a needed value is missing."""

from __future__ import annotations

import json
from typing import Any

import httptools
import pytest

from chaoskit.load.flows import STARVED, FlowSet
from chaoskit.load.render import compile_request
from chaoskit.spec.system import SystemSpec
from tests.fixtures.systems import reference_flows


def parse(request: bytes) -> tuple[str, str, dict[str, str], bytes]:
    got: dict[str, Any] = {"headers": {}, "body": b""}

    class Sink:
        def on_url(self, url: bytes) -> None:
            got["url"] = url.decode()

        def on_header(self, name: bytes, value: bytes) -> None:
            got["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            got["body"] += body

        def on_message_complete(self) -> None:
            got["done"] = True

    parser = httptools.HttpRequestParser(Sink())
    parser.feed_data(request)
    assert got.get("done"), "the request is not a complete HTTP message"
    return parser.get_method().decode(), got["url"], got["headers"], got["body"]


def flow_set(declared: dict[str, Any]) -> FlowSet:
    system = SystemSpec.model_validate({"flows": declared})
    specs = [{"name": n, **f.model_dump(by_alias=True, mode="json")}
             for n, f in system.flows.items()]
    return FlowSet.compile(specs, host="127.0.0.1", port=8080, prefix="/api", seed=7)


def test_the_reference_stacks_flows_are_complete_posts_with_unique_keys() -> None:
    specs = [{"name": n, **f.model_dump(by_alias=True, mode="json")}
             for n, f in reference_flows().items()]
    flows = FlowSet.compile(specs, host="127.0.0.1", port=8080, prefix="/api", seed=7)
    pay, sent = flows.build(1, 0, "run1-1")
    method, url, headers, body = parse(pay)
    assert (method, url, sent) == ("POST", "/api/v1/payments", 0)
    assert headers["idempotency-key"] == "run1-1"
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"amount", "currency", "merchant"}
    final, _ = flows.build(2, 2, "run1-2")
    assert parse(final)[1] == "/api/v1/final-payments"


def test_a_refund_uses_each_captured_payment_once_or_is_sent_as_its_fallback() -> None:
    specs = [{"name": n, **f.model_dump(by_alias=True, mode="json")}
             for n, f in reference_flows().items()]
    flows = FlowSet.compile(specs, host="h", port=80, prefix="", seed=1)
    early, sent = flows.build(5, 1, "k5")  # no payment captured yet: a payment instead
    assert sent == 0 and parse(early)[1] == "/v1/payments" and flows.substituted[1] == 1
    ok, captured = flows.answered(0, 201, b'{"id": "pay_42", "status": "completed"}', None)
    assert ok and captured == {"payment": "pay_42"}
    refund, sent = flows.build(6, 1, "k6")
    assert sent == 1 and json.loads(parse(refund)[3])["payment_id"] == "pay_42"
    again, sent = flows.build(7, 1, "k7")
    assert sent == 0  # pay_42 was used once, as declared (uses: 1)


def test_templates_render_per_arrival_and_are_reproducible() -> None:
    flows = flow_set({"charge": {
        "request": {"path": "/api/v2/merchants/{{ random.choice(['m1', 'm2']) }}/charges",
                    "query": {"trace": "{{ seq }}"},
                    "json": {"request_id": "{{ key }}",
                             "amount_cents": "{{ random.int(100, 900) }}",
                             "ccy": "EUR", "note": "n-{{ seq % 3 }}"}},
        "success": {"status": [200], "json": {"/charge/state": ["CAPTURED"]}},
        "captures": {"charge": {"json": "/charge/charge_ref", "uses": 2}}}})
    one, _ = flows.build(3, 0, "key-3")
    method, url, _, body = parse(one)
    fields = json.loads(body)
    assert url.startswith("/api/api/v2/merchants/m") and url.endswith("/charges?trace=3")
    assert fields["request_id"] == "key-3" and fields["note"] == "n-0"
    assert isinstance(fields["amount_cents"], int) and 100 <= fields["amount_cents"] <= 900
    assert flows.build(3, 0, "key-3")[0] == one  # the same arrival renders the same request
    assert flow_set({"charge": {"request": {"path": "/x", "json": {"a": "{{ random.int(1, "
                                            "1000000) }}"}}}}).build(4, 0, "k")[0] != one
    ok, _ = flows.answered(0, 200, b'{"charge": {"state": "DECLINED"}}', None)
    assert not ok  # the body says it failed, whatever the status


def test_a_form_body_a_header_capture_and_a_starved_flow() -> None:
    flows = flow_set({
        "open": {"request": {"path": "/orders", "form": {"sku": "a b&c", "n": "{{ seq }}"}},
                 "captures": {"order": {"header": "Location"}}},
        "pay-balance": {"request": {"path": "{{ order }}/balance", "method": "PUT"}}})
    # a captured Location is a path: its slashes stay (ids with spaces are encoded)
    starved, sent = flows.build(1, 1, "k1")
    assert sent == STARVED and starved == b"" and flows.starved[1] == 1
    form, _ = flows.build(2, 0, "k2")
    assert parse(form)[3] == b"sku=a%20b%26c&n=2"
    assert parse(form)[2]["content-type"] == "application/x-www-form-urlencoded"
    flows.answered(0, 201, b"", {"location": "/orders/o-9"})
    balance, sent = flows.build(3, 1, "k3")
    assert sent == 1 and parse(balance)[:2] == ("PUT", "/api/orders/o-9/balance")


def test_environment_values_are_read_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAY_TOKEN", "s3cret")
    request = {"path": "/p", "headers": {"Authorization": "Bearer {{ env.PAY_TOKEN }}"}}
    build = compile_request(request, host="h", port=1, prefix="", seed=1, captured=set(),
                            flow="p")
    assert parse(build(1, "k", {}))[2]["authorization"] == "Bearer s3cret"


def test_captured_values_a_run_never_uses_up_are_kept_to_a_bounded_pool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chaoskit.load.flows.POOL_LIMIT", 100)
    flows = flow_set({"pay": {"request": {"path": "/p", "json": {"n": "{{ seq }}"}},
                              "captures": {"payment": {"json": "/id"}}},
                      "refund": {"request": {"path": "/r", "json": {"p": "{{ payment }}"}}}})
    for i in range(250):  # hours of payments, no refund yet
        ok, _ = flows.answered(0, 201, json.dumps({"id": f"p{i}"}).encode(), None)
        assert ok
    assert len(flows.pools["payment"]) == 100
    request, sent = flows.build(1, 1, "key-1")
    assert sent == 1 and b'"p150"' in request  # the oldest kept: the last 100 captured
