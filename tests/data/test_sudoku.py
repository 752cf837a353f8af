from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrm.data.format import validate_dataset
from hrm.data.sudoku import (
    DEFAULT_MAX_NODES,
    DIFFICULTIES,
    SolverGaveUp,
    SolveStats,
    apply_augmentations,
    augment_tokens,
    build_sudoku_dataset,
    download_sudoku_extreme,
    find_conflict,
    format_grid,
    generate_collection,
    generate_sudoku,
    invert_augmentations,
    is_valid_solution,
    parse_grid,
    random_augmentations,
    random_full_grid,
    rate_difficulty,
    read_sudoku_file,
    solve_exact,
)
from hrm.errors import DataError
from shared_data import need

INKALA = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."
EASTER_MONSTER = "1.......2.9.4...5...6...7...5.9.3.......7.......85..4.7.....6...3...9.8...2.....1"
SEVENTEEN = ".................1.....2.3......3.2...1.4......5....6..3......4.7..8...962...7..."


def seventeen_clue_file(shared_dir: Path) -> Path:
    return need(shared_dir / "data" / "sudoku" / "17_clue.txt")


# -- solver ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [INKALA, EASTER_MONSTER, SEVENTEEN])
def test_solver_hard_puzzles_unique_in_few_steps(line):
    puzzle = parse_grid(line)
    result = solve_exact(puzzle, limit=2)
    assert result.unique
    assert is_valid_solution(result.solution, puzzle)
    # The whole search tree, uniqueness proof included, is small: hundreds of steps, far below the budget.
    assert result.stats.nodes < 1000 < DEFAULT_MAX_NODES


# Few givens, but search trees of millions of steps for this solver (minutes without a budget): the
# first has several solutions, the second none (P. Norvig's "hard1" and "impossible" examples).
HOPELESS = [
    ".....6....59.....82....8....45........3........6..3.54...325..6..................",
    ".....5.8....6.1.43..........1.5........1.6...3.......553.....61........4.........",
]


@pytest.mark.parametrize("line", HOPELESS)
def test_solver_gives_up_after_its_step_budget(line):
    with pytest.raises(SolverGaveUp) as exc:
        solve_exact(parse_grid(line), limit=2)
    assert exc.value.nodes == DEFAULT_MAX_NODES
    message = str(exc.value)
    assert "\n" not in message and line in message
    assert f"gives up after {DEFAULT_MAX_NODES:,} search steps: too few givens to settle" in message
    with pytest.raises(SolverGaveUp, match="gives up after 500 search steps"):
        solve_exact(parse_grid(line), max_nodes=500)


def test_hopeless_puzzle_in_a_file_is_one_line_error_naming_it(tmp_path):
    source = tmp_path / "puzzles.txt"
    source.write_text(f"{SEVENTEEN}\n{HOPELESS[1]}\n")
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert "too few givens to settle" in _one_line_error(exc, source, 2)
    collection = read_sudoku_file(source, skip_invalid=True)
    assert len(collection) == 1 and collection.skipped == 1


def test_almost_empty_grid_reports_several_solutions_in_few_steps(tmp_path):
    grid = np.zeros(81, dtype=np.uint8)
    grid[[10, 40, 79]] = [1, 4, 2]  # three givens
    result = solve_exact(grid, limit=2)
    assert result.num_solutions == 2 and result.stats.nodes < 200
    source = tmp_path / "sparse.txt"
    source.write_text(format_grid(grid) + "\n")
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert "more than one solution" in _one_line_error(exc, source, 1)


def test_hardest_puzzles_are_rated_extreme():
    assert rate_difficulty(solve_exact(parse_grid(INKALA)).stats) == "extreme"
    assert rate_difficulty(solve_exact(parse_grid(EASTER_MONSTER)).stats) == "extreme"


def test_removing_a_clue_of_a_minimal_puzzle_gives_several_solutions():
    puzzle = parse_grid(SEVENTEEN)
    first_clue = int(np.flatnonzero(puzzle)[0])
    puzzle[first_clue] = 0
    assert solve_exact(puzzle, limit=2).num_solutions == 2


