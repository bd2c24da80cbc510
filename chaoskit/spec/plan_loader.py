"""Load a `kind: GamePlan` file: its own problems with their lines, then every step's
experiment, loaded with the step's parameters (their problems point into their own files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from chaoskit.errors import Problem, ProblemList, SpecError
from chaoskit.spec.loader import (
    declared_parameters,
    fill_parameters,
    load_experiment,
    parameter_values,
    read_document,
)
from chaoskit.spec.models import Experiment
from chaoskit.spec.plan import GamePlan
from chaoskit.spec.validate import Checker
from chaoskit.spec.yaml_source import Document, locate


@dataclass
class LoadedPlan:
    """The plan, and each of its experiments as it will run (by step-experiment name)."""

    plan: GamePlan
    path: Path
    experiments: dict[str, Experiment] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    sets: dict[str, dict[str, str]] = field(default_factory=dict)


def load_plan(path: str | Path, sets: dict[str, str] | None = None) -> LoadedPlan:
    """Read, parse and validate a plan and the experiments it runs; SpecError lists every
    problem of the plan and of its experiments."""
    path = Path(path)
    problems = ProblemList(str(path))
    document = read_document(path, problems)
    plan = _validated(document, sets or {}, problems) if document else None
    problems.raise_if_any()
    assert plan is not None and document is not None
    return _with_experiments(plan, path, document)


def _validated(document: Document, sets: dict[str, str],
               problems: ProblemList) -> GamePlan | None:
    checker = Checker(document, problems)
    if not isinstance(document.data, dict):
        checker.add(document.root, "the file is not a mapping (key: value lines)",
                    "a plan starts with 'apiVersion: chaoskit/v1' and 'kind: GamePlan'")
        return None
    declared = declared_parameters(document, problems)
    for name in sorted(set(sets) - set(declared)):
        problems.add(1, 1, f"--set {name}: the plan declares no parameter '{name}'",
                     f"declared: {', '.join(sorted(declared)) or 'none'}")
    filled = fill_parameters(document, parameter_values(declared, sets), problems)
    try:
        plan = GamePlan.model_validate(filled.data)
    except ValidationError as exc:
        checker.add_errors(exc, (), GamePlan)
        return None
    return plan if not problems.items else None


def _with_experiments(plan: GamePlan, path: Path, document: Document) -> LoadedPlan:
    loaded = LoadedPlan(plan, path)
    problems = ProblemList(str(path))
    found: list[Problem] = []
    for i, step in enumerate(plan.steps):
        inner = [(("steps", i), e) for e in step.experiments()] if step.experiment else [
            (("steps", i, "together", j), e) for j, e in enumerate(step.together)]
        for loc, entry in inner:
            source = path.parent / entry.experiment
            node = locate(document.root, (*loc, "experiment")).value
            if not source.is_file():
                problems.add(node.start_mark.line + 1, node.start_mark.column + 1,
                             f"experiment file '{entry.experiment}' not found (looked at "
                             f"{source})", "give a path relative to the plan", "experiment")
                continue
            values = {k: str(v) for k, v in entry.set.items()}
            try:
                loaded.experiments[entry.name] = load_experiment(source, values)
            except SpecError as exc:
                found.extend(exc.problems)
                continue
            loaded.sources[entry.name] = source
            loaded.sets[entry.name] = values
    if problems.items or found:
        raise SpecError(sorted(problems.items, key=lambda p: (p.line, p.column)) + found)
    return loaded
