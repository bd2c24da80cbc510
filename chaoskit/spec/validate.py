"""Validate loaded experiment data and point every problem at its line, column and a fix."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.nodes import Node

from chaoskit import registry
from chaoskit.errors import ProblemList
from chaoskit.spec import scope as scope_rules
from chaoskit.spec.capacity import capacity_problems
from chaoskit.spec.models import (
    _NAME,
    API_VERSION,
    Expectation,
    Experiment,
    FaultSpec,
    ProbeRef,
    Scope,
    SystemFile,
    Target,
)
from chaoskit.spec.schema import model_at, union_tags
from chaoskit.spec.system import SystemSpec
from chaoskit.spec.templates import TemplateError, parse_template, unknown_names
from chaoskit.spec.units import format_duration, positive_duration
from chaoskit.spec.yaml_source import Document, Loc, locate

_GLOB = re.compile(r"[*?\[\]{}]")
_SCOPED = {"node": "node", "nodes": "node", "proxy": "proxy", "proxies": "proxy",
           "namespace": "namespace", "namespaces": "namespace"}
_NAMED_GROUPS = ("hypothesis", "faults", "guardrails")


_TYPES = {  # pydantic error type prefix -> (what was expected, what to write)
    "list": ("a list", "write a YAML list: [a, b] or lines starting with '- '"),
    "dict": ("a mapping", "write 'key: value' lines indented under it"),
    "model": ("a mapping", "write 'key: value' lines indented under it"),
    "string": ("text", "write a text value (quote it if it looks like a number)"),
    "int": ("a whole number", "write a whole number, e.g. 3"),
    "float": ("a number", "write a number, e.g. 0.95"),
    "bool": ("true or false", "write true or false"),
}
_VALUE_HINTS = (  # for unit messages that carry no hint of their own
    ("must be greater than zero", "give a duration above zero, e.g. 30s"),
    ("expected a duration", "add a unit, e.g. 30s, 300ms or 2m"),
)


def describe(err: Any, allowed: list[str]) -> tuple[str, str]:
    """(what is wrong, what to do) for one pydantic error."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    key = str(err["loc"][-1]) if err["loc"] else ""
    if kind == "extra_forbidden":
        return f"unknown key '{key}'", _did_you_mean(key, allowed, "allowed keys")
    if kind == "missing":
        example = {"apiVersion": API_VERSION, "kind": "Experiment"}.get(key, "...")
        return f"'{key}' is missing", f"add '{key}: {example}'"
    if kind == "literal_error":
        return _literal(key, value, re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    if kind == "value_error":
        return _value_error(str(ctx.get("error", err["msg"])), value)
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _NAME:
        return (f"'{value}' is not a valid name",
                "use lowercase letters, digits and dashes, e.g. 'bank-latency'")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "")).strip("'")
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tags = tags or allowed
        if kind == "union_tag_not_found":
            return f"'{field}' is missing", f"add '{field}:', one of: {', '.join(tags)}"
        return f"unknown {field} '{ctx.get('tag')}'", _did_you_mean(str(ctx.get("tag")), tags)
    if kind == "too_short":
        return "the list is empty", "add at least one entry"
    expected = _TYPES.get(kind.split("_")[0])
    if expected and kind.endswith(("_type", "_parsing")):
        return f"expected {expected[0]}, got {_shown(value)}", expected[1]
    return f"{err['msg'].replace('Input should be', 'must be')}, got {_shown(value)}", (
        "see `chaoskit schema` for what is allowed here")


def _did_you_mean(word: str, choices: list[str], label: str = "known") -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{label}: {', '.join(choices)}" if choices else "remove it"


def _literal(key: str, value: Any, choices: list[str]) -> tuple[str, str]:
    if key == "apiVersion":
        return f"unknown apiVersion {_shown(value)}", f"write 'apiVersion: {API_VERSION}'"
    if len(choices) == 1:
        return f"expected '{choices[0]}', got {_shown(value)}", f"write '{key}: {choices[0]}'"
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(choices)}"
    return f"{_shown(value)} is not one of {', '.join(choices)}", hint


