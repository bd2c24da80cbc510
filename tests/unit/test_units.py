"""Human units: compound durations, rates, shares and time scales read as people write them."""

from __future__ import annotations

import pytest

from chaoskit.spec.units import parse_duration, parse_rate, parse_ratio, parse_time_scale


@pytest.mark.parametrize("text, seconds", [("300ms", 0.3), ("1.5s", 1.5), ("2m", 120),
                                           ("1h30m", 5400), ("2m30s", 150), ("1d", 86400),
                                           ("250us", 0.00025)])
def test_durations_including_compound_ones(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1h30", "30x", "", "m", "5", "-1s"])
def test_durations_without_a_unit_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_bare_numbers_are_not_durations() -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_duration(5)


def test_rates_shares_and_time_scales() -> None:
    assert parse_rate("12000/m") == 200 and parse_rate(50) == 50 and parse_rate("500rps") == 500
    assert parse_ratio("50%") == 0.5 and parse_ratio(0.25) == 0.25
    with pytest.raises(ValueError, match="between"):
        parse_ratio("150%")
    assert parse_time_scale("1h=60s") == 60 and parse_time_scale("1h=20s") == 180
