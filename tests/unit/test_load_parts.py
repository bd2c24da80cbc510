"""Load engine parts: fast HDR bucket counts, window merging across workers, request payloads."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from chaoskit.errors import LoadError
from chaoskit.load.plan import Endpoint, worker_count
from chaoskit.load.recorder import (
    AckLog,
    AckReader,
    BucketCounts,
    Tally,
    WindowBook,
    new_histogram,
    percentiles_us,
)
from chaoskit.load.summary import WindowMerger, histogram, latency_ms


def test_bucket_counts_give_exactly_the_histogram_record_value_gives() -> None:
    rng = random.Random(4)
    values = [rng.lognormvariate(-7.0, 2.0) for _ in range(50_000)] + [0.0, 1e-7, 900.0]
    direct, fast, counts = new_histogram(), new_histogram(), BucketCounts()
    for v in values:
        direct.record_value(min(600_000_000, max(1, int(v * 1e6))))
        counts.add(v)
    counts.drain_into(fast)
    assert fast.get_total_count() == direct.get_total_count() == len(values)
    for p in (0.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        assert fast.get_value_at_percentile(p) == direct.get_value_at_percentile(p)
    assert counts.counts == {}


def test_percentiles_from_bucket_counts_equal_hdrhistogram_and_survive_encoding() -> None:
    rng = random.Random(5)
    counts, direct = BucketCounts(), new_histogram()
    for _ in range(20_000):
        v = rng.lognormvariate(-6.0, 1.5)
        counts.add(v)
        direct.record_value(min(600_000_000, max(1, int(v * 1e6))))
    wanted = [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]
    ours = percentiles_us(counts.counts, wanted)
    assert ours == {p: direct.get_value_at_percentile(p) for p in wanted}
    assert latency_ms(counts.counts)["max"] == direct.get_max_value() / 1000.0
    decoded = HdrHistogram.decode(histogram(counts.counts).encode())
    assert decoded.get_value_at_percentile(99.0) == ours[99.0]


def window(w: int, sent: list[int], latency_s: float | None = None) -> dict[str, Any]:
    tally = Tally(len(sent))
    tally.intended, tally.sent, tally.ok = list(sent), list(sent), list(sent)
    if latency_s is not None:
        tally.latency.add(latency_s)
    return tally.message(w)


def test_windows_are_merged_across_workers_in_order() -> None:
    seen: list[dict[str, Any]] = []
    merger = WindowMerger(2, ["pay", "refund"], seen.append)
    merger.add(0, window(0, [3, 1], 0.002))
    merger.add(0, window(1, [4, 0]))
    assert seen == []                       # worker 1 has not reported window 0 yet
    merger.add(1, window(0, [5, 2], 0.010))
    assert [w["t"] for w in seen] == [0.1]
    first = seen[0]
    assert first["sent"] == 11
    assert first["by_flow"]["pay"]["sent"] == 8
    assert first["by_flow"]["refund"]["ok"] == 3
    assert first["max_ms"] == pytest.approx(10.0, rel=0.01)
    merger.worker_done(1)                   # a finished worker no longer holds windows back
    assert [w["t"] for w in seen] == [0.1, 0.2]
    assert seen[1]["p99_ms"] is None
    json.dumps(seen)                        # on_window gets JSON-able dicts


def test_endpoint_parsing_and_worker_count() -> None:
    assert Endpoint.parse("http://127.0.0.1:9000/gw/") == Endpoint("http", "127.0.0.1", 9000,
                                                                    "/gw")
    assert Endpoint.parse("https://staging.example.com") == Endpoint(
        "https", "staging.example.com", 443, "")
    with pytest.raises(LoadError, match="not an http:// or https:// URL"):
        Endpoint.parse("ftp://127.0.0.1:9000")
    assert worker_count(3, 10.0) == 3
    assert worker_count("auto", 100.0) == 1


def test_window_book_books_arrivals_by_intended_time_and_events_by_when_they_happen() -> None:
    book = WindowBook(1)
    book.due(0.05).intended[0] += 1          # due in window 0 ...
    book.now(0.12).sent[0] += 1              # ... but sent late, in window 1
    book.now(0.31).ok[0] += 1
    closed = book.close_until(0.25)
    assert [(w, t.intended, t.sent) for w, t in closed] == [(0, [1], [0]), (1, [0], [1])]
    book.now(0.05).errors[0] += 1            # a straggler for a closed window lands in the next
    closed = book.close_all()
    assert [w for w, _ in closed] == [2, 3]  # empty window 2 is still reported
    assert closed[0][1].errors == [1]
    assert closed[1][1].ok == [1]


def test_windows_fold_into_seconds_with_exact_counts_and_percentiles() -> None:
    seconds: list[dict[str, Any]] = []
    merger = WindowMerger(1, ["pay"], lambda _: None, keep_series=False, on_span=seconds.append,
                          span=10)
    for w in range(25):  # 2.5 s: two whole seconds and a half one
        merger.add(0, window(w, [w + 1], 0.001 * (w + 1)))
    merger.close()
    assert [s["t"] for s in seconds] == [1.0, 2.0, 2.5]
    assert [s["width"] for s in seconds] == [1.0, 1.0, 0.5]
    assert [s["sent"] for s in seconds] == [sum(range(1, 11)), sum(range(11, 21)),
                                            sum(range(21, 26))]
    assert seconds[0]["by_flow"]["pay"]["ok"] == 55
    assert seconds[0]["max_ms"] == pytest.approx(10.0, rel=0.01)  # the second's slowest
    assert seconds[0]["p50_ms"] == pytest.approx(5.0, rel=0.01)   # over its 10 completions
    assert merger.series == []               # nothing kept: memory flat over hours
    assert merger.totals["sent"] == sum(range(1, 26))
    assert merger.by_flow["pay"]["intended"] == sum(range(1, 26))
    assert merger.last_sending == 2.5


def test_acknowledgements_are_compact_and_read_back_in_both_formats(tmp_path: Any) -> None:
    path = tmp_path / "acks.jsonl"
    log = AckLog(str(path), nonce="ab12", flows=["pay", "refund"], captures=["payment"])
    log.add(7, "pay", {"payment": "pay_1", "other": "x"}, 201)
    log.add(9, "refund", {}, 202)
    log.flush()
    log.add(11, "pay", {"payment": "pay_2"}, 201)
    log.close()
    old = json.dumps({"key": "k-1", "flow": "pay", "status": 201,
                      "captured": {"payment": "pay_0"}}) + "\n"
    with path.open("a") as file:
        file.write(old + '{"torn')
    acks = list(AckReader().read(path.read_bytes().splitlines()))
    assert [(a.key, a.flow, a.status, a.captured) for a in acks] == [
        ("ab12-7", "pay", 201, {"payment": "pay_1"}),   # only the captures asked for
        ("ab12-9", "refund", 202, {}),
        ("ab12-11", "pay", 201, {"payment": "pay_2"}),
        ("k-1", "pay", 201, {"payment": "pay_0"})]      # an older journal's line
    compact = len(path.read_bytes()) - len(old) - len('{"torn')
    assert compact < 150  # header once, then ~20 bytes a request
    assert log.count == 3


def test_an_empty_ack_log_writes_nothing(tmp_path: Any) -> None:
    path = tmp_path / "acks.jsonl"
    AckLog(str(path), nonce="n", flows=["pay"]).close()
    assert path.read_bytes() == b""
