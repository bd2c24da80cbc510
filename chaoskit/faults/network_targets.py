"""Which Toxiproxy proxies a network fault hits, and the names of what chaoskit puts on them.

A target is `{proxy: NAME}` or `{dependency: DEP}`. A dependency `bank` means every proxy named
`bank` or `bank-*` (one per bank); `bank:alpha` means exactly `bank-alpha`; `postgres` means
`postgres` (and `postgres-*` if a platform runs several). The rule is the same for every
dependency so new ones need no code.

Everything chaoskit leaves on a server carries a name it can recognise after a crash, from the
server alone: toxics `chaoskit-<owner>-<fault>-<stream>` (owner: a tag of the run's id), the
marker `chaoskit-<owner>-<fault>-disabled` on a proxy
a `down` fault disabled, and the marker `chaoskit.created` on a proxy chaoskit created (the dot
keeps it out of every fault's `chaoskit-<fault>-` family).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.platforms.abilities import ToxiproxyAccess

STREAMS = ("downstream", "upstream")
CREATED_MARK = "chaoskit.created"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # names end up in API URL paths


def toxic_name(fault: str, stream: str) -> str:
    return f"chaoskit-{fault}-{stream}"


def disabled_mark(fault: str) -> str:
    return f"chaoskit-{fault}-disabled"


def family(fault: str) -> set[str]:
    """Every toxic name a fault may own (exact names, so fault `a` never claims `a-b`'s)."""
    return {toxic_name(fault, s) for s in STREAMS} | {disabled_mark(fault)}


def streams_of(stream: str) -> list[str]:
    return list(STREAMS) if stream == "both" else [stream]


def check_safe_name(what: str, name: str) -> None:
    if not _SAFE_NAME.match(name):
        raise FaultError(f"{what} name '{name}' cannot be used in a Toxiproxy API path",
                         hint="use letters, digits, '.', '_' and '-' only")


def declared_proxies(access: ToxiproxyAccess) -> list[dict[str, str]]:
    """The proxies a platform declares ({name, listen, upstream})."""
    declared = [dict(d) for d in access.declared_proxies()]
    for entry in declared:
        if not {"name", "listen", "upstream"} <= entry.keys():
            raise FaultError(f"the platform declares a proxy "
                             f"without name/listen/upstream: {entry}",
                             hint="declare each proxy as {name, listen, upstream}")
    return declared


def _selector(target: dict[str, Any]) -> tuple[str, str]:
    keys = set(target) & {"proxy", "dependency"}
    if len(keys) != 1 or set(target) - keys:
        raise FaultError(f"network fault target {target!r} is not understood",
                         hint="write `target: {proxy: NAME}` or `target: {dependency: bank}` "
                              "(also bank:<name>, postgres)")
    key = keys.pop()
    value = target[key]
    if not isinstance(value, str) or not value:
        raise FaultError(f"target {key} must be a name, got {value!r}",
                         hint=f"write e.g. `{key}: bank`")
    return key, value


def _matches(key: str, value: str) -> tuple[str | None, Callable[[str], bool]]:
    """(exact name, if the selector names one proxy; predicate over proxy names)."""
    if key == "proxy":
        return value, lambda n: n == value
    if ":" in value:
        dep, _, member = value.partition(":")
        exact = f"{dep}-{member}"
        return exact, lambda n: n == exact
    return None, lambda n: n == value or n.startswith(value + "-")


def resolve_proxies(target: dict[str, Any], declared: Iterable[str],
                    listed: Callable[[], Iterable[str]]) -> list[str]:
    """Proxy names the target selects: those declared plus those the server lists."""
    key, value = _selector(target)
    exact, wanted = _matches(key, value)
    if exact is not None:
        check_safe_name("proxy", exact)
        return [exact]
    names = {n for n in declared if wanted(n)}
    try:
        names |= {n for n in listed() if wanted(n)}
    except ChaoskitError:
        if not names:
            raise  # declared proxies alone still make a plan: inject creates them
    if not names:
        raise FaultError(f"no Toxiproxy proxy stands for dependency '{value}'",
                         hint=f"name proxies '{value}' or '{value}-<name>', or declare them in "
                              "the platform so chaoskit creates them")
    for name in names:
        check_safe_name("proxy", name)
    return sorted(names)
