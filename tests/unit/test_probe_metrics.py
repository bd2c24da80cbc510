"""The metrics probe's arithmetic on recorded exposition text served by a tiny local server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from chaoskit.errors import ProbeError
from chaoskit.exposition import Scrape, ScrapeWindow
from chaoskit.probes.base import ProbeContext
from chaoskit.probes.metrics import MetricsProbe, MetricsProbeConfig, platform_targets

Body = Callable[[int], str]  # scrape number (1, 2, ...) -> exposition text


class Exposition:
    """Serves /metrics from a function of how many times it was scraped."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.calls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.calls += 1
                data = owner.body(owner.calls).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a probe that timed out leaves a broken pipe behind: expected, not worth a traceback
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Body], Exposition]]:
    servers: list[Exposition] = []

    def start(body: Body) -> Exposition:
        servers.append(Exposition(body))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def counter(name: str, series: dict[str, float]) -> str:
    lines = [f"# TYPE {name} counter"]
    lines += [f"{name}_total{{{labels}}} {value}" for labels, value in series.items()]
    return "\n".join(lines) + "\n"


def histogram(name: str, buckets: dict[str, float], labels: str = "") -> str:
    lines = [f"# TYPE {name} histogram"]
    sep = "," if labels else ""
    lines += [f'{name}_bucket{{{labels}{sep}le="{le}"}} {n}' for le, n in buckets.items()]
    total = buckets["+Inf"]
    lines += [f"{name}_count{{{labels}}} {total}", f"{name}_sum{{{labels}}} 0"]
    return "\n".join(lines) + "\n"


def probe(**options: object) -> MetricsProbe:
    config = MetricsProbeConfig.model_validate(options)
    return MetricsProbe(config, ProbeContext(platform=None, run_dir="/tmp"))


async def sample(p: MetricsProbe) -> float:
    try:
        return await p.sample()
    finally:
        await p.close()


def test_value_sums_matching_series_across_targets(serve: Callable[[Body], Exposition]) -> None:
    a = serve(lambda _: counter("flows", {'flow="refund"': 3, 'flow="payment"': 50}))
    b = serve(lambda _: counter("flows", {'flow="refund"': 4}))
    p = probe(targets=[a.url, b.url], metric="flows", labels={"flow": "refund"})
    assert asyncio.run(sample(p)) == 7.0


def test_one_dead_target_does_not_blind_the_probe(serve: Callable[[Body], Exposition]) -> None:
    a = serve(lambda _: "# TYPE depth gauge\ndepth 5\n")
    p = probe(targets=[a.url, "http://127.0.0.1:9/metrics"], metric="depth", timeout="1s")
    assert asyncio.run(sample(p)) == 5.0


def test_no_target_answering_is_a_probe_error_with_a_hint() -> None:
    p = probe(targets=["http://127.0.0.1:9/metrics"], metric="depth", timeout="1s")
    with pytest.raises(ProbeError) as err:
        asyncio.run(sample(p))
    assert "no metrics target answered" in err.value.message and "/metrics" in err.value.hint


def test_unknown_metric_suggests_close_names(serve: Callable[[Body], Exposition]) -> None:
    a = serve(lambda _: "# TYPE queue_depth gauge\nqueue_depth 5\n")
    with pytest.raises(ProbeError) as err:
        asyncio.run(sample(probe(targets=[a.url], metric="queue_dept")))
    assert "queue_depth" in err.value.hint


def test_quantile_reads_bucket_deltas_between_scrapes(serve: Callable[[Body], Exposition]) -> None:
    # scrape 1: an old history that must not count; scrape 2 adds 100 observations of which
    # 80 <= 0.1, 15 in (0.1, 0.25], 5 in (0.25, 0.5]
    old = {"0.1": 1000.0, "0.25": 1000.0, "0.5": 1000.0, "+Inf": 1000.0}
    new = {"0.1": 1080.0, "0.25": 1095.0, "0.5": 1100.0, "+Inf": 1100.0}
    a = serve(lambda n: histogram("lat", old if n == 1 else new, 'route="/pay"'))
    p = probe(targets=[a.url], metric="lat", measure="quantile", q=0.9, window="1s",
              labels={"route": "/pay"})
    assert asyncio.run(sample(p)) == pytest.approx(0.1 + 0.15 * 10 / 15)


def test_ratio_of_counter_increases(serve: Callable[[Body], Exposition]) -> None:
    def body(n: int) -> str:
        return counter("errors", {'': 5 + 2 * n}) + counter("requests", {'': 100 + 40 * n})
    a = serve(body)
    p = probe(targets=[a.url], metric="errors", measure="ratio", denominator="requests",
              window="1s")
    assert asyncio.run(sample(p)) == pytest.approx(2 / 40)


def test_rate_over_real_time(serve: Callable[[Body], Exposition]) -> None:
    start = time.monotonic()
    a = serve(lambda _: counter("reqs", {'': round(100 * (time.monotonic() - start))}))
    p = probe(targets=[a.url], metric="reqs_total", measure="rate", window="1s")
    assert asyncio.run(sample(p)) == pytest.approx(100.0, rel=0.05)


