"""`chaoskit compare`: A/B journals of one experiment, item by item, and the gate's exit code."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chaoskit.errors import JournalError
from chaoskit.journal import JournalWriter, read_journal
from chaoskit.report.compare import compare_items, compare_journals
from chaoskit.report.verdict import judge_item, samples_by_item
from chaoskit.spec.models import Expectation

LAG = {"name": "refund-lag", "probe": {"type": "fake", "signal": "lag"},
       "expect": "<= baseline * 1.5", "aggregate": "p50", "phases": ["before", "during"]}
RATE = {"name": "payment-rate", "probe": {"type": "fake", "signal": "rate"},
        "expect": ">= 150", "aggregate": "mean", "phases": ["during"]}


def lognormal(seed: int, n: int, median: float) -> list[float]:
    rng = random.Random(seed)
    return [median * rng.lognormvariate(0, 0.2) for _ in range(n)]


def write_run(path: Path, samples: dict[tuple[str, str], list[float]], *, name: str = "gate",
              hypothesis: list[dict[str, Any]] | None = None, seed: int = 7,
              status: str | None = None) -> Path:
    """A journal as the runner writes it: header, samples by phase, result with verdicts."""
    hypothesis = hypothesis or [LAG, RATE]
    journal = JournalWriter(path)
    journal.write("header", run_id=path.stem, experiment=name, seed=seed,
                  spec={"hypothesis": hypothesis}, platform={"platform": "fake"})
    for (item, phase), values in samples.items():
        for value in values:
            journal.write("sample", name=item, role="hypothesis", phase=phase, value=value)
    series = samples_by_item([{"kind": "sample", "role": "hypothesis", "name": i, "phase": p,
                               "value": v} for (i, p), vs in samples.items() for v in vs])
    verdicts = [judge_item(Expectation.model_validate(h), phase, series)
                for h in hypothesis for phase in h["phases"]]
    held = all(v.held for v in verdicts)
    journal.write("result", status=status or ("held" if held else "failed"),
                  exit_code=0 if held else 1, verdicts=[v.as_dict() for v in verdicts])
    journal.close()
    return path


def healthy(seed: int, lag_factor: float = 1.0, rate: float = 200.0) -> dict:
    return {("refund-lag", "baseline"): lognormal(seed, 20, 0.5),
            ("refund-lag", "inject"): lognormal(seed + 1, 30, 0.5 * lag_factor),
            ("payment-rate", "inject"): lognormal(seed + 2, 30, rate)}


def run_compare(a: Path, b: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = compare_journals(a, b, Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def test_two_healthy_builds_pass_the_gate(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(101))
    code, text = run_compare(a, b)
    assert code == 0, text
    assert "regressed" not in text and "no worse" in text
    rows = compare_items(read_journal(a), read_journal(b))
    assert [(r.item, r.phase, r.change) for r in rows] == [
        ("refund-lag", "before", "same"), ("refund-lag", "during", "same"),
        ("payment-rate", "during", "same")]


def test_a_slower_build_regresses_and_fails_the_gate(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(101, lag_factor=1.4))  # still under 1.5x
    code, text = run_compare(a, b)
    assert code == 1
    assert "refund-lag (during)" in text and "regressed" in text
    assert "payment-rate (during)" not in text.split("worse than A:")[1]


def test_an_improvement_passes_and_is_named(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1, lag_factor=1.4))
    b = write_run(tmp_path / "b.jsonl", healthy(101))
    code, text = run_compare(a, b)
    assert code == 0 and "improved" in text


def test_lower_is_worse_for_at_least_expectations(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1, rate=240.0))
    b = write_run(tmp_path / "b.jsonl", healthy(101, rate=170.0))  # both above 150: verdicts held
    code, text = run_compare(a, b)
    assert code == 1 and "payment-rate (during)" in text


def test_a_worse_verdict_fails_even_without_a_significant_shift(tmp_path: Path) -> None:
    edge = {("payment-rate", "inject"): [151.0, 152.0, 150.5, 151.0],
            ("refund-lag", "baseline"): [1.0] * 5, ("refund-lag", "inject"): [1.0] * 5}
    dip = {**edge, ("payment-rate", "inject"): [151.0, 146.0, 150.5, 151.0]}  # mean 149.6
    a = write_run(tmp_path / "a.jsonl", edge)
    b = write_run(tmp_path / "b.jsonl", dip)
    code, text = run_compare(a, b)
    assert code == 1 and "verdict worse" in text


def test_a_worse_run_status_fails(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(1), status="aborted")
    code, text = run_compare(a, b)
    assert code == 1 and "status is worse" in text


def test_different_experiments_are_refused_with_a_hint(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(1), name="other")
    with pytest.raises(JournalError) as caught:
        compare_journals(a, b)
    assert "'gate'" in caught.value.message and "'other'" in caught.value.message
    assert "same experiment" in caught.value.hint


def test_a_changed_hypothesis_is_refused(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    stricter = [dict(LAG, expect="<= baseline * 1.2"), RATE]
    b = write_run(tmp_path / "b.jsonl", healthy(1), hypothesis=stricter)
    with pytest.raises(JournalError, match="hypothesis"):
        compare_journals(a, b)


def test_different_seeds_are_noted(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(101), seed=8)
    assert "seeds differ" in run_compare(a, b)[1]


def test_the_cli_returns_the_gate_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from chaoskit.cli import main
    a = write_run(tmp_path / "a.jsonl", healthy(1))
    b = write_run(tmp_path / "b.jsonl", healthy(101, lag_factor=1.4))
    assert main(["compare", str(a), str(b)]) == 1
    assert main(["compare", str(a), str(a)]) == 0
    other = write_run(tmp_path / "c.jsonl", healthy(1), name="other")
    assert main(["compare", str(a), str(other)]) == 4
    assert "hint: compare two runs of the same experiment" in capsys.readouterr().err
