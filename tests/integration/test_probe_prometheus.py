"""The prometheus probe against a real Prometheus 2.42 scraping a real exporter, and the same
hypotheses judged through the `prometheus` and the `metrics` probes agreeing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.metrics import MetricsProbe, MetricsProbeConfig
from chaoskit.probes.prometheus import PrometheusProbe, PrometheusProbeConfig
from chaoskit.spec.conditions import parse_threshold

if TYPE_CHECKING:
    from tests.fixtures.prometheus import Exporter, Prometheus

pytestmark = pytest.mark.integration

PAY = 'route="/pay"'
RATE = f"sum(rate(demo_requests_total{{{PAY}}}[5s]))"


@pytest.fixture(scope="module")
def prometheus(prometheus_server: Callable[[list[str]], Prometheus],
               known_exporter: Exporter) -> Iterator[Prometheus]:
    server = prometheus_server([known_exporter.url])
    server.wait_for(RATE)  # two scrapes in the window: rates exist
    server.wait_for("count_over_time(demo_queue_depth[5s]) >= 5")
    yield server


def ask(url: str, **options: object) -> float:
    config = PrometheusProbeConfig.model_validate({"url": url, **options})
    probe = PrometheusProbe(config, ProbeContext(platform=None, run_dir="/tmp"))
    return read_once(probe)


def test_instant_queries_read_the_known_values(prometheus: Prometheus) -> None:
    assert ask(prometheus.url, query="sum(demo_queue_depth)") == 7.0
    assert ask(prometheus.url, query=RATE) == pytest.approx(100.0, rel=0.05)
    p90 = "histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5s])))"
    assert ask(prometheus.url, query=p90) == pytest.approx(0.1 + 0.15 * 10 / 15, rel=1e-9)


def test_range_query_is_reduced(prometheus: Prometheus) -> None:
    rate = "sum(rate(demo_requests_total[3s]))"
    high = ask(prometheus.url, query=rate, range="4s", step="1s", reduce="max")
    low = ask(prometheus.url, query=rate, range="4s", step="1s", reduce="min")
    assert low <= high and high == pytest.approx(150.0, rel=0.1)
    assert ask(prometheus.url, query="scalar(sum(demo_queue_depth))", range="3s",
               reduce="mean") == 7.0


def test_bad_query_carries_prometheus_error_type(prometheus: Prometheus) -> None:
    with pytest.raises(ProbeError) as err:
        ask(prometheus.url, query="sum(rate(demo_requests_total[5s])")
    assert "bad_data" in err.value.message and "/graph" in err.value.hint


def test_empty_result_names_the_query(prometheus: Prometheus) -> None:
    with pytest.raises(ProbeError) as err:
        ask(prometheus.url, query='demo_queue_depth{job="nope"}')
    assert 'demo_queue_depth{job="nope"}' in err.value.message
    assert "scrape" in err.value.hint
    assert ask(prometheus.url, query='demo_queue_depth{job="nope"}', when_empty=0) == 0.0


def test_many_series_ask_for_an_aggregation(prometheus: Prometheus) -> None:
    with pytest.raises(ProbeError) as err:
        ask(prometheus.url, query="demo_requests_total")
    assert "2 series" in err.value.message and "sum(" in err.value.hint


def test_unreachable_server() -> None:
    with pytest.raises(ProbeError, match="unreachable"):
        ask("http://127.0.0.1:9", query="up", timeout="1s")


# The same hypotheses through both probes. Known truth: p90 = 0.2s, p99 = 0.5s, error ratio
# 10%, /pay at 100/s, depth 7. Tolerance: quantiles and ratios agree to 1e-9 (whole ticks keep
# bucket shares exact in any window); rates to 10% (Prometheus extrapolates to the window edge,
# the metrics probe divides by the real span between its own scrapes).
HYPOTHESES = [
    ("p90 latency", "<= 300ms", 1e-9,
     {"query": "histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[5s])))"},
     {"metric": "demo_latency_seconds", "measure": "quantile", "q": 0.9}),
    ("p99 latency", "<= 300ms", 1e-9,
     {"query": "histogram_quantile(0.99, sum by (le) (rate(demo_latency_seconds_bucket[5s])))"},
     {"metric": "demo_latency_seconds", "measure": "quantile", "q": 0.99}),
    ("error ratio", "<= 5%", 1e-9,
     {"query": f"sum(rate(demo_errors_total[5s])) / sum(rate(demo_requests_total{{{PAY}}}[5s]))"},
     {"metric": "demo_errors", "measure": "ratio", "denominator": "demo_requests",
      "denominator_labels": {"route": "/pay"}}),
    ("pay rate", ">= 80/s", 0.10, {"query": RATE},
     {"metric": "demo_requests_total", "labels": {"route": "/pay"}, "measure": "rate"}),
    ("queue depth", "== 7", 0.0, {"query": "sum(demo_queue_depth)"},
     {"metric": "demo_queue_depth"}),
]


async def through_metrics(url: str, options: dict[str, object]) -> float:
    config = MetricsProbeConfig.model_validate({"targets": [url], "window": "5s", **options})
    probe = MetricsProbe(config, ProbeContext(platform=None, run_dir="/tmp"))
    try:
        await probe.sample()
        await asyncio.sleep(2.5)  # a window of real scrapes, as the engine would sample
        return await probe.sample()
    finally:
        await probe.close()


@pytest.mark.parametrize(("name", "expect", "tolerance", "promql", "scrape"), HYPOTHESES,
                         ids=[h[0] for h in HYPOTHESES])
def test_prometheus_and_metrics_probes_agree(prometheus: Prometheus, known_exporter: Exporter,
                                             name: str, expect: str, tolerance: float,
                                             promql: dict[str, object],
                                             scrape: dict[str, object]) -> None:
    via_prometheus = ask(prometheus.url, **promql)
    via_metrics = asyncio.run(through_metrics(known_exporter.url, scrape))
    assert via_metrics == pytest.approx(via_prometheus, rel=tolerance), name
    threshold = parse_threshold(expect)
    assert threshold.holds(via_metrics) == threshold.holds(via_prometheus), name
    expected_verdict = name not in ("p99 latency", "error ratio")
    assert threshold.holds(via_prometheus) is expected_verdict


def test_a_promise_that_lives_in_metrics_is_read_by_its_promql(prometheus: Prometheus) -> None:
    """The schedule probe on a PromQL promise: each measure its own query, on the system's
    Prometheus; a measure the promise does not give is refused when the probe is built."""
    from chaoskit.probes.schedule import ScheduleProbe, ScheduleProbeConfig
    from chaoskit.spec.system import SystemSpec

    p99 = "histogram_quantile(0.99, sum by (le) (rate(demo_latency_seconds_bucket[5s])))"
    system = SystemSpec.model_validate({"prometheus": prometheus.url, "promises": {"refund": {
        "promql": {"open_past_due": "sum(demo_queue_depth)", "lag_p99": p99}}}})
    context = ProbeContext(platform=None, run_dir="/tmp", system=system)

    def measure(name: str) -> float | None:
        config = ScheduleProbeConfig(promise="refund", measure=name)  # type: ignore[arg-type]
        return read_once(ScheduleProbe(config, context))

    assert measure("open_past_due") == 7.0
    assert measure("lag_p99") == ask(prometheus.url, query=p99)
    with pytest.raises(ProbeError, match="no PromQL for the measure 'on_time_ratio'"):
        measure("on_time_ratio")
