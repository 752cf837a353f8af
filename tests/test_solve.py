"""hrm.inference and `hrm solve` (with the tasks' parsing and rule checks): halting, batching, traces,
ARC voting, CLI errors.

Models here are tiny and random; where a test needs a known answer or a known halting decision it
replaces the output head (`lm_head`) or the Q head by a fixed module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hrm import cli
from hrm.checkpoint import ModelCard, load_model, save_checkpoint
from hrm.data import maze as maze_data
from hrm.data import sudoku as sudoku_data
from hrm.errors import CheckpointError, DataError, HRMError
from hrm.inference import solve, solve_many, validate_trace, write_trace
from hrm.models import build_model
from hrm.solve_cli import read_puzzle_file
from hrm.tasks import Encoding, RowAnswers, task_for, task_named
from hrm.tasks.arc import arc_views
from hrm.tasks.sudoku import check_sudoku, format_sudoku, sudoku_views
from tiny_models import tiny_config, tiny_model

parse_sudoku = task_named("sudoku").parse
parse_maze = task_named("maze").parse
parse_arc = task_named("arc").parse
check_maze = maze_data.check_maze_pair

SUDOKU4 = "1...|..2.\n.3..|...4"  # separators and newlines are ignored
PUZZLE4 = "....32....21...."
PUZZLE4B = ".21..4.........2"
MAZE5 = "#####\n#S  #\n# # #\n#  G#\n#####"


def tiny(name: str = "hrm", **fields):
    """The shared tiny model, 3 L cycles and 4 segments."""
    return tiny_model(name, **{"L_cycles": 3, "halt_max_steps": 4, **fields})


class FixedHead(torch.nn.Module):
    """An output head that writes `tokens` (one per cell), or on call k the k-th row of `tokens`."""

    def __init__(self, tokens, vocab: int, skip: int = 0):
        super().__init__()
        tokens = torch.as_tensor(np.atleast_2d(tokens), dtype=torch.long)
        logits = torch.nn.functional.one_hot(tokens, vocab).float() * 10.0
        self.register_buffer("logits", torch.nn.functional.pad(logits, (0, 0, skip, 0)))
        self.calls = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        row = min(self.calls, self.logits.shape[0] - 1)
        self.calls += 1
        return self.logits[row].to(z.dtype).expand(z.shape[0], -1, -1)


class FirstRowHalts(torch.nn.Module):
    """A Q head under which the first row of every batch halts and the others continue."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.tensor([-5.0, 5.0]).repeat(x.shape[0], 1)
        q[0] = torch.tensor([5.0, -5.0])
        return q.to(x.dtype)


def force_halt(model, halt: bool) -> None:
    with torch.no_grad():
        model.inner.q_head.weight.zero_()
        model.inner.q_head.bias.copy_(torch.tensor([5.0, -5.0] if halt else [-5.0, 5.0]))


def solution_of(puzzle: str) -> np.ndarray:
    cells = parse_sudoku(puzzle).payload
    result = sudoku_data.solve_exact(cells.reshape(-1), limit=2)
    assert result.unique
    return result.solution.reshape(cells.shape)


@pytest.fixture()
def checkpoint(tmp_path):
    model = tiny()
    card = ModelCard("hrm", model.config.model_dump(mode="json"))
    return save_checkpoint(tmp_path / "run", 1, model, card, train_state={"step": 1})


@pytest.fixture()
def hrm_cli():
    assert "hrm.solve_cli" in cli.COMMAND_MODULES
    return cli.main


# --------------------------------------------------------------------------------------------------
# Parsing and rule checks
# --------------------------------------------------------------------------------------------------


def test_sudoku_parsing_ignores_separators():
    pretty = ". . | . .\n3 2 | . .\n----+----\n. . | 2 1\n. . | . ."
    assert parse_sudoku(pretty).text == parse_sudoku(PUZZLE4).text == PUZZLE4
    assert parse_sudoku("0" * 81).payload.shape == (9, 9)
    assert format_sudoku(solution_of(PUZZLE4)).splitlines()[2] == "----+----"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1.3...1.4....1.", "has 15 cells"),
        ("1.3...1.4....1.x", "'x' not allowed"),
        ("1.5...1.4....1..", "'5' not allowed"),
        ("11..............", "contradictory givens: digit 1 appears twice in row 1"),
    ],
)
def test_malformed_sudoku_is_one_line_error(text, words):
    with pytest.raises(DataError) as exc:
        parse_sudoku(text)
    message = str(exc.value)
    assert words in message and "\n" not in message and "puzzle '" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("#####\n#S S#\n# # #\n#  G#\n#####", "2 'S' cells"),
        ("#####\n#S# #\n### #\n#  G#\n#####", "cannot be reached"),
        ("#####\n#S x#\n# # #\n#  G#\n#####", "outside the charset"),
        ("######\n#S  #\n# # #\n#  G#\n#####", "N rows of N"),
    ],
)
def test_malformed_maze_is_one_line_error(text, words):
    with pytest.raises(DataError, match=words) as exc:
        parse_maze(text)
    assert "\n" not in str(exc.value)


