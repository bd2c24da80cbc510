"""The one scope check: may a fault touch this node, proxy or namespace; may load go there?

Used twice with the same rules: by validation on the names an experiment writes out, and by
the engine's preflight on every target a fault resolves to (`any`, roles, patterns). Pure.
"""

from __future__ import annotations

import ipaddress
from fnmatch import fnmatch

from chaoskit.spec.models import Scope

FIELDS = {"node": "nodes", "proxy": "proxies", "namespace": "namespaces"}
LOOPBACK = ("127.0.0.0/8", "::1/128", "localhost")


def allowed(scope: Scope, kind: str) -> list[str]:
    field = FIELDS.get(kind)
    return list(getattr(scope, field)) if field else []


def admits(patterns: list[str], name: str) -> bool:
    return any(p == "any" or p == name or fnmatch(name, p) for p in patterns)


def problem(scope: Scope, kind: str, name: str, *, destructive: bool = False) -> str | None:
    """Why `kind` `name` may not be touched (None when it may)."""
    patterns = allowed(scope, kind)
    field = FIELDS.get(kind, kind)
    if not patterns:
        if destructive:
            return (f"it touches {kind} {name} but target.scope.{field} is empty: name the "
                    f"{field} it may touch (or write `{field}: any`)")
        return None
    if admits(patterns, name):
        return None
    return f"{kind} {name} is outside target.scope.{field} ({', '.join(patterns)})"


def host_admitted(host: str, patterns: list[str]) -> bool:
    """A host name or address against names, patterns and CIDRs (`any` admits all)."""
    host = host.strip("[]").lower()
    for pattern in patterns:
        if pattern == "any" or fnmatch(host, pattern.lower()):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(pattern, strict=False):
                return True
        except ValueError:
            continue
    return False


def host_problem(scope: Scope, host: str, own: list[str]) -> str | None:
    """Why load may not be sent to `host` (None when it may)."""
    if host_admitted(host, [*LOOPBACK, *own, *scope.hosts]):
        return None
    return (f"load target host {host} is not loopback, not an address the platform created, "
            "and not in target.scope.hosts: add it there if this is the system you mean to load")
