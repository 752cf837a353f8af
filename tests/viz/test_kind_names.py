"""Puzzle kinds have one home: outside `hrm.tasks`, the data builders, the CLIs' choices, the recipes
and the trace schema's enum, no code names a kind ("sudoku", "maze", "arc" as a string literal). The
viewer's page draws and offers kinds from `Task.describe`, not from their names."""

from __future__ import annotations

import re
from pathlib import Path

import hrm
from hrm.tasks import KINDS

SRC = Path(hrm.__file__).resolve().parent
TEXT_SUFFIXES = {".py", ".js", ".html", ".css", ".json", ".yaml", ".yml", ".md", ".txt"}
# Where kind names belong (paths relative to src/hrm; a folder covers everything under it).
ALLOWED = ("tasks/", "data/", "configs/", "solve_cli.py")
SCHEMA = "trace_schema.json"  # its "kind" enum lists them
NAMES = "|".join(map(re.escape, KINDS))
LITERAL = re.compile(r"""(["'])(""" + NAMES + r""")\1""")


def kind_literals(root: Path) -> list[str]:
    """'path:line: text' of every kind name quoted in a text file under `root` outside ALLOWED."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES or rel.startswith(ALLOWED):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if LITERAL.search(line) and not (rel == SCHEMA and '"enum"' in line):
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_kind_names_only_where_they_belong():
    assert set(KINDS) == {"sudoku", "maze", "arc"}  # the pattern covers every kind
    assert kind_literals(SRC) == []


def test_the_check_finds_kind_names(tmp_path):
    """The walk reads the viewer's page, Python and JSON alike, and skips only what is allowed."""
    files = {
        "viz/static/app.js": 'if (o.kind === "maze") draw();\n',
        "viz/static/index.html": '<option value="sudoku">Sudoku</option>\n',
        "viz/server.py": "KIND = 'arc'\n",
        "tasks/maze.py": 'name = "maze"\n',
        "data/cli.py": 'choices=["sudoku", "maze", "arc"]\n',
        SCHEMA: '{"kind": {"enum": ["sudoku", "maze", "arc"]},\n "default": "arc"}\n',
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = [f.split(":")[0] for f in kind_literals(tmp_path)]
    assert found == [SCHEMA, "viz/server.py", "viz/static/app.js", "viz/static/index.html"]