def test_maze_parsing_accepts_one_line_and_stripped_rows():
    assert parse_maze(MAZE5.replace("\n", "")).text == MAZE5
    assert parse_maze("#####\n#S\n# # #\n#  G#\n#####").text.splitlines()[1] == "#S   "


def test_detect_kind():
    assert task_for(PUZZLE4).name == "sudoku"
    assert task_for(MAZE5).name == "maze"
    assert task_for({"train": [], "test": []}).name == "arc"
    assert task_for("", suffix=".json").name == "arc"


def test_sudoku_rule_check():
    puzzle = parse_sudoku(PUZZLE4).payload
    solution = solution_of(PUZZLE4)
    assert check_sudoku(puzzle, solution) is None
    swapped = solution.copy()
    swapped[0, [1, 3]] = swapped[0, [3, 1]]  # rows still fine, columns not
    assert "appears twice in column" in check_sudoku(puzzle, swapped)
    changed = solution.copy()
    changed[1, 0] = 1
    assert check_sudoku(puzzle, changed) == "the given 3 at r2c1 was changed to 1"
    empty = solution.copy()
    empty[3, 2] = 0
    assert check_sudoku(puzzle, empty) == "cell r4c3 holds no digit 1-4"
    # A valid grid that disagrees with the givens of another puzzle.
    other = parse_sudoku("2" + "." * 15).payload
    assert "was changed" in check_sudoku(other, solution)
    # Agreement with the data module's checker on random grids.
    rng = np.random.default_rng(0)
    for _ in range(200):
        grid = rng.integers(1, 5, size=(4, 4)) if rng.random() < 0.5 else solution.copy()
        if rng.random() < 0.3:
            grid[rng.integers(4), rng.integers(4)] = rng.integers(1, 5)
        ok = check_sudoku(puzzle, grid) is None
        assert ok == sudoku_data.is_valid_solution(grid, puzzle)


def test_maze_rule_check():
    question = parse_maze(MAZE5).payload
    answer = maze_data.solve_maze(question)
    assert check_maze(question, answer) is None
    longer = maze_data.encode_maze("#####\n#S  #\n#o# #\n#ooG#\n#####".replace("\n", ""), 5)
    assert check_maze(question, longer) is None  # another shortest path is also right
    detour = np.where(question == maze_data.OPEN, maze_data.PATH, question)
    assert "moves" in check_maze(question, detour)
    assert "do not connect" in check_maze(question, question)


# --------------------------------------------------------------------------------------------------
# Solving
# --------------------------------------------------------------------------------------------------


def test_random_model_verdict_agrees_with_solver():
    model = tiny()
    for text in (PUZZLE4, PUZZLE4B):
        sol = solve(model, text)
        truth = solution_of(text)
        assert sol.valid == bool(np.array_equal(np.asarray(sol.answer), truth))
        assert sol.valid or sol.reason
        assert 0.0 < sol.confidence < 1.0 and sol.segments == model.config.halt_max_steps


def test_forced_true_answer_is_valid_and_wrong_one_is_not():
    model = tiny()
    truth = solution_of(PUZZLE4)
    model.inner.lm_head = FixedHead(truth.reshape(-1) + 1, 6)
    sol = solve(model, PUZZLE4)
    assert sol.valid is True and sol.reason is None
    assert sol.answer == truth.tolist()
    assert "✓" in sol.summary()
    wrong = truth.copy()
    wrong[0, 0], wrong[0, 1] = wrong[0, 1], wrong[0, 0]
    model.inner.lm_head = FixedHead(wrong.reshape(-1) + 1, 6)
    sol = solve(model, PUZZLE4)
    assert sol.valid is False and "twice" in sol.reason and "✗" in sol.summary()


