"""ARC scoring on one hand-built prediction set: voting, both task rules, the submission file.

The expected numbers and attempts below are worked out by hand from the rules of TRM's
`evaluators/arc.py` and HRM's `arc_eval.ipynb`: votes are keyed by task and test-input grid, ranked
by count then by the mean of sigmoid(q_halt) in float64, then by first appearance; a candidate list
is padded with its first grid; a test input without predictions is unsolved. TRM scores a task by
the fraction of its test inputs solved (`pass@k`), HRM by whether all of them are
(`all_tests_pass@k`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hrm.data.arc import augmented_name, forward_transform, grid_to_seq, inverse_transform
from hrm.data.arc_eval import Candidate, crop_prediction, grid_key, score_arc, score_votes, vote

A = [[1, 2], [3, 4]]
B = [[5, 5, 5]]
C = [[7]]
D = [[1], [2], [3]]
Z = [[0]]
BIG = (np.arange(900).reshape(30, 30) % 10).tolist()  # fills the whole canvas: no EOS at all
EMPTY = "empty"  # a prediction with no colour cell in the top-left corner: an empty crop
NO_ANSWER = [[0]]  # what TRM's builder writes for an unknown test output


def _input(seed, shape=(2, 3)):
    return np.random.default_rng(seed).integers(0, 10, size=shape).tolist()


X = {n: _input(n) for n in range(1, 9)}
X_BIG = (np.arange(900).reshape(30, 30) * 7 % 10).tolist()  # a 30x30 test input

# The held-out tasks (test_puzzles.json). Demonstrations play no part in scoring.
TEST_PUZZLES = {
    "tie": {"train": [], "test": [{"input": X[1], "output": A}]},
    "multi": {"train": [], "test": [{"input": X[2], "output": C}, {"input": X[3], "output": D}]},
    "missing": {"train": [], "test": [{"input": X[4], "output": A}, {"input": X[5], "output": B}]},
    "odd": {"train": [], "test": [{"input": X_BIG, "output": C}]},
    "single": {"train": [], "test": [{"input": X[6], "output": B}]},
    "close": {"train": [], "test": [{"input": X[7], "output": C}]},
    "hidden": {"train": [], "test": [{"input": X[8], "output": NO_ANSWER, "output_known": False}]},
}

# The prediction rows: (task, test input, predicted grid, Q-halt logit), in the order the model
# produced them. Rows of one test input are interleaved with others' ("multi" answers its second test
# input first), so votes must be keyed by the input grid, not by position.
ROWS = [
    # "multi", second test input (answer D): B gets 2 votes, D 1 -> D is second.
    ("multi", X[3], B, 0.0),
    ("multi", X[3], D, 0.0),
    ("multi", X[3], B, 0.0),
    # "multi", first test input (answer C): C 3 votes, B 1 -> C is first.
    ("multi", X[2], C, -2.0),
    ("multi", X[2], B, 5.0),
    ("multi", X[2], C, -2.0),
    ("multi", X[2], C, -2.0),
    # "tie" (answer A): 7 votes each. A's logits average 1.0, B's 0.5, so ranking by the mean logit
    # would put A first; the mean probabilities are 0.5707 (A) and 0.6225 (B), so B is first.
    *[("tie", X[1], A, q) for q in (6.0, 6.0, 6.0, -5.0, -5.0, -5.0, 4.0)],
    *[("tie", X[1], B, 0.5) for _ in range(7)],
    # "missing": the first test input gets 2 votes for its answer, the second none.
    ("missing", X[4], A, 1.0),
    ("missing", X[4], A, 1.0),
    # "odd" (30x30 input, answer C): an empty crop 3 votes, a full-canvas 30x30 grid 2, C 1.
    ("odd", X_BIG, EMPTY, 0.0),
    ("odd", X_BIG, BIG, 3.0),
    ("odd", X_BIG, EMPTY, 0.0),
    ("odd", X_BIG, C, 9.0),
    ("odd", X_BIG, BIG, 3.0),
    ("odd", X_BIG, EMPTY, 0.0),
    # "single" (answer B): one candidate.
    ("single", X[6], C, 0.0),
    # "close" (answer C): one vote each, logits 19 then 20. In float64 sigmoid(20) > sigmoid(19), so C
    # is first; in float32 both round to 1.0 and the first to appear (B) would stay first.
    ("close", X[7], B, 19.0),
    ("close", X[7], C, 20.0),
    # "hidden": its output is unknown; [[0]] gets 2 votes (TRM would score it against the placeholder).
    ("hidden", X[8], Z, 0.0),
    ("hidden", X[8], Z, 0.0),
]


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# Scored tasks (all but "hidden"): the fraction of test inputs solved at k = 1, 2, 5.
PER_TASK = {
    "tie": (0, 1, 1),
    "multi": (1 / 2, 1, 1),
    "missing": (1 / 2, 1 / 2, 1 / 2),
    "odd": (0, 0, 1),
    "single": (0, 0, 0),
    "close": (1, 1, 1),
}
EXPECTED_PASS = {1: 2 / 6, 2: 3.5 / 6, 5: 4.5 / 6}  # mean over the 6 scored tasks of the above
EXPECTED_ALL_TESTS = {1: 1 / 6, 2: 3 / 6, 5: 4 / 6}  # tasks with every test input solved, over 6
EXPECTED_SUBMISSION = {
    "tie": [{"attempt_1": B, "attempt_2": A}],
    "multi": [{"attempt_1": C, "attempt_2": B}, {"attempt_1": B, "attempt_2": D}],
    # TRM's evaluator leaves the entry of a test input without predictions out; a submission needs
    # one per test input, so it gets two [[0]].
    "missing": [{"attempt_1": A, "attempt_2": A}, {"attempt_1": [[0]], "attempt_2": [[0]]}],
    "odd": [{"attempt_1": [], "attempt_2": BIG}],
    "single": [{"attempt_1": C, "attempt_2": C}],
    "close": [{"attempt_1": C, "attempt_2": B}],
    "hidden": [{"attempt_1": Z, "attempt_2": Z}],
}


def test_hand_computed_expectations():
    ks = (1, 2, 5)
    assert {k: sum(v[i] for v in PER_TASK.values()) / 6 for i, k in enumerate(ks)} == pytest.approx(
        EXPECTED_PASS
    )
    whole = {k: sum(v[i] == 1 for v in PER_TASK.values()) / 6 for i, k in enumerate(ks)}
    assert whole == pytest.approx(EXPECTED_ALL_TESTS)
    tie_a = [6.0, 6.0, 6.0, -5.0, -5.0, -5.0, 4.0]
    assert sum(tie_a) / 7 == pytest.approx(1.0)
    assert sum(map(sigmoid, tie_a)) / 7 == pytest.approx(0.5707, abs=1e-4)
    assert sigmoid(0.5) == pytest.approx(0.6225, abs=1e-4)
    assert np.float32(1) / (np.float32(1) + np.exp(np.float32(-19))) == np.float32(1)
    assert sigmoid(20.0) > sigmoid(19.0)


def _trm_names(task, n):
    """n views of a task as TRM (and this package) name them; the first is the task itself."""
    rng = np.random.default_rng(list(task.encode()))
    names = [task]
    while len(names) < n:
        mapping = np.concatenate([[0], rng.permutation(9) + 1])
        name = augmented_name(task, int(rng.integers(0, 8)), mapping)
        if name not in names:
            names.append(name)
    return names


def _hrm_name(name):
    """The same view as HRM's builder names it: <task>_t<k>_<mapping>."""
    if "|||" not in name:
        return name
    task, tid, digits = name.split("|||")
    return f"{task}_{tid}_{digits}"


