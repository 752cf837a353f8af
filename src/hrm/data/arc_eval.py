"""ARC scoring: voting over augmented views, pass@k under both published task rules, and the Kaggle
submission. The rules are those of TRM's ``evaluators/arc.py`` and HRM's ``arc_eval.ipynb``.

Every augmented version of a test input is predicted; each prediction is cropped from the 30x30
canvas (the largest rectangle of colour tokens from the top-left corner), mapped back to the original
task by the inverse of its augmentation, and counted as a vote for that grid under the test input it
answers: the row's own input, cropped and mapped back the same way (votes are keyed by task and
input grid, not by position). Candidates are ranked by votes, ties broken by the mean halting
probability ``sigmoid(q_halt)`` (float64) of their votes, remaining ties by first appearance. An
empty crop is a candidate like any other; it never equals an answer.

A test input is solved at k when one of its top k candidates equals its answer. Two task scores:

``pass@k``
    a task scores the fraction of its test inputs solved; the mean over tasks (TRM's evaluator and
    the ARC Prize).
``all_tests_pass@k``
    a task scores 1 only when every one of its test inputs is solved, else 0; the mean over tasks
    (HRM's notebook).

A test input without predictions is unsolved under both. Test inputs whose output is unknown
(``"output_known": false``, a Kaggle test set) are left out; a task with none known is not scored.
The top two candidates form the Kaggle submission, the first repeated when there is only one; a test
input without predictions gets two ``[[0]]`` attempts (TRM's evaluator leaves such an entry out,
which shifts the task's later entries).
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
    OUTPUT_KNOWN_KEY,
    TEST_PUZZLES_FILE,
    UNKNOWN_OUTPUT,
    VOCAB_SIZE,
    inverse_transform,
    parse_name,
)
from hrm.data.format import IDENTIFIERS_FILE
from hrm.errors import DataError

PASS_KS = (1, 2, 5, 10, 100, 1000)
SUBMISSION_ATTEMPTS = 2
# A test input's key in `vote`'s result: (task id, grid_key of the test input).
VoteKey = tuple[str, bytes]


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


def grid_key(grid: Any) -> bytes:
    grid = np.asarray(grid, dtype=np.uint8)
    if grid.ndim != 2:  # [] from JSON: an empty grid
        grid = grid.reshape(0, 0)
    return hashlib.sha256(np.array(grid.shape, dtype=np.int32).tobytes() + grid.tobytes()).digest()


def halt_probability(q_halt_logits: np.ndarray) -> np.ndarray:
    """``sigmoid(q_halt)`` in float64, as TRM's evaluator computes it before averaging."""
    x = np.asarray(q_halt_logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Candidate:
    """One answer grid proposed for a test input: its votes, the sum of their Q-halt logits and the
    sum of their halting probabilities (sigmoid of the logits)."""

    grid: np.ndarray
    votes: int = 0
    q_sum: float = 0.0
    p_sum: float = 0.0

    @property
    def q_mean(self) -> float:
        """Mean Q-halt logit of the votes."""
        return self.q_sum / max(self.votes, 1)

    @property
    def confidence(self) -> float:
        """Mean halting probability of the votes: the tie-break between equal vote counts."""
        return self.p_sum / max(self.votes, 1)


def known_output(pair: dict[str, Any]) -> Any | None:
    """A test pair's output from test_puzzles.json, or None when it is unknown (missing, or the
    placeholder marked ``"output_known": false``)."""
    if pair.get(OUTPUT_KNOWN_KEY, True) is False:
        return None
    return pair.get("output")


@dataclass
class ArcScore:
    """pass@k under both task rules (see the module docstring); None when no test output is known.
    ``ranked``: per task, per test input, its candidates best first."""

    pass_at: dict[int, float | None]
    all_tests_pass_at: dict[int, float | None]
    num_tasks: int
    num_test_inputs: int
    num_scored_tasks: int
    ranked: dict[str, list[list[Candidate]]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "tasks": self.num_tasks,
            "test_inputs": self.num_test_inputs,
            "scored_tasks": self.num_scored_tasks,
            **{f"pass@{k}": v for k, v in self.pass_at.items()},
            **{f"all_tests_pass@{k}": v for k, v in self.all_tests_pass_at.items()},
        }

    def format(self) -> str:
        head = f"ARC ({self.num_tasks} tasks, {self.num_test_inputs} test inputs"
        if self.num_scored_tasks == 0:
            return f"{head}): no known test outputs, nothing to score"
        if self.num_scored_tasks != self.num_tasks:
            head += f", {self.num_scored_tasks} tasks with known outputs scored"

        def line(values: dict[int, float | None]) -> str:
            return "  ".join(f"@{k} {v:.4f}" for k, v in values.items() if v is not None)

        rules = (
            ("pass@k", self.pass_at, "a task scores the fraction of its test inputs solved; TRM, ARC Prize"),
            ("all_tests_pass@k", self.all_tests_pass_at, "a task counts when all its test inputs are; HRM"),
        )
        lines = [f"{head}):"]
        lines += [f"  {name:<17}{line(values)}  ({what})" for name, values, what in rules]
        return "\n".join(lines)

    def submission(self) -> dict[str, list[dict[str, Any]]]:
        """Kaggle format: {task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}, one entry per test
        input in order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for task_id, per_input in self.ranked.items():
            entries = []
            for candidates in per_input:
                grids = [c.grid.tolist() for c in candidates[:SUBMISSION_ATTEMPTS]] or [UNKNOWN_OUTPUT]
                while len(grids) < SUBMISSION_ATTEMPTS:
                    grids.append(grids[0])
                entries.append({f"attempt_{i + 1}": grid for i, grid in enumerate(grids)})
            out[task_id] = entries
        return out

    def write_submission(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.submission()))
        os.replace(tmp, path)


def load_test_puzzles(data_dir: Path, names: list[str] | None = None) -> dict[str, Any]:
    """The held-out tasks: test_puzzles.json, or, for a dataset without it (HRM's builder writes
    none), the test inputs and outputs of the un-augmented puzzles of the test split."""
    path = Path(data_dir) / TEST_PUZZLES_FILE
    if not path.exists() and names is not None:
        return test_puzzles_from_split(data_dir, names)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the ARC test tasks ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of tasks keyed by id")
    return data


def test_puzzles_from_split(data_dir: Path, names: list[str]) -> dict[str, Any]:
    """Test tasks read back from the test split, as HRM's notebook takes them: each un-augmented
    puzzle's examples, input and label cropped from the canvas (an empty label: unknown output)."""
    from hrm.data.format import load_split

    _, sets = load_split(data_dir, "test", mmap=True)
    tasks: dict[str, Any] = {}
    for arrays in sets.values():
        bounds = np.asarray(arrays.puzzle_indices)
        for p, ident in enumerate(np.asarray(arrays.puzzle_identifiers).tolist()):
            if not 0 < ident < len(names):
                continue
            try:
                task_id, tid, mapping = parse_name(names[ident])
            except ValueError:
                continue
            if tid != 0 or mapping is not None:
                continue
            tests = tasks.setdefault(task_id, {"train": [], "test": []})["test"]
            for e in range(int(bounds[p]), int(bounds[p + 1])):
                pair: dict[str, Any] = {"input": crop_prediction(arrays.inputs[e]).tolist()}
                label = crop_prediction(arrays.labels[e])
                if label.size:
                    pair["output"] = label.tolist()
                else:
                    pair.update({"output": UNKNOWN_OUTPUT, OUTPUT_KNOWN_KEY: False})
                tests.append(pair)
    return tasks


def vote(
    identifiers: np.ndarray,
    inputs: np.ndarray,
    preds: np.ndarray,
    q_halt: np.ndarray,
    names: list[str],
) -> dict[VoteKey, list[Candidate]]:
    """Candidates per (task id, `grid_key` of the test input in the task's own frame), best first.
    Rows of the blank identifier 0 (padding) and of names that are not ARC identifiers are skipped."""
    probs = halt_probability(q_halt).tolist()
    pools: dict[VoteKey, dict[bytes, Candidate]] = defaultdict(dict)
    for ident, inp, seq, q, p in zip(identifiers.tolist(), inputs, preds, np.asarray(q_halt).tolist(), probs):
        if not 0 < ident < len(names):  # 0: padding
            continue
        name = names[ident]
        try:
            task_id = parse_name(name)[0]
            question = inverse_transform(name, crop_prediction(inp))
            grid = inverse_transform(name, crop_prediction(seq))
        except ValueError:
            continue
        pool = pools[(task_id, grid_key(question))]
        cand = pool.setdefault(grid_key(grid), Candidate(grid=grid))
        cand.votes += 1
        cand.q_sum += float(q)
        cand.p_sum += float(p)
    return {
        key: sorted(pool.values(), key=lambda c: (c.votes, c.confidence), reverse=True)
        for key, pool in pools.items()
    }


def score_votes(
    ranked: dict[VoteKey, list[Candidate]],
    test_puzzles: dict[str, Any],
    ks: tuple[int, ...] = PASS_KS,
) -> ArcScore:
    """Both task scores of `vote`'s candidates against the tasks of test_puzzles.json."""
    per_task: dict[str, list[list[Candidate]]] = {}
    fraction = dict.fromkeys(ks, 0.0)
    whole = dict.fromkeys(ks, 0.0)
    num_inputs = scored = 0
    for task_id, task in test_puzzles.items():
        tests = task.get("test", []) if isinstance(task, dict) else []
        per_input = [ranked.get((task_id, grid_key(test["input"])), []) for test in tests]
        per_task[task_id] = per_input
        num_inputs += len(tests)
        answers = [(cands, known_output(test)) for cands, test in zip(per_input, tests)]
        answers = [(cands, grid_key(out)) for cands, out in answers if out is not None]
        if not answers:
            continue
        scored += 1
        for k in ks:
            solved = sum(any(grid_key(c.grid) == target for c in cands[:k]) for cands, target in answers)
            fraction[k] += solved / len(answers)
            whole[k] += float(solved == len(answers))
    pass_at: dict[int, float | None] = {k: (v / scored if scored else None) for k, v in fraction.items()}
    all_at: dict[int, float | None] = {k: (v / scored if scored else None) for k, v in whole.items()}
    return ArcScore(pass_at, all_at, len(test_puzzles), num_inputs, scored, per_task)


def score_arc(predictions: dict[str, dict[str, np.ndarray]], data_dir: Path, ks: tuple[int, ...] = PASS_KS):
    """Score collected evaluation predictions (see hrm.evaluate.evaluate(collect=True): each set's
    ``puzzle_identifiers``, ``inputs``, ``preds`` and ``q_halt_logits``)."""
    data_dir = Path(data_dir)
    try:
        names = json.loads((data_dir / IDENTIFIERS_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{data_dir / IDENTIFIERS_FILE}: cannot read identifier names ({exc})") from None
    ranked: dict[VoteKey, list[Candidate]] = {}
    for arrays in predictions.values():
        ranked.update(
            vote(
                arrays["puzzle_identifiers"],
                arrays["inputs"],
                arrays["preds"],
                arrays["q_halt_logits"],
                names,
            )
        )
    return score_votes(ranked, load_test_puzzles(data_dir, names), ks)
