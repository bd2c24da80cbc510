"""The CI gate: `pytest experiments/` runs each experiment as a test; fixtures for Python tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaoskit.errors import ChaoskitError

_MARK = b"apiVersion: chaoskit/v1"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoskit", "chaoskit experiments as tests")
    group.addoption("--chaoskit-seed", type=int, default=None,
                    help="seed for every collected experiment (default: random, recorded)")
    group.addoption("--chaoskit-out", default="runs",
                    help="where experiment runs write journals and reports (default: runs/)")
    group.addoption("--chaoskit-dry-run", action="store_true",
                    help="only validate and plan collected experiments")
    group.addoption("--chaoskit-set", action="append", default=[], metavar="NAME=VALUE",
                    help="a parameter's value for every collected experiment that declares it "
                         "(repeatable; e.g. a short CI variant: --chaoskit-set time_scale=...)")


def _is_experiment(file_path: Path, parent: pytest.Collector) -> bool:
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    named = any(Path(a).resolve() == file_path.resolve() for a in parent.config.args)
    if file_path.parent.name != "experiments" and not named:
        return False
    with open(file_path, "rb") as file:
        return _MARK in file.read(4096)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_experiment(file_path, parent):
        return ExperimentFile.from_parent(parent, path=file_path)
    return None


class ExperimentFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        item = ExperimentItem.from_parent(self, name=self.path.stem)
        for tag in _tags(self.path):
            self.config.addinivalue_line("markers", f"{tag}: chaoskit experiment tag")
            item.add_marker(tag)
        yield item


def _tags(path: Path) -> list[str]:
    from chaoskit.spec.loader import load_experiment
    try:
        return [t for t in load_experiment(path).metadata.tags if t.isidentifier()]
    except ChaoskitError:
        return []  # the item itself reports the problems when it runs


def sets_for(path: Path, given: list[str]) -> dict[str, str]:
    """The `--chaoskit-set` values this experiment (or the system it includes) declares: one
    flag serves a whole gate set whose experiments declare different parameters."""
    from chaoskit.errors import ProblemList
    from chaoskit.spec.loader import declared_parameters, read_document
    from chaoskit.spec.params import parse_sets
    values = parse_sets(given)
    document = read_document(path, ProblemList(str(path)))
    if document is None:
        return {}
    declared = set(declared_parameters(document, ProblemList(str(path))))
    system = document.data.get("system") if isinstance(document.data, dict) else None
    if isinstance(system, str):
        included = read_document(path.parent / system, ProblemList(system))
        if included is not None:
            declared |= set(declared_parameters(included, ProblemList(system)))
    return {k: v for k, v in values.items() if k in declared}


class ExperimentFailed(Exception):
    """The experiment's verdict was not 'held'."""


class ExperimentItem(pytest.Item):
    def runtest(self) -> None:
        from chaoskit.engine.display import PlainDisplay
        from chaoskit.engine.run import RunOptions, run_experiment
        from chaoskit.engine.window import require_allowed
        from chaoskit.history import code_version, index_run
        from chaoskit.spec.loader import load_experiment

        sets = sets_for(self.path, self.config.getoption("chaoskit_set"))
        experiment = load_experiment(self.path, sets)
        if self.config.getoption("chaoskit_dry_run"):
            return
        require_allowed(f"experiment {experiment.metadata.name}", experiment.schedule)
        out = Path(self.config.getoption("chaoskit_out"))
        display = PlainDisplay(experiment)
        options = RunOptions(seed=self.config.getoption("chaoskit_seed"), out_dir=out,
                             observer=display, parameters=sets)
        try:
            outcome = run_experiment(experiment, str(self.path), options)
        finally:
            display.close()
        with contextlib.suppress(ChaoskitError):  # the journal is the record; history helps
            index_run(out, outcome.journal, parameters=sets, code_version=code_version(Path.cwd()))
        self.user_properties.append(("journal", str(outcome.journal)))
        self.user_properties.append(("status", outcome.status))
        if outcome.exit_code != 0:
            raise ExperimentFailed(_failure_text(outcome))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, ExperimentFailed | ChaoskitError):
            value = excinfo.value
            return value.render() if isinstance(value, ChaoskitError) else str(value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"experiment {self.name}"


def _failure_text(outcome: Any) -> str:
    lines = [f"experiment {outcome.status} (exit {outcome.exit_code}); journal {outcome.journal}"]
    if outcome.message:
        lines.append(f"  error: {outcome.message}")
    from chaoskit.report.values import format_value
    for v in outcome.verdicts:
        if not v.held:
            observed = ("no samples" if v.observed is None
                        else f"observed {format_value(v.observed, v.unit)}")
            lines.append(f"  {v.status.upper()} {v.item} [{v.phase}]: expected {v.aggregate} "
                         f"{v.expect}, {observed}" + (f" ({v.note})" if v.note else ""))
            lines += [f"    e.g. {example}" for example in v.examples]
    return "\n".join(lines)


def inject(fault_type: str, platform: Any, *, name: str = "adhoc",
           target: dict[str, Any] | None = None, seed: int = 0, out_dir: str | Path = "runs",
           **magnitude: Any) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """Apply one fault for the `with` block, journaled and watched like `chaoskit run`:
    always reverted and audited on the way out, and by the watchdog if the tests die."""
    from chaoskit.engine.single import inject_fault

    return inject_fault(fault_type, platform, name=name, target=target, seed=seed,
                        out_dir=Path(out_dir), **magnitude)


@pytest.fixture(scope="session")
def chaoskit_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running local payment lab for the session (its platform); torn down, nothing left.

    `chaoskit_inject("latency", chaoskit_lab, target={"dependency": "bank"}, latency="300ms")`
    """
    from chaoskit.lab import lifecycle as lab
    from chaoskit.lab.topology import LabOptions
    from chaoskit.platforms.local.platform import LocalPlatform

    directory = tmp_path_factory.mktemp("chaoskit-lab") / "lab"
    lab.up(LabOptions(name=str(directory)))
    try:
        yield LocalPlatform(str(directory))
    finally:
        residue = lab.down(str(directory))
        if residue:
            raise AssertionError(f"the lab left residue behind: {residue}")


@pytest.fixture
def chaoskit_inject() -> Callable[..., contextlib.AbstractContextManager[dict[str, Any]]]:
    """`with chaoskit_inject("latency", platform, target={...}, latency="300ms"): ...`"""
    return inject


@pytest.fixture
def chaoskit_probe() -> Callable[..., float | None]:
    """`chaoskit_probe("money", platform, check="books-balance", system="systems/mine.yaml")`
    -> value (None when the probe had nothing to measure). `system`: the `kind: System` file
    (or a SystemSpec) declaring the promises and checks probes read."""
    def sample(probe_type: str, platform: Any, system: Any = None,
               **options: Any) -> float | None:
        from chaoskit.engine.sampling import build_probe
        from chaoskit.probes.base import ProbeContext, read_once
        from chaoskit.spec.loader import load_system
        from chaoskit.spec.models import ProbeRef

        declared = load_system(Path(system), {}) if isinstance(system, str | Path) else system
        return read_once(build_probe(ProbeRef(type=probe_type, **options),
                                     ProbeContext(platform, ".", system=declared)))
    return sample