def test_contradictory_givens_have_no_solution():
    puzzle = parse_grid(SEVENTEEN)
    puzzle[0] = puzzle[1] = 1  # the first row of SEVENTEEN is blank
    assert find_conflict(puzzle) is not None
    assert solve_exact(puzzle).num_solutions == 0


def test_unsolvable_without_direct_conflict():
    # Consistent givens, but the top-left cell has no candidate left: its row holds 1-4, its column 5-8,
    # its box 9.
    grid = np.zeros(81, dtype=np.uint8)
    grid[1:5] = [1, 2, 3, 4]
    grid[[27, 36, 45, 54]] = [5, 6, 7, 8]
    grid[10] = 9
    assert find_conflict(grid) is None
    assert solve_exact(grid).num_solutions == 0


def test_rating_thresholds():
    assert rate_difficulty(SolveStats()) == "easy"
    assert rate_difficulty(SolveStats(hidden_singles=1)) == "medium"
    assert rate_difficulty(SolveStats(guesses=2)) == "hard"
    assert rate_difficulty(SolveStats(guesses=100)) == "extreme"


def test_small_sizes_solve():
    for size in (4, 6):
        grid = random_full_grid(size, np.random.default_rng(size))
        assert is_valid_solution(grid)
        assert solve_exact(grid).unique


# -- generator ------------------------------------------------------------------------------------

ACHIEVABLE = [(4, "easy"), (6, "easy"), (6, "medium"), (9, "easy"), (9, "medium"), (9, "hard")]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(combo=st.sampled_from(ACHIEVABLE), seed=st.integers(0, 2**32 - 1))
def test_generated_sudokus_are_unique_and_rated_as_requested(combo, seed):
    size, difficulty = combo
    s = generate_sudoku(size, difficulty, np.random.default_rng(seed))
    result = solve_exact(s.puzzle, limit=2)
    assert result.unique
    assert np.array_equal(result.solution, s.solution)
    assert rate_difficulty(result.stats) == difficulty
    assert is_valid_solution(s.solution, s.puzzle)


@pytest.mark.slow
def test_generate_extreme():
    s = generate_sudoku(9, "extreme", np.random.default_rng(3))
    assert rate_difficulty(solve_exact(s.puzzle).stats) == "extreme"


def test_generator_is_reproducible():
    a = generate_sudoku(9, "medium", np.random.default_rng(7))
    b = generate_sudoku(9, "medium", np.random.default_rng(7))
    assert np.array_equal(a.puzzle, b.puzzle)


def test_difficulty_mix_is_split_evenly_and_rated():
    coll = generate_collection(6, 6, "easy,medium", np.random.default_rng(5))
    assert coll.ratings == ["easy", "medium"] * 3
    for puzzle, rating in zip(coll.puzzles, coll.ratings):
        assert rate_difficulty(solve_exact(puzzle, limit=2).stats) == rating
    # one level draws exactly as before the mix existed
    single = generate_collection(3, 6, "medium", np.random.default_rng(5))
    again = [generate_sudoku(6, "medium", rng).puzzle for rng in [np.random.default_rng(5)] for _ in range(3)]
    assert np.array_equal(single.puzzles, np.stack(again))
    with pytest.raises(DataError, match="unknown difficulty 'tricky'"):
        generate_collection(2, 9, "easy,tricky", np.random.default_rng(0))


def test_unreachable_difficulty_is_a_clear_error():
    with pytest.raises(DataError, match="could not generate"):
        generate_sudoku(4, "extreme", np.random.default_rng(0), max_tries=5)
    with pytest.raises(DataError, match="unknown difficulty"):
        generate_sudoku(9, "impossible")
    with pytest.raises(DataError, match="unsupported sudoku size"):
        generate_sudoku(5, "easy")


# -- augmentation ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(size=st.sampled_from([4, 6, 9]), seed=st.integers(0, 2**32 - 1), k=st.integers(1, 8))
def test_augmentations_preserve_validity_and_invert(size, seed, k):
    rng = np.random.default_rng(seed)
    solution = random_full_grid(size, rng)
    puzzle = np.where(rng.random(size * size) < 0.5, solution, 0).astype(np.uint8)
    augs = random_augmentations(size, k, rng)
    new_puzzles = apply_augmentations(puzzle, augs)
    new_solutions = apply_augmentations(solution, augs)
    for p, s in zip(new_puzzles, new_solutions):
        assert is_valid_solution(s, p)
        assert np.count_nonzero(p) == np.count_nonzero(puzzle)
    assert np.array_equal(invert_augmentations(new_puzzles, augs), np.broadcast_to(puzzle, (k, puzzle.size)))
    assert np.array_equal(
        invert_augmentations(new_solutions, augs), np.broadcast_to(solution, (k, solution.size))
    )
    if size != 9:
        assert not augs.transpose.any() or size == 4  # 6x6 boxes are not square: no transpose


