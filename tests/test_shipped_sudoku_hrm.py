"""The shipped HRM for 9x9 Sudoku, `sudoku-9x9-hrm`: it loads by name, is the paper's architecture
(attention, an H and an L module, Q-halting) and solves a fixed held-out puzzle from Python, from
`hrm solve` and in the viewer."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

import hrm
from hrm.cli import main
from hrm.viz.server import create_app

# The first of benchmarks/sudoku9_accuracy.py's held-out easy puzzles (seed 2026): never trained on.
EASY9 = "100400003040500000009000700403000096260008000090000007000005860000000001700900450"


@pytest.fixture(scope="module")
def model():
    return hrm.load_model("sudoku-9x9-hrm")


def test_sudoku_9x9_hrm_is_the_papers_architecture(model):
    c = model.model.config
    assert model.card.model == "hrm" and c.seq_len == 81
    assert c.H_layers >= 1 and c.L_layers >= 1 and c.H_cycles >= 2 and c.pos_encodings == "rope"
    assert c.forward_dtype == "float32"  # shipped for CPUs


def test_sudoku_9x9_hrm_solves_a_fixed_held_out_puzzle(model, capsys):
    sol = hrm.solve(model, EASY9)
    assert sol.valid, sol.format()
    assert 1 <= sol.segments <= sol.max_segments
    assert main(["solve", "-m", "sudoku-9x9-hrm", "--json", EASY9]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"][0]["valid"] is True


def test_the_viewer_solves_with_sudoku_9x9_hrm_by_name():
    with TestClient(create_app(model="sudoku-9x9-hrm"), base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").json()["model"]["kind"] == "sudoku"
        out = client.post("/api/solve", json={"puzzle": EASY9, "kind": "sudoku", "halt": "max"})
        assert out.status_code == 200, out.text
        assert out.json()["annotations"]["checks"][-1]["valid"] is True
