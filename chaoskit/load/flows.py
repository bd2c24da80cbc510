"""A worker's flows: which request arrival k sends, whether its answer is a success, and the
values captured from answers for later requests (a refund of a payment created earlier).

Captured values live in this worker's pools (the most recent POOL_LIMIT per capture), each
usable `uses` times. A flow that needs a value no answer has given yet sends its `otherwise`
flow instead, or is skipped and counted as starved: the mix a run actually drove is on record
either way.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chaoskit.load.render import Build, compile_request

STARVED = -1  # build() could not send this arrival: a value it needs was never captured
# Captured values a worker keeps per capture: a game day of hours captures millions of ids that
# later flows never use up (payments outnumber refunds); past this, the oldest are forgotten,
# so a worker's memory does not grow with the run's length.
POOL_LIMIT = 50_000


def pointer_tokens(pointer: str) -> list[str]:
    """RFC 6901 pointer (/a/b/0) or a simple path ($.a.b[0]) as a list of keys."""
    if pointer.startswith("$"):
        return [t for t in re.split(r"\.|\[(\d+)\]", pointer[1:]) if t]
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def resolve(document: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        elif isinstance(document, dict) and token in document:
            document = document[token]
        else:
            return None
    return document


@dataclass
class CompiledFlow:
    name: str
    build: Build
    statuses: frozenset[int]  # empty: any 2xx
    fields: list[tuple[list[str], list[Any]]]  # body pointer -> accepted values
    captures: list[tuple[str, list[str] | None, str | None, int]]  # name, pointer, header, uses
    needs: list[str]
    otherwise: int = STARVED
    books: bool = True

    def succeeded(self, status: int, body: Any) -> bool:
        ok = status in self.statuses if self.statuses else 200 <= status < 300
        return ok and all(resolve(body, tokens) in values for tokens, values in self.fields)


@dataclass
class FlowSet:
    """The flows of one worker, in the plan's order, with the pools of captured values."""

    flows: list[CompiledFlow]
    pools: dict[str, deque[list[Any]]] = field(default_factory=dict)
    starved: list[int] = field(default_factory=list)
    substituted: list[int] = field(default_factory=list)  # sent as their `otherwise` flow

    @classmethod
    def compile(cls, specs: list[dict[str, Any]], *, host: str, port: int, prefix: str,
                seed: int) -> FlowSet:
        names = [s["name"] for s in specs]
        captured = {c for s in specs for c in s.get("captures", {})}
        flows = [_compile(s, names, captured, host, port, prefix, seed) for s in specs]
        pools: dict[str, deque[list[Any]]] = {c: deque() for c in captured}
        return cls(flows, pools, [0] * len(flows), [0] * len(flows))

    @property
    def wants_body(self) -> bool:
        return any(f.fields or any(p for _, p, _, _ in f.captures) for f in self.flows)

    @property
    def wants_headers(self) -> bool:
        return any(h for f in self.flows for _, _, h, _ in f.captures)

    def build(self, k: int, index: int, key: str) -> tuple[bytes, int]:
        """(request bytes, index of the flow actually sent) for arrival k; STARVED when
        neither the flow nor its `otherwise` can be sent yet."""
        flow = self.flows[index]
        if not flow.needs:
            return flow.build(k, key, {}), index
        values = self._take(flow.needs)
        if values is not None:
            return flow.build(k, key, values), index
        if flow.otherwise != STARVED:
            self.substituted[index] += 1
            return self.build(k, flow.otherwise, key) if self.flows[flow.otherwise].needs \
                else (self.flows[flow.otherwise].build(k, key, {}), flow.otherwise)
        self.starved[index] += 1
        return b"", STARVED

    def _take(self, names: list[str]) -> dict[str, Any] | None:
        if any(not self.pools[n] for n in names):
            return None
        values = {}
        for name in names:
            pool = self.pools[name]
            entry = pool.popleft()
            values[name] = entry[0]
            entry[1] -= 1
            if entry[1] > 0:
                pool.append(entry)  # used again later, after the others
        return values

    def answered(self, index: int, status: int, body: bytes,
                 headers: dict[str, str] | None) -> tuple[bool, dict[str, Any]]:
        """(success, values captured) for an answer to flow `index`."""
        flow = self.flows[index]
        parsed = _parse(body) if body and (flow.fields or flow.captures) else None
        if not flow.succeeded(status, parsed):
            return False, {}
        found = {}
        for name, tokens, header, uses in flow.captures:
            value = (resolve(parsed, tokens) if tokens is not None
                     else (headers or {}).get((header or "").lower()))
            if value is not None:
                found[name] = value
                pool = self.pools[name]
                pool.append([value, uses])
                if len(pool) > POOL_LIMIT:
                    pool.popleft()
        return True, found


def _compile(spec: dict[str, Any], names: list[str], captured: set[str], host: str, port: int,
             prefix: str, seed: int) -> CompiledFlow:
    success = spec.get("success") or {}
    captures = [(name, pointer_tokens(c["json"]) if c.get("json") else None,
                 c.get("header"), int(c.get("uses", 1)))
                for name, c in (spec.get("captures") or {}).items()]
    build = compile_request(spec["request"], host=host, port=port, prefix=prefix, seed=seed,
                            captured=captured, flow=spec["name"])
    needs = sorted(_needs(spec["request"], captured))
    otherwise = names.index(spec["otherwise"]) if spec.get("otherwise") in names else STARVED
    return CompiledFlow(spec["name"], build, frozenset(success.get("status") or ()),
                        [(pointer_tokens(p), list(v))
                         for p, v in (success.get("json") or {}).items()],
                        captures, needs, otherwise, bool(spec.get("books", True)))


def _needs(request: dict[str, Any], captured: set[str]) -> set[str]:
    from chaoskit.spec.templates import parse_template, templates_in

    strings = [request.get("path", ""), *templates_in(request.get("query")),
               *templates_in(request.get("headers")), *templates_in(request.get("json")),
               *templates_in(request.get("form")), request.get("body") or ""]
    return {n for s in strings for n in parse_template(s).names if n in captured}


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
