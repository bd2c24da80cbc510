"""Reverting what chaoskit left on a container engine without a journal, from its labels.

`recover_containers(engine, run=None)` undoes every node-loss mark (a killed or stopped
container is started at its address, a paused one unpaused, a disconnected one reconnected),
removes every replica chaoskit added and every offline batch container, then looks again.
With `run` only that run's changes are touched. Meant for `chaoskit recover --containers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import docker
from docker.errors import DockerException

from chaoskit.platforms.containers import capacity, colocation, marks, nodes
from chaoskit.platforms.containers.engine import connect, engine_url
from chaoskit.platforms.containers.views import RUN, ContainerView


@dataclass
class ContainersRecovery:
    """What was undone, what could not be, and what is still there afterwards (clean: none)."""

    engine: str
    undone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.failed or self.left)

    def lines(self) -> list[str]:
        out = [f"undone: {line}" for line in self.undone]
        out += [f"COULD NOT UNDO: {line}" for line in self.failed]
        out += [f"still there: {line}" for line in self.left]
        verdict = "nothing of chaoskit's is left" if self.clean else "some changes remain"
        return [*out, f"containers ({self.engine}): {verdict}"]


def recover_containers(engine: str | None = None, run: str | None = None
                       ) -> ContainersRecovery:
    """Undo chaoskit's labelled changes on the engine at `engine` (discovered as the platform
    does when None), of `run` only when given. An engine that does not answer is reported as
    a failure, not raised."""
    url = engine_url(engine)
    report = ContainersRecovery(url)
    try:
        client = connect(url)
    except DockerException as exc:
        report.failed.append(f"no engine answers at {url}: {exc}")
        return report
    except Exception as exc:  # noqa: BLE001 - PlatformError and friends: the finding itself
        report.failed.append(str(exc))
        return report
    try:
        _undo_marks(client, run, report)
        _remove(client, capacity.replicas(client, run=run), "replica", report)
        _remove(client, colocation.views(client, run=run), "offline container", report)
        report.left = leftovers(client, run)
    finally:
        client.close()
    return report


def _undo_marks(client: docker.DockerClient, run: str | None,
                report: ContainersRecovery) -> None:
    for mark in marks.find(client, run=run):
        try:
            report.undone += nodes.undo(client, mark) or [f"{mark.describe()} removed"]
        except Exception as exc:  # noqa: BLE001 - each mark on its own; the rest goes on
            report.failed.append(f"{mark.describe()}: {exc}")


def _remove(client: docker.DockerClient, views: list[ContainerView], what: str,
            report: ContainersRecovery) -> None:
    for view in views:
        try:
            capacity.remove(client, view)
        except Exception as exc:  # noqa: BLE001 - each container on its own
            report.failed.append(f"{what} {view.name}: {exc}")
            continue
        report.undone.append(f"removed {what} {view.name} (run {view.labels.get(RUN, '?')})")


def leftovers(client: docker.DockerClient, run: str | None = None) -> list[str]:
    """Everything of chaoskit's still on the engine (of `run` only, if given)."""
    found = [m.describe() for m in marks.find(client, run=run)]
    found += [f"replica container {v.name} remains" for v in capacity.replicas(client, run=run)]
    found += [f"offline container {v.name} remains"
              for v in colocation.views(client, run=run)]
    return found
