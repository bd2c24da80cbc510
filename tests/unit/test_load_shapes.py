"""Load shapes: each shape's rate curve, addition, seeded surprise peaks, time_scale, validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chaoskit.load.shapes import curve_of, rate_at
from chaoskit.spec.load import LoadSpec


def spec(*shapes: dict[str, Any], duration: str = "10s", **extra: Any) -> LoadSpec:
    return LoadSpec.model_validate({"duration": duration, "profile": list(shapes), **extra})


def test_constant_holds_its_rate_for_the_run_and_nothing_outside_it() -> None:
    s = spec({"shape": "constant", "rate": "200/s"})
    assert [rate_at(s, t, 1) for t in (0.0, 4.2, 9.999)] == [200.0, 200.0, 200.0]
    assert rate_at(s, 10.0, 1) == 0.0
    assert rate_at(s, -0.1, 1) == 0.0


def test_ramp_is_linear_between_start_and_end_and_holds_outside() -> None:
    s = spec({"shape": "ramp", "from": 100, "to": "12000/m", "start": "2s", "end": "6s"})
    assert rate_at(s, 1.0, 1) == 100.0
    assert rate_at(s, 4.0, 1) == pytest.approx(150.0)
    assert rate_at(s, 5.0, 1) == pytest.approx(175.0)
    assert rate_at(s, 8.0, 1) == 200.0


def test_step_adds_its_rate_from_its_time_on() -> None:
    s = spec({"shape": "step", "at": "3s", "rate": 50})
    assert rate_at(s, 2.999, 1) == 0.0
    assert rate_at(s, 3.0, 1) == 50.0
    assert rate_at(s, 9.0, 1) == 50.0


def test_spike_jumps_holds_and_drops_back() -> None:
    s = spec({"shape": "spike", "at": "2s", "rate": 900, "hold": "500ms"})
    assert rate_at(s, 1.99, 1) == 0.0
    assert rate_at(s, 2.0, 1) == 900.0
    assert rate_at(s, 2.49, 1) == 900.0
    assert rate_at(s, 2.5, 1) == 0.0


def test_peak_is_a_bell_whose_width_is_measured_at_half_height() -> None:
    s = spec({"shape": "peak", "at": "5s", "rate": 1000, "width": "2s"})
    assert rate_at(s, 5.0, 1) == pytest.approx(1000.0)
    assert rate_at(s, 4.0, 1) == pytest.approx(500.0)
    assert rate_at(s, 6.0, 1) == pytest.approx(500.0)
    assert rate_at(s, 0.0, 1) < 1e-3


def test_rolling_peaks_repeat_the_peak_once_per_zone() -> None:
    s = spec({"shape": "rolling-peaks", "at": "1h", "rate": 300, "width": "10m", "zones": 3,
              "offset": "1h"}, duration="4h", time_scale="1h=10s")
    for zone in range(3):
        assert rate_at(s, 10.0 + 10.0 * zone, 1) == pytest.approx(300.0, rel=1e-6)
    assert rate_at(s, 15.0, 1) < 1.0   # between zones
    assert rate_at(s, 39.0, 1) < 1.0   # no fourth zone


def _surprise_tops(seed: int) -> list[float]:
    s = spec({"shape": "surprise-peaks", "count": 4, "rate": 100, "width": "1m"},
             duration="1h")
    return sorted(p.center for p in curve_of(s, seed).primitives)  # type: ignore[union-attr]


def test_surprise_peaks_are_fixed_by_the_seed_and_move_with_it() -> None:
    first = _surprise_tops(7)
    assert first == _surprise_tops(7)
    assert first != _surprise_tops(8)
    assert len(first) == 4
    assert all(0.0 <= c < 3600.0 for c in first)
    s = spec({"shape": "surprise-peaks", "count": 4, "rate": 100, "width": "1m"}, duration="1h")
    assert rate_at(s, first[0], 7) >= 100.0 - 1e-6


def test_triple_peak_tops_out_at_its_rate_with_a_flash_jump_at_8pm() -> None:
    s = spec({"shape": "triple-peak", "at": "2h", "rate": 10000}, duration="4h",
             time_scale="1h=60s")
    at_run = 120.0
    assert rate_at(s, at_run, 1) == pytest.approx(10000.0)
    before = rate_at(s, at_run - 0.01, 1)
    assert 10000.0 - before > 2000.0          # the live-stream spike is a jump, not a slope
    assert rate_at(s, 10.0, 1) > 500.0        # the offline base is there long before
    highest = max(rate_at(s, t / 100, 1) for t in range(24000))
    assert highest == pytest.approx(10000.0, rel=0.02)


def test_shapes_add_up() -> None:
    shapes = [{"shape": "constant", "rate": 100},
              {"shape": "spike", "at": "1s", "rate": 900, "hold": "1s"},
              {"shape": "peak", "at": "5s", "rate": 400, "width": "1s"}]
    together = spec(*shapes)
    for t in (0.5, 1.5, 4.8, 5.0, 7.0):
        assert rate_at(together, t, 3) == pytest.approx(sum(rate_at(spec(x), t, 3)
                                                             for x in shapes))


def test_time_scale_compresses_scenario_times_into_run_seconds() -> None:
    s = spec({"shape": "step", "at": "30m", "rate": 10}, duration="2h", time_scale="1h=60s")
    assert s.run_seconds() == 120.0
    assert rate_at(s, 29.9, 1) == 0.0
    assert rate_at(s, 30.0, 1) == 10.0


@pytest.mark.parametrize(("change", "needle"), [
    ({"mix": {"pay": "60%", "refund": "30%"}}, "add up to 90.0%"),
    ({"profile": [{"shape": "ramp", "from": 1, "to": 2, "start": "5s", "end": "5s"}]},
     "end must come after"),
    ({"profile": [{"shape": "wave", "rate": 1}]}, "does not match any of the expected tags"),
    ({"profile": [{"shape": "constant", "rate": 1, "burst": 3}]}, "Extra inputs"),
    ({"profile": [{"shape": "step", "at": 3, "rate": 1}]}, "expected a duration"),
    ({"profile": [{"shape": "constant", "rate": -5}]}, "must not be negative"),
    ({"profile": []}, "at least 1 item"),
    ({"workers": 0}, "between 1 and 64"),
    ({"duration": "0s"}, "greater than zero"),
    ({"tls": {"verify": "sometimes"}}, "valid boolean"),
    ({"surprise": True}, "Extra inputs"),
])
def test_invalid_load_specs_say_what_is_wrong(change: dict[str, Any], needle: str) -> None:
    raw: dict[str, Any] = {"duration": "10s", "profile": [{"shape": "constant", "rate": 1}]}
    with pytest.raises(ValidationError, match=needle):
        LoadSpec.model_validate({**raw, **change})


def test_defaults_and_mix_in_human_units() -> None:
    s = LoadSpec.model_validate({
        "duration": "2h", "time_scale": "1h=60s",
        "mix": {"pay": "70%", "refund": 0.2, "final_payment": "10%"},
        "profile": [{"shape": "constant", "rate": "500rps"}]})
    assert s.target == "gateway"
    assert s.timeout == 2.0
    assert s.workers == "auto"
    assert s.mix == {"pay": 0.7, "refund": 0.2, "final_payment": 0.1}
    assert s.run_seconds() == 120.0


def test_steady_load_is_the_opening_rate_for_the_steady_phase() -> None:
    from chaoskit.load.shapes import rate_at, steady_load

    spec = LoadSpec.model_validate({"duration": "2h", "time_scale": "1h=30s", "profile": [
        {"shape": "constant", "rate": "40/s"}, {"shape": "peak", "at": "1h", "rate": "80/s",
                                                 "width": "20m"}]})
    steady = steady_load(spec, 10.0, seed=1)
    assert steady.run_seconds() == 10.0
    assert rate_at(steady, 0.0, 1) == rate_at(steady, 9.9, 1) == rate_at(spec, 0.0, 1)
    assert steady.mix == spec.mix and steady.time_scale == spec.time_scale