def _canvas(name, grid):
    if isinstance(grid, str):
        return np.zeros(900, dtype=np.uint8)  # PAD everywhere: the crop is empty
    return grid_to_seq(forward_transform(name, np.array(grid, dtype=np.uint8)))


def prediction_set(hrm_names=False):
    """identifiers.json and the collected predictions for ROWS, each row under its own view (a new
    augmented name per row of a task, the plain name first), plus a padding row."""
    counts = {}
    for task, *_ in ROWS:
        counts[task] = counts.get(task, 0) + 1
    views = {task: _trm_names(task, n) for task, n in counts.items()}
    names = ["<blank>"]
    used = dict.fromkeys(counts, 0)
    ids, inputs, preds, qs = [], [], [], []
    for task, question, grid, q in ROWS:
        name = views[task][used[task]]
        used[task] += 1
        names.append(_hrm_name(name) if hrm_names else name)
        ids.append(len(names) - 1)
        inputs.append(_canvas(name, question))
        preds.append(_canvas(name, grid))
        qs.append(q)
    ids.append(0)  # padding: ignored whatever it holds
    inputs.append(_canvas("tie", X[1]))
    preds.append(_canvas("tie", A))
    qs.append(50.0)
    arrays = {
        "puzzle_identifiers": np.array(ids),
        "inputs": np.stack(inputs),
        "preds": np.stack(preds),
        "q_halt_logits": np.array(qs, dtype=np.float32),
    }
    return names, arrays


