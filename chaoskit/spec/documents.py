"""Any chaoskit file by its `kind`: an Experiment, a System (declarations experiments include)
or a GamePlan. What `chaoskit validate` reads."""

from __future__ import annotations

import os
from pathlib import Path

from chaoskit.errors import ProblemList
from chaoskit.spec.loader import load_experiment, load_system, read_document
from chaoskit.spec.models import Experiment
from chaoskit.spec.plan_loader import LoadedPlan, load_plan
from chaoskit.spec.system import SystemSpec

KINDS = ("Experiment", "System", "GamePlan")


def kind_of(path: str | Path) -> str:
    """The file's `kind` (Experiment when it names none or one we do not know: its
    validation then says what is wrong)."""
    document = read_document(path, ProblemList(str(path)))
    kind = document.data.get("kind") if document and isinstance(document.data, dict) else None
    return kind if kind in KINDS else "Experiment"


def load_any(path: str | Path, sets: dict[str, str] | None = None
             ) -> Experiment | SystemSpec | LoadedPlan:
    kind = kind_of(path)
    if kind == "System":
        return load_system(Path(path), dict(sets or {}))
    if kind == "GamePlan":
        return load_plan(path, sets)
    return load_experiment(path, sets)


def describe(loaded: Experiment | SystemSpec | LoadedPlan) -> str:
    """One line for `chaoskit validate`."""
    if isinstance(loaded, Experiment):
        return (f"{loaded.metadata.name}: {len(loaded.faults)} faults, "
                f"{len(loaded.hypothesis)} hypothesis items")
    if isinstance(loaded, LoadedPlan):
        steps = loaded.plan.steps
        return (f"plan {loaded.plan.metadata.name}: {len(steps)} steps, "
                f"{len(loaded.experiments)} experiments")
    return (f"system: {len(loaded.flows)} flows, {len(loaded.promises)} promises, "
            f"{len(loaded.checks)} money checks, {len(loaded.roles)} roles")


def _system_file(path: Path) -> Path | None:
    document = read_document(path, ProblemList(str(path)))
    ref = document.data.get("system") if document and isinstance(document.data, dict) else None
    return (path.parent / ref).resolve() if isinstance(ref, str) else None


def bundle(path: str | Path, sets: dict[str, str] | None = None
           ) -> tuple[str, list[tuple[str, str]]]:
    """A file and every file it includes (a plan's experiments, each one's system file), as
    (path relative to their common folder, text) pairs; and the file's own relative path.
    What a scheduled run in a cluster needs to find them side by side again."""
    path = Path(path).resolve()
    loaded = load_any(path, sets)  # invalid files are refused here, not in the cluster
    files = [path]
    experiments = list(loaded.sources.values()) if isinstance(loaded, LoadedPlan) else (
        [path] if isinstance(loaded, Experiment) else [])
    for experiment in experiments:
        files.append(experiment.resolve())
        system = _system_file(experiment)
        if system is not None:
            files.append(system)
    unique = list(dict.fromkeys(files))
    base = Path(os.path.commonpath([str(f.parent) for f in unique]))
    return (str(path.relative_to(base)),
            [(str(f.relative_to(base)), f.read_text(encoding="utf-8")) for f in unique])
