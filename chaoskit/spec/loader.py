"""Load an experiment file: read it bounded, parse it with positions, fill in its parameters,
include the system file it names, validate every part. Problems name the file they are in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaoskit.errors import Problem, ProblemList, SpecError
from chaoskit.spec.models import Experiment
from chaoskit.spec.params import Loc, ParameterSpec, substitute
from chaoskit.spec.system import SystemSpec
from chaoskit.spec.validate import validate_document, validate_system_document
from chaoskit.spec.yaml_source import MAX_BYTES, Document, decode, locate, parse


def read_document(path: str | Path, problems: ProblemList) -> Document | None:
    """A file's YAML with positions (bounded read: huge or binary files are refused)."""
    raw = b""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        problems.add(1, 1, f"cannot read the file: {exc.strerror}", "check the path")
        return None
    text = decode(raw, problems)
    return parse(text, problems) if text is not None else None


def declared_parameters(document: Document, problems: ProblemList) -> dict[str, ParameterSpec]:
    raw = document.data.get("parameters") if isinstance(document.data, dict) else None
    if not isinstance(raw, dict):
        return {}
    declared = {}
    for name, spec in raw.items():
        try:
            declared[str(name)] = ParameterSpec.model_validate(spec if spec is not None else {})
        except ValueError:
            node = locate(document.root, ("parameters", name)).value
            problems.add(node.start_mark.line + 1, node.start_mark.column + 1,
                         f"parameter '{name}' is not {{default: ..., description: ...}}",
                         "write e.g. rate: {default: 40/s, description: the base rate}",
                         f"parameters.{name}")
    return declared


def fill_parameters(document: Document, values: dict[str, Any], problems: ProblemList) -> Document:
    """The document with `${name}` replaced; a name without a value is a problem there."""
    def unknown(loc: Loc, name: str) -> None:
        node = locate(document.root, loc).value
        problems.add(node.start_mark.line + 1, node.start_mark.column + 1,
                     f"'${{{name}}}' names no parameter with a value",
                     f"declare it under `parameters:` with a default, or pass --set {name}=...",
                     ".".join(str(p) for p in loc))
    return Document(substitute(document.data, values, unknown), document.root)


def parameter_values(declared: dict[str, ParameterSpec], given: dict[str, str]) -> dict[str, Any]:
    values = {n: p.default for n, p in declared.items() if p.default is not None}
    return {**values, **given}


def load_system(path: Path, values: dict[str, Any]) -> SystemSpec:
    """The declarations of a `kind: System` file (its problems point into it)."""
    problems = ProblemList(str(path))
    document = read_document(path, problems)
    system = None
    if document is not None:
        values = {**parameter_values(declared_parameters(document, problems), {}), **values}
        system = validate_system_document(fill_parameters(document, values, problems), problems)
    problems.raise_if_any()
    assert system is not None
    return system


def load_experiment_text(text: str, path: str, sets: dict[str, str] | None = None) -> Experiment:
    """Parse and validate experiment text; SpecError lists every problem, sorted by line."""
    problems = ProblemList(path)
    document = parse(text, problems)
    experiment = _validated(document, Path(path), sets or {}, problems) if document else None
    problems.raise_if_any()
    assert experiment is not None  # no problems means the model validated
    return experiment


def _validated(document: Document, path: Path, sets: dict[str, str],
               problems: ProblemList) -> Experiment | None:
    declared = declared_parameters(document, problems)
    undeclared = sorted(set(sets) - set(declared) - _system_parameters(document, path))
    for name in undeclared:
        problems.add(1, 1, f"--set {name}: the experiment declares no parameter '{name}'",
                     f"declared: {', '.join(sorted(declared)) or 'none'}")
    values = parameter_values(declared, sets)
    filled = fill_parameters(document, values, problems)
    included = _include(filled, path, values, problems)
    failed = included is None and isinstance(filled.data, dict) and isinstance(
        filled.data.get("system"), str)
    if failed:  # its own problems are reported: not twice, nor what follows from them
        filled = Document({**filled.data, "system": None}, filled.root)
    experiment = validate_document(filled, problems, included, references=not failed)
    if experiment is not None and included is not None:
        experiment._system_file = str(path.parent / str(filled.data["system"]))
    return experiment


def _system_parameters(document: Document, path: Path) -> set[str]:
    """Parameters the included system file declares (also settable with --set)."""
    ref = document.data.get("system") if isinstance(document.data, dict) else None
    if not isinstance(ref, str):
        return set()
    scratch = ProblemList(ref)
    included = read_document(path.parent / ref, scratch)
    return set(declared_parameters(included, scratch)) if included else set()


def _include(document: Document, path: Path, values: dict[str, Any],
             problems: ProblemList) -> SystemSpec | None:
    """The system file `system:` names, relative to the experiment; its problems are its."""
    ref = document.data.get("system") if isinstance(document.data, dict) else None
    if not isinstance(ref, str):
        return None
    target = path.parent / ref
    if not target.is_file():
        node = locate(document.root, ("system",)).value
        problems.add(node.start_mark.line + 1, node.start_mark.column + 1,
                     f"system file '{ref}' not found (looked at {target})",
                     "give the path of a `kind: System` file relative to this experiment",
                     "system")
        return None
    try:
        return load_system(target, values)
    except SpecError as exc:
        problems.items.extend(exc.problems)  # they keep the system file's own path and lines
        return None


def load_experiment(path: str | Path, sets: dict[str, str] | None = None) -> Experiment:
    """Read, parse and validate one experiment file; `sets` are `--set name=value` pairs."""
    problems = ProblemList(str(path))
    document = read_document(path, problems)
    experiment = _validated(document, Path(path), sets or {}, problems) if document else None
    problems.raise_if_any()
    assert experiment is not None
    return experiment


def problem_at(path: str | Path, loc: tuple[str | int, ...], message: str, hint: str) -> Problem:
    """A problem found after validation (e.g. by preflight), pointed at its place in the file."""
    problems = ProblemList(str(path))
    document = read_document(path, problems)
    field = ".".join(str(part) for part in loc)
    if document is None:
        return Problem(str(path), 1, 1, message, hint, field)
    node = locate(document.root, loc).value
    return Problem(str(path), node.start_mark.line + 1, node.start_mark.column + 1, message,
                   hint, field)
