"""Where faults land. Platforms register in the `chaoskit.platforms` entry-point group; their
abilities are the protocols of `chaoskit.platforms.abilities`."""

from __future__ import annotations

from typing import Any

from chaoskit import registry
from chaoskit.platforms.abilities import Platform


def platform_for(target: Any) -> Platform:
    """The platform for a validated `target:` section."""
    platform: Platform = registry.get(registry.PLATFORMS, target.platform).from_target(target)
    return platform


def platform_from_description(description: dict[str, Any]) -> Platform:
    """Rebuild a platform from the journal header (for recover and the watchdog)."""
    cls = registry.get(registry.PLATFORMS, description["platform"])
    platform: Platform = cls.from_description(description)
    return platform
