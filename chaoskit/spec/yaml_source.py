"""Read a YAML file safely into plain data plus its node tree (for line/column of problems)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from chaoskit.errors import ProblemList

Loc = tuple[str | int, ...]

MAX_BYTES = 64 * 1024  # experiments are a few KiB; pure-Python YAML parses ~150 KiB/s here
MAX_DEPTH = 32  # the v1 format nests about 7 levels
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 10_000  # nodes the document would have with every alias expanded

_YAML = "tag:yaml.org,2002:"
_MERGE = _YAML + "merge"
_KNOWN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                   "timestamp")}


class Refusal(Exception):
    """A safety limit hit while parsing; carries where (0-based) and what to do."""

    def __init__(self, message: str, hint: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message, self.hint, self.line, self.column = message, hint, line, column


class BoundedComposer(Composer):
    """Composer that bounds depth and alias expansion as it goes, without expanding anything.

    Every alias adds the size its target *would* have when expanded to a running total, so a
    billion-laughs file is refused after a handful of aliases, in microseconds.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # a reused anchor is legal YAML; no stderr noise
        self._sizes: dict[int, int] = {}  # id(node) -> expanded node count, for finished nodes
        self._heights: dict[int, int] = {}  # id(node) -> expanded nesting depth below it
        self._aliases = 0
        self._expanded = 0
        self._level = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            return self._compose_alias(parent, index)
        self._level += 1
        if self._level > MAX_DEPTH:
            mark = self.parser.peek_event().start_mark
            raise Refusal(f"nesting is deeper than {MAX_DEPTH} levels",
                          "an experiment nests only a few levels; flatten the structure",
                          mark.line, mark.column)
        node = super().compose_node(parent, index)
        self._level -= 1
        self._sizes[id(node)] = self._size_of(node)
        self._heights[id(node)] = 1 + max(map(self._height, _children(node)), default=0)
        return node

    def _height(self, node: Node) -> int:
        return self._heights.get(id(node), 1)

    def _compose_alias(self, parent: Any, index: Any) -> Any:
        mark = self.parser.peek_event().start_mark
        anchor = self.parser.peek_event().anchor
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise Refusal(f"more than {MAX_ALIASES} aliases",
                          "use fewer '*' aliases; write the values out instead",
                          mark.line, mark.column)
        target = self.anchors.get(anchor)
        if target is not None and id(target) not in self._sizes:
            raise Refusal(f"alias '*{anchor}' refers to a node that contains it",
                          "remove the recursive alias", mark.line, mark.column)
        if target is not None and self._level + self._height(target) > MAX_DEPTH:
            raise Refusal(f"alias '*{anchor}' nests deeper than {MAX_DEPTH} levels here",
                          "use the alias less deep, or write the values out",
                          mark.line, mark.column)
        self._expanded += self._sizes.get(id(target), 1)
        if self._expanded > MAX_EXPANDED_NODES:
            raise Refusal(f"aliases would expand to more than {MAX_EXPANDED_NODES} nodes "
                          "(an alias bomb?)", "use fewer nested '*' aliases",
                          mark.line, mark.column)
        return super().compose_node(parent, index)

    def _size_of(self, node: Node) -> int:
        return 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) and the node tree it came from."""

    data: Any
    root: Node


@dataclass
class Spot:
    """Where a location points in the file: the deepest node found and its mapping key."""

    key: Node | None
    value: Node
    path: str


def locate(root: Node, loc: Loc) -> Spot:
    """Follow a pydantic location through the node tree; parts not in the file are skipped
    (union tags like 'spike', or a missing key, which leaves us at the mapping lacking it)."""
    spot = Spot(None, root, "")
    for part in loc:
        node = spot.value
        if isinstance(node, MappingNode) and isinstance(part, str):
            entry = _entry(node, part)
            if entry is not None:
                spot = Spot(entry[0], entry[1], f"{spot.path}.{part}" if spot.path else part)
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(
                node.value):
            spot = Spot(None, node.value[part], f"{spot.path}[{part}]")
    return spot


def _entry(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    for key_node, value_node in node.value:
        if str(key_node.tag) != _MERGE and str(key_node.value) == key:
            return key_node, value_node
    for key_node, value_node in node.value:  # `<<: *defaults` supplies keys not written here
        if str(key_node.tag) == _MERGE:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, MappingNode) and (found := _entry(source, key)):
                    return found
    return None


def decode(raw: bytes, problems: ProblemList) -> str | None:
    """Text of a file, or None with a problem when it is huge, binary or not UTF-8."""
    if len(raw) > MAX_BYTES:
        _too_big(problems)
        return None
    if b"\x00" in raw:
        line, column = _position(raw, raw.index(b"\x00"))
        problems.add(line, column, "the file is binary (it contains NUL bytes)",
                     "pass a YAML text file")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _position(raw, exc.start)
        problems.add(line, column, "the file is not UTF-8 text", "save it as UTF-8")
        return None


def _too_big(problems: ProblemList) -> None:
    problems.add(1, 1, f"the file is larger than {MAX_BYTES // 1024} KiB",
                 "an experiment is a small YAML file; check you passed the right file")


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1


def parse(text: str, problems: ProblemList) -> Document | None:
    """Compose the YAML document; syntax errors and refusals become problems."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "replace")) > MAX_BYTES:
        _too_big(problems)
        return None
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = BoundedComposer
    yaml.version = (1, 2)
    try:
        _refuse_deep_flow(text)
        root = yaml.compose(text)
    except Refusal as exc:
        problems.add(exc.line + 1, exc.column + 1, exc.message, exc.hint)
        return None
    except YAMLError as exc:
        _syntax_problem(text, exc, problems)
        return None
    if root is None:
        problems.add(1, 1, "the file is empty",
                     "start with 'apiVersion: chaoskit/v1' and 'kind: Experiment'")
        return None
    return Document(Builder(problems).build(root), root)


