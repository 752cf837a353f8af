"""The shipped maze solver, `maze-hard`: it loads by name and solves a fixed held-out hard maze from
Python, from `hrm solve` and in the viewer."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

import hrm
from hrm.cli import main
from hrm.data import maze as maze_data
from hrm.viz.server import create_app

# The second of benchmarks/maze_accuracy.py's held-out 9x9 hard mazes (seed 2026): never trained on.
# (The first is one of the 0.8% the shipped model gets wrong.)
HARD9 = "\n".join(
    [
        "         ",
        " ####### ",
        " #     # ",
        " # ### # ",
        " #   # # ",
        " # # # # ",
        "   # #G#S",
        " ### # # ",
        "     # # ",
    ]
)


@pytest.fixture(scope="module")
def model():
    return hrm.load_model("maze-hard")


def test_maze_hard_is_a_9x9_maze_model(model):
    c = model.model.config
    assert model.card.model == "trm" and c.seq_len == 81 and c.vocab_size == maze_data.VOCAB_SIZE
    moves = len(maze_data.shortest_path(maze_data.encode_maze(HARD9.replace("\n", "")))) - 1
    assert moves >= maze_data.hard_min_path_length(9)  # the fixed maze is a hard one


def test_maze_hard_solves_a_fixed_hard_maze(model, capsys, tmp_path):
    sol = hrm.solve(model, HARD9)
    assert sol.valid, sol.format()
    assert 1 <= sol.segments <= sol.max_segments
    path = tmp_path / "maze.txt"
    path.write_text(HARD9 + "\n")
    assert main(["solve", "-m", "maze-hard", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"][0]["valid"] is True


def test_the_viewer_solves_with_maze_hard_by_name():
    with TestClient(create_app(model="maze-hard"), base_url="http://127.0.0.1") as client:
        info = client.get("/api/info").json()["model"]
        assert info["kind"] == "maze" and info["side"] == 9 and info["difficulty"] == "hard"
        made = client.post("/api/generate", json={"kind": "maze", "size": 9, "difficulty": "hard", "seed": 0})
        assert made.status_code == 200
        out = client.post("/api/solve", json={"puzzle": HARD9, "kind": "maze", "halt": "max"})
        assert out.status_code == 200, out.text
        assert out.json()["annotations"]["checks"][-1]["valid"] is True
