"""The `capacity:` section: validated with its lines, in the JSON Schema, and what one step of
the search makes of the experiment (`--at-rate`, `--without-faults`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.cli import main as chaoskit_main
from chaoskit.engine.capacity_step import at_rate, opening_rate, without_faults
from chaoskit.errors import SpecError
from chaoskit.spec.loader import load_experiment_text
from chaoskit.spec.schema import json_schema

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {name: cap}
target: {platform: fake, lab: LAB, entry: "http://127.0.0.1:9"}
system: {flows: {pay: {request: {method: GET, path: /}}}}
phases: {baseline: 2s, recover: 1s}
load:
  duration: 2h
  time_scale: 1h=30s
  timeout: 500ms
  profile: [{shape: constant, rate: 40/s}, {shape: peak, at: 1h, rate: 80/s, width: 10m}]
faults:
  - {name: f1, type: fake, start: 10m, duration: 20m, signal: s, value: 1}
hypothesis:
  - name: fast
    probe: {type: load, measure: p99, window: 5s, interval: 2s}
    expect: "<= 100ms"
capacity:
  from: 50/s
  to: 800/s
  resolution: 25/s
  step: 30s
"""


def load(text: str = EXPERIMENT, lab: str = "/tmp/chaoskit-capacity-spec"):  # noqa: ANN201
    return load_experiment_text(text.replace("LAB", lab), "cap.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(text)
    return [p.render() for p in caught.value.problems]


def test_a_capacity_section_loads_with_units_and_defaults() -> None:
    capacity = load().capacity
    assert capacity is not None
    assert (capacity.from_, capacity.to, capacity.resolution, capacity.step) == (50, 800, 25, 30)
    assert (capacity.search, capacity.growth, capacity.cooldown) == ("bisect", 2.0, 0.0)
    assert capacity.required_rate is None and not capacity.compare_without_faults


def test_the_schema_describes_the_capacity_section() -> None:
    defs = json_schema()["$defs"]
    assert "capacity" in defs["Experiment"]["properties"]
    fields = defs["CapacitySpec"]["properties"]
    assert {"from", "to", "resolution", "step", "search", "required_rate",
            "compare_without_faults", "cooldown", "growth"} <= set(fields)
    assert "long enough to judge the hypothesis" in fields["step"]["description"]


def test_a_range_upside_down_is_pointed_at_its_section() -> None:
    found = problems(EXPERIMENT.replace("to: 800/s", "to: 40/s"))
    assert len(found) == 1
    assert found[0].startswith("cap.yaml:19:3:") and "must be above `from`" in found[0]


def test_a_range_over_the_load_caps_is_pointed_at_to() -> None:
    text = EXPERIMENT.replace("timeout: 500ms", "timeout: 500ms\n  caps: {rate: 500/s}")
    found = problems(text)
    assert len(found) == 1 and found[0].startswith("cap.yaml:21:7:")
    assert "above load.caps.rate (500/s)" in found[0] and "raise load.caps.rate" in found[0]


def test_a_step_too_short_to_sample_an_item_three_times_is_refused() -> None:
    found = problems(EXPERIMENT.replace("step: 30s", "step: 5s"))
    assert len(found) == 1 and found[0].startswith("cap.yaml:22:9:")
    assert "samples 'fast' (every 2s) fewer than 3 times" in found[0]
    assert "at least 6s" in found[0]


def test_a_search_needs_a_load_and_faults_to_compare_without() -> None:
    text = EXPERIMENT.split("load:")[0] + "hypothesis:" + EXPERIMENT.split("hypothesis:")[1]
    text = text.replace("step: 30s", "step: 30s\n  compare_without_faults: true")
    found = problems(text)
    assert any("needs a load: section" in p for p in found)
    no_faults = EXPERIMENT.split("faults:")[0] + "hypothesis:" + \
        EXPERIMENT.split("hypothesis:")[1].replace("step: 30s",
                                                    "step: 30s\n  compare_without_faults: true")
    assert any("no faults to compare without" in p for p in problems(no_faults))


def test_an_unknown_key_and_a_required_rate_outside_the_range() -> None:
    found = problems(EXPERIMENT.replace("step: 30s", "step: 30s\n  rates: 3"))
    assert any("unknown key 'rates'" in p for p in found)
    found = problems(EXPERIMENT.replace("step: 30s", "step: 30s\n  required_rate: 900/s"))
    assert any("required_rate 900/s is outside 50-800/s" in p for p in found)


def test_one_step_holds_the_rate_with_every_fault_active_throughout() -> None:
    experiment = load()
    step = at_rate(experiment, 400.0, "cap.yaml")
    assert step.load is not None and experiment.load is not None
    assert [s.model_dump() for s in step.load.profile] == [{"shape": "constant", "rate": 400.0}]
    assert step.load.run_seconds() == pytest.approx(30.0)  # capacity.step, in run time
    assert step.inject_seconds() == pytest.approx(30.0)
    (fault,) = step.faults
    assert fault.start == 0.0 and fault.duration == pytest.approx(30.0 * 120)  # scenario time
    assert fault.options() == experiment.faults[0].options()
    assert step.load.mix == experiment.load.mix and step.load.timeout == 0.5
    assert opening_rate(experiment, 1) == pytest.approx(40.0, abs=0.5)  # the declared start
    assert without_faults(experiment).faults == [] and experiment.faults  # a copy


def test_find_capacity_without_a_section_says_what_to_declare(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(EXPERIMENT.split("capacity:")[0].replace("LAB", str(tmp_path / "lab")))
    assert chaoskit_main(["run", str(path), "--find-capacity"]) == 2
    err = capsys.readouterr().err
    assert "no capacity: section" in err and "capacity: {from: 50/s" in err


def test_the_dry_run_of_a_search_shows_its_plan_and_one_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cap.yaml"
    path.write_text(EXPERIMENT.replace("LAB", str(tmp_path / "lab")))
    assert chaoskit_main(["run", str(path), "--find-capacity", "--dry-run", "--seed", "3",
                          "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "capacity search: bisect from 50/s to 800/s, resolution 25/s; first step 50/s" in out
    assert "at most 9 steps" in out and "one step at 50/s" in out
    assert "dry run: nothing was injected" in out
    assert not (tmp_path / "runs").exists()
