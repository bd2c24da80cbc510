"""The gate set against container nodes: every shipped experiment tagged `gate` with
`platform: local` runs, as shipped and with one seed, on the session's container lab, and must
get the verdict it gets on netns nodes (the session's netns lab; process nodes without root).

`held` is the verdict the gate demands of every one of them on netns (`make gate` fails
otherwise), so a container run that holds passes at once. Any other verdict is compared item
by item with a run of the same file on the netns lab: the same verdict there means the
experiment, not the runtime, decided it. Two verdicts that differ get one more pair of runs
before the test fails, and a run the load engine could not drive at the declared rate
(inconclusive: its CPU saturated, which says nothing of the system) is run once more: the
machine has 2 cores that other tests may share, and a latency budget blown by a neighbour's
burst is not a difference between the runtimes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.spec.loader import load_experiment
from tests.fixtures.lab import RunningLab

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED = 20261111


def gate_set() -> list[Path]:
    found = []
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text()) or {}
        tags = (spec.get("metadata") or {}).get("tags") or []
        if "gate" in tags and (spec.get("target") or {}).get("platform") == "local":
            found.append(path)
    return found


def pointed_at(path: Path, lab_dir: str, into: Path) -> Path:
    """The shipped file aimed at one lab (`target.lab`), its system file found from anywhere."""
    text = path.read_text().replace("  platform: local\n", f"  platform: local\n  lab: {lab_dir}\n",
                                    1)
    text = text.replace("system: systems/", f"system: {ROOT}/experiments/systems/")
    into.mkdir(parents=True, exist_ok=True)
    copy = into / path.name
    copy.write_text(text)
    return copy


Verdicts = tuple[str, dict[tuple[str, str], str]]


def judged(path: Path, out: Path) -> Verdicts:
    """(run status, {(item, phase): status}); an inconclusive run gets one more try."""
    for _ in range(2):
        outcome = run_experiment(load_experiment(path, {}), str(path),
                                 RunOptions(seed=SEED, out_dir=out, observer=None))
        found = (outcome.status, {(v.item, v.phase): v.status for v in outcome.verdicts})
        if outcome.status != "inconclusive":
            break
    return found


def table(found: Verdicts) -> str:
    return f"{found[0]}: " + ", ".join(f"{i}[{p}]={s}" for (i, p), s in sorted(found[1].items()))


# `make test` runs the shortest (a slow bank and retries to it, money reconciled); the rest are
# marked long (`make test-long`); tests/integration/test_lab_containers.py kills, freezes and
# isolates container nodes in make test
SHORT = {"resent-requests-slow-db"}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=() if p.stem in SHORT
                                               else pytest.mark.long) for p in gate_set()])
def test_gate_experiment_gets_the_same_verdict_on_container_nodes(
        path: Path, lab: RunningLab, container_lab: RunningLab, tmp_path: Path) -> None:
    netns, containers = (pointed_at(path, lab.dir, tmp_path / "netns"),
                         pointed_at(path, container_lab.dir, tmp_path / "containers"))
    on_containers = judged(containers, tmp_path / "runs")
    print(f"\n{path.stem}\n  container nodes: {table(on_containers)}")
    if on_containers[0] == "held":
        return  # the verdict the gate demands on netns nodes
    for attempt in range(2):
        if attempt:
            on_containers = judged(containers, tmp_path / "runs")
            print(f"  container nodes: {table(on_containers)}")
        on_netns = judged(netns, tmp_path / "runs")
        print(f"  {lab.state.mode} nodes: {table(on_netns)}")
        if on_containers == on_netns:
            return
    assert on_containers == on_netns


def test_the_gate_set_is_not_empty() -> None:
    assert len(gate_set()) >= 5
    assert {p.stem for p in gate_set()} >= SHORT
