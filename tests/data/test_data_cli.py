from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hrm.cli import main
from hrm.data.dataset import PuzzleDataset, PuzzleDatasetConfig
from hrm.data.format import validate_dataset
from hrm.data.sudoku import format_grid, generate_sudoku


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(out: Path, *extra: str) -> int:
    return main(["data", "sudoku", "--count", "12", "--size", "4", "--difficulty", "easy", "--num-aug", "3",
                 "--no-progress", "--out", str(out), *extra])  # fmt: skip


def test_cli_build_validate_and_load(tmp_path, capsys):
    out = tmp_path / "ds"
    assert build(out) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "train: 48 examples" in printed
    assert validate_dataset(out) == []
    assert main(["data", "validate", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {out}")

    config = PuzzleDatasetConfig(dataset_path=str(out), global_batch_size=8, seed=1)
    batches = list(PuzzleDataset(config, "train"))
    assert len(batches) == 1  # 12 groups, one puzzle each per pass: one full batch of 8
    assert batches[0][1]["inputs"].shape == (8, 16)
    test_config = config.model_copy(update={"test_set_mode": True})
    test_batches = list(PuzzleDataset(test_config, "test"))
    assert [e for _, _, e in test_batches] == [1]  # count // 10 test puzzles, never augmented


def test_same_seed_same_bytes(tmp_path):
    assert build(tmp_path / "a", "--seed", "5") == 0
    assert build(tmp_path / "b", "--seed", "5") == 0
    assert build(tmp_path / "c", "--seed", "6") == 0
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "c")


def test_from_file_with_test_file_and_subsample(tmp_path, capsys):
    rng = np.random.default_rng(0)
    train_file, test_file = tmp_path / "train.txt", tmp_path / "test.txt"
    train_file.write_text(
        "\n".join(format_grid(generate_sudoku(6, "easy", rng).puzzle) for _ in range(6)) + "\n"
    )
    test_file.write_text(format_grid(generate_sudoku(6, "easy", rng).puzzle) + "\n")
    out = tmp_path / "ds"
    code = main(["data", "sudoku", "--from", str(train_file), "--test-from", str(test_file),
                 "--subsample", "4",
                 "--num-aug", "2", "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    assert "train: 12 examples, 12 puzzles, 4 groups" in capsys.readouterr().out
    assert np.load(out / "test" / "all__inputs.npy").shape == (1, 36)


def test_cli_bad_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    source = tmp_path / "bad.txt"
    source.write_text("# header\n" + "1" * 81 + "\n")
    out = tmp_path / "ds"
    code = main(["data", "sudoku", "--from", str(source), "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hrm: error:")
    assert str(source) in err and "line 2" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_cli_puzzle_the_solver_cannot_settle_is_one_line(tmp_path, capsys):
    source = tmp_path / "hard.txt"
    # Few givens and no solution: millions of search steps without the solver's budget.
    source.write_text(".....5.8....6.1.43..........1.5........1.6...3.......553.....61........4.........\n")
    out = tmp_path / "ds"
    assert main(["data", "sudoku", "--from", str(source), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hrm: error:")
    assert f"{source}, line 1: the exact solver gives up after 50,000 search steps" in err
    assert not out.exists()


def test_cli_skip_invalid_reports(tmp_path, capsys):
    source = tmp_path / "mixed.txt"
    good = [format_grid(generate_sudoku(4, "easy", np.random.default_rng(k)).puzzle) for k in range(3)]
    source.write_text("\n".join([*good, "12", "." * 16]) + "\n")
    code = main(["data", "sudoku", "--from", str(source), "--test-count", "1", "--skip-invalid",
                 "--out", str(tmp_path / "ds"), "--no-progress"])  # fmt: skip
    assert code == 0
    assert "skipped 2 invalid entries" in capsys.readouterr().out


def test_cli_refuses_existing_output(tmp_path, capsys):
    out = tmp_path / "ds"
    assert build(out) == 0
    capsys.readouterr()
    assert build(out) == 1
    assert "already exists" in capsys.readouterr().err
    assert build(out, "--overwrite") == 0


def test_cli_validate_reports_problems(tmp_path, capsys):
    out = tmp_path / "ds"
    assert build(out) == 0
    np.save(out / "train" / "all__group_indices.npy", np.array([0, 5, 3]))
    capsys.readouterr()
    assert main(["data", "validate", str(out)]) == 1
    assert "group_indices" in capsys.readouterr().out
    assert main(["data", "validate", str(tmp_path / "missing")]) == 1


def test_cli_source_errors(tmp_path, capsys):
    assert main(["data", "sudoku", "--out", str(tmp_path / "x")]) == 1
    assert "exactly one puzzle source" in capsys.readouterr().err
    assert main(["data", "sudoku", "--from", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x")]) == 1
    assert "nope.txt" in capsys.readouterr().err
    assert main(["data", "sudoku", "--count", "3", "--size", "5", "--out", "x"]) == 2


def test_cli_difficulty_mix(tmp_path, capsys):
    out = tmp_path / "mix"
    assert build(out, "--difficulty", "easy,medium", "--size", "6", "--test-count", "2") == 0
    assert "generated 6x6 easy,medium" in capsys.readouterr().out
    assert build(tmp_path / "bad", "--difficulty", "easy,sneaky") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown difficulty 'sneaky'" in err
    assert not (tmp_path / "bad").exists()


def test_cli_exclude_leaves_listed_puzzles_out_of_both_splits(tmp_path, capsys):
    rng = np.random.default_rng(4)
    puzzles = ["".join(map(str, generate_sudoku(4, "easy", rng).puzzle)) for _ in range(30)]
    unique = list(dict.fromkeys(puzzles))
    source = tmp_path / "all.txt"
    source.write_text("\n".join(unique) + "\n")
    held = tmp_path / "held.txt"
    held.write_text("\n".join(unique[::3]) + "\n")
    out = tmp_path / "ds"
    args = ["data", "sudoku", "--from", str(source), "--test-count", "2", "--no-progress", "--out", str(out)]
    assert main([*args, "--exclude", str(held)]) == 0
    written = set()
    for split in ("train", "test"):
        config = PuzzleDatasetConfig(dataset_path=str(out), global_batch_size=1, test_set_mode=True, seed=0)
        for _, batch, _ in PuzzleDataset(config, split):
            written.add("".join(str(max(int(v) - 1, 0)) for v in batch["inputs"][0].tolist()))
    assert written and not written & set(unique[::3])
    assert len(written) == len(unique) - len(unique[::3])
    assert main([*args, "--overwrite", "--exclude", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt" in capsys.readouterr().err
