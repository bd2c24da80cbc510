"""chaoskit's cgroups for the user's processes: chaoskit/processes/<run>/... in each hierarchy.

v1 controllers (freezer, cpu, cpuset) live under /sys/fs/cgroup/<controller>/, the v2 hierarchy
(for iptables' `-m cgroup --path`) under /sys/fs/cgroup/unified/ on a hybrid machine or
/sys/fs/cgroup/ itself on a v2-only one. A process moved into one of them is moved back to the
group it came from (recorded in a mark), or to the hierarchy's root if that is gone. On a
systemd host a `unit:` service's processes leave the unit's group for the fault's duration:
systemd keeps tracking its main pid, but the unit's own cgroup limits do not apply meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

from chaoskit.errors import PlatformError
from chaoskit.lab import cgroups
from chaoskit.platforms.processes import procfs

TOP = (cgroups.TOP, "processes")
V2 = ""  # the name procfs.cgroup_of uses for the v2 hierarchy


def mount(hierarchy: str) -> Path | None:
    """Where a hierarchy is mounted: a v1 controller's directory, or the v2 one (None: none)."""
    if hierarchy != V2:
        path = cgroups.ROOT / hierarchy
        return path if (path / "cgroup.procs").exists() else None
    for path in (cgroups.ROOT / "unified", cgroups.ROOT):
        if (path / "cgroup.controllers").exists():
            return path
    return None


def group(hierarchy: str, run: str, *parts: str) -> Path:
    root = mount(hierarchy)
    if root is None:
        raise PlatformError(f"no {'cgroup v2' if hierarchy == V2 else hierarchy} hierarchy "
                            f"under {cgroups.ROOT}", hint="mount it, or use another mode")
    return root.joinpath(*TOP, run, *parts)


def relative(path: Path) -> str:
    """The group's path inside its hierarchy, as iptables' `--path` wants it."""
    root = mount(V2)
    assert root is not None
    return str(path.relative_to(root))


def ours(hierarchy: str, *parts: str, run: str | None = None) -> list[Path]:
    """chaoskit's existing groups of a run (default: any) matching parts (glob patterns)."""
    root = mount(hierarchy)
    if root is None or not root.joinpath(*TOP).exists():
        return []
    pattern = "/".join((run or "*", *parts))
    return sorted(p for p in root.joinpath(*TOP).glob(pattern) if p.is_dir())


def make(path: Path) -> Path:
    """Create the group and its parents (cpuset levels get their parent's cpus and mems)."""
    root = _root_of(path)
    for level in reversed([path, *path.parents]):
        if level == root or root not in level.parents:
            continue
        level.mkdir(exist_ok=True)
        if (level / "cpuset.cpus").exists():
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (level / knob).read_text().strip():
                    (level / knob).write_text((level.parent / knob).read_text())
    return path


def _root_of(path: Path) -> Path:
    for hierarchy in ("freezer", "cpu", "cpuset", V2):
        root = mount(hierarchy)
        if root is not None and root in path.parents and (
                hierarchy != V2 or not any(r in path.parents for r in _v1_roots())):
            return root
    raise PlatformError(f"{path} is in no cgroup hierarchy", hint="a chaoskit bug: report it")


def _v1_roots() -> list[Path]:
    return [r for h in ("freezer", "cpu", "cpuset") if (r := mount(h)) is not None]


def move(pid: int, path: Path) -> bool:
    """Move a process (all its threads) into a group; False if it is gone."""
    try:
        (path / "cgroup.procs").write_text(str(pid))
    except ProcessLookupError:
        return False
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    return True


def move_back(pid: int, hierarchy: str, original: str | None) -> bool:
    """Back into the group it was in (its hierarchy's root if that one is gone)."""
    root = mount(hierarchy)
    if root is None:
        return False
    target = root / ("/" if ours_path(original) else original or "/").lstrip("/")
    return move(pid, target if (target / "cgroup.procs").exists() else root)


def members(path: Path) -> list[int]:
    return cgroups.members(path)


def originals(pids: list[int], hierarchy: str) -> dict[str, str]:
    """pid -> the group it is in now (to come back to)."""
    found = {str(p): procfs.cgroup_of(p, hierarchy) for p in pids}
    return {k: v for k, v in found.items() if v is not None}


def ours_path(path: str | None) -> bool:
    """Whether a cgroup path (as /proc/<pid>/cgroup shows it) is one of chaoskit's."""
    return bool(path) and ("/" + "/".join(TOP) + "/") in f"{path}/"


def remember(known: dict[str, str], pid: int, hierarchy: str, roots: tuple[int, ...]) -> None:
    """Note where a process found late (forked meanwhile) comes back to: its own group, or
    its service's when it was born inside ours."""
    if str(pid) in known:
        return
    now = procfs.cgroup_of(pid, hierarchy)
    home = next((known[str(r)] for r in roots if str(r) in known), "/")
    known[str(pid)] = home if now is None or ours_path(now) else now


def remove(path: Path) -> str:
    """rmdir the group, then its parents up to chaoskit/ when they are empty; '' when gone,
    else why it stays."""
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    root = _root_of(path)
    for parent in path.parents:
        if parent == root:
            break
        with contextlib.suppress(OSError):
            parent.rmdir()
    return ""