_FLOW_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^']|'')*'|[\[\]{}]")


def _refuse_deep_flow(text: str) -> None:
    """Refuse deep '[' / '{' nesting up front: ruamel's scanner looks up to 1024 characters
    ahead for every open bracket, a quadratic ~0.2 s before the composer sees any depth.
    Quoted strings are skipped; the composer still enforces the exact limit."""
    depth = 0
    for token in _FLOW_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(0, depth - 1)
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, token.start())
            column = token.start() - text.rfind("\n", 0, token.start()) - 1
            raise Refusal(f"nesting is deeper than {MAX_DEPTH} levels",
                          "an experiment nests only a few levels; flatten the structure",
                          line, column)


def _syntax_problem(text: str, exc: YAMLError, problems: ProblemList) -> None:
    if isinstance(exc, ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        problems.add(line, column, f"character #x{exc.character:04x} is not allowed in YAML",
                     "remove the control character")
        return
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if _tab_at(text, line, column):
        _tab_problems(text, problems)
        return
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None) if isinstance(exc, MarkedYAMLError) else None
    start = getattr(exc, "context_mark", None)
    if context and start is not None and (start.line + 1, start.column + 1) != (line, column):
        context = f"{context} that starts at {start.line + 1}:{start.column + 1}"
    problems.add(line, column, *_explain_syntax(str(what), str(context or "")))


def _explain_syntax(what: str, context: str) -> tuple[str, str]:
    if "another document" in what:
        return ("the file holds more than one YAML document",
                "put one experiment per file (remove the '---' line)")
    if "block scalar" in context:  # `expect: >= 0.999` reads as a folded text block
        return (f"YAML syntax error: {what} ({context})",
                "quote values starting with '>' or '|', e.g. expect: \">= 99.9%\"")
    message = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    return message, "fix the YAML syntax at this place"


def _tab_at(text: str, line: int, column: int) -> bool:
    lines = text.splitlines()
    return 0 < line <= len(lines) and lines[line - 1][column - 1: column] == "\t"


def _tab_problems(text: str, problems: ProblemList) -> None:
    """One problem per line indented with tabs, so all of them are fixed in one go."""
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            problems.add(number, indent.index("\t") + 1, "a tab is used for indentation",
                         "indent with spaces only (YAML does not allow tabs there)")


class Builder:
    """Turns a node tree into plain Python data; reports duplicate keys and unknown tags."""

    def __init__(self, problems: ProblemList) -> None:
        self.problems = problems
        self._done: dict[int, Any] = {}  # aliases share one object: nothing is expanded

    def build(self, node: Node) -> Any:
        if id(node) in self._done:
            return self._done[id(node)]
        self._check_tag(node)
        if isinstance(node, MappingNode):
            value: Any = {}
            self._done[id(node)] = value
            self._fill_mapping(node, value)
        elif isinstance(node, SequenceNode):
            value = []
            self._done[id(node)] = value
            value.extend(self.build(child) for child in node.value)
        else:
            value = self._scalar(node)
            self._done[id(node)] = value
        return value

    def _check_tag(self, node: Node) -> None:
        tag = str(node.tag)
        if tag in _KNOWN_TAGS or tag == _MERGE:
            return
        shown = "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag
        mark = node.start_mark
        self.problems.add(mark.line + 1, mark.column + 1, f"unknown YAML tag '{shown}'",
                          "remove the tag; chaoskit/v1 uses plain YAML values only")

    def _fill_mapping(self, node: MappingNode, out: dict[str, Any]) -> None:
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if str(key_node.tag) == _MERGE:
                self._merge(value_node, out)
                continue
            key = self._key(key_node)
            if key is None:
                continue
            if key in seen:
                first = seen[key].start_mark.line + 1
                mark = key_node.start_mark
                self.problems.add(mark.line + 1, mark.column + 1, f"duplicate key '{key}'",
                                  f"it is already set on line {first}; keep one of them")
                continue
            seen[key] = key_node
            out[key] = self.build(value_node)

    def _merge(self, value_node: Node, out: dict[str, Any]) -> None:
        """`<<: *defaults`: keys written in the mapping win over merged ones."""
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            merged = self.build(source)
            if isinstance(merged, dict):
                for key, value in merged.items():
                    out.setdefault(key, value)

    def _key(self, node: Node) -> str | None:
        self._check_tag(node)
        if isinstance(node, ScalarNode):
            return str(node.value)
        mark = node.start_mark
        self.problems.add(mark.line + 1, mark.column + 1, "a mapping key must be a plain word",
                          "write the key as a name, e.g. 'duration:'")
        return None

    def _scalar(self, node: Node) -> Any:
        tag, text = str(node.tag), str(node.value)
        try:
            return _convert(tag, text)
        except ValueError:
            mark = node.start_mark
            self.problems.add(mark.line + 1, mark.column + 1,
                              f"'{text}' does not match its tag '{tag}'", "remove the tag")
            return text


def _convert(tag: str, text: str) -> Any:
    """YAML 1.2 core schema scalars; timestamps stay strings (chaoskit parses its own times)."""
    kind = tag[len(_YAML):] if tag.startswith(_YAML) else "str"
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        digits = text.replace("_", "")
        prefixed = digits.lstrip("+-")[:2].lower() in ("0x", "0o", "0b")
        return int(digits, 0) if prefixed else int(digits, 10)
    if kind == "float":
        lowered = text.replace("_", "").lower()
        special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
        return float(special.get(lowered, lowered))
    return text
