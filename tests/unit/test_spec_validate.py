"""Model-level problems of experiment files, each pointing at its line, column and a fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from chaoskit import registry
from chaoskit.errors import SpecError
from chaoskit.spec.loader import load_experiment, load_experiment_text
from chaoskit.spec.units import Duration, PositiveDuration

SPECS = Path(__file__).parent / "specs"


class LatencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency: PositiveDuration
    jitter: Duration = 0.0


class LatencyForTests:
    """A fault kind registered at test time through our registry seam (never injected here)."""

    type_name: ClassVar[str] = "test-latency"
    Config = LatencyConfig
    destructive: ClassVar[bool] = False


class ValueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = 0.0
    node: str | None = None


class ValueForTests:
    type_name: ClassVar[str] = "test-value"
    Config = ValueConfig


@pytest.fixture(autouse=True)
def test_kinds() -> Iterator[None]:
    registry.register(registry.FAULTS, "test-latency", LatencyForTests)
    registry.register(registry.PROBES, "test-value", ValueForTests)
    yield
    registry.unregister(registry.FAULTS, "test-latency")
    registry.unregister(registry.PROBES, "test-value")


def invalid(name: str) -> list[str]:
    """Rendered problems of one invalid fixture without its path: 'LINE:COL: ...'."""
    path = SPECS / "invalid" / name
    with pytest.raises(SpecError) as caught:
        load_experiment(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.render().splitlines()]


@pytest.mark.parametrize("path", sorted((SPECS / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_files_load(path: Path) -> None:
    assert load_experiment(path).api_version == "chaoskit/v1"


def test_full_file_keeps_units_and_shared_anchors() -> None:
    experiment = load_experiment(SPECS / "valid" / "full.yaml")
    assert experiment.load is not None and experiment.load.duration == 600.0
    assert experiment.load.time_scale == 60.0
    assert [f.options() for f in experiment.faults] == [
        {"latency": "300ms"}, {"latency": "1.5s", "jitter": "50ms"}]
    assert experiment.guardrails[0].probe.options() == {"value": 0.2}
    assert experiment.guardrails[0].probe.interval == 2.0
    assert experiment.schedule is not None and experiment.schedule.window == "2026-11-11"


def test_problem_renders_with_path_line_column_field_and_fix() -> None:
    path = SPECS / "invalid" / "bad_unit.yaml"
    with pytest.raises(SpecError) as caught:
        load_experiment(path)
    assert caught.value.render() == (
        f"{path}:6:13: phases.baseline: '5 minutes' is not a duration; "
        "write e.g. 300ms, 1.5s, 2m or 1h30m")
    assert caught.value.exit_status == 2


def test_unknown_key_suggests_the_closest_field() -> None:
    assert invalid("unknown_key.yaml") == [
        "5:3: metadata: unknown key 'descripton'; did you mean 'description'?"]


def test_wrong_type() -> None:
    assert invalid("wrong_type.yaml") == [
        ("5:9: metadata.tags: expected a list, got 'payments'; "
        "write a YAML list: [a, b] or lines starting with '- '")]


def test_bad_unit() -> None:
    assert invalid("bad_unit.yaml") == [
        "6:13: phases.baseline: '5 minutes' is not a duration; write e.g. 300ms, 1.5s, 2m or 1h30m"]


def test_negative_duration() -> None:
    assert invalid("negative_duration.yaml") == [
        "6:12: phases.recover: a duration cannot be negative, got '-10s'; write e.g. 0s or 30s"]


def test_zero_duration() -> None:
    assert invalid("zero_duration.yaml") == [
        ("6:13: load.duration: duration must be greater than zero, got '0s'; "
        "give a duration above zero, e.g. 30s")]


def test_fault_starting_after_the_load_ends() -> None:
    assert invalid("fault_after_end.yaml") == [
        ("12:12: faults[0].start: fault 'late-latency' starts at 3m, when the load has already "
        "ended (2m); start it before 2m or lengthen load.duration")]


def test_fault_ending_after_the_load_ends_is_a_problem_too() -> None:
    assert invalid("fault_outlives_load.yaml") == [
        ("13:15: faults[0].duration: fault 'long-latency' ends at 2m30s, after the load has "
        "ended (2m); shorten it to at most 30s or lengthen load.duration")]


def test_unknown_fault_type_suggests_a_registered_one() -> None:
    (line,) = invalid("unknown_fault_type.yaml")
    assert line.startswith("7:11: faults[0].type: unknown fault type 'test-latncy'; "
                           "did you mean 'test-latency'? known: ")
    assert "test-latency" in line.rpartition("known: ")[2].split(", ")


def test_unknown_probe_type_suggests_a_registered_one() -> None:
    (line,) = invalid("unknown_probe_type.yaml")
    assert line.startswith("7:19: hypothesis[0].probe.type: unknown probe type 'test-valeu'; "
                           "did you mean 'test-value'? known: ")


def test_unknown_api_version() -> None:
    assert invalid("unknown_api_version.yaml") == [
        "1:13: apiVersion: unknown apiVersion 'chaoskit/v2'; write 'apiVersion: chaoskit/v1'"]


def test_missing_api_version_and_kind_say_what_to_write() -> None:
    with pytest.raises(SpecError) as caught:
        load_experiment_text("metadata:\n  name: x\n", "m.yaml")
    assert caught.value.render().splitlines() == [
        "m.yaml:1:1: 'apiVersion' is missing; add 'apiVersion: chaoskit/v1'",
        "m.yaml:1:1: 'kind' is missing; add 'kind: Experiment'"]


def test_fault_fields_are_checked_by_the_drivers_config() -> None:
    assert invalid("fault_fields.yaml") == [
        ("9:14: faults[0].latency: expected a duration with a unit like '300ms' or '2m', "
        "got 300; add a unit, e.g. 30s, 300ms or 2m"),
        "10:5: faults[0]: unknown key 'jiter'; did you mean 'jitter'?"]


def test_probe_fields_are_checked_by_the_probes_config() -> None:
    assert invalid("probe_fields.yaml") == [
        ("9:14: hypothesis[0].probe.value: expected a number, got 'lots'; "
        "write a number, e.g. 0.95")]


def test_targets_outside_the_safety_scope() -> None:
    assert invalid("out_of_scope.yaml") == [
        ("12:36: faults[0].target.nodes[2]: fault 'node-slow' aims at node 'db-1', outside "
        "target.scope.nodes (gw-1, gw-2); add 'db-1' to target.scope.nodes or aim inside "
        "the scope"),
        ("17:21: faults[1].target.proxy: fault 'ledger-slow' aims at proxy 'ledger', outside "
        "target.scope.proxies (bank); add 'ledger' to target.scope.proxies or aim inside "
        "the scope"),
        ("22:37: guardrails[0].probe.node: guardrail 'node-errors' aims at node 'worker-3', "
        "outside target.scope.nodes (gw-1, gw-2); add 'worker-3' to target.scope.nodes or "
        "aim inside the scope")]


def test_expectations_that_do_not_parse() -> None:
    assert invalid("bad_expectation.yaml") == [
        ("8:13: hypothesis[0].expect: 'about 5' is not an expectation; "
        "write e.g. '<= 300ms', '>= 99.9%', '== 0' or '<= baseline * 1.5'"),
        ("11:13: hypothesis[1].expect: 'quick' in '<= quick' is not a number, duration, "
        "percentage, rate or baseline; write e.g. '300ms', '99.9%', '5' or 'baseline * 1.5'")]


def test_baseline_expectations_in_phase_before() -> None:
    assert invalid("baseline_before.yaml") == [
        ("9:14: hypothesis[0].phases[0]: expectation 'p99-latency' compares with the baseline, "
        "which is still being measured in phase 'before'; set 'phases: [during, after]' for it"),
        ("12:13: hypothesis[1].expect: expectation 'p90-latency' compares with the baseline, "
        "which is still being measured in phase 'before'; set 'phases: [during, after]' for it")]


def test_all_problems_of_a_file_at_once() -> None:
    lines = invalid("three_problems.yaml")
    assert len(lines) == 3
    assert lines[0] == "5:3: metadata: unknown key 'ownr'; did you mean 'owner'?"
    assert lines[1] == ("7:13: phases.baseline: '5 sec' is not a duration; "
                        "write e.g. 300ms, 1.5s, 2m or 1h30m")
    assert lines[2].startswith("10:11: faults[0].type: unknown fault type 'test-latncy'; "
                               "did you mean 'test-latency'?")


def test_duplicate_names_point_at_the_second_one() -> None:
    assert invalid("duplicate_names.yaml") == [
        ("10:11: faults[1].name: the name 'bank-slow' is already used by faults[0]; "
        "give each entry of 'faults' its own name")]


def test_union_branches_failing_on_one_value_give_one_problem() -> None:
    text = ("apiVersion: chaoskit/v1\nkind: Experiment\nmetadata: {name: x}\nload:\n"
            "  duration: 1m\n  workers: many\n  profile:\n    - {shape: spikey}\n")
    with pytest.raises(SpecError) as caught:
        load_experiment_text(text, "u.yaml")
    assert caught.value.render().splitlines() == [
        ("u.yaml:6:12: load.workers: expected a whole number or 'auto', got 'many'; "
        "write a whole number, e.g. 3"),
        "u.yaml:8:7: load.profile[0]: unknown shape 'spikey'; did you mean 'spike'?"]


def test_a_kind_that_breaks_the_plugin_contract_is_named() -> None:
    class Broken:
        pass

    registry.register(registry.FAULTS, "test-broken", Broken)  # no Config, no destructive
    text = ("apiVersion: chaoskit/v1\nkind: Experiment\nmetadata: {name: x}\nfaults:\n"
            "  - {name: f, type: test-broken, duration: 1s, anything: 1}\n")
    try:
        with pytest.raises(SpecError) as caught:
            load_experiment_text(text, "b.yaml")
        assert "the fault type 'test-broken' is not a valid plug-in" in caught.value.render()
    finally:
        registry.unregister(registry.FAULTS, "test-broken")
