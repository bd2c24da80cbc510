"""The layering ARCHITECTURE.md draws, checked on the code: no import runs upward, and no
platform attribute is looked up by name outside the ability check."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chaoskit"

# Lowest first; a module may import its own layer and the ones below. The most specific
# prefix wins (the platform contracts sit below the platforms that implement them).
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("chaoskit.errors", "chaoskit.toolchain")),
    (1, ("chaoskit.registry", "chaoskit.journal", "chaoskit.exposition", "chaoskit.spec",
         "chaoskit.toxiproxy", "chaoskit.schedules", "chaoskit.history", "chaoskit.notify")),
    (2, ("chaoskit.load", "chaoskit.stack", "chaoskit.platforms.abilities",
         "chaoskit.platforms.calls")),
    (3, ("chaoskit.platforms", "chaoskit.lab")),
    (4, ("chaoskit.faults", "chaoskit.probes")),
    (5, ("chaoskit.report",)),
    (6, ("chaoskit.engine",)),
    (7, ("chaoskit.cli", "chaoskit.pytest_plugin", "chaoskit.demo", "chaoskit.exporter",
         "chaoskit.testing", "chaoskit.__main__")),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """chaoskit modules imported anywhere in the file (functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("chaoskit.")}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "chaoskit":
                found |= {f"chaoskit.{a.name}" for a in node.names}
            elif node.module.startswith("chaoskit."):
                found.add(node.module)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py")
                if module_name(p) != "chaoskit" and layer_of(module_name(p)) is None]
    assert unplaced == [], "give these a layer in LAYERS (and in ARCHITECTURE.md)"


def test_no_import_runs_against_the_layering() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        own = layer_of(module)
        for target in imports(path):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} ({own}) imports {target} ({theirs})")
    assert upward == []


def test_the_reference_stack_imports_nothing_of_the_toolkit_above_spec() -> None:
    """The system under test stands alone: it must not depend on the tool that breaks it."""
    for path in (PACKAGE / "stack").rglob("*.py"):
        for target in imports(path):
            assert target.startswith(("chaoskit.stack", "chaoskit.errors", "chaoskit.spec")), (
                f"{module_name(path)} imports {target}")


_BY_NAME = re.compile(r"\b(getattr|hasattr)\(\s*(self\.)?(platform|_platform|plane|target)\b")


def test_no_platform_attribute_is_looked_up_by_name() -> None:
    """Abilities are asked through `require`/`isinstance` on the protocols, never by name."""
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in PACKAGE.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if _BY_NAME.search(line)]
    assert found == []


def test_the_repository_documents_its_architecture() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    for heading in ("How to add a fault", "How to add a probe", "How to add a load shape",
                    "How to add a platform", "Layers"):
        assert heading in text
