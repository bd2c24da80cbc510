"""Load an experiment file: read it bounded, parse it with positions, validate every part."""

from __future__ import annotations

from pathlib import Path

from chaoskit.errors import Problem, ProblemList
from chaoskit.spec.models import Experiment
from chaoskit.spec.validate import validate_document
from chaoskit.spec.yaml_source import MAX_BYTES, decode, locate, parse


def load_experiment_text(text: str, path: str) -> Experiment:
    """Parse and validate experiment text; SpecError lists every problem, sorted by line."""
    problems = ProblemList(path)
    document = parse(text, problems)
    experiment = validate_document(document, problems) if document is not None else None
    problems.raise_if_any()
    assert experiment is not None  # no problems means the model validated
    return experiment


def load_experiment(path: str | Path) -> Experiment:
    """Read, parse and validate one experiment file (bounded read: huge files are refused)."""
    problems = ProblemList(str(path))
    raw = b""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        problems.add(1, 1, f"cannot read the file: {exc.strerror}", "check the path")
    text = decode(raw, problems) if not problems.items else None
    problems.raise_if_any()
    assert text is not None
    return load_experiment_text(text, str(path))


def problem_at(path: str | Path, loc: tuple[str | int, ...], message: str, hint: str) -> Problem:
    """A problem found after validation (e.g. by preflight), pointed at its place in the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        document = parse(text, ProblemList(str(path)))
    except OSError:
        document = None
    field = ".".join(str(part) for part in loc)
    if document is None:
        return Problem(str(path), 1, 1, message, hint, field)
    node = locate(document.root, loc).value
    return Problem(str(path), node.start_mark.line + 1, node.start_mark.column + 1, message,
                   hint, field)
