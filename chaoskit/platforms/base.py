"""Where faults land: the narrow interface drivers ask for nodes, proxies and processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from chaoskit.errors import PlatformError


@dataclass(frozen=True)
class NodeInfo:
    """A failure domain: a netns+cgroup node in the lab, a Node on Kubernetes."""

    name: str
    address: str
    roles: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


class Platform(Protocol):
    """What a driver may ask of the place it runs. Unsupported abilities raise PlatformError."""

    name: str

    def describe(self) -> dict[str, Any]:
        """JSON-able description written to the journal header, enough to rebuild the platform
        (with `platform_from_description`) in `chaoskit recover` and the watchdog."""
        ...

    def toxiproxy_url(self) -> str:
        """Base URL of the Toxiproxy API serving this platform's proxies."""
        ...

    def nodes(self) -> list[NodeInfo]: ...

    def node_for_role(self, role: str) -> str:
        """Name of the node hosting a role (e.g. 'scheduler-leader', 'worker-most-leases')."""
        ...

    async def preflight(self) -> list[str]:
        """Problems that stop a run before anything is injected (unreachable, no permission)."""
        ...


def unsupported(platform: str, ability: str, hint: str = "") -> PlatformError:
    return PlatformError(f"the {platform} platform cannot {ability}", hint=hint)
