"""The layout's rules, checked on the source: no module reaches into another's private names, a
constant has one definition, and the lists of puzzle kinds outside `hrm.tasks` agree with it."""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from pathlib import Path

import hrm
from hrm.solve_cli import KIND_CHOICES
from hrm.tasks import KINDS

SRC = Path(hrm.__file__).resolve().parent
REPO = SRC.parents[1]
# Constants that each kind's module defines for itself, read qualified (`maze.VOCAB_SIZE`).
PER_KIND = {"VOCAB_SIZE"}


def python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.is_dir() for p in root.rglob("*.py"))


def private_uses(path: Path) -> list[str]:
    """'file:line name' for each private name (one underscore, not a dunder) that `path` imports from
    an hrm module or reads as an attribute of an imported hrm module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()  # local names bound to hrm modules
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hrm":
                    modules.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hrm":
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{path}:{node.lineno} {node.module}.{alias.name}")
                else:
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            base = node.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{path}:{node.lineno} {base.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    uses = [u for p in python_files(SRC, REPO / "tests", REPO / "benchmarks") for u in private_uses(p)]
    assert uses == []


def test_the_private_name_check_finds_them(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from hrm.demo import _hidden\nimport hrm.evaluate as ev\nev._inner()\n")
    assert len(private_uses(sample)) == 2


def test_each_constant_is_defined_once():
    where: dict[str, list[str]] = defaultdict(list)
    for path in python_files(SRC):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper() and target.id not in PER_KIND:
                    where[target.id].append(str(path.relative_to(SRC)))
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def test_kind_lists_outside_tasks_agree_with_the_tasks():
    assert set(KIND_CHOICES) == set(KINDS)
    schema = json.loads((SRC / "trace_schema.json").read_text())
    assert set(schema["properties"]["kind"]["enum"]) == set(KINDS)
