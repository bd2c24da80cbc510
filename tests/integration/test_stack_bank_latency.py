"""A real Toxiproxy latency toxic on the bank proxy shows up in the stack's own bank metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from chaoskit.stack.process import ServiceFleet, ServiceProcess
from chaoskit.toxiproxy import ProxyState, ToxiproxyServer

pytestmark = pytest.mark.integration
TOXIC_MS = 300


def bank_calls(worker: ServiceProcess) -> tuple[float, float]:
    """(sum of seconds, count) of approved bank calls the worker made."""
    text = httpx.get(worker.url + "/metrics").text
    total = re.findall(r'^payments_bank_call_duration_seconds_sum{[^}]*outcome="approved"} (\S+)',
                       text, re.MULTILINE)
    count = re.findall(
        r'^payments_bank_call_duration_seconds_count{[^}]*outcome="approved"} (\S+)', text,
        re.MULTILINE)
    return sum(map(float, total)), sum(map(float, count))


def refund_batch(gateway: ServiceProcess, n: int) -> None:
    for _ in range(n):
        key = uuid.uuid4().hex
        paid = httpx.post(f"{gateway.url}/v1/payments", headers={"Idempotency-Key": key},
                          json={"amount": "3.00", "currency": "CNY", "merchant": "m"}).json()
        httpx.post(f"{gateway.url}/v1/refunds", headers={"Idempotency-Key": key + "-r"},
                   json={"payment_id": paid["id"], "amount": "3.00"}).raise_for_status()


def wait_count(worker: ServiceProcess, count: float) -> tuple[float, float]:
    for _ in range(200):
        seen = bank_calls(worker)
        if seen[1] >= count:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"worker made fewer than {count} bank calls")


def test_bank_latency_toxic_shows_in_bank_call_metrics(
        stack_services: ServiceFleet, database_url: str, toxiproxy_url: str,
        make_proxy: Callable[[str, str], ProxyState]) -> None:
    stack_services.env.update({"CHAOSKIT_DATABASE_URL": database_url,
                               "CHAOSKIT_BANK_LATENCY": "5ms"})
    bank = stack_services.start("bank")
    proxy = make_proxy("bank-alpha", f"127.0.0.1:{bank.port}")
    stack_services.env["CHAOSKIT_BANK_URLS"] = f"alpha=http://{proxy.listen}"
    gateway, worker = stack_services.start("gateway"), stack_services.start("worker")
    refund_batch(gateway, 3)
    base_sum, base_count = wait_count(worker, 3)
    assert base_sum / base_count < TOXIC_MS / 1000
    server = ToxiproxyServer(toxiproxy_url)
    server.add_toxic(proxy.name, "slow-bank", "latency", "downstream", 1.0,
                     {"latency": TOXIC_MS, "jitter": 0})
    try:
        refund_batch(gateway, 3)
        slow_sum, slow_count = wait_count(worker, 6)
    finally:
        server.remove_toxic(proxy.name, "slow-bank")
    slow_mean = (slow_sum - base_sum) / (slow_count - base_count)
    print(f"\nbank call mean: {base_sum / base_count * 1000:.1f} ms before, "
          f"{slow_mean * 1000:.1f} ms with a {TOXIC_MS} ms toxic")
    assert slow_mean >= TOXIC_MS / 1000
