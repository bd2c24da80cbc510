"""Request templates: `{{ expression }}` in paths, headers, queries and bodies. Pure.

An expression is a small, safe subset of Python, checked here when the file is validated and
compiled into code by the load engine (`load/render.py`) when the run starts:

    seq                      the arrival's sequence number in the run (0, 1, 2, ...)
    key                      a unique idempotency key for the arrival (the same on a resend)
    flow                     the flow's name
    random.int(a, b)         a seeded whole number in [a, b]        (the same for a seed)
    random.float(a, b)       a seeded number in [a, b)
    random.choice([x, y])    one of the values
    amount(a, b)             a seeded amount with two decimals, e.g. "123.45"
    uuid                     a seeded UUID
    env.NAME                 the environment variable NAME (tokens: never journaled)
    NAME                     a value captured from an earlier response (see `captures:`)
    + - * // % and ( )       on those values; str(x), int(x) and literals ("m-", 3, [..])

A JSON value that is exactly one `{{ ... }}` keeps the expression's type (a number stays a
number); anywhere else the value is written into the text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

BUILTIN_NAMES = frozenset({"seq", "key", "flow", "uuid"})
NAMESPACES = {"random": frozenset({"int", "float", "choice"}), "env": None}  # None: any name
FUNCTIONS = frozenset({"amount", "str", "int"})
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_ALLOWED_NODES = (ast.Expression, ast.Name, ast.Load, ast.Attribute, ast.Call, ast.Constant,
                  ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.List,
                  ast.UnaryOp, ast.USub)


class TemplateError(ValueError):
    """A template that cannot be used: says what is wrong and what to write."""


@dataclass(frozen=True)
class Part:
    """A piece of a template: literal text, or an expression (its source, checked)."""

    text: str
    expression: bool = False


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[Part, ...]
    names: frozenset[str]  # captured values and builtins it reads (env.* and random.* apart)
    env: frozenset[str]

    @property
    def constant(self) -> bool:
        return not any(p.expression for p in self.parts)

    @property
    def single(self) -> bool:
        """The whole template is one expression (its value keeps its type in JSON)."""
        return len(self.parts) == 1 and self.parts[0].expression


def parse_template(source: str) -> Template:
    """Split `source` into text and checked expressions; TemplateError when one is not valid."""
    parts: list[Part] = []
    names: set[str] = set()
    env: set[str] = set()
    position = 0
    for match in _PLACEHOLDER.finditer(source):
        if match.start() > position:
            parts.append(Part(source[position:match.start()]))
        expression = match.group(1).strip()
        found_names, found_env = check_expression(expression)
        names |= found_names
        env |= found_env
        parts.append(Part(expression, expression=True))
        position = match.end()
    if position < len(source):
        parts.append(Part(source[position:]))
    if any("{{" in p.text for p in parts if not p.expression):
        raise TemplateError(f"'{source}' opens '{{{{' without closing it with '}}}}'")
    return Template(source, tuple(parts), frozenset(names), frozenset(env))


def check_expression(expression: str) -> tuple[set[str], set[str]]:
    """(names read, environment variables read); TemplateError naming what is not allowed."""
    if not expression:
        raise TemplateError("an empty '{{ }}': write an expression inside, e.g. {{ key }}")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise TemplateError(f"'{{{{ {expression} }}}}' is not an expression: {exc.msg}") from None
    names: set[str] = set()
    env: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateError(f"'{{{{ {expression} }}}}' uses {type(node).__name__.lower()}, "
                                "which templates do not allow")
        if isinstance(node, ast.Attribute):
            _check_attribute(node, expression, env)
        elif isinstance(node, ast.Call):
            _check_call(node, expression)
        elif isinstance(node, ast.Name) and node.id not in NAMESPACES and \
                node.id not in FUNCTIONS:
            names.add(node.id)
    return names, env


def _check_attribute(node: ast.Attribute, expression: str, env: set[str]) -> None:
    base = node.value
    if not isinstance(base, ast.Name) or base.id not in NAMESPACES:
        raise TemplateError(f"'{{{{ {expression} }}}}': only env.NAME and random.int/float/choice "
                            "have a dot")
    allowed = NAMESPACES[base.id]
    if allowed is not None and node.attr not in allowed:
        raise TemplateError(f"'{{{{ {expression} }}}}': random.{node.attr} does not exist; use "
                            f"random.{', random.'.join(sorted(allowed))}")
    if base.id == "env":
        env.add(node.attr)


def _check_call(node: ast.Call, expression: str) -> None:
    func = node.func
    if node.keywords:
        raise TemplateError(f"'{{{{ {expression} }}}}': write arguments by position")
    if isinstance(func, ast.Name) and func.id in FUNCTIONS:
        return
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
            func.value.id == "random":
        return
    raise TemplateError(f"'{{{{ {expression} }}}}' calls something templates do not offer; use "
                        "amount(a, b), random.int(a, b), random.float(a, b), "
                        "random.choice([...]), str(x) or int(x)")


def unknown_names(template: Template, known: set[str]) -> list[str]:
    """Names the template reads that are neither builtins nor in `known` (captures)."""
    return sorted(template.names - BUILTIN_NAMES - known)


def templates_in(value: object) -> list[str]:
    """Every string inside a JSON-like value (keys included): what may hold templates."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*templates_in(k), *templates_in(v))]
    if isinstance(value, list):
        return [t for item in value for t in templates_in(item)]
    return []
