"""The five built-in probes are found by `type:` and built from experiment options as the engine
builds them (durations as text, platform defaults filled in)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chaoskit.engine.sampling import build_probe
from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext
from chaoskit.spec.models import ProbeRef
from chaoskit.testing import FakePlatform
from tests.fixtures.systems import reference


def platform() -> FakePlatform:
    fake = FakePlatform()
    fake.set_address("prometheus", "http://127.0.0.1:9090/")
    fake.set_address("database", "postgresql://127.0.0.1:5432/ledger")
    (fake.state_dir / "addresses" / "metrics.json").write_text(
        '{"gateway-node-1": "http://127.0.0.1:8001/metrics", '
        '"worker-node-1": "http://127.0.0.1:8002/metrics"}')
    return fake


CONTEXT = ProbeContext(platform(), "/tmp", "/tmp/acknowledged.jsonl", system=reference())


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


def test_the_books_probes_read_the_declarations_and_the_platform_database() -> None:
    schedule = build(type="schedule", promise="refund", measure="lag_p99", window="5m")
    money = build(type="money", check="books-balance")
    acked = build(type="acknowledged", measure="missing")
    url = "postgresql://127.0.0.1:5432/ledger"
    assert schedule.books.url == money.books.url == url  # type: ignore[attr-defined]
    assert acked.acks.path.name == "acknowledged.jsonl"  # type: ignore[attr-defined]
    assert "FROM flows WHERE kind = 'refund'" in schedule.query  # type: ignore[attr-defined]


@pytest.mark.parametrize(("options", "needle"), [
    ({"type": "schedule", "promise": "payment"}, "no promise 'payment'"),
    ({"type": "money", "check": "books-balanse"}, "no money check 'books-balanse'"),
])
def test_undeclared_promises_and_checks_are_named(options: dict[str, object],
                                                  needle: str) -> None:
    with pytest.raises(ProbeError, match=needle) as err:
        build(**options)
    assert "declared:" in err.value.hint


def test_http_accepts_one_status() -> None:
    probe = build(type="http", url="http://127.0.0.1:1/healthz", expect_status=204)
    assert probe.config.expect_status == [204]  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [
    {"type": "schedule", "promise": "refund", "flow": "refund"},  # one name, not two
    {"type": "metrics", "metric": "x", "targets": ["u"], "measure": "p99"},
    {"type": "acknowledged", "measure": "lost"},
    {"type": "prometheus", "query": "up", "reduce": "median"},
    {"type": "http", "url": "http://x", "timeout": "5"},   # durations need a unit
    {"type": "schedule", "promise": "refund", "windw": "5m"},  # unknown keys are errors
])
def test_invalid_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        build(**options)


def test_unknown_probe_type_suggests_the_close_one() -> None:
    with pytest.raises(ProbeError) as err:
        build(type="schedul")
    assert "schedule" in err.value.hint
