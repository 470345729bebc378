"""The package's layers import downward only: op -> rewrite/plan -> probe/measure -> commands -> cli.

The library never imports the command line: no module outside `commands/` and `cli.py` imports them.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "haste_onnx"
# what each part of the package may not import (by top-level part under haste_onnx)
FORBIDDEN = {
    "op": {"rewrite", "plan", "probe", "measure", "data", "commands", "cli", "zoo"},
    "rewrite": {"probe", "measure", "data", "commands", "cli", "zoo"},
    "plan": {"probe", "measure", "data", "commands", "cli", "zoo"},
    "probe": {"commands", "cli"},
    "measure": {"probe", "commands", "cli"},
    "data": {"rewrite", "plan", "probe", "measure", "commands", "cli"},
    "static": {"measure", "commands", "cli"},
    "quantize": {"commands", "cli"},
}
LIBRARY_PARTS = set(FORBIDDEN) | {"errors", "model_io", "model_inputs", "model_info", "runtime", "check", "zoo"}


def imported_parts(path: Path):
    """(line, the haste_onnx part) of every import of the package in `path`, absolute or relative."""
    rel = path.relative_to(PACKAGE)
    here = list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            elif node.module and node.module.split(".")[0] == "haste_onnx":
                sub = node.module.split(".")[1:]
                names = [sub] if sub else [[a.name] for a in node.names]  # `from haste_onnx import cli`
            else:
                continue
            for parts in names:
                if parts:
                    yield node.lineno, parts[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "haste_onnx" and len(parts) > 1:
                    yield node.lineno, parts[1]


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_the_library_never_imports_the_commands_or_the_cli():
    offenders = [f"{p.relative_to(PACKAGE)}:{line} imports {part}" for p in modules()
                 if part_of(p) not in ("commands", "cli")
                 for line, part in imported_parts(p) if part in ("commands", "cli")]
    assert offenders == []


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_imports_run_downward_only(part):
    offenders = [f"{p.relative_to(PACKAGE)}:{line} imports {imported}" for p in modules() if part_of(p) == part
                 for line, imported in imported_parts(p) if imported in FORBIDDEN[part]]
    assert offenders == []


def test_the_import_check_sees_relative_and_absolute_imports():
    fake = PACKAGE / "op" / "_layer_probe_sample.py"
    fake.write_text("from ..commands import args\nimport haste_onnx.cli\nfrom haste_onnx.probe import x\n"
                    "from haste_onnx import commands\nfrom . import geometry\n")
    try:
        assert [part for _, part in imported_parts(fake)] == ["commands", "cli", "probe", "commands", "op"]
    finally:
        fake.unlink()


def test_the_readme_layout_names_what_the_tree_holds():
    """Every file and folder the README's layout names exists, and every part of the package is named."""
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```")[1]
    top, inside = set(), set()
    for line in block.strip("\n").splitlines():
        names = []
        for word in line.split():
            if not word.endswith((".py", ".py,", "/")):
                break
            names.append(word.rstrip(","))
        (inside if line.startswith(" ") else top).update(names)
    for name in top:
        assert (PACKAGE.parent / name).exists(), name
    for name in inside:
        assert (PACKAGE / name).exists(), name
    parts = {p.name + ("/" if p.is_dir() else "") for p in PACKAGE.iterdir()
             if p.name not in ("__init__.py", "__pycache__", "lib")}
    assert parts <= inside, parts - inside


def test_every_declared_dependency_is_imported_by_the_package():
    """A dependency nothing imports is dead weight for every user (onnx-graphsurgeon was one)."""
    import re

    text = (PACKAGE.parent / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    names = [re.split(r"[<>=!~ ;\[]", item.strip().strip('",'))[0] for item in block.splitlines() if item.strip()]
    imported = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert names and all(n.replace("-", "_") in imported for n in names), (names, sorted(imported))
