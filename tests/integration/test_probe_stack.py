"""The probes on the real payment stack (bank, gateway, worker on PostgreSQL): the ledger's
ground truth and the services' own metrics tell the same story, and a broken stack shows."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.acknowledged import AcknowledgedProbe, AcknowledgedProbeConfig
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.metrics import MetricsProbe, MetricsProbeConfig
from chaoskit.probes.money import MoneyProbe, MoneyProbeConfig
from chaoskit.probes.prometheus import PrometheusProbe, PrometheusProbeConfig
from chaoskit.probes.schedule import ScheduleProbe, ScheduleProbeConfig
from chaoskit.spec.conditions import parse_threshold
from chaoskit.stack.process import ServiceFleet, ServiceProcess
from chaoskit.testing import FakePlatform
from tests.fixtures.systems import reference

if TYPE_CHECKING:
    from tests.fixtures.prometheus import Prometheus

pytestmark = pytest.mark.integration
PAYMENT = {"amount": "20.00", "currency": "CNY", "merchant": "m-1"}
REFUNDS = 6


class Lab(FakePlatform):
    """The fake platform pointed at a stack the test started: its database, its metrics."""

    def __init__(self, database_url: str, services: dict[str, ServiceProcess]) -> None:
        super().__init__()
        self.url = database_url
        self.services = services
        self.set_address("database", database_url)

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        return {name: p.url + "/metrics" for name, p in self.services.items()}


def start_stack(fleet: ServiceFleet, database_url: str, **env: str) -> Lab:
    fleet.env.update(CHAOSKIT_DATABASE_URL=database_url, CHAOSKIT_BANK_LATENCY="1ms",
                     CHAOSKIT_REFUND_SLA="1h")
    bank = fleet.start("bank", instance="bank-1")
    fleet.env["CHAOSKIT_BANK_URLS"] = f"alpha={bank.url}"
    gateway = fleet.start("gateway", instance="gateway-1", **env)
    worker = fleet.start("worker", instance="worker-1")
    return Lab(database_url, {"gateway-1": gateway, "worker-1": worker})


def post(lab: Lab, path: str, key: str, body: dict[str, str], acks: Path) -> dict[str, Any]:
    """A request as the load engine sends it, acknowledged in its JSON-lines format."""
    gateway = lab.services["gateway-1"].url
    answer = httpx.post(gateway + path, json=body, headers={"Idempotency-Key": key}, timeout=10)
    assert answer.is_success, answer.text
    flow = {"/v1/payments": "pay", "/v1/refunds": "refund"}[path]
    with acks.open("a") as file:
        file.write(json.dumps({"key": key, "flow": flow, "id": answer.json()["id"],
                               "status": answer.status_code}) + "\n")
    return dict(answer.json())


def drive(lab: Lab, acks: Path) -> None:
    for n in range(REFUNDS):
        payment = post(lab, "/v1/payments", f"pay-{n}", PAYMENT, acks)
        post(lab, "/v1/payments", f"pay-{n}", PAYMENT, acks)  # a client retry
        post(lab, "/v1/refunds", f"ref-{n}", {"payment_id": payment["id"], "amount": "5.00"},
             acks)


def read(probe: Any) -> float | None:
    return read_once(probe)


def checks(context: ProbeContext) -> dict[str, float | None]:
    """The reference stack's declared money checks and acknowledgement lookups."""
    found = {c: read(MoneyProbe(MoneyProbeConfig(check=c), context))
             for c in ("books-balance", "applied-once")}
    for measure in ("missing", "duplicated"):
        config = AcknowledgedProbeConfig(measure=measure, grace="1ms")
        found[measure] = read(AcknowledgedProbe(config, context))
    return found


def wait_refunds_done(context: ProbeContext, timeout: float = 30.0) -> float:
    config = ScheduleProbeConfig(promise="refund", measure="completed_on_time", window="10m")
    deadline = time.monotonic() + timeout
    while (done := read(ScheduleProbe(config, context))) < REFUNDS:
        assert time.monotonic() < deadline, f"only {done} refunds completed"
        time.sleep(0.2)
    return done


