"""The five built-in probes are found by `type:` and built from experiment options as the engine
builds them (durations as text, platform defaults filled in)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chaoskit.engine.sampling import build_probe
from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext
from chaoskit.spec.models import ProbeRef


class Platform:
    def prometheus_url(self) -> str:
        return "http://127.0.0.1:9090/"

    def database_url(self) -> str:
        return "postgresql://127.0.0.1:5432/ledger"

    def metrics_targets(self) -> dict[str, str]:
        return {"gateway-node-1": "http://127.0.0.1:8001/metrics",
                "worker-node-1": "http://127.0.0.1:8002/metrics"}


CONTEXT = ProbeContext(Platform(), "/tmp", "/tmp/acknowledged.jsonl")


def build(**options: object) -> object:
    return build_probe(ProbeRef.model_validate(options), CONTEXT)


def test_prometheus_defaults_to_the_platform_server() -> None:
    probe = build(type="prometheus", query="up", range="5m", step="15s", reduce="max")
    assert type(probe).__name__ == "PrometheusProbe"
    assert probe.url == "http://127.0.0.1:9090"  # type: ignore[attr-defined]
    assert probe.config.range == 300.0  # type: ignore[attr-defined]


def test_metrics_takes_the_platform_targets_of_a_service() -> None:
    probe = build(type="metrics", service="worker", metric="payments_queue_depth")
    assert probe.targets == ["http://127.0.0.1:8002/metrics"]  # type: ignore[attr-defined]


def test_schedule_and_ledger_default_to_the_platform_database() -> None:
    schedule = build(type="schedule", flow="refund", measure="lag_p99", window="5m")
    ledger = build(type="ledger", measure="money_at_risk")
    assert schedule.source.url == Platform().database_url()  # type: ignore[attr-defined]
    assert ledger.acks.path.name == "acknowledged.jsonl"  # type: ignore[attr-defined]


def test_http_accepts_one_status() -> None:
    probe = build(type="http", url="http://127.0.0.1:1/healthz", expect_status=204)
    assert probe.config.expect_status == [204]  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [
    {"type": "schedule", "flow": "payment"},               # payments have no due time
    {"type": "metrics", "metric": "x", "targets": ["u"], "measure": "p99"},
    {"type": "ledger", "measure": "ledger"},
    {"type": "prometheus", "query": "up", "reduce": "median"},
    {"type": "http", "url": "http://x", "timeout": "5"},   # durations need a unit
    {"type": "schedule", "flow": "refund", "windw": "5m"},  # unknown keys are errors
])
def test_invalid_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        build(**options)


def test_unknown_probe_type_suggests_the_close_one() -> None:
    with pytest.raises(ProbeError) as err:
        build(type="schedul")
    assert "schedule" in err.value.hint
