"""The JSON Schema editors use: it must accept our valid files and flag what validate flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # a dev extra: the schema must be checked, never skipped
import pytest

from chaoskit.errors import ProblemList
from chaoskit.spec.schema import SCHEMA_ID, json_schema
from chaoskit.spec.yaml_source import parse
from tests.unit.test_spec_validate import test_kinds  # noqa: F401 - the kinds full.yaml uses

SPECS = Path(__file__).parent / "specs"


def data_of(path: Path) -> Any:
    document = parse(path.read_text(encoding="utf-8"), ProblemList(str(path)))
    assert document is not None
    return document.data


def schema_errors(data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schema())
    return sorted(error.message for error in validator.iter_errors(data))


def test_schema_identifies_itself_for_editors() -> None:
    schema = json_schema()
    assert schema["$id"] == SCHEMA_ID
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "chaoskit experiment (chaoskit/v1)"
    assert schema["properties"]["apiVersion"]["const"] == "chaoskit/v1"
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_keys_are_written_as_in_yaml() -> None:
    guardrail = json_schema()["$defs"]["Guardrail"]["properties"]
    assert "for" in guardrail and "for_" not in guardrail
    assert guardrail["for"]["default"] == "0s"  # shown as a user writes it, not as seconds


@pytest.mark.parametrize("path", sorted((SPECS / "valid").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_files_match_the_schema(path: Path) -> None:
    assert schema_errors(data_of(path)) == []


def test_schema_flags_unknown_keys_and_bad_units() -> None:
    messages = " | ".join(schema_errors(data_of(SPECS / "invalid" / "three_problems.yaml")))
    assert "'ownr' was unexpected" in messages
    assert "'5 sec' does not match" in messages


def test_each_kind_has_its_own_fields_chosen_by_type() -> None:
    """An editor completes `latency:` for a latency fault and flags it on a scale fault."""
    fault = {"name": "f", "type": "latency", "duration": "1s", "latency": "300ms",
             "target": {"dependency": "bank"}}
    base = {"apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "x"}}
    assert schema_errors({**base, "faults": [fault]}) == []
    wrong = {**fault, "type": "scale", "nodes": 1}
    assert any("'latency' was unexpected" in m for m in schema_errors({**base,
                                                                       "faults": [wrong]}))
    bad_mode = {"name": "f", "type": "node-loss", "duration": "1s", "mode": "explode"}
    assert any("'explode' is not one of" in m for m in schema_errors({**base,
                                                                      "faults": [bad_mode]}))
    probe = {"name": "h", "expect": "<= 1", "probe": {"type": "load", "measure": "p99x"}}
    assert any("'p99x' is not one of" in m for m in schema_errors({**base,
                                                                   "hypothesis": [probe]}))
    kinds = json_schema()["$defs"]["FaultSpec"]["properties"]["type"]["enum"]
    assert {"latency", "node-loss", "scale", "colocate"} <= set(kinds)


def test_a_platform_has_its_own_target_fields() -> None:
    base = {"apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "x"}}
    assert schema_errors({**base, "target": {"platform": "local", "lab": "default"}}) == []
    assert schema_errors({**base, "target": {"platform": "kubernetes", "namespace": "p"}}) == []
    assert any("'namespace' was unexpected" in m for m in schema_errors(
        {**base, "target": {"platform": "local", "namespace": "p"}}))


def test_system_files_and_plans_have_their_own_schema_chosen_by_kind() -> None:
    root = Path(__file__).resolve().parents[2] / "experiments"
    assert schema_errors(data_of(root / "systems" / "reference-stack.yaml")) == []
    plan = data_of(root / "plans" / "rehearsal-8pm.yaml")
    assert schema_errors(plan) == []
    typo = {**plan, "stop_when": {"abortd": True}}
    assert any("'abortd' was unexpected" in m for m in schema_errors(typo))
    step = {"name": "s", "experiment": "x.yaml", "hold": "ready?", "sett": {}}
    assert any("'sett' was unexpected" in m for m in schema_errors({**plan, "steps": [step]}))
    assert any("'flowz' was unexpected" in m for m in schema_errors(
        {"apiVersion": "chaoskit/v1", "kind": "System", "metadata": {"name": "s"},
         "flowz": {}}))