def test_maze_solve_forced_path():
    model = tiny(seq_len=25)
    question = parse_maze(MAZE5).payload
    answer = maze_data.solve_maze(question)
    model.inner.lm_head = FixedHead(answer.reshape(-1), 6)
    sol = solve(model, MAZE5, halt="max")
    assert sol.valid is True and sol.format() == maze_data.render_maze(answer)
    assert sol.answer[1][1] == "S"


def test_adaptive_and_max_halting_segment_counts():
    model = tiny()
    force_halt(model, True)
    assert solve(model, PUZZLE4, halt="adaptive").segments == 1
    assert solve(model, PUZZLE4, halt="max").segments == 4
    longer = solve(model, PUZZLE4, halt="max", segments=6, trace=True)
    assert longer.segments == longer.max_segments == 6 and len(longer.trace["segments"]) == 6
    assert longer.trace["model"]["halt_max_steps"] == 6 and model.config.halt_max_steps == 4  # untouched
    with pytest.raises(HRMError, match="segments must be a whole number"):
        solve(model, PUZZLE4, segments=0)
    force_halt(model, False)
    assert solve(model, PUZZLE4, halt="adaptive").segments == 4
    sol = solve(model, PUZZLE4, halt="adaptive")
    assert sol.confidence == pytest.approx(1 / (1 + np.exp(5.0)))


def test_trm_halts_on_q_halt_alone():
    model = tiny("trm")
    assert model.halt_on_q_halt_only
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([1.0, 5.0]))  # q_halt > 0 though below q_continue
    assert solve(model, PUZZLE4).segments == 1
    assert solve(model, PUZZLE4, halt="max").segments == model.config.halt_max_steps


def test_batch_rows_freeze_at_their_halting_segment():
    model = tiny()
    model.inner.q_head = FirstRowHalts()
    # On segment k every cell holds digit k, so a row's answer tells the segment it halted at.
    model.inner.lm_head = FixedHead(np.arange(2, 6)[:, None].repeat(16, 1), 6)
    puzzles = [PUZZLE4, PUZZLE4B, PUZZLE4]
    sols = solve_many(model, puzzles, batch_size=3)
    assert [s.segments for s in sols] == [1, 2, 3]
    assert [s.answer[0][0] for s in sols] == [1, 2, 3]
    model.inner.lm_head.calls = 0
    sols = solve_many(model, puzzles, halt="max", batch_size=2)
    assert [s.segments for s in sols] == [4, 4, 4]


def test_solve_many_matches_solve_and_checks_sizes():
    model = tiny()
    puzzles = [PUZZLE4, PUZZLE4B]
    many = solve_many(model, puzzles, batch_size=1)
    assert [s.answer for s in many] == [solve(model, p).answer for p in puzzles]
    with pytest.raises(DataError, match="does not fit"):
        solve(model, "." * 81)
    eleven = "\n".join(
        ["#" * 11, "#S" + " " * 8 + "#", *["#" + " " * 9 + "#"] * 7, "#" + " " * 8 + "G#", "#" * 11]
    )
    with pytest.raises(DataError, match=r"an 11x11 maze \(121 cells\)"):
        solve(model, eleven, kind="maze")
    with pytest.raises(DataError, match="line 7"):
        solve_many(model, [PUZZLE4, "1" * 16], names=["f line 1", "f line 7"])


