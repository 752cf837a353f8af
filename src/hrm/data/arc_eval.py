"""ARC scoring as the HRM paper measured it.

Every augmented version of a test input is predicted; each prediction is cropped from the 30x30
canvas, mapped back to the original task by the inverse of its augmentation, and counted as a vote
for that grid. Candidates are ranked by votes, ties broken by the mean halting confidence (Q-halt
logit) of their votes. pass@k: a test input is solved when one of the top k candidates equals its
answer; a task scores the fraction of its test inputs solved, and pass@k is the mean over tasks (the
ARC Prize convention). The top two candidates form the Kaggle submission.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm.data.arc import (
    COLOUR_OFFSET,
    MAX_GRID_SIZE,
    TEST_PUZZLES_FILE,
    VOCAB_SIZE,
    inverse_transform,
    parse_name,
)
from hrm.data.format import IDENTIFIERS_FILE
from hrm.errors import DataError

PASS_KS = (1, 2, 5, 10, 100, 1000)


def crop_prediction(seq: np.ndarray) -> np.ndarray:
    """The grid a model wrote at the top-left of the canvas: the largest rectangle of colour tokens
    reachable row by row before the first non-colour token (the reference's rule)."""
    canvas = np.asarray(seq).reshape(MAX_GRID_SIZE, MAX_GRID_SIZE)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < VOCAB_SIZE)
    best, best_shape = 0, (0, 0)
    width = MAX_GRID_SIZE
    for rows in range(1, MAX_GRID_SIZE + 1):
        line = colour[rows - 1, :width]
        if not line.all():
            width = int(np.argmin(line))
        if width == 0:
            break
        if rows * width > best:
            best, best_shape = rows * width, (rows, width)
    r, c = best_shape
    return (canvas[:r, :c] - COLOUR_OFFSET).astype(np.uint8)


def grid_key(grid: np.ndarray) -> bytes:
    grid = np.asarray(grid, dtype=np.uint8)
    return hashlib.sha256(np.array(grid.shape, dtype=np.int32).tobytes() + grid.tobytes()).digest()


@dataclass
class Candidate:
    grid: np.ndarray
    votes: int = 0
    q_sum: float = 0.0

    @property
    def q_mean(self) -> float:
        return self.q_sum / max(self.votes, 1)


@dataclass
class ArcScore:
    pass_at: dict[int, float]
    num_tasks: int
    num_test_inputs: int
    ranked: dict[str, list[list[Candidate]]] = field(default_factory=dict)  # task -> per test input

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "tasks": self.num_tasks,
            "test_inputs": self.num_test_inputs,
            **{f"pass@{k}": v for k, v in self.pass_at.items()},
        }

    def format(self) -> str:
        shown = "  ".join(f"pass@{k} {v:.4f}" for k, v in self.pass_at.items())
        return f"ARC ({self.num_tasks} tasks, {self.num_test_inputs} test inputs): {shown}"

    def submission(self) -> dict[str, list[dict[str, list[list[int]]]]]:
        """Kaggle format: {task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]} per test input."""
        out: dict[str, list[dict[str, list[list[int]]]]] = {}
        for task_id, per_input in self.ranked.items():
            entries = []
            for candidates in per_input:
                grids = [c.grid.tolist() for c in candidates[:2]] or [[[0]]]
                while len(grids) < 2:
                    grids.append(grids[0])
                entries.append({"attempt_1": grids[0], "attempt_2": grids[1]})
            out[task_id] = entries
        return out

    def write_submission(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.submission()))
        os.replace(tmp, path)


def load_test_puzzles(data_dir: Path) -> dict[str, Any]:
    path = Path(data_dir) / TEST_PUZZLES_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the ARC test tasks ({exc})") from None


def vote(
    identifiers: np.ndarray,
    preds: np.ndarray,
    q_halt: np.ndarray,
    names: list[str],
) -> dict[tuple[str, int], list[Candidate]]:
    """Votes per (task id, test input index), ranked. Rows must be in dataset order: the examples of
    one augmented puzzle are its test inputs in order."""
    seen: dict[int, int] = defaultdict(int)
    pools: dict[tuple[str, int], dict[bytes, Candidate]] = defaultdict(dict)
    for ident, seq, q in zip(identifiers.tolist(), preds, q_halt.tolist()):
        if ident == 0:
            continue  # padding row
        index = seen[ident]
        seen[ident] += 1
        name = names[ident]
        task_id = parse_name(name)[0]
        try:
            grid = inverse_transform(name, crop_prediction(seq))
        except ValueError:
            continue
        pool = pools[(task_id, index)]
        key = grid_key(grid)
        cand = pool.setdefault(key, Candidate(grid=grid))
        cand.votes += 1
        cand.q_sum += float(q)
    return {
        key: sorted(pool.values(), key=lambda c: (c.votes, c.q_mean), reverse=True)
        for key, pool in pools.items()
    }


def score_votes(
    ranked: dict[tuple[str, int], list[Candidate]],
    test_puzzles: dict[str, Any],
    ks: tuple[int, ...] = PASS_KS,
) -> ArcScore:
    per_task: dict[str, list[list[Candidate]]] = {}
    totals = dict.fromkeys(ks, 0.0)
    num_inputs = 0
    for task_id, task in test_puzzles.items():
        tests = task.get("test", [])
        per_input = [ranked.get((task_id, i), []) for i in range(len(tests))]
        per_task[task_id] = per_input
        num_inputs += len(tests)
        if not tests:
            continue
        for k in ks:
            solved = 0
            for candidates, test in zip(per_input, tests):
                answer = test.get("output")
                if answer is None:
                    continue
                target = grid_key(np.asarray(answer, dtype=np.uint8))
                solved += any(grid_key(c.grid) == target for c in candidates[:k])
            totals[k] += solved / len(tests)
    n = max(len(test_puzzles), 1)
    return ArcScore({k: v / n for k, v in totals.items()}, len(test_puzzles), num_inputs, per_task)


def score_arc(predictions: dict[str, dict[str, np.ndarray]], data_dir: Path, ks: tuple[int, ...] = PASS_KS):
    """Score collected evaluation predictions (see hrm.evaluate.evaluate(collect=True))."""
    data_dir = Path(data_dir)
    try:
        names = json.loads((data_dir / IDENTIFIERS_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{data_dir / IDENTIFIERS_FILE}: cannot read identifier names ({exc})") from None
    ranked: dict[tuple[str, int], list[Candidate]] = {}
    for arrays in predictions.values():
        ranked.update(vote(arrays["puzzle_identifiers"], arrays["preds"], arrays["q_halt_logits"], names))
    return score_votes(ranked, load_test_puzzles(data_dir), ks)
