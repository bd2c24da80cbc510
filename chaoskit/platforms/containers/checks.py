"""The containers platform's preflight: the engine answers and the target names what exists.

Read-only: every problem says what to do, and nothing is created, stopped or changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaoskit.errors import ChaoskitError
from chaoskit.platforms.containers.engine import answers
from chaoskit.platforms.containers.inventory import Inventory
from chaoskit.platforms.containers.views import Selection, services_of
from chaoskit.toxiproxy import ToxiproxyServer

if TYPE_CHECKING:
    from chaoskit.platforms.containers.platform import ContainersPlatform


def preflight(platform: ContainersPlatform) -> list[str]:
    if not answers(platform.engine, timeout=2.0):
        return [f"no container engine answers at {platform.engine}: start it (Docker, or "
                "`podman system service`), or set target.engine (or DOCKER_HOST) to one that "
                "does"]
    selection = platform.selection
    if selection.empty:
        return ["target selects no containers: set target.project (a compose project), "
                "target.containers (names) or target.labels"]
    try:
        inventory = platform.inventory()
    except ChaoskitError as exc:
        return [f"{exc.message} ({exc.hint})" if exc.hint else exc.message]
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the engine is the finding
        return [f"cannot list containers at {platform.engine}: {exc}"]
    problems = selection_problems(inventory, platform.engine)
    problems += _named_problems(inventory, platform.config.health, "target.health")
    if platform.toxiproxy_configured():
        problems += _toxiproxy_problems(platform.toxiproxy_url())
    return problems


def selection_problems(inventory: Inventory, engine: str) -> list[str]:
    """The project, its services, the named containers and the labels all exist."""
    selection = inventory.selection
    problems = _project_problems(inventory, engine) if selection.project else []
    present = {v.name for v in inventory.views}
    problems += [f"no container named '{name}' on {engine}: check `docker ps -a` and fix "
                 "target.containers" for name in selection.containers if name not in present]
    if selection.labels and not selection.project and not inventory.nodes:
        wanted = ", ".join(f"{k}={v}" for k, v in selection.labels.items())
        problems.append(f"no container carries the labels {wanted} on {engine}: fix "
                        "target.labels")
    if not problems and not inventory.nodes:
        problems.append("the target selects no container: check target.project, "
                        "target.services, target.containers and target.labels")
    return problems + _capacity_problems(inventory)


def _project_problems(inventory: Inventory, engine: str) -> list[str]:
    selection = inventory.selection
    services = services_of([v for v in inventory.views if v.project == selection.project])
    if not services:
        return [f"compose project '{selection.project}' has no containers on {engine}: bring "
                f"it up (`docker compose -p {selection.project} up -d`) or fix target.project"]
    return [f"compose project '{selection.project}' has no service '{name}' (its services: "
            f"{', '.join(services)}): fix target.services"
            for name in selection.services if name not in services]


def _capacity_problems(inventory: Inventory) -> list[str]:
    base = inventory.selection.capacity
    if base is None or inventory.serving(base):
        return []
    return [f"target.capacity '{base}' is no {_kind(inventory.selection)} among the target's "
            f"nodes ({', '.join(inventory.nodes) or 'none'}): name the one scale +N copies"]


def _kind(selection: Selection) -> str:
    return "service" if selection.project else "node"


def _named_problems(inventory: Inventory, named: dict[str, str], field: str) -> list[str]:
    known = set(inventory.nodes) | {v.service for v in inventory.nodes.values() if v.service}
    return [f"{field} names '{name}', which is no node or service of the target (nodes: "
            f"{', '.join(inventory.nodes) or 'none'})" for name in named if name not in known]


def _toxiproxy_problems(url: str) -> list[str]:
    try:
        ToxiproxyServer(url).version()
    except ChaoskitError as exc:
        return [exc.message]
    return []
