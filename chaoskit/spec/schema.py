"""The JSON Schema of chaoskit/v1 experiments, for editors (yaml-language-server) and tools."""

from __future__ import annotations

from typing import Any

from chaoskit.spec.models import API_VERSION, Experiment

SCHEMA_ID = "https://chaoskit.dev/schema/chaoskit-v1.json"


def json_schema() -> dict[str, Any]:
    """Schema of one experiment file, keys as written in YAML (aliases such as `apiVersion`).

    Fault and probe entries allow extra keys: each kind's own fields are checked by
    `chaoskit validate`, which knows the installed plug-ins; the schema cannot.
    """
    schema = _duration_defaults(Experiment.model_json_schema(by_alias=True, mode="validation"))
    body = {key: value for key, value in schema.items() if key not in ("title", "description")}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"chaoskit experiment ({API_VERSION})",
        "description": "A chaos experiment: target, hypothesis, load, faults on a timeline and "
                       "guardrails. Validate with `chaoskit validate FILE`.",
        **body,
    }


def _duration_defaults(node: Any) -> Any:
    """Defaults of duration fields are stored as seconds; editors should show '5s' as written."""
    if isinstance(node, list):
        return [_duration_defaults(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _duration_defaults(value) for key, value in node.items()}
    default = out.get("default")
    if "ms|s|m|h" in str(out.get("pattern", "")) and isinstance(default, int | float):
        out["default"] = f"{default:g}s"
    return out
