"""The load probe judges what clients were told, from the engine's recent load windows."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext
from chaoskit.probes.load import LoadProbe, LoadProbeConfig


def _window(sent: int, errors: int, p99_ms: float, final_errors: int = 0) -> dict:
    return {"intended": sent + 1, "sent": sent, "ok": sent - errors, "errors": errors, "late": 1,
            "dropped": 0, "p50_ms": p99_ms / 2, "p99_ms": p99_ms, "max_ms": p99_ms * 2,
            "by_flow": {"final_payment": {"sent": 10, "errors": final_errors, "intended": 10}}}


def _sample(windows: deque, **options: object) -> float:
    probe = LoadProbe(LoadProbeConfig(**options), ProbeContext(None, ".", None, windows))
    return asyncio.run(probe.sample())


def test_error_ratio_and_latency_over_the_recent_window_only() -> None:
    now = time.monotonic()
    windows = deque([(now - 60, _window(100, 100, 900.0)),  # long ago: not judged
                     (now - 1, _window(100, 2, 40.0)), (now, _window(100, 0, 60.0))])
    assert _sample(windows, measure="error_ratio", window="5s") == pytest.approx(0.01)
    assert _sample(windows, measure="p99", window="5s") == pytest.approx(0.060)
    assert _sample(windows, measure="achieved_ratio", window="5s") == pytest.approx(200 / 202)


def test_a_flow_can_be_judged_alone() -> None:
    windows = deque([(time.monotonic(), _window(100, 0, 10.0, final_errors=10))])
    assert _sample(windows, measure="error_ratio") == 0.0
    assert _sample(windows, measure="error_ratio", flow="final_payment") == 1.0


def test_no_windows_yet_is_no_data_never_zero_and_no_load_is_an_error() -> None:
    assert _sample(deque(), measure="error_ratio") is None
    assert _sample(deque(), measure="p99") is None
    with pytest.raises(ProbeError, match="load"):
        LoadProbe(LoadProbeConfig(), ProbeContext(None, ".", None, None))


def _dead(refused: int, dropped: int) -> dict:
    """A window of a gateway that refuses connections or never answers: nothing sent ok."""
    return {"intended": refused + dropped, "sent": dropped, "ok": 0, "errors": refused,
            "dropped": dropped, "late": 0, "p50_ms": 2000.0, "p99_ms": 2000.0,
            "max_ms": 2000.0, "by_flow": {}}


def test_a_dead_gateway_reads_as_every_request_failed() -> None:
    now = time.monotonic()
    refused = deque([(now, _dead(refused=50, dropped=0))])
    silent = deque([(now, _dead(refused=0, dropped=50))])  # accepted, never answered: timeouts
    assert _sample(refused, measure="error_ratio") == 1.0
    assert _sample(silent, measure="error_ratio") == 1.0
    assert _sample(silent, measure="p99") == pytest.approx(2.0)


def test_arrivals_still_in_flight_are_not_counted_as_errors() -> None:
    window = {"intended": 100, "sent": 100, "ok": 60, "errors": 0, "dropped": 0, "late": 0,
              "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0, "by_flow": {}}
    assert _sample(deque([(time.monotonic(), window)]), measure="error_ratio") == 0.0


def test_the_engines_own_shortfall_is_its_measure_not_the_systems_errors() -> None:
    window = {"intended": 1000, "sent": 900, "ok": 899, "errors": 1, "dropped": 100,
              "capped": 100, "late": 300, "behind": 400, "p50_ms": 1.0, "p99_ms": 2.0,
              "max_ms": 3.0, "by_flow": {}}
    windows = deque([(time.monotonic(), window)])
    assert _sample(windows, measure="behind_ratio") == 0.4
    # the 100 never sent are chaoskit's shortfall, not the system's errors: 1 of 900 resolved
    assert _sample(windows, measure="error_ratio") == pytest.approx(1 / 900)