def test_empty_window_is_an_error_unless_when_empty(serve: Callable[[Body], Exposition]) -> None:
    flat = {"0.1": 7.0, "+Inf": 7.0}
    a = serve(lambda _: histogram("lat", flat))
    with pytest.raises(ProbeError) as err:
        asyncio.run(sample(probe(targets=[a.url], metric="lat", measure="quantile",
                                 window="1s")))
    assert "when_empty" in err.value.hint
    p = probe(targets=[a.url], metric="lat", measure="quantile", window="1s", when_empty=0)
    assert asyncio.run(sample(p)) == 0.0


def key(target: str, value_labels: str = "") -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return (target, "c_total", (("flow", value_labels),) if value_labels else ())


def test_increase_handles_resets_new_series_and_gaps() -> None:
    window = ScrapeWindow(10.0)
    a, b = "http://a/metrics", "http://b/metrics"
    steps = [
        (0.0, {a, b}, {key(a): 10.0}),
        (1.0, {a, b}, {key(a): 15.0, key(b): 4.0}),  # b's series is born: counts from 0
        (2.0, {a, b}, {key(a): 3.0, key(b): 6.0}),   # a restarted: +3
        (3.0, {b}, {key(b): 7.0}),                   # a unreachable: no change for it
        (4.0, {a, b}, {key(a): 5.0, key(b): 9.0}),
    ]
    for at, up, values in steps:
        window.add(Scrape(at, frozenset(up), values))
    assert window.increase(key(a)) == 5 + 3 + 2
    assert window.increase(key(b)) == 4 + 2 + 1 + 2
    assert window.span == 4.0


def test_series_first_seen_after_its_target_was_down_sets_only_a_base() -> None:
    window = ScrapeWindow(10.0)
    a = "http://a/metrics"
    window.add(Scrape(0.0, frozenset(), {}))
    window.add(Scrape(1.0, frozenset({a}), {key(a): 500.0}))
    window.add(Scrape(2.0, frozenset({a}), {key(a): 510.0}))
    assert window.increase(key(a)) == 10.0


def test_window_keeps_one_scrape_at_or_before_its_horizon() -> None:
    window = ScrapeWindow(2.0)
    for at in (0.0, 1.0, 2.0, 3.0, 4.5):
        window.add(Scrape(at, frozenset(), {}))
    assert [s.at for s in window.scrapes] == [2.0, 3.0, 4.5]
    assert window.span == 2.5


def test_ratio_needs_a_denominator() -> None:
    with pytest.raises(ValidationError, match="denominator"):
        MetricsProbeConfig.model_validate({"metric": "errors", "measure": "ratio"})


class Platform:
    def metrics_targets(self) -> dict[str, str]:
        return {"gateway-1": "http://g1", "gateway@node-2": "http://g2",
                "gatewayx": "http://gx", "worker-1": "http://w1"}


def test_platform_targets_filtered_by_service() -> None:
    assert platform_targets(Platform(), "gateway") == ["http://g1", "http://g2"]
    assert len(platform_targets(Platform(), None)) == 4
    assert platform_targets(object(), None) == []


def test_no_targets_at_all_is_refused_up_front() -> None:
    with pytest.raises(ProbeError, match="no targets"):
        probe(metric="x")



class ScalingPlatform:
    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = targets

    def metrics_targets(self) -> dict[str, str]:
        return dict(self.targets)


def test_platform_targets_are_read_again_each_sample(serve: Callable[[Body], Exposition]) -> None:
    a = serve(lambda _: "# TYPE depth gauge\ndepth 2\n")
    b = serve(lambda _: "# TYPE depth gauge\ndepth 3\n")
    platform = ScalingPlatform({"gateway-node-1": a.url})
    p = MetricsProbe(MetricsProbeConfig(service="gateway", metric="depth"),
                     ProbeContext(platform=platform, run_dir="/tmp"))

    async def twice() -> tuple[float, float]:
        first = await p.sample()
        platform.targets["gateway-node-2"] = b.url  # scaled out between samples
        return first, await sample(p)
    assert asyncio.run(twice()) == (2.0, 5.0)


def test_declared_metric_without_series_yet_is_no_data(serve: Callable[[Body], Exposition]) -> None:
    # prometheus-client declares a labelled metric before its first use, with no samples
    a = serve(lambda _: "# HELP lat latency\n# TYPE lat histogram\n" + counter("reqs", {'': 1}))
    for options in ({"measure": "quantile", "window": "1s"}, {"measure": "value"}):
        with pytest.raises(ProbeError) as err:
            asyncio.run(sample(probe(targets=[a.url], metric="lat", **options)))
        assert "no data for lat" in err.value.message and "when_empty" in err.value.hint
    assert asyncio.run(sample(probe(targets=[a.url], metric="lat", measure="quantile",
                                    window="1s", when_empty=0.0))) == 0.0


def test_unknown_denominator_is_named(serve: Callable[[Body], Exposition]) -> None:
    a = serve(lambda n: counter("errors", {'': n}) + counter("requests", {'': 10 * n}))
    with pytest.raises(ProbeError, match="requets"):
        asyncio.run(sample(probe(targets=[a.url], metric="errors", measure="ratio",
                                 denominator="requets", window="1s")))