def write_scoring_dir(tmp_path, names, with_test_puzzles=True):
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    if with_test_puzzles:
        (tmp_path / "test_puzzles.json").write_text(json.dumps(TEST_PUZZLES))
    return tmp_path


@pytest.mark.parametrize("hrm_names", [False, True], ids=["trm-names", "hrm-names"])
def test_hand_built_prediction_set(tmp_path, hrm_names):
    names, arrays = prediction_set(hrm_names)
    if hrm_names:
        assert any("_t" in n and "|||" not in n for n in names)
    score = score_arc({"all": arrays}, write_scoring_dir(tmp_path, names), ks=(1, 2, 5))
    assert score.num_tasks == 7 and score.num_test_inputs == 9 and score.num_scored_tasks == 6
    assert score.pass_at == pytest.approx(EXPECTED_PASS)
    assert score.all_tests_pass_at == pytest.approx(EXPECTED_ALL_TESTS)
    summary = score.summary
    assert summary["pass@2"] == pytest.approx(3.5 / 6) and summary["all_tests_pass@2"] == pytest.approx(0.5)
    assert summary["tasks"] == 7 and summary["scored_tasks"] == 6
    assert score.submission() == EXPECTED_SUBMISSION

    tie = score.ranked["tie"][0]
    assert [c.grid.tolist() for c in tie] == [B, A] and [c.votes for c in tie] == [7, 7]
    assert tie[0].confidence == pytest.approx(sigmoid(0.5))
    assert tie[1].confidence == pytest.approx(sum(map(sigmoid, [6, 6, 6, -5, -5, -5, 4])) / 7)
    assert tie[1].q_mean == pytest.approx(1.0)
    assert [c.votes for c in score.ranked["odd"][0]] == [3, 2, 1]
    assert score.ranked["missing"][1] == []

    path = tmp_path / "submission.json"
    score.write_submission(path)
    assert json.loads(path.read_text()) == EXPECTED_SUBMISSION
    text = score.format()
    assert "pass@k" in text and "all_tests_pass@k" in text and "6 tasks with known outputs" in text


def test_ties_on_votes_and_confidence_keep_first_appearance():
    names = ["<blank>", "t", augmented_name("t", 2, np.arange(10))]
    inputs = np.stack([_canvas(n, X[1]) for n in names[1:]])
    preds = np.stack([_canvas(names[1], B), _canvas(names[2], A)])
    ranked = vote(np.array([1, 2]), inputs, preds, np.array([1.5, 1.5]), names)
    assert [c.grid.tolist() for c in ranked[("t", grid_key(X[1]))]] == [B, A]
    ranked = vote(np.array([2, 1]), inputs[::-1], preds[::-1], np.array([1.5, 1.5]), names)
    assert [c.grid.tolist() for c in ranked[("t", grid_key(X[1]))]] == [A, B]