def test_augmentation_keeps_uniqueness():
    s = generate_sudoku(9, "hard", np.random.default_rng(1))
    augs = random_augmentations(9, 4, np.random.default_rng(2))
    for p, sol in zip(apply_augmentations(s.puzzle, augs), apply_augmentations(s.solution, augs)):
        result = solve_exact(p)
        assert result.unique and np.array_equal(result.solution, sol)


def test_augment_tokens_matches_single_augmentations():
    rng = np.random.default_rng(0)
    solutions = np.stack([random_full_grid(9, rng) for _ in range(3)])
    puzzles = np.where(rng.random(solutions.shape) < 0.4, solutions, 0).astype(np.uint8)
    inputs, labels = augment_tokens(puzzles, solutions, 4, np.random.default_rng(5), chunk=5)
    assert inputs.shape == (15, 81) and inputs.dtype == np.uint8
    augs = random_augmentations(9, 12, np.random.default_rng(5))  # same draws as inside augment_tokens
    for p in range(3):
        assert np.array_equal(inputs[p * 5], puzzles[p] + 1)
        assert np.array_equal(labels[p * 5], solutions[p] + 1)
        for a in range(4):
            t = p * 4 + a
            assert np.array_equal(
                inputs[p * 5 + 1 + a], apply_augmentations(puzzles[p], augs[t : t + 1])[0] + 1
            )
            assert np.array_equal(
                labels[p * 5 + 1 + a], apply_augmentations(solutions[p], augs[t : t + 1])[0] + 1
            )


def test_transpose_happens_about_half_the_time():
    augs = random_augmentations(9, 2000, np.random.default_rng(0))
    assert 0.4 < augs.transpose.mean() < 0.6


# -- importers and bad input ----------------------------------------------------------------------


def _one_line_error(exc: pytest.ExceptionInfo, file: Path, line: int) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert str(file) in message
    assert f"line {line}" in message
    return message


BAD_LINES = [
    ("1234", "expected 16, 36 or 81 cells"),
    (SEVENTEEN[:-1] + "x", "character 'x'"),
    ("11" + SEVENTEEN[2:], "contradictory givens"),
    ("." * 81, "more than one solution"),
]


