"""The CI gate: experiments collected as tests, tags as markers, verdicts as pass/fail, JUnit."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: {name}, tags: [{tags}]}}
target: {{platform: fake, lab: {state}}}
phases: {{baseline: 200ms, recover: 200ms}}
faults:
  - {{name: f1, type: fake, duration: 500ms, signal: err, value: {value}}}
hypothesis:
  - {{name: errors-low, probe: {{type: fake, signal: err, interval: 100ms}}, expect: "<= 0.5"}}
"""


def _experiments(pytester: pytest.Pytester, tmp_path: Path) -> Path:
    folder = pytester.path / "experiments"
    folder.mkdir()
    for name, tags, value in (("healthy", "gate", 0.1), ("broken", "gate, latency", 0.9),
                              ("nightly", "soak", 0.1)):
        (folder / f"{name}.yaml").write_text(EXPERIMENT.format(
            name=name, tags=tags, value=value, state=tmp_path / name))
    (folder / "notes.yaml").write_text("just: some yaml\n")  # not an experiment: not collected
    return folder


def test_experiments_are_collected_with_tags_as_markers(pytester: pytest.Pytester,
                                                        tmp_path: Path) -> None:
    _experiments(pytester, tmp_path)
    result = pytester.runpytest("experiments", "--collect-only", "-q", "-m", "gate")
    collected = {line for line in result.stdout.lines if "::" in line}
    assert collected == {"experiments/broken.yaml::broken", "experiments/healthy.yaml::healthy"}


def test_the_verdict_is_the_outcome_and_failures_name_the_items(pytester: pytest.Pytester,
                                                                tmp_path: Path) -> None:
    _experiments(pytester, tmp_path)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("experiments", "-m", "gate", f"--junitxml={junit}",
                                "--chaoskit-out", str(tmp_path / "runs"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED errors-low ?during?: expected every <= 0.5, "
                                 "observed 0.9*"])
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    by_name = {case.get("name"): case for case in cases}
    assert set(by_name) == {"healthy", "broken"}
    failure = by_name["broken"].find("failure")
    assert failure is not None and "errors-low" in (failure.get("message", "") + failure.text)


def test_an_invalid_experiment_fails_its_test_with_the_problem_lines(pytester: pytest.Pytester,
                                                                     tmp_path: Path) -> None:
    folder = pytester.path / "experiments"
    folder.mkdir()
    (folder / "typo.yaml").write_text(EXPERIMENT.format(
        name="typo", tags="gate", value=0.1, state=tmp_path).replace("phases:", "phasse:"))
    result = pytester.runpytest("experiments")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*typo.yaml:5:1: *phasse*did you mean 'phases'*"])


def test_inject_fixture_applies_and_always_reverts(pytester: pytest.Pytester,
                                                   tmp_path: Path) -> None:
    pytester.makepyfile(f"""
        from chaoskit.testing import FakePlatform

        def test_inside(chaoskit_inject, chaoskit_probe):
            platform = FakePlatform({str(tmp_path / 's')!r})
            with chaoskit_inject("fake", platform, name="slow", signal="err", value=0.7):
                assert platform.applied() == ["slow"]
                assert chaoskit_probe("fake", platform, signal="err") == 0.7
                raise RuntimeError("the test body fails")

        def test_after():
            assert FakePlatform({str(tmp_path / 's')!r}).applied() == []
    """)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the test body fails*"])
