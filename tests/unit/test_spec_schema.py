"""The JSON Schema editors use: it must accept our valid files and flag what validate flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # a dev extra: the schema must be checked, never skipped
import pytest

from chaoskit.errors import ProblemList
from chaoskit.spec.yaml_source import parse
from chaoskit.spec.schema import SCHEMA_ID, json_schema

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