@pytest.mark.parametrize(("bad", "problem"), BAD_LINES)
def test_bad_text_input_names_file_and_line_and_writes_nothing(tmp_path, bad, problem):
    source = tmp_path / "puzzles.txt"
    source.write_text(f"# my puzzles\n{SEVENTEEN}\n\n{bad}\n")
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert problem in _one_line_error(exc, source, 4)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        build_sudoku_dataset(out, source=source, test_count=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["puzzles.txt"]


def test_no_solution_is_reported(tmp_path):
    grid = np.zeros(81, dtype=np.uint8)
    grid[1:5] = [1, 2, 3, 4]
    grid[[27, 36, 45, 54]] = [5, 6, 7, 8]
    grid[10] = 9
    source = tmp_path / "p.txt"
    source.write_text(format_grid(grid) + "\n")
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert "no solution" in _one_line_error(exc, source, 1)


def test_mixed_sizes_are_an_error(tmp_path):
    source = tmp_path / "p.txt"
    small = format_grid(generate_sudoku(4, "easy", np.random.default_rng(0)).puzzle)
    source.write_text(f"{SEVENTEEN}\n{small}\n")
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert "4x4" in _one_line_error(exc, source, 2)


def test_skip_invalid_counts_skipped(tmp_path):
    source = tmp_path / "p.txt"
    source.write_text("\n".join([SEVENTEEN, "1234", INKALA, "." * 81]) + "\n")
    collection = read_sudoku_file(source, skip_invalid=True)
    assert len(collection) == 2 and collection.skipped == 2
    assert list(collection.lines) == [1, 3]


def test_zero_blanks_and_small_sizes(tmp_path):
    s = generate_sudoku(6, "easy", np.random.default_rng(4))
    source = tmp_path / "six.txt"
    source.write_text(format_grid(s.puzzle).replace(".", "0") + "\n")
    collection = read_sudoku_file(source)
    assert collection.size == 6 and np.array_equal(collection.solutions[0], s.solution)


def _csv_text(rows: list[tuple[str, str, str, str]], header: str = "source,question,answer,rating") -> str:
    return header + "\n" + "".join(",".join(r) + "\n" for r in rows)


def _csv_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for k, line in enumerate([SEVENTEEN, INKALA, EASTER_MONSTER]):
        answer = format_grid(solve_exact(parse_grid(line)).solution)
        rows.append((f"src{k}", line, answer, str(k * 10)))
    return rows


def test_csv_import_and_min_difficulty(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text(_csv_text(_csv_rows()))
    collection = read_sudoku_file(source)
    assert collection.kind == "csv" and len(collection) == 3
    assert list(collection.ratings) == [0, 10, 20]
    assert is_valid_solution(collection.solutions[1], collection.puzzles[1])
    out = tmp_path / "ds"
    build_sudoku_dataset(out, source=source, test_count=1, min_difficulty="10")
    assert validate_dataset(out) == []
    train = np.load(out / "train" / "all__inputs.npy")
    test = np.load(out / "test" / "all__inputs.npy")
    assert len(train) + len(test) == 2  # the rating-0 puzzle was filtered out


@pytest.mark.parametrize(
    ("mutate", "line", "problem"),
    [
        (
            lambda rows: rows.__setitem__(1, (*rows[1][:2], "1" * 81, rows[1][3])),
            3,
            "not a valid sudoku solution",
        ),
        (
            lambda rows: rows.__setitem__(
                0, (rows[0][0], rows[0][1], format_grid(solve_exact(parse_grid(INKALA)).solution), "0")
            ),
            2,
            "does not match",
        ),
        (lambda rows: rows.__setitem__(2, (rows[2][0], rows[2][1][:80], rows[2][2], "1")), 4, "81 cells"),
        (lambda rows: rows.__setitem__(2, (*rows[2][:3], "hard")), 4, "not an integer"),
    ],
)
def test_bad_csv_rows(tmp_path, mutate, line, problem):
    rows = _csv_rows()
    mutate(rows)
    source = tmp_path / "bad.csv"
    source.write_text(_csv_text(rows))
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert problem in _one_line_error(exc, source, line)
    assert len(read_sudoku_file(source, skip_invalid=True)) == 2


def test_csv_wrong_header(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text(_csv_text(_csv_rows(), header="question,answer"))
    with pytest.raises(DataError) as exc:
        read_sudoku_file(source)
    assert "header" in _one_line_error(exc, source, 1)


def test_download_without_huggingface_hub_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(DataError, match="huggingface_hub"):
        download_sudoku_extreme("train")


# -- the 17-clue collection -----------------------------------------------------------------------


def test_seventeen_clue_slice(tmp_path, shared_dir):
    path = seventeen_clue_file(shared_dir)
    lines = path.read_text().splitlines()[:504]  # 4 comment lines, then 500 puzzles
    source = tmp_path / "slice.txt"
    source.write_text("\n".join(lines) + "\n")
    collection = read_sudoku_file(source)
    assert len(collection) == 500
    assert all(np.count_nonzero(p) == 17 for p in collection.puzzles)
    for k in range(0, 500, 50):
        assert is_valid_solution(collection.solutions[k], collection.puzzles[k])
    assert set(collection.ratings) <= set(DIFFICULTIES)


@pytest.mark.slow
def test_seventeen_clue_all(tmp_path, shared_dir):
    path = seventeen_clue_file(shared_dir)
    out = tmp_path / "ds"
    result = build_sudoku_dataset(out, source=path, test_count=1000, num_aug=1)
    assert result.puzzles == {"train": 49158 - 1000, "test": 1000}
    assert result.summary.splits["train"].groups == 49158 - 1000
    assert result.summary.splits["train"].examples == 2 * (49158 - 1000)
    assert validate_dataset(out) == []
