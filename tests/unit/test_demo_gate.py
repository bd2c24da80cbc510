"""`make gate`: the gate set through pytest, then the 8 PM rehearsal plan unattended; the gate's
exit is the worse of the two (a held gate set does not hide a failed rehearsal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit import demo


@pytest.mark.parametrize("codes, expected", [((0, 0), 0), ((0, 1), 1), ((1, 0), 1), ((0, 3), 3)])
def test_the_gate_runs_the_gate_set_then_the_rehearsal(monkeypatch: pytest.MonkeyPatch,
                                                        codes: tuple[int, int],
                                                        expected: int) -> None:
    calls: list[list[str]] = []
    answers = iter(codes)

    def call(command: list[str], cwd: Path) -> int:
        calls.append(command)
        return next(answers)

    monkeypatch.setattr(demo.subprocess, "call", call)
    assert demo.run_gate() == expected
    pytest_run, day = calls
    assert pytest_run[1:3] == ["-m", "pytest"] and pytest_run[4:6] == ["-m", "gate"]
    assert day[1:4] == ["-m", "chaoskit.cli", "gameday"]
    assert Path(day[4]) == demo.REHEARSAL and demo.REHEARSAL.is_file()
    assert "--yes" in day


def test_the_rehearsal_plan_is_valid() -> None:
    from chaoskit.spec.plan_loader import load_plan

    loaded = load_plan(demo.REHEARSAL)
    assert [step.name for step in loaded.plan.steps] == ["triple-peak", "leader-lost-in-window",
                                                  "batch-at-8pm"]
