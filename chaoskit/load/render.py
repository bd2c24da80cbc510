"""Requests from templates, compiled to Python once per run, rendered per arrival in a few µs.

A flow's request (chaoskit.spec.system.RequestSpec, checked by chaoskit.spec.templates) becomes
one generated function `build(seq, key, v) -> bytes` whose constant parts are pre-encoded
bytes: the open-model loop calls it on its hot path. Randomness is seeded by (run seed, arrival),
so the same seed sends the same requests. Environment values are read here, in the worker,
and never leave it.
"""

from __future__ import annotations

import ast
import json
import os
import uuid as uuid_module
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from chaoskit.spec.templates import BUILTIN_NAMES, parse_template

Build = Callable[[int, str, dict[str, Any]], bytes]
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class Rng:
    """splitmix64: a seeded stream per arrival, cheap enough for the hot path."""

    __slots__ = ("state",)

    def __init__(self, seed: int, seq: int) -> None:
        self.state = (seed * _GOLDEN + seq * 0xBF58476D1CE4E5B9) & _MASK

    def next(self) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def integer(self, low: int, high: int) -> int:
        return low + self.next() % (high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * (self.next() >> 11) / (1 << 53)

    def choice(self, options: list[Any]) -> Any:
        return options[self.next() % len(options)]

    def amount(self, low: float, high: float) -> str:
        cents = self.integer(round(low * 100), round(high * 100))
        return f"{cents // 100}.{cents % 100:02d}"

    def uuid(self) -> str:
        return str(uuid_module.UUID(int=(self.next() << 64) | self.next(), version=4))


class _Expr(ast.NodeTransformer):
    """A checked template expression rewritten onto the build function's names."""

    def __init__(self, captured: set[str]) -> None:
        self.captured = captured
        self.random = False

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ("seq", "key", "flow"):
            return node
        if node.id == "uuid":
            self.random = True
            return _call("r", "uuid")
        if node.id in ("str", "int"):
            return node
        return ast.Subscript(value=ast.Name("v", ast.Load()), slice=ast.Constant(node.id),
                             ctx=ast.Load())

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = node.value
        if isinstance(base, ast.Name) and base.id == "env":
            return ast.Constant(os.environ.get(node.attr, ""))  # read once, in the worker
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        args = [self.visit(a) for a in node.args]
        if isinstance(func, ast.Name) and func.id == "amount":
            self.random = True
            return ast.Call(_attr("r", "amount"), args, [])
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            self.random = True
            method = {"int": "integer", "float": "uniform"}.get(func.attr, func.attr)
            return ast.Call(_attr("r", method), args, [])
        return ast.Call(func, args, [])


def _attr(name: str, attr: str) -> ast.Attribute:
    return ast.Attribute(value=ast.Name(name, ast.Load()), attr=attr, ctx=ast.Load())


def _call(name: str, attr: str) -> ast.Call:
    return ast.Call(_attr(name, attr), [], [])


class _Writer:
    """Collects the build function's parts: pre-encoded bytes and expression code."""

    def __init__(self, captured: set[str]) -> None:
        self.captured = captured
        self.random = False

    def code(self, expression: str) -> str:
        rewrite = _Expr(self.captured)
        tree = rewrite.visit(ast.parse(expression, mode="eval"))
        self.random = self.random or rewrite.random
        return ast.unparse(ast.fix_missing_locations(tree))

    def text(self, source: str, escape: str = "") -> list[str]:
        """Code pieces (each evaluating to bytes) for a text template; inserted values are
        escaped as `escape` asks (url: percent-encoded; json: a JSON string's insides)."""
        pieces = []
        for part in parse_template(source).parts:
            if not part.expression:
                text = quote(part.text, safe="") if escape == "form" else part.text
                pieces.append(repr(text.encode()))
            else:
                value = f"str({self.code(part.text)})"
                if escape == "url":  # a path: a captured path (a Location) keeps its slashes
                    value = f"_quote({value}, safe='/:@')"
                elif escape == "form":
                    value = f"_quote({value}, safe='')"
                elif escape == "json":
                    value = f"_json_inner({value})"
                pieces.append(f"{value}.encode()")
        return pieces

    def json_value(self, value: Any) -> list[str]:
        if isinstance(value, str):
            template = parse_template(value)
            if template.single:
                return [f"_json({self.code(template.parts[0].text)}).encode()"]
            if template.constant:
                return [repr(json.dumps(value).encode())]
            return ["b'\"'", *self.text(value, "json"), "b'\"'"]
        if isinstance(value, dict):
            pieces = ["b'{'"]
            for i, (key, item) in enumerate(value.items()):
                pieces += (["b','"] if i else []) + self.json_value(str(key)) + ["b':'"]
                pieces += self.json_value(item)
            return [*pieces, "b'}'"]
        if isinstance(value, list):
            pieces = ["b'['"]
            for i, item in enumerate(value):
                pieces += (["b','"] if i else []) + self.json_value(item)
            return [*pieces, "b']'"]
        return [repr(json.dumps(value).encode())]


def _merge(pieces: list[str]) -> list[str]:
    """Adjacent constant bytes joined into one literal."""
    merged: list[str] = []
    for piece in pieces:
        if merged and piece.startswith("b") and merged[-1].startswith("b") and \
                _literal(piece) and _literal(merged[-1]):
            merged[-1] = repr(ast.literal_eval(merged[-1]) + ast.literal_eval(piece))
        else:
            merged.append(piece)
    return merged


def _literal(piece: str) -> bool:
    try:
        return isinstance(ast.literal_eval(piece), bytes)
    except (ValueError, SyntaxError):
        return False


def compile_request(request: dict[str, Any], *, host: str, port: int, prefix: str,
                    seed: int, captured: set[str], flow: str) -> Build:
    """`request` is a RequestSpec dumped by alias (method, path, query, headers, json, form,
    body); the result renders the whole HTTP/1.1 request for (seq, key, captured values)."""
    writer = _Writer(captured)
    body, content_type = _body(writer, request)
    line = [repr(f"{request.get('method', 'POST')} {prefix}".encode()),
            *writer.text(request["path"], "url")]
    for i, (name, value) in enumerate((request.get("query") or {}).items()):
        line += [repr(("&" if i else "?").encode()), *writer.text(name, "form"), "b'='",
                 *writer.text(value, "form")]
    head = [*line, repr(f" HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())]
    headers = {k: v for k, v in (request.get("headers") or {}).items()}
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    for name, value in headers.items():
        head += [*writer.text(name), "b': '", *writer.text(value), "b'\\r\\n'"]
    source = _source(_merge(head), _merge(body), writer.random)
    scope: dict[str, Any] = {"_json": _dumps, "_json_inner": _json_inner, "_quote": quote,
                             "_Rng": Rng, "_seed": seed, "flow": flow}
    exec(compile(source, f"<flow {flow}>", "exec"), scope)  # noqa: S102 - checked templates
    build: Build = scope["build"]
    return build


def _body(writer: _Writer, request: dict[str, Any]) -> tuple[list[str], str]:
    if request.get("json") is not None:
        return writer.json_value(request["json"]), "application/json"
    if request.get("form") is not None:
        pieces: list[str] = []
        for i, (name, value) in enumerate(request["form"].items()):
            pieces += (["b'&'"] if i else []) + writer.text(name, "form") + ["b'='"]
            pieces += writer.text(value, "form")
        return pieces, "application/x-www-form-urlencoded"
    if request.get("body") is not None:
        return writer.text(request["body"]), "text/plain; charset=utf-8"
    return [], ""


def _source(head: list[str], body: list[str], random: bool) -> str:
    lines = ["def build(seq, key, v):"]
    if random:
        lines.append("    r = _Rng(_seed, seq)")
    lines.append(f"    body = b''.join(({', '.join(body)},))" if body else "    body = b''")
    lines.append(f"    head = b''.join(({', '.join(head)},))")
    lines.append("    return head + b'Content-Length: ' + str(len(body)).encode() + "
                 "b'\\r\\n\\r\\n' + body")
    return "\n".join(lines)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_inner(text: str) -> str:
    return json.dumps(text)[1:-1]


def variables() -> frozenset[str]:
    return BUILTIN_NAMES
