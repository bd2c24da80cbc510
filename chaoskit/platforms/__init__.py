"""Pick the platform an experiment targets, or rebuild one from a journal's description."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from chaoskit.errors import PlatformError

# platform name -> "module:Class"; each class has from_target(target) and from_description(desc)
PLATFORMS = {
    "local": "chaoskit.platforms.local.platform:LocalPlatform",
    "kubernetes": "chaoskit.platforms.kubernetes.platform:KubernetesPlatform",
    "fake": "chaoskit.testing:FakePlatform",
}


def _platform_class(name: str) -> Any:
    if name not in PLATFORMS:
        raise PlatformError(f"unknown platform '{name}'",
                            hint=f"use one of: {', '.join(sorted(PLATFORMS))}")
    module, _, cls = PLATFORMS[name].partition(":")
    try:
        return getattr(import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise PlatformError(f"the {name} platform is not available here ({exc})",
                            hint="reinstall chaoskit with `make setup`") from exc


def platform_for(target: Any) -> Any:
    """The platform for a validated `target:` section."""
    return _platform_class(target.platform).from_target(target)


def platform_from_description(description: dict[str, Any]) -> Any:
    """Rebuild a platform from the journal header (for recover and the watchdog)."""
    return _platform_class(description["platform"]).from_description(description)
