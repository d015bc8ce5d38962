"""The decoupled design in the import graph: image segmenters and temporal propagators never
import each other; only ``deva.models`` (the builders) and the callers above know both."""

from __future__ import annotations

import ast
from pathlib import Path

import deva

ROOT = Path(deva.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    found: set[str] = set()
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def offenders(package: str, forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name == f"deva.{forbidden}" or name.startswith(f"deva.{forbidden}.")
    ]


def test_segmenters_do_not_import_propagation() -> None:
    assert offenders("segmenters", "propagation") == []


def test_propagation_does_not_import_segmenters() -> None:
    assert offenders("propagation", "segmenters") == []


def test_the_check_sees_lazy_and_relative_imports() -> None:
    """The parser finds an import inside a function and a relative one (so the checks above
    can fail)."""
    source = ROOT / "propagation" / "network" / "__init__.py"
    assert "deva.propagation.network.checkpoint" in imported_modules(source)
    assert "deva.propagation.sam_video" in imported_modules(ROOT / "models" / "builders.py")
