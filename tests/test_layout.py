"""The package's layers and the one direction its imports may point.

Each module belongs to a layer; a module may import from its own layer or any layer below it,
never from one above. The walk reads every `import` statement (top level and inside functions,
where the lazy imports live), so a lazy upward import fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cno_pathway

PACKAGE = Path(cno_pathway.__file__).resolve().parent

# Highest first. A module may import from its own layer or any later one.
LAYERS = [
    ("edge", {"cli", "__main__", "commands"}),
    ("interop", {"interop"}),
    ("authoring", {"authoring"}),
    ("teaching", {"teaching"}),
    ("consult", {"consult"}),
    ("engine", {"engine"}),
    ("patient", {"patient"}),
    ("knowledge", {"knowledge"}),
    ("plumbing", {"__init__", "errors", "files", "resources", "yamlio", "wording", "terminal"}),
]
RANK = {top: rank for rank, (_, tops) in enumerate(LAYERS) for top in tops}


def _top(module: str) -> str:
    """'cno_pathway.consult.render' -> 'consult'; the package itself -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of our own package in one file."""
    source = path.read_text(encoding="utf-8") if source is None else source
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cno_pathway"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cno_pathway":
                continue
            if target == "cno_pathway":  # `from .. import x`: x may be a subpackage or module
                found += [(node.lineno, f"cno_pathway.{a.name}") if a.name in RANK
                          else (node.lineno, target) for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unplaced = sorted({_top(_module_name(p)) for p in MODULES} - set(RANK))
    assert not unplaced, f"give these a layer in tests/test_layout.py: {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = RANK[_top(_module_name(path))]
    upward = [f"{path.relative_to(PACKAGE)}:{line} imports {target}"
              for line, target in _imports(path) if RANK.get(_top(target), own) < own]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_walk_sees_an_upward_import():
    """The check itself can fail: a lazy import of the consult inside knowledge/ is caught."""
    probe = PACKAGE / "knowledge" / "probe.py"
    found = _imports(probe, "def f():\n    from ..consult.consult import Pathway\n    return Pathway\n")
    assert found == [(2, "cno_pathway.consult.consult")]
    assert RANK[_top(found[0][1])] < RANK["knowledge"]


def test_subpackages_say_what_lives_there():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 10, f"{init.relative_to(PACKAGE)} needs a docstring"