def test_no_known_outputs_still_gives_the_submission():
    puzzles = {"q": {"train": [], "test": [{"input": X[1], "output": [[0]], "output_known": False}]}}
    ranked = {("q", grid_key(X[1])): [Candidate(grid=np.array(C, dtype=np.uint8), votes=1)]}
    score = score_votes(ranked, puzzles, ks=(1, 2))
    assert score.num_scored_tasks == 0 and score.pass_at == {1: None, 2: None}
    assert score.all_tests_pass_at == {1: None, 2: None}
    assert "nothing to score" in score.format()
    assert score.submission() == {"q": [{"attempt_1": C, "attempt_2": C}]}
    # A test input without the "output" key at all is unknown as well.
    score = score_votes({}, {"q": {"train": [], "test": [{"input": X[1]}]}}, ks=(1,))
    assert score.pass_at == {1: None} and score.submission() == {"q": [{"attempt_1": Z, "attempt_2": Z}]}


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
    assert crop_prediction(np.zeros(900, dtype=np.uint8)).shape == (0, 0)
    assert crop_prediction(np.array(BIG).reshape(-1) + 2).tolist() == BIG


def test_inverse_of_every_augmentation_restores_the_grid():
    grid = np.array(A, dtype=np.uint8)
    for tid in range(8):
        mapping = np.concatenate([[0], np.random.default_rng(tid).permutation(9) + 1])
        for name in (augmented_name("t", tid, mapping), _hrm_name(augmented_name("t", tid, mapping))):
            assert np.array_equal(inverse_transform(name, forward_transform(name, grid)), grid)


def _perfect_predictions(out):
    from hrm.data.format import load_split

    _, sets = load_split(out, "test", mmap=False)
    arrays = sets["all"]
    puzzle_of_row = np.searchsorted(arrays.puzzle_indices, np.arange(len(arrays.inputs)), side="right") - 1
    return {
        "all": {
            "puzzle_identifiers": arrays.puzzle_identifiers[puzzle_of_row],
            "inputs": arrays.inputs,
            "preds": arrays.labels,
            "q_halt_logits": np.zeros(len(arrays.inputs)),
        }
    }


KAGGLE_TASKS = {
    "aaa": {
        "train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}],
        "test": [{"input": [[3, 0], [0, 4]]}, {"input": [[5]]}],
    },
    "bbb": {"train": [{"input": [[1, 1, 2]], "output": [[2, 1, 1]]}], "test": [{"input": [[4, 4, 6]]}]},
}
KAGGLE_SOLUTIONS = {"aaa": [[[4, 0], [0, 3]], [[5]]], "bbb": [[[6, 4, 4]]]}


def _build_kaggle(tmp_path, solutions=True):
    from hrm.data.arc import build_arc_dataset

    (tmp_path / "x_challenges.json").write_text(json.dumps(KAGGLE_TASKS))
    if solutions:
        (tmp_path / "x_solutions.json").write_text(json.dumps(KAGGLE_SOLUTIONS))
    out = tmp_path / "ds"
    build_arc_dataset(out, sources=[f"kaggle:{tmp_path / 'x'}@eval"], num_aug=4, seed=0)
    return out


def test_a_perfect_model_scores_one_on_a_built_dataset(tmp_path):
    out = _build_kaggle(tmp_path)
    score = score_arc(_perfect_predictions(out), out, ks=(1, 2))
    assert score.pass_at[1] == 1.0 and score.all_tests_pass_at[1] == 1.0
    assert score.num_tasks == 2 and score.num_test_inputs == 3
    sub = score.submission()
    assert sub["aaa"][0]["attempt_1"] == KAGGLE_SOLUTIONS["aaa"][0]
    assert sub["bbb"][0]["attempt_1"] == KAGGLE_SOLUTIONS["bbb"][0]