def _value_error(text: str, value: Any) -> tuple[str, str]:
    if "is not a duration" in text and isinstance(value, str) and value.strip()[:1] == "-":
        return f"a duration cannot be negative, got '{value}'", "write e.g. 0s or 30s"
    message, _, hint = text.partition("; ")
    for fragment, default in _VALUE_HINTS:
        if not hint and fragment in message:
            hint = default
    return message, hint or "fix the value"


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value) if not isinstance(value, str) else f"'{value}'"


class Checker:
    """Collects problems for one document; every check adds to the same list."""

    def __init__(self, document: Document, problems: ProblemList) -> None:
        self.root = document.root
        self.data = document.data
        self.problems = problems
        self.names_checked = False

    def add(self, node: Node, message: str, hint: str, fld: str = "") -> None:
        mark = node.start_mark
        self.problems.add(mark.line + 1, mark.column + 1, message, hint, fld)

    def add_errors(self, error: ValidationError, base: Loc, model: type[BaseModel] | None,
                   extra_allowed: tuple[str, ...] = ()) -> None:
        """Map each pydantic error to a problem; several union branches failing on one value
        become one problem."""
        merged: dict[tuple[int, int, str, str], list[tuple[str, str]]] = {}
        nodes: dict[tuple[int, int, str, str], Node] = {}
        for err in error.errors():
            loc = base + tuple(err["loc"])
            if _is_duplicate_name_error(err) and self.names_checked:
                continue  # reported with its position by check_unique_names
            spot = locate(self.root, loc)
            unknown_key = err["type"] == "extra_forbidden" and spot.key is not None
            node = spot.key if unknown_key and spot.key else spot.value
            fld = spot.path.rpartition(".")[0] if unknown_key else spot.path
            allowed = self._allowed(model, tuple(err["loc"]), err["type"]) + list(extra_allowed)
            own = str(loc[-1]) if err["type"] in ("missing", "extra_forbidden") else ""
            where = (node.start_mark.line, node.start_mark.column, fld, own)
            merged.setdefault(where, []).append(describe(err, allowed))
            nodes[where] = node
        for where, texts in merged.items():
            self.add(nodes[where], _merge_messages([m for m, _ in texts]), texts[0][1], where[2])

    @staticmethod
    def _allowed(model: type[BaseModel] | None, loc: Loc, kind: str) -> list[str]:
        if model is None:
            return []
        if kind.startswith("union_tag"):
            return union_tags(model, loc)
        owner = model_at(model, loc[:-1])
        return _field_names(owner) if owner else []

    def items(self, group: str) -> list[tuple[int, dict[str, Any]]]:
        raw = self.data.get(group) if isinstance(self.data, dict) else None
        if not isinstance(raw, list):
            return []
        return [(i, item) for i, item in enumerate(raw) if isinstance(item, dict)]

    def value_node(self, loc: Loc) -> Node:
        return locate(self.root, loc).value


def _merge_messages(messages: list[str]) -> str:
    """'expected a whole number, got x' + "expected 'auto', got x" -> one sentence."""
    unique = list(dict.fromkeys(messages))
    parts = [re.match(r"^expected (.+), got (.+)$", m) for m in unique]
    if len(unique) > 1 and all(parts) and len({p.group(2) for p in parts if p}) == 1:
        wanted = " or ".join(p.group(1) for p in parts if p)
        return f"expected {wanted}, got {parts[0].group(2) if parts[0] else ''}"
    return " or ".join(unique)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _is_duplicate_name_error(err: Any) -> bool:
    return err["type"] == "value_error" and "is used twice" in err["msg"] and not err["loc"]


