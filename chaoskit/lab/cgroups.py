"""cgroup v1 groups of a node (cpu weight, cpuset, memory, freezer) under chaoskit/<lab>/."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from chaoskit.errors import PlatformError

ROOT = Path(os.environ.get("CHAOSKIT_CGROUP_ROOT", "/sys/fs/cgroup"))
CONTROLLERS = ("cpu", "cpuset", "memory", "freezer")
TOP = "chaoskit"


def available() -> list[str]:
    """Controllers missing from the v1 hierarchy (empty list: usable)."""
    return [c for c in CONTROLLERS if not (ROOT / c / "cgroup.procs").exists()]


def lab_groups(lab_id: str) -> list[Path]:
    return [ROOT / c / TOP / lab_id for c in CONTROLLERS]


def node_groups(lab_id: str, node: str) -> list[Path]:
    return [ROOT / c / TOP / lab_id / node for c in CONTROLLERS]


def create(lab_id: str, node: str) -> list[Path]:
    """Make the node's groups (parents first; cpuset children need cpus/mems copied down)."""
    missing = available()
    if missing:
        raise PlatformError(f"cgroup v1 controllers missing: {', '.join(missing)}",
                            hint="mount them under /sys/fs/cgroup, or run the lab without root")
    groups = node_groups(lab_id, node)
    for group in groups:
        for level in (group.parent.parent, group.parent, group):
            level.mkdir(exist_ok=True)
            if level.is_relative_to(ROOT / "cpuset"):
                _inherit_cpuset(level)
    return groups


def _inherit_cpuset(group: Path) -> None:
    for knob in ("cpuset.cpus", "cpuset.mems"):
        if not (group / knob).read_text().strip():
            (group / knob).write_text((group.parent / knob).read_text())


def freezer(lab_id: str, node: str) -> Path:
    return ROOT / "freezer" / TOP / lab_id / node


def members(group: Path) -> list[int]:
    try:
        return [int(x) for x in (group / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def freeze_state(group: Path) -> str:
    try:
        return (group / "freezer.state").read_text().strip()
    except FileNotFoundError:
        return "ABSENT"


def set_frozen(group: Path, frozen: bool, timeout: float = 5.0) -> None:
    """Freeze or thaw, waiting for the kernel to finish (FREEZING is transitional)."""
    want = "FROZEN" if frozen else "THAWED"
    if freeze_state(group) == "ABSENT":
        raise PlatformError(f"no freezer group {group}",
                            hint="is the lab up? `chaoskit lab status`")
    (group / "freezer.state").write_text(want)
    deadline = time.monotonic() + timeout
    while freeze_state(group) != want:
        if time.monotonic() > deadline:
            raise PlatformError(f"{group} did not become {want} in {timeout}s",
                                hint="a process may be stuck in the kernel; retry the thaw")
        time.sleep(0.01)


def remove(groups: list[Path]) -> list[str]:
    """Remove groups deepest first; returns the ones that could not be removed."""
    left = []
    for group in sorted(groups, key=lambda g: len(g.parts), reverse=True):
        if not group.exists():
            continue
        if freeze_state(group) == "FROZEN":
            set_frozen(group, False)
        try:
            group.rmdir()
        except OSError as exc:
            left.append(f"{group}: {exc.strerror}")
    return left


def remove_top_if_empty() -> None:
    """The shared chaoskit/ parent goes when no lab uses it (another lab may still)."""
    for controller in CONTROLLERS:
        with contextlib.suppress(OSError):
            (ROOT / controller / TOP).rmdir()
