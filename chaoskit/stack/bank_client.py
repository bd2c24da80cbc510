"""Calling the bank channel: a bank chosen per flow, the flow id as the idempotency key and as the
reference the bank's own record (its statement) carries, which reconciliation matches."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

import httpx

from chaoskit.errors import PlatformError
from chaoskit.stack.metrics import StackMetrics


def pick_bank(flow_id: str, banks: list[str]) -> str:
    """The same flow always goes to the same bank (so its retries meet its first attempt)."""
    if not banks:
        raise PlatformError("no bank configured", hint="set CHAOSKIT_BANK_URLS=alpha=http://...")
    return sorted(banks)[zlib.crc32(flow_id.encode()) % len(banks)]


@dataclass(frozen=True)
class BankAnswer:
    """approved: money moved at the bank; declined: it never will; else: try again later."""

    outcome: str  # "approved" | "declined" | "retry"
    detail: str = ""


class BankChannelClient:
    """One HTTP client for all banks; every failure to get an answer is a retry, not a loss."""

    def __init__(self, bank_urls: dict[str, str], metrics: StackMetrics,
                 timeout: float = 10.0, broken: Collection[str] = ()) -> None:
        self.bank_urls = bank_urls
        self.metrics = metrics
        self.broken = broken  # the stack's deliberate defects (CHAOSKIT_BROKEN)
        self.http = httpx.AsyncClient(timeout=timeout,
                                      limits=httpx.Limits(max_connections=64))

    async def call(self, kind: str, flow_id: str, amount: Decimal, currency: str) -> tuple[
            str, BankAnswer]:
        bank = pick_bank(flow_id, list(self.bank_urls))
        url = f"{self.bank_urls[bank]}/v1/banks/{bank}/{self.operation(kind)}"
        started = time.perf_counter()
        answer = await self._post(url, self.key(flow_id), {
            "amount": self.amount(amount), "currency": currency, "reference": flow_id})
        self.metrics.bank_call_duration.labels(self.metrics.node, bank, answer.outcome).observe(
            time.perf_counter() - started)
        return bank, answer

    def operation(self, kind: str) -> str:
        if "refund-sent-as-charge" in self.broken:  # the deliberate defect: a typo'd kind
            return "refund" if kind == "refunds" else "charge"
        return "refund" if kind == "refund" else "charge"

    def key(self, flow_id: str) -> str:
        if "fresh-bank-key" in self.broken:  # the deliberate defect: a new key per attempt
            return f"{flow_id}:{uuid.uuid4().hex[:8]}"
        return flow_id

    def amount(self, amount: Decimal) -> str:
        if "amount-in-cents" in self.broken:  # the deliberate defect: minor units
            return str(int(amount * 100))
        return str(amount)

    async def _post(self, url: str, key: str, body: dict[str, str]) -> BankAnswer:
        try:
            response = await self.http.post(url, json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            return BankAnswer("retry", f"{type(exc).__name__}: {exc}")
        if response.status_code == 200:
            return BankAnswer("approved")
        if response.status_code in (402, 422):
            return BankAnswer("declined", response.text[:200])
        return BankAnswer("retry", f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self.http.aclose()