def parsed(model: type[BaseModel], raw: Any) -> Any:
    """The model for one part, or None when that part is invalid (already reported)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def check_plugins(checker: Checker) -> None:
    """Fault, probe and platform kinds must be registered; their own fields go to the kind's
    Config (the rest of the entry is common to every kind)."""
    target = checker.data.get("target")
    if isinstance(target, dict):
        _check_kind(checker, registry.PLATFORMS, target, ("target",), Target, key="platform",
                    default="local")
    for i, fault in checker.items("faults"):
        _check_kind(checker, registry.FAULTS, fault, ("faults", i), FaultSpec)
    for group in ("hypothesis", "guardrails"):
        for i, item in checker.items(group):
            if isinstance(item.get("probe"), dict):
                _check_kind(checker, registry.PROBES, item["probe"], (group, i, "probe"),
                            ProbeRef)


_NOUNS = {registry.FAULTS: "fault type", registry.PROBES: "probe type",
          registry.PLATFORMS: "platform"}


def _check_kind(checker: Checker, group: str, raw: dict[str, Any], loc: Loc,
                common: type[BaseModel], *, key: str = "type", default: str | None = None) -> None:
    kind = raw.get(key, default)
    if not isinstance(kind, str):
        return  # missing or mistyped kind is reported by the model itself
    noun = _NOUNS[group]
    where = loc + (key,) if key in raw else loc
    try:
        cls = registry.lookup(group, kind)
    except Exception as exc:  # noqa: BLE001 - a broken third-party plug-in is not our bug
        checker.add(checker.value_node(where), f"the {noun} '{kind}' failed to "
                    f"load: {exc}", "reinstall the package that provides it")
        return
    if cls is None:
        checker.add(checker.value_node(where), f"unknown {noun} '{kind}'",
                    registry.suggest(group, kind), _path(where))
        return
    config = vars_of(cls).get("Config")
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        checker.add(checker.value_node(where), f"the {noun} '{kind}' is not a valid plug-in: "
                    "it declares no Config model of its fields",
                    "fix or reinstall the package that provides it")
        return
    common_names = tuple(_field_names(common))
    options = {k: v for k, v in raw.items() if k not in common_names}
    try:
        config.model_validate(options)
    except ValidationError as exc:
        checker.add_errors(exc, loc, config, common_names)


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def check_unique_names(checker: Checker) -> None:
    checker.names_checked = True
    for group in _NAMED_GROUPS:
        seen: dict[str, int] = {}
        for i, item in checker.items(group):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                checker.add(checker.value_node((group, i, "name")),
                            f"the name '{name}' is already used by {group}[{seen[name]}]",
                            f"give each entry of '{group}' its own name",
                            _path((group, i, "name")))
            seen.setdefault(name, i)


def check_timing(checker: Checker) -> None:
    """With a load, faults must start and end inside it: a fault outliving the load hits an
    idle system and proves nothing, so both are problems (times are scenario time)."""
    load = checker.data.get("load")
    try:  # only the load's duration matters here, even when the rest of the load is wrong
        end = positive_duration(load.get("duration")) if isinstance(load, dict) else None
    except ValueError:
        return
    if end is None:
        return
    for i, raw in checker.items("faults"):
        fault = parsed(FaultSpec, raw)
        if fault is None:
            continue
        if fault.start >= end:
            checker.add(checker.value_node(("faults", i, "start")),
                        f"fault '{fault.name}' starts at {format_duration(fault.start)}, when "
                        f"the load has already ended ({format_duration(end)})",
                        f"start it before {format_duration(end)} or lengthen load.duration",
                        _path(("faults", i, "start")))
        elif fault.start + fault.duration > end:
            checker.add(checker.value_node(("faults", i, "duration")),
                        f"fault '{fault.name}' ends at "
                        f"{format_duration(fault.start + fault.duration)}, "
                        f"after the load has ended ({format_duration(end)})",
                        f"shorten it to at most {format_duration(end - fault.start)} or lengthen "
                        "load.duration", _path(("faults", i, "duration")))


def check_scope(checker: Checker) -> None:
    """Explicitly named nodes, proxies and namespaces must be inside target.scope, and a fault
    that touches nodes needs target.scope.nodes (spec.scope holds the rules)."""
    target = checker.data.get("target")
    scope = parsed(Scope, target.get("scope", {})) if isinstance(target, dict) else None
    if scope is None:
        return
    for i, fault in checker.items("faults"):
        _check_destructive(checker, scope, fault, i)
        if isinstance(fault.get("target"), dict):
            _check_in_scope(checker, scope, fault["target"], ("faults", i, "target"), "fault",
                            fault.get("name"))
    for i, guard in checker.items("guardrails"):
        probe = guard.get("probe")
        if isinstance(probe, dict):
            _check_in_scope(checker, scope, probe, ("guardrails", i, "probe"), "guardrail",
                            guard.get("name"))
            if isinstance(probe.get("target"), dict):
                _check_in_scope(checker, scope, probe["target"],
                                ("guardrails", i, "probe", "target"), "guardrail",
                                guard.get("name"))


def _check_destructive(checker: Checker, scope: Scope, fault: dict[str, Any], i: int) -> None:
    kind = fault.get("type")
    try:
        cls = registry.lookup(registry.FAULTS, kind) if isinstance(kind, str) else None
    except Exception:  # noqa: BLE001 - reported by check_plugins
        return
    if cls is None or not vars_of(cls).get("destructive", False) or scope.nodes:
        return
    checker.add(checker.value_node(("faults", i, "type")),
                f"fault '{fault.get('name')}' ({kind}) touches nodes, but target.scope.nodes "
                "is empty", "name the nodes it may touch in target.scope.nodes (patterns "
                "like node-* work), or write `nodes: any` to allow every node",
                _path(("faults", i, "type")))


def vars_of(cls: type) -> dict[str, Any]:
    """Class attributes through the MRO (a plug-in's declarations, read without getattr)."""
    found: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        found.update(vars(base))
    return found


def _check_in_scope(checker: Checker, scope: Scope, raw: dict[str, Any], loc: Loc, noun: str,
                    name: Any) -> None:
    for key, kind in _SCOPED.items():
        value = raw.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for j, item in enumerate(values):
            if not _explicit(item):
                continue
            if scope_rules.problem(scope, kind, item) is None:
                continue
            field = scope_rules.FIELDS[kind]
            allowed = ", ".join(scope_rules.allowed(scope, kind))
            item_loc = loc + ((key, j) if isinstance(value, list) else (key,))
            checker.add(checker.value_node(item_loc),
                        f"{noun} '{name}' aims at {kind} '{item}', outside "
                        f"target.scope.{field} ({allowed})",
                        f"add '{item}' to target.scope.{field} or aim inside the scope",
                        _path(item_loc))


def _explicit(value: Any) -> bool:
    """A plain name; `any`, patterns and selectors ('gw-*', {role: worker}) resolve at preflight."""
    return isinstance(value, str) and value != "any" and not _GLOB.search(value)


def check_baseline_phases(checker: Checker) -> None:
    """The baseline is measured in phase 'before'; comparing with it there means nothing."""
    for i, raw in checker.items("hypothesis"):
        expectation = parsed(Expectation, raw)
        if expectation is None or "before" not in expectation.phases:
            continue
        if not re.search(r"\bbaseline\b", expectation.expect):
            continue
        phases = raw.get("phases")
        loc: Loc = ("hypothesis", i, "phases", phases.index("before")) if isinstance(
            phases, list) else ("hypothesis", i, "expect")
        checker.add(checker.value_node(loc),
                    f"expectation '{expectation.name}' compares with the baseline, which is "
                    "still being measured in phase 'before'",
                    "set 'phases: [during, after]' for it", _path(loc))


def _strings_at(value: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """Every string of a raw request, with where it is (keys of headers and query too)."""
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        found = [(loc + (k,), k) for k in value if isinstance(k, str) and "{{" in k]
        return found + [s for k, v in value.items() for s in _strings_at(v, loc + (k,))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings_at(v, loc + (i,))]
    return []


def check_flows(checker: Checker, base: Loc, data: Any) -> None:
    """Every template of every flow parses, and reads only variables and captured values."""
    flows = data.get("flows") if isinstance(data, dict) else None
    if not isinstance(flows, dict):
        return
    captured = {c for f in flows.values() if isinstance(f, dict)
                and isinstance(f.get("captures"), dict) for c in f["captures"]}
    for name, flow in flows.items():
        request = flow.get("request") if isinstance(flow, dict) else None
        for loc, text in _strings_at(request, (*base, "flows", name, "request")):
            _check_template(checker, loc, text, name, captured)


def _check_template(checker: Checker, loc: Loc, text: str, flow: str,
                    captured: set[str]) -> None:
    try:
        template = parse_template(text)
    except TemplateError as exc:
        checker.add(checker.value_node(loc), f"flow '{flow}': {exc}",
                    "see `chaoskit schema` or the README's 'Test your own stack'", _path(loc))
        return
    unknown = unknown_names(template, captured)
    if unknown:
        checker.add(checker.value_node(loc),
                    f"flow '{flow}' uses {', '.join(unknown)}: no such template variable, and "
                    "no flow captures it",
                    "capture it in a flow's `captures:`, or use seq, key, flow, uuid, "
                    "random.int/float/choice, amount(a, b) or env.NAME", _path(loc))


def check_references(checker: Checker, experiment: Experiment) -> None:
    """What the experiment names must be declared by its system: the load's flows, the
    promises and checks its probes read."""
    system = experiment.system
    if experiment.load is not None:
        flows = set(system.flows) if system else set()
        for flow in experiment.load.mix:
            if flow not in flows:
                checker.add(_key_node(checker, ("load", "mix"), flow),
                            f"load.mix names flow '{flow}', which the system does not declare",
                            (f"declared flows: {', '.join(sorted(flows))}" if flows else
                             "declare its request under `system:` (a `kind: System` file or "
                             "a mapping), e.g. system: systems/reference-stack.yaml"),
                            f"load.mix.{flow}")
    for group in ("hypothesis", "guardrails"):
        for i, item in checker.items(group):
            probe = item.get("probe")
            if isinstance(probe, dict):
                _check_declared(checker, system, probe, (group, i, "probe"))


_DECLARED = {"promise": "promises", "check": "checks", "reconciliation": "reconciliations"}


def _check_declared(checker: Checker, system: SystemSpec | None, probe: dict[str, Any],
                    loc: Loc) -> None:
    for key, group in _DECLARED.items():
        name = probe.get(key)
        if not isinstance(name, str):
            continue
        declared = getattr(system, group) if system else {}
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            checker.add(checker.value_node(loc + (key,)),
                        f"the probe reads {key} '{name}', which the system does not declare",
                        f"declared {group}: {known}", _path(loc + (key,)))
        elif key == "promise" and declared[name].promql is not None:
            measure = str(probe.get("measure", "on_time_ratio"))
            if measure not in declared[name].promql:
                where = loc + (("measure",) if "measure" in probe else (key,))
                checker.add(checker.value_node(where),
                            f"promise '{name}' has no PromQL for the measure '{measure}'",
                            f"its promql gives: {', '.join(declared[name].promql)}; add "
                            f"`{measure}:` to it", _path(where))


def check_capacity(checker: Checker, experiment: Experiment) -> None:
    """A capacity section must be able to answer its question with this experiment."""
    for loc, message, hint in capacity_problems(experiment):
        checker.add(checker.value_node(loc), message, hint, _path(loc))


def _key_node(checker: Checker, loc: Loc, key: str) -> Node:
    spot = locate(checker.root, loc + (key,))
    return spot.key if spot.key is not None else spot.value


def validate_system_document(document: Document, problems: ProblemList) -> SystemSpec | None:
    """The declarations of a `kind: System` file, or None with its problems added."""
    checker = Checker(document, problems)
    if not isinstance(document.data, dict):
        checker.add(document.root, "the file is not a mapping (key: value lines)",
                    "a system file starts with 'apiVersion: chaoskit/v1' and 'kind: System'")
        return None
    system = None
    try:
        system = SystemFile.model_validate(document.data).declarations()
    except ValidationError as exc:
        checker.add_errors(exc, (), SystemFile)
    check_flows(checker, (), document.data)
    return system if not problems.items else None


def validate_document(document: Document, problems: ProblemList,
                      included: SystemSpec | None = None, *,
                      references: bool = True) -> Experiment | None:
    """The Experiment, or None with every problem of the file added to `problems`.
    `included`: the declarations of the `kind: System` file its `system:` names (validated
    on their own, against that file's lines)."""
    checker = Checker(document, problems)
    if not isinstance(document.data, dict):
        checker.add(document.root, "the file is not a mapping (key: value lines)",
                    "an experiment starts with 'apiVersion: chaoskit/v1' and 'kind: Experiment'")
        return None
    check_unique_names(checker)
    experiment = None
    data = document.data
    if included is not None:
        data = {**data, "system": included.model_dump(mode="json", by_alias=True)}
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        checker.add_errors(exc, (), Experiment)
    for check in (check_plugins, check_timing, check_scope, check_baseline_phases):
        check(checker)
    if included is None and isinstance(data.get("system"), dict):
        check_flows(checker, ("system",), data["system"])
    if experiment is not None:
        if references:  # not against a system that failed to load
            check_references(checker, experiment)
        check_capacity(checker, experiment)
    return experiment if not problems.items else None
