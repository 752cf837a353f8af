"""ARC scoring on hand-made prediction sets: voting, pass@k and the submission file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrm.data.arc import augmented_name, forward_transform, grid_to_seq, inverse_transform
from hrm.data.arc_eval import Candidate, crop_prediction, score_votes, vote

A = np.array([[1, 2], [3, 4]], dtype=np.uint8)
B = np.array([[5, 5, 5]], dtype=np.uint8)
C = np.array([[7]], dtype=np.uint8)
IDENTITY = np.arange(10)


def _name(task, tid, seed):
    rng = np.random.default_rng(seed)
    mapping = np.concatenate([[0], rng.permutation(9) + 1])
    return augmented_name(task, tid, mapping)


def _pred(name, original_grid):
    """What a model would write for augmented puzzle `name` if it answered `original_grid`."""
    return grid_to_seq(forward_transform(name, original_grid))


def test_crop_reads_the_top_left_rectangle():
    seq = grid_to_seq(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert crop_prediction(seq).tolist() == [[1, 2, 3], [4, 5, 6]]
    # Ragged rows: the largest rectangle from the corner wins (2x2 beats 1x3).
    canvas = np.zeros((30, 30), dtype=np.uint8)
    canvas[0, :3] = [2, 3, 4]
    canvas[1, :2] = [5, 6]
    assert crop_prediction(canvas.reshape(-1)).tolist() == [[0, 1], [3, 4]]
    canvas[1, :3] = [5, 6, 7]
    canvas[2, :1] = [8]
    assert crop_prediction(canvas.reshape(-1)).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_inverse_of_every_augmentation_restores_the_grid():
    for tid in range(8):
        name = _name("t", tid, tid)
        assert np.array_equal(inverse_transform(name, forward_transform(name, A)), A)


def test_votes_rank_by_count_then_confidence_and_score_pass_at_k(tmp_path):
    names = (
        ["<blank>"] + [_name("task1", t, t) for t in range(5)] + [_name("task2", t, 10 + t) for t in range(3)]
    )
    rows, preds, qs = [], [], []
    # task1, one test input whose answer is A: B gets 3 votes, A gets 2 -> pass@1 fails, pass@2 holds.
    for ident, grid, q in [(1, B, 0.0), (2, B, 0.0), (3, B, 0.0), (4, A, 1.0), (5, A, 1.0)]:
        rows.append(ident)
        preds.append(_pred(names[ident], grid))
        qs.append(q)
    # task2, two test inputs per augmented puzzle (answers C and A). Input 0: C has 2 votes, A 1;
    # input 1: A and B tie on one vote each, A is more confident.
    for ident, grid0, grid1, q0, q1 in [
        (6, C, A, 0.5, 3.0),
        (7, C, B, 0.5, -1.0),
        (8, A, None, 0.9, 0.0),
    ]:
        rows.append(ident)
        preds.append(_pred(names[ident], grid0))
        qs.append(q0)
        if grid1 is not None:
            rows.append(ident)
            preds.append(_pred(names[ident], grid1))
            qs.append(q1)
    # A padding row is ignored.
    rows.append(0)
    preds.append(np.zeros(900, dtype=np.uint8))
    qs.append(9.0)

    ranked = vote(np.array(rows), np.stack(preds), np.array(qs), names)
    top1 = ranked[("task1", 0)][0]
    assert np.array_equal(top1.grid, B) and top1.votes == 3
    assert np.array_equal(ranked[("task2", 0)][0].grid, C)
    second = ranked[("task2", 1)]
    assert np.array_equal(second[0].grid, A) and second[0].q_mean == pytest.approx(3.0)

    puzzles = {
        "task1": {"train": [], "test": [{"input": A.tolist(), "output": A.tolist()}]},
        "task2": {
            "train": [],
            "test": [
                {"input": A.tolist(), "output": C.tolist()},
                {"input": A.tolist(), "output": A.tolist()},
            ],
        },
    }
    score = score_votes(ranked, puzzles, ks=(1, 2))
    # task1: 0 at k=1, 1 at k=2. task2: both inputs right at k=1.
    assert score.pass_at[1] == pytest.approx((0 + 1) / 2)
    assert score.pass_at[2] == pytest.approx((1 + 1) / 2)
    assert score.num_tasks == 2 and score.num_test_inputs == 3

    path = tmp_path / "submission.json"
    score.write_submission(path)
    sub = json.loads(path.read_text())
    assert set(sub) == {"task1", "task2"}
    assert sub["task1"] == [{"attempt_1": B.tolist(), "attempt_2": A.tolist()}]
    assert len(sub["task2"]) == 2
    assert sub["task2"][0]["attempt_1"] == C.tolist()
    assert sub["task2"][1] == {"attempt_1": A.tolist(), "attempt_2": B.tolist()}


def test_missing_predictions_still_give_two_attempts():
    puzzles = {"t": {"train": [], "test": [{"input": [[1]], "output": [[1]]}]}}
    ranked = {("t", 0): [Candidate(grid=C, votes=1)]}
    score = score_votes(ranked, puzzles, ks=(1,))
    assert score.pass_at[1] == 0.0
    assert score.submission() == {"t": [{"attempt_1": [[7]], "attempt_2": [[7]]}]}
    score = score_votes({}, puzzles, ks=(1,))
    assert score.submission() == {"t": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}


def test_a_perfect_model_scores_one_on_a_built_dataset(tmp_path):
    from hrm.data.arc import build_arc_dataset
    from hrm.data.arc_eval import score_arc
    from hrm.data.format import load_split

    tasks = {
        "aaa": {
            "train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}],
            "test": [{"input": [[3, 0], [0, 4]]}, {"input": [[5]]}],
        },
        "bbb": {"train": [{"input": [[1, 1, 2]], "output": [[2, 1, 1]]}], "test": [{"input": [[4, 4, 6]]}]},
    }
    solutions = {"aaa": [[[4, 0], [0, 3]], [[5]]], "bbb": [[[6, 4, 4]]]}
    (tmp_path / "x_challenges.json").write_text(json.dumps(tasks))
    (tmp_path / "x_solutions.json").write_text(json.dumps(solutions))
    out = tmp_path / "ds"
    build_arc_dataset(out, sources=[f"kaggle:{tmp_path / 'x'}@eval"], num_aug=4, seed=0)
    _, sets = load_split(out, "test", mmap=False)
    arrays = sets["all"]
    puzzle_of_row = np.searchsorted(arrays.puzzle_indices, np.arange(len(arrays.inputs)), side="right") - 1
    predictions = {
        "all": {
            "puzzle_identifiers": arrays.puzzle_identifiers[puzzle_of_row],
            "preds": arrays.labels,
            "q_halt_logits": np.zeros(len(arrays.inputs)),
        }
    }
    score = score_arc(predictions, out, ks=(1, 2))
    assert score.pass_at[1] == 1.0
    assert score.num_tasks == 2 and score.num_test_inputs == 3
    sub = score.submission()
    assert sub["aaa"][0]["attempt_1"] == solutions["aaa"][0]
    assert sub["bbb"][0]["attempt_1"] == solutions["bbb"][0]