def test_dataset_as_hrm_builds_it_is_scored(tmp_path):
    """HRM's builder names variants <task>_t<k>_<mapping>, writes no test_puzzles.json and no
    total_puzzles: the tasks are read back from the test split, and a perfect model scores 1."""
    from hrm.tasks.arc import ARCTask

    out = _build_kaggle(tmp_path)
    names = json.loads((out / "identifiers.json").read_text())
    (out / "identifiers.json").write_text(json.dumps([_hrm_name(n) for n in names]))
    (out / "test_puzzles.json").unlink()
    for split in ("train", "test"):
        meta_file = out / split / "dataset.json"
        meta = json.loads(meta_file.read_text())
        del meta["total_puzzles"]
        meta_file.write_text(json.dumps(meta))
    assert any("_t" in n for n in json.loads((out / "identifiers.json").read_text()))
    predictions = _perfect_predictions(out)
    score = ARCTask().score_dataset(predictions, out)
    assert score is not None
    assert score.summary["pass@1"] == 1.0 and score.summary["all_tests_pass@1"] == 1.0
    assert score.summary["tasks"] == 2 and score.summary["test_inputs"] == 3
    sub = score.files["submission.json"]
    assert sub["aaa"] == [{"attempt_1": s, "attempt_2": s} for s in KAGGLE_SOLUTIONS["aaa"]]
    # Three of aaa's five views answer its first test input wrongly: the right answer comes second,
    # so pass@1 is (1/2 + 1) / 2 and all_tests_pass@1 is 1/2; at k = 2 both are 1.
    hrm_names = json.loads((out / "identifiers.json").read_text())
    rows = predictions["all"]
    rows["preds"] = rows["preds"].copy()
    wrong = np.array([[9, 9]], dtype=np.uint8)
    aaa_views = [i for i, n in enumerate(hrm_names) if n.startswith("aaa")][:3]
    for view in aaa_views:
        first = int(np.flatnonzero(rows["puzzle_identifiers"] == view)[0])
        rows["preds"][first] = grid_to_seq(forward_transform(hrm_names[view], wrong))
    score = ARCTask().score_dataset(predictions, out)
    assert score is not None
    assert score.summary["pass@1"] == pytest.approx(0.75) and score.summary["all_tests_pass@1"] == 0.5
    assert score.summary["pass@2"] == 1.0 and score.summary["all_tests_pass@2"] == 1.0
    assert score.files["submission.json"]["aaa"][0]["attempt_1"] == wrong.tolist()


def test_a_kaggle_test_set_without_solutions_gives_a_submission(tmp_path):
    out = _build_kaggle(tmp_path, solutions=False)
    test_puzzles = json.loads((out / "test_puzzles.json").read_text())
    # Every test input has an output, as TRM's evaluator reads it, marked as unknown.
    for task in test_puzzles.values():
        for pair in task["test"]:
            assert pair["output"] == [[0]] and pair["output_known"] is False
    predictions = _perfect_predictions(out)
    predictions["all"]["preds"] = predictions["all"]["inputs"]  # a model that copies its input
    score = score_arc(predictions, out, ks=(1, 2))
    assert score.num_scored_tasks == 0 and score.pass_at[1] is None
    sub = score.submission()
    assert sub["aaa"] == [
        {"attempt_1": t["input"], "attempt_2": t["input"]} for t in KAGGLE_TASKS["aaa"]["test"]
    ]


def test_hrm_eval_prints_and_writes_both_scores(tmp_path, capsys):
    from hrm.evaluate import evaluate_cli
    from tiny_models import save_tiny, tiny_config

    out = _build_kaggle(tmp_path)
    cfg = tiny_config(900, 12, hidden_size=16, num_heads=1, H_cycles=1, L_cycles=1, halt_max_steps=2)
    run = save_tiny(tmp_path / "run", cfg)
    report = evaluate_cli(str(run), data=str(out), out=str(tmp_path / "ev"), device="cpu", batch_size=16)
    printed = capsys.readouterr().out
    assert "pass@k" in printed and "all_tests_pass@k" in printed
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["arc"] == report["arc"]
    for key in ("pass@1", "pass@2", "all_tests_pass@1", "all_tests_pass@2", "tasks", "scored_tasks"):
        assert key in metrics["arc"]
    assert metrics["arc"]["tasks"] == 2 and metrics["arc"]["test_inputs"] == 3
    sub = json.loads((tmp_path / "ev" / "submission.json").read_text())
    assert sorted(sub) == ["aaa", "bbb"] and len(sub["aaa"]) == 2