def test_loaded_model_and_errors(checkpoint, tmp_path):
    loaded = load_model(checkpoint)
    sol = solve(loaded, PUZZLE4)
    assert sol.segments >= 1
    assert solve(checkpoint, PUZZLE4).answer == sol.answer  # a path is loaded too
    with pytest.raises(CheckpointError, match="no-such-model"):
        solve("no-such-model", PUZZLE4)
    (checkpoint / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_model(checkpoint)


def test_export_writes_a_loadable_model_dir(hrm_cli, checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    assert hrm_cli(["export", str(checkpoint.parent.parent), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert "step_0000001" in json.loads((out / "model.json").read_text())["extra"]["exported_from"]
    assert solve(out, PUZZLE4).answer == solve(checkpoint, PUZZLE4).answer
    capsys.readouterr()
    assert hrm_cli(["export", str(checkpoint), str(out)]) == 1  # no silent overwrite
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err
    assert hrm_cli(["export", str(tmp_path / "nothing"), str(tmp_path / "o2")]) == 1
    assert "nothing" in capsys.readouterr().err and not (tmp_path / "o2").exists()


# --------------------------------------------------------------------------------------------------
# Traces
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "pattern"),
    [
        ("hrm", {}, ["L", "L", "L", "H"] * 2),
        ("hrm", {"puzzle_emb_ndim": 32, "H_cycles": 1, "L_cycles": 2}, ["L", "L", "H"]),
        ("trm", {"H_cycles": 2, "L_cycles": 2}, ["L", "L", "H"] * 2),
        ("transformer", {}, ["H"]),
    ],
)
def test_trace_follows_schema_and_config(name, fields, pattern, tmp_path):
    model = tiny(name, **fields)
    sol = solve(model, PUZZLE4, trace=True, halt="max")
    trace = json.loads(json.dumps(sol.trace))
    validate_trace(trace)
    assert trace["kind"] == "sudoku" and trace["model"]["name"] == name
    assert len(trace["segments"]) == model.config.halt_max_steps
    for seg in trace["segments"]:
        assert [s["kind"] for s in seg["steps"]] == pattern
        assert [s["index"] for s in seg["steps"]] == list(range(1, len(pattern) + 1))
        assert seg["steps"][-1]["answer"] == seg["answer"]  # the last update is the segment's answer
        assert all(s["residual"] >= 0 for s in seg["steps"])
        assert np.asarray(seg["confidence"]).shape == (4, 4)
    assert [seg["halted"] for seg in trace["segments"]][-1] is True
    assert trace["final"]["answer"] == sol.answer and trace["final"]["segments"] == sol.segments
    steps = model.config.halt_max_steps * len(pattern)
    assert len(trace["pca"]["z_H"]) == len(trace["pca"]["z_L"]) == len(trace["pca"]["steps"]) == steps
    out = write_trace(sol.trace, tmp_path / "trace.json")
    assert json.loads(out.read_text()) == trace
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary file left


def test_trace_residuals_are_over_puzzle_cells():
    model = tiny(puzzle_emb_ndim=32, H_cycles=1, L_cycles=2, halt_max_steps=1)
    seen = []
    model.eval()
    with torch.no_grad():
        batch = {
            "inputs": torch.from_numpy(parse_sudoku(PUZZLE4).payload.reshape(1, -1).astype(np.int32) + 1),
            "puzzle_identifiers": torch.zeros(1, dtype=torch.int32),
        }
        carry = model.initial_carry(batch)
        model(carry, batch, lambda kind, i, h, low: seen.append((kind, h.clone(), low.clone())))
    l0 = model.inner.L_init.expand(16, -1)
    first = torch.linalg.vector_norm(seen[0][2][0, 1:] - l0)
    second = torch.linalg.vector_norm(seen[1][2][0, 1:] - seen[0][2][0, 1:])
    h_step = torch.linalg.vector_norm(seen[2][1][0, 1:] - model.inner.H_init.expand(16, -1))
    trace = solve(model, PUZZLE4, trace=True).trace
    got = [s["residual"] for s in trace["segments"][0]["steps"]]
    assert got == pytest.approx([float(first), float(second), float(h_step)], rel=1e-4)


def test_invalid_trace_is_rejected():
    sol = solve(tiny(), PUZZLE4, trace=True)
    sol.trace["segments"][0]["steps"][0]["kind"] = "X"
    with pytest.raises(Exception, match="segments/0/steps/0/kind"):
        validate_trace(sol.trace)


# --------------------------------------------------------------------------------------------------
# ARC
# --------------------------------------------------------------------------------------------------

ARC_TINY = tiny_config(900, 12, hidden_size=16, num_heads=1, H_cycles=1, L_cycles=1, halt_max_steps=2)


def arc_task(output):
    return {
        "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[5, 6, 7], [8, 9, 0]], **({"output": output} if output is not None else {})}],
    }


def test_arc_views_vote_and_check():
    torch.manual_seed(0)
    model = build_model("hrm", ARC_TINY)
    force_halt(model, True)
    # The head fills the whole canvas with colour 0: every view, mapped back, votes for a 30x30 grid
    # of zeros (colour permutations keep 0, the background).
    model.inner.lm_head = FixedHead(np.full(900, 2), 12)
    sol = solve(model, arc_task([[0] * 30] * 30), arc_colour_perms=1)
    assert sol.kind == "arc" and sol.valid is True and sol.segments == 1
    assert sol.votes == [[16]] and np.asarray(sol.answer).shape == (30, 30)
    sol = solve(model, arc_task([[1, 2], [3, 4]]), trace=True)
    assert sol.valid is False and "neither attempt" in sol.reason and sol.votes == [[8]]
    validate_trace(sol.trace)
    assert sol.trace["puzzle"]["task_id"] == "task"
    sol = solve(model, arc_task(None), arc_max_views=3)
    assert sol.valid is None and sol.votes == [[3]]


def test_arc_dihedral_views_are_inverted():
    torch.manual_seed(0)
    model = build_model("hrm", ARC_TINY)
    force_halt(model, True)
    # Colour 3 in the top-left 1x2 cells only: each view's crop is [[3, 3]], whose inverse under the
    # quarter turns and transposes is a column; votes split 4 / 4 between row and column.
    canvas = np.zeros((30, 30), dtype=np.int64)
    canvas[0, :2] = 5
    model.inner.lm_head = FixedHead(canvas.reshape(-1), 12)
    sol = solve(model, arc_task([[3, 3]]))
    assert sol.votes == [[4, 4]]
    assert sorted(map(str, sol.attempts[0])) == sorted(["[[3, 3]]", "[[3], [3]]"])
    assert sol.valid is True


def test_arc_known_task_uses_its_identifiers(tmp_path):
    names = ["<blank>", "abc", "abc|||t1|||0123456789", "other"]
    task_file = tmp_path / "abc.json"
    task_file.write_text(json.dumps(arc_task(None)))
    views = arc_views(parse_arc(task_file.read_text(), task_id="abc").payload, names)
    assert views == [("abc", 1), ("abc|||t1|||0123456789", 2)]
    assert arc_views(parse_arc(arc_task(None)).payload, names)[0] == ("task", 0)
    torch.manual_seed(0)
    model = build_model("hrm", dict(ARC_TINY, puzzle_emb_ndim=16, num_puzzle_identifiers=4))
    force_halt(model, True)
    sol = solve(model, task_file, identifiers=names)
    assert sum(sol.votes[0]) == 2  # one vote per known variant
    with pytest.raises(DataError, match="4 puzzle identifiers"):
        solve(model, task_file, identifiers=names[:2])


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def test_cli_solves_and_prints(hrm_cli, checkpoint, capsys, tmp_path):
    assert hrm_cli(["solve", "--model", str(checkpoint.parent.parent), PUZZLE4, "--halt", "max"]) == 0
    out = capsys.readouterr().out
    assert "segments 4 of 4 (max halting)" in out and "halting confidence" in out and "-+-" in out
    trace = tmp_path / "t.json"
    assert hrm_cli(["solve", "-m", str(checkpoint), "--json", "--trace", str(trace), SUDOKU4]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["puzzles"] == 1 and report["solutions"][0]["kind"] == "sudoku"
    validate_trace(json.loads(trace.read_text()))


def test_cli_file_of_puzzles(hrm_cli, checkpoint, capsys, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(f"# two puzzles\n{PUZZLE4}\n\n..3.3..1.1..2...\n")
    assert hrm_cli(["solve", "-m", str(checkpoint), "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path} line 2:" in out and f"{path} line 4:" in out and "of 2 checked" in out
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(f"source,question,answer,rating\nx,{PUZZLE4},,0\n")
    assert read_puzzle_file(csv_path) == [(f"{csv_path} line 2", PUZZLE4)]
    maze_lines = tmp_path / "m.txt"
    maze_lines.write_text(MAZE5.replace("\n", "") + "\n")
    assert read_puzzle_file(maze_lines)[0][1] == MAZE5.replace("\n", "")


def test_sudoku_views_prefer_a_rule_satisfying_answer_then_the_majority():
    puzzle = parse_sudoku(PUZZLE4)
    truth = solution_of(PUZZLE4).reshape(-1)
    rows, augs = sudoku_views(puzzle.payload, 5, seed=3)
    assert np.array_equal(rows[0], puzzle.payload.reshape(-1))
    for k in range(1, 5):  # each view is a puzzle whose solution is the transformed truth
        view_truth = sudoku_data.apply_augmentations(truth, augs[k - 1 : k])[0]
        assert check_sudoku(rows[k], view_truth) is None
    wrong = truth.copy()
    wrong[[0, 1]] = wrong[[1, 0]]
    in_frame = [
        sudoku_data.apply_augmentations(g, augs[k - 1 : k])[0] if k else g
        for k, g in enumerate([wrong, wrong, wrong, truth, truth])
    ]

    def vote(grids):
        rows_answers = RowAnswers(preds=np.stack(grids) + 1, q_halt=np.zeros(5), steps=np.ones(5, np.int64))
        ans = task_named("sudoku").answer(puzzle, Encoding(rows + 1, np.zeros(5), augs), rows_answers)
        return ans.grid, ans.valid, ans.reason, ans.q_halt, ans.agreement

    answer, valid, reason, _, agree = vote(in_frame)
    assert valid and reason is None and agree == 2 and np.array_equal(np.ravel(answer), truth)
    other = truth.copy()
    other[[2, 3]] = other[[3, 2]]
    in_frame[3] = sudoku_data.apply_augmentations(other, augs[2:3])[0]
    in_frame[4] = sudoku_data.apply_augmentations(truth[::-1].copy(), augs[3:4])[0]
    answer, valid, reason, _, agree = vote(in_frame)
    assert not valid and "twice" in reason and agree == 3 and np.array_equal(np.ravel(answer), wrong)


def test_sudoku_views_solve_and_cli(hrm_cli, checkpoint, capsys):
    model = tiny()
    truth = solution_of(PUZZLE4)
    model.inner.lm_head = FixedHead(truth.reshape(-1) + 1, 6)  # right in the first view only
    sol = solve(model, PUZZLE4, halt="max", views=6, trace=True)
    assert sol.valid is True and sol.views == 6 and 1 <= sol.agreement < 6
    assert f"{sol.agreement} of 6 views agree" in sol.summary() and sol.to_dict()["views"] == 6
    validate_trace(sol.trace)
    assert solve(model, PUZZLE4, halt="max").agreement is None
    with pytest.raises(Exception, match="views apply to Sudoku puzzles, not to a maze"):
        solve(tiny(seq_len=25), MAZE5, views=2)
    assert hrm_cli(["solve", "-m", str(checkpoint), "--views", "0", PUZZLE4]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--views must be at least 1" in err
    assert hrm_cli(["solve", "-m", str(checkpoint), "--views", "3", "--json", PUZZLE4]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"][0]["views"] == 3
    assert hrm_cli(["solve", "-m", str(checkpoint), "--segments", "0", PUZZLE4]) == 1
    assert "--segments must be at least 1" in capsys.readouterr().err
    assert (
        hrm_cli(["solve", "-m", str(checkpoint), "--segments", "2", "--halt", "max", "--json", PUZZLE4]) == 0
    )
    assert json.loads(capsys.readouterr().out)["solutions"][0]["max_segments"] == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["1.3...1.4....1."], "has 15 cells"),
        (["11.............."], "contradictory givens"),
        (["." * 81], "does not fit"),
        (["--file", "MISSING"], "no such file"),
        ([], "give one puzzle"),
    ],
)
def test_cli_errors_are_one_line(hrm_cli, checkpoint, capsys, args, words):
    assert hrm_cli(["solve", "-m", str(checkpoint), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and err.startswith("hrm: error:")


def test_cli_model_errors_are_one_line(hrm_cli, checkpoint, capsys):
    assert hrm_cli(["solve", "-m", "no-such-model", PUZZLE4]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model" in err
    (checkpoint / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    assert hrm_cli(["solve", "-m", str(checkpoint), PUZZLE4]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors" in err and "not a valid safetensors" in err


def test_a_maze_row_of_open_cells_is_kept():
    text = "     \n#S#G#\n# # #\n#   #\n#####\n"
    puzzle = parse_maze(text)
    assert puzzle.payload.reshape(5, 5)[0].tolist() == [2] * 5


# --------------------------------------------------------------------------------------------------
# The shipped model
# --------------------------------------------------------------------------------------------------

EASY9 = "053006000106000040800100300000604502005070008400201000000000004004903650600000000"
EASY9_SOLUTION = "953846127126537849847192365319684572265379418478251936531768294784923651692415783"


def test_shipped_model_solves_a_fixed_easy_puzzle(hrm_cli, capsys):
    import hrm

    model = hrm.load_model("sudoku-9x9")
    assert model.card.model == "trm" and model.model.config.seq_len == 81
    sol = hrm.solve(model, EASY9)
    assert sol.valid and "".join(str(d) for row in sol.answer for d in row) == EASY9_SOLUTION
    assert 1 <= sol.segments <= sol.max_segments == 128  # the card's halt_max_steps (trained with 16)
    assert hrm_cli(["solve", "-m", "sudoku-9x9", "--json", EASY9]) == 0
    assert json.loads(capsys.readouterr().out)["solutions"][0]["valid"] is True
    voted = hrm.solve(model, EASY9, views=4)
    assert voted.valid and voted.views == 4 and voted.agreement >= 1
