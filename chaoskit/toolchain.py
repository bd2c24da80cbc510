"""Where chaoskit finds the real servers it drives (Toxiproxy, HAProxy, Prometheus, ...)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from chaoskit.errors import PlatformError

CACHE = Path(os.environ.get("CHAOSKIT_CACHE", Path.home() / ".cache" / "chaoskit"))

_INSTALL_HINTS = {
    "toxiproxy-server": "run `make setup` (it runs `go install github.com/Shopify/toxiproxy/v2/"
                        "cmd/server@v2.12.0` into ~/.cache/chaoskit/bin)",
    "haproxy": "run `make setup` or `apt-get install haproxy`",
    "nginx": "run `make setup` or `apt-get install nginx-light`",
    "wrk": "run `make setup` or `apt-get install wrk`",
    "prometheus": "run `make setup` or `apt-get install prometheus`",
    "chromium": "run `make setup` or `apt-get install chromium`",
}


def find_binary(name: str) -> str | None:
    """Path of a tool: $CHAOSKIT_<NAME>, then ~/.cache/chaoskit/bin, then PATH, then /usr/sbin."""
    override = os.environ.get("CHAOSKIT_" + name.upper().replace("-", "_"))
    if override and os.access(override, os.X_OK):
        return override
    cached = CACHE / "bin" / name
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def require_binary(name: str) -> str:
    """Like find_binary, but a missing tool is an error that says how to install it."""
    path = find_binary(name)
    if path is None:
        raise PlatformError(f"{name} is not installed",
                            hint=_INSTALL_HINTS.get(name, f"install {name}"))
    return path