def test_ledger_truth_and_service_metrics_agree(stack_services: ServiceFleet,
                                                database_url: str, tmp_path: Path) -> None:
    acks = tmp_path / "acknowledged.jsonl"
    context = ProbeContext(start_stack(stack_services, database_url), str(tmp_path), str(acks),
                           system=reference())
    # built before the load, as the engine builds probes at the start of a run
    since_start = ScheduleProbe(ScheduleProbeConfig(promise="refund", measure="on_time_ratio"),
                                context)
    drive(context.platform, acks)
    assert wait_refunds_done(context) == REFUNDS
    assert read(since_start) == 1.0  # kept early: due in 1h, done at once
    since_start.config = since_start.config.model_copy(update={"measure": "due"})
    assert read(since_start) == REFUNDS
    completed = MetricsProbeConfig(service="worker", metric="payments_flows_completed",
                                   labels={"flow": "refund", "on_time": "true"})
    assert read(MetricsProbe(completed, context)) == REFUNDS
    requests = MetricsProbeConfig(service="gateway",
                                  metric="payments_request_duration_seconds_count",
                                  labels={"route": "/v1/payments"})
    assert read(MetricsProbe(requests, context)) == 2 * REFUNDS
    assert checks(context) == {"books-balance": 0.0, "applied-once": 0.0, "missing": 0.0,
                               "duplicated": 0.0}


def test_idempotency_switched_off_puts_money_at_risk(stack_services: ServiceFleet,
                                                     database_url: str, tmp_path: Path) -> None:
    acks = tmp_path / "acknowledged.jsonl"
    lab = start_stack(stack_services, database_url, CHAOSKIT_BROKEN="no-idempotency")
    context = ProbeContext(lab, str(tmp_path), str(acks), system=reference())
    drive(lab, acks)
    # every retried payment moved money a second time; the books hold each key twice
    assert checks(context) == {"books-balance": 0.0, "applied-once": REFUNDS, "missing": 0.0,
                               "duplicated": REFUNDS}
    wait_refunds_done(context)  # leave no work in flight behind the fixture's balance check


P99 = ("histogram_quantile(0.99, sum by (le) "
       "(payments_request_duration_seconds_bucket{route=\"/v1/payments\"}))")
PAYMENTS = 'sum(payments_request_duration_seconds_count{route="/v1/payments"})'
REFUNDS_ON_TIME = 'sum(payments_flows_completed_total{flow="refund",on_time="true"})'


def test_prometheus_scraping_the_stack_agrees_with_metrics_and_ledger(
        stack_services: ServiceFleet, database_url: str, tmp_path: Path,
        prometheus_server: Callable[[list[str]], Prometheus]) -> None:
    acks = tmp_path / "acknowledged.jsonl"
    lab = start_stack(stack_services, database_url)
    context = ProbeContext(lab, str(tmp_path), str(acks), system=reference())
    server = prometheus_server(list(lab.metrics_targets().values()))
    server.wait_for("up == 1")
    via_metrics = asyncio.run(metrics_quantile_over_traffic(lab, context, acks, server))
    via_prometheus = read(PrometheusProbe(PrometheusProbeConfig(url=server.url, query=P99),
                                          context))
    # the window holds every payment on both sides, so the quantiles agree exactly
    assert via_metrics == pytest.approx(via_prometheus, rel=1e-9)
    threshold = parse_threshold("<= 300ms")
    assert threshold.holds(via_metrics) and threshold.holds(via_prometheus)
    on_time = read(PrometheusProbe(PrometheusProbeConfig(url=server.url, query=REFUNDS_ON_TIME),
                                   context))
    assert on_time == REFUNDS


async def metrics_quantile_over_traffic(lab: Lab, context: ProbeContext, acks: Path,
                                        server: Prometheus) -> float:
    """p99 payment latency through the metrics probe, sampled on one loop as the engine does:
    once before the traffic (no data yet: the window starts there), once after it."""
    latency = MetricsProbe(MetricsProbeConfig(
        service="gateway", metric="payments_request_duration_seconds", measure="quantile",
        window="10m", labels={"route": "/v1/payments"}), context)
    try:
        with pytest.raises(ProbeError, match="no data"):
            await latency.sample()
        await asyncio.to_thread(drive, lab, acks)
        await asyncio.to_thread(wait_refunds_done, context)
        for settled in (f"{REFUNDS_ON_TIME} == {REFUNDS}", f"{PAYMENTS} == {2 * REFUNDS}"):
            await asyncio.to_thread(server.wait_for, settled)  # scraped after the traffic
        return await latency.sample()
    finally:
        await latency.close()
