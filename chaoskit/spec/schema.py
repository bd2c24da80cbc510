"""The shape of chaoskit/v1: its JSON Schema for editors, and the model class at a location."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chaoskit import registry
from chaoskit.spec.models import API_VERSION, Experiment, SystemFile
from chaoskit.spec.plan import GamePlan
from chaoskit.spec.yaml_source import Loc

SCHEMA_ID = "https://chaoskit.dev/schema/chaoskit-v1.json"


def json_schema() -> dict[str, Any]:
    """Schema of any chaoskit file, keys as written in YAML (aliases such as `apiVersion`):
    an Experiment, a System file or a GamePlan, chosen by `kind:`.

    Built from the registries: every installed fault, probe and platform kind gets its own
    closed variant (the common fields plus its Config's, with their descriptions), chosen by
    `type:` (`platform:` for targets), so an editor completes and checks `latency:`, `mode:`
    or `measure:` values.
    """
    _, shared = models_json_schema([(Experiment, "validation"), (SystemFile, "validation"),
                                    (GamePlan, "validation")], by_alias=True,
                                   ref_template="#/$defs/{model}")
    defs = shared.setdefault("$defs", {})
    defs["FaultSpec"] = _by_kind(defs, defs["FaultSpec"], registry.FAULTS, "type", "fault")
    defs["ProbeRef"] = _by_kind(defs, defs["ProbeRef"], registry.PROBES, "type", "probe")
    defs["Target"] = _by_kind(defs, defs["Target"], registry.PLATFORMS, "platform", "platform")
    defs = _parameters_allowed(_duration_defaults({"$defs": defs}))["$defs"]
    experiment = defs["Experiment"]
    by_kind = [{"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": f"#/$defs/{model}"}}
               for kind, model in (("System", "SystemFile"), ("GamePlan", "GamePlan"))]
    by_kind.append({"if": {"properties": {"kind": {"const": "Experiment"}}},
                    "then": {"$ref": "#/$defs/Experiment"}})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"chaoskit experiment ({API_VERSION})",
        "description": "A chaoskit file: an Experiment (target, hypothesis, load, faults on a "
                       "timeline, guardrails), a System (a stack's flows, promises, money "
                       "checks and roles) or a GamePlan (a game day's steps). Validate with "
                       "`chaoskit validate FILE`.",
        "type": "object",
        "properties": {"apiVersion": experiment["properties"]["apiVersion"],
                       "kind": {"enum": ["Experiment", "System", "GamePlan"],
                                "description": "what the file is"},
                       "metadata": {"type": "object"}},
        "required": ["apiVersion", "kind", "metadata"],
        "allOf": by_kind,
        "$defs": defs,
    }


def _by_kind(defs: dict[str, Any], common: dict[str, Any], group: str, key: str,
             noun: str) -> dict[str, Any]:
    """The common entry, with one closed `if key == kind then ...` branch per registered kind."""
    kinds = registry.names(group)
    props = dict(common.get("properties", {}))
    props[key] = {**props.get(key, {}), "enum": kinds,
                  "description": f"the {noun} kind: one of {', '.join(kinds)}"}
    props[key].pop("type", None)
    branches = []
    for kind in kinds:
        config = _config_of(group, kind)
        if config is None:
            continue
        own = config.model_json_schema(by_alias=True, mode="validation",
                                       ref_template=f"#/$defs/{noun}-{kind}-{{model}}")
        for name, sub in own.pop("$defs", {}).items():
            defs[f"{noun}-{kind}-{name}"] = sub
        then = {"properties": {**props, **own.get("properties", {}), key: {"const": kind}},
                "additionalProperties": False,
                "required": sorted(set(common.get("required", [])) | set(own.get("required", [])))}
        branches.append({"if": {"properties": {key: {"const": kind}}}, "then": then})
    out = {k: v for k, v in common.items() if k not in ("properties", "additionalProperties")}
    return {**out, "properties": props, "allOf": branches}


def _config_of(group: str, kind: str) -> type[BaseModel] | None:
    try:
        cls = registry.lookup(group, kind)
    except Exception:  # noqa: BLE001 - a broken plug-in has no schema; validate names it
        return None
    bases = cls.__mro__ if isinstance(cls, type) else ()
    found = next((vars(base)["Config"] for base in bases
                  if "Config" in vars(base)), None)
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


PARAMETER = {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_-]*\}$",
             "description": "a parameter: ${name} (chaoskit run --set name=value)"}
_SCALARS = {"number", "integer", "boolean"}


_MAPS = ("properties", "$defs", "patternProperties")
_SUBSCHEMAS = ("items", "additionalProperties", "then", "else", "not")
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def _parameters_allowed(node: Any) -> Any:
    """Wherever a number, a pattern or a fixed set of words is expected, `${name}` may stand
    (a schema walk: property maps and sub-schemas are told apart)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _parameters_allowed(sub) for name, sub in out[key].items()}
    for key in _SUBSCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = _parameters_allowed(out[key])
    for key in _LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_parameters_allowed(sub) for sub in out[key]]
    if out.get("type") == "string" and "pattern" in out:  # keeps "does not match" errors
        out["pattern"] = f"(?:{out['pattern']})|{PARAMETER['pattern']}"
    elif isinstance(out.get("anyOf"), list) and any(_scalar(o) for o in out["anyOf"]):
        out["anyOf"] = [*out["anyOf"], PARAMETER]
    elif _scalar(out):
        typed = {k: v for k, v in out.items() if k not in ("title", "description", "default",
                                                             "examples")}
        rest = {k: v for k, v in out.items() if k not in typed}
        return {**rest, "anyOf": [typed, PARAMETER]}
    return out


def _scalar(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") in _SCALARS


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


def model_at(model: Any, loc: Loc) -> type[BaseModel] | None:
    """The model class a location points into, following fields, lists, dicts and unions."""
    current = _annotation_at(model, loc)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def union_tags(model: Any, loc: Loc) -> list[str]:
    """The tags a discriminated union at `loc` accepts ('constant', 'ramp', ...)."""
    current = _annotation_at(model, loc)
    if get_origin(current) not in (Union, types.UnionType):
        return []
    return [str(tag) for member in map(_unwrap, get_args(current)) for tag in _tags(member)]


def _annotation_at(model: Any, loc: Loc) -> Any:
    current = model
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return None
    return _unwrap(current)


def _unwrap(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, types.UnionType):
        members = [a for a in get_args(ann) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return ann


def _step(ann: Any, part: str | int) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
        for name, info in ann.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin, args = get_origin(ann), get_args(ann)
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict:
        return args[1]
    if origin in (Union, types.UnionType):  # pydantic names the branch: a tag or class name
        for member in map(_unwrap, args):
            if part == getattr(member, "__name__", None) or part in _tags(member):
                return member
    return None


def _tags(member: Any) -> set[Any]:
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return set()
    return {arg for info in member.model_fields.values()
            if get_origin(info.annotation) is Literal for arg in get_args(info.annotation)}
