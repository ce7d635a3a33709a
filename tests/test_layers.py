"""The three layers are folders, and the imports keep to them:

    edge/core   the shared core        imports no other layer
    train/      stages                 import edge.core (convert may also use train's registry)
    convert/
    edge/explain
    edge/app    application (CLI, server, validation, evaluation, benchmarks): may import anything

Checked on the source (AST), including imports inside functions, so a lazy import cannot
slip a dependency past the rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package prefix -> prefixes it must not import
FORBIDDEN = {
    "edge.core": ("edge.app", "edge.explain", "train", "convert"),
    "train": ("edge.app", "edge.explain", "convert"),
    "convert": ("edge.app", "edge.explain"),
    "edge.explain": ("edge.app", "train", "convert"),
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    mod = _module(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


SOURCES = sorted(p for d in ("edge", "train", "convert") for p in (REPO / d).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_layer_imports(path: Path) -> None:
    mod = _module(path)
    rules = [bad for layer, bad in FORBIDDEN.items() if _under(mod, layer)]
    broken = sorted(i for i in _imports(path) for bad in rules for b in bad if _under(i, b))
    assert not broken, f"{mod} imports {broken}, above its layer"


def test_every_module_has_a_layer() -> None:
    loose = [
        str(p.relative_to(REPO)) for p in SOURCES if p.parent == REPO / "edge" and p.name not in ("__init__.py", "__main__.py")
    ]
    assert not loose, f"modules outside the layer folders: {loose}"
