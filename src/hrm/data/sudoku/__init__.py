"""Sudoku: the classical exact solver, a generator, importers, augmentation and the dataset builder.

Modules: `solver` (exact solver, conflicts, validity, box shapes, difficulty rating), `generator`
(random full grids, digging, difficulty levels), `importers` (text and CSV files, the Sudoku-Extreme
download), `collection` (`SudokuCollection`, the puzzle sets they pass around) and `builder`
(augmentation and `build_sudoku_dataset`). Their public names are re-exported here.

Grids are flat ``uint8`` arrays of length n*n with 0 for a blank and 1..n for a digit.
"""

from hrm.data.sudoku.builder import (
    VOCAB_SIZE,
    SudokuAugmentations,
    apply_augmentations,
    augment_tokens,
    build_sudoku_dataset,
    build_sudoku_splits,
    invert_augmentations,
    random_augmentations,
    sudoku_metadata,
    sudoku_puzzle_set,
)
from hrm.data.sudoku.collection import SudokuCollection
from hrm.data.sudoku.generator import (
    Sudoku,
    difficulty_rank,
    generate_collection,
    generate_sudoku,
    parse_difficulties,
    random_full_grid,
)
from hrm.data.sudoku.importers import (
    HF_REPO,
    download_sudoku_extreme,
    read_csv,
    read_sudoku_file,
    read_text,
)
from hrm.data.sudoku.solver import (
    BOX_SHAPES,
    DEFAULT_MAX_NODES,
    DIFFICULTIES,
    EXTREME_MIN_GUESSES,
    SIZES,
    ExactOutcome,
    SolveResult,
    SolverGaveUp,
    SolveStats,
    box_shape,
    find_conflict,
    format_grid,
    gave_up_reason,
    is_valid_solution,
    parse_grid,
    rate_difficulty,
    solve_exact,
    solve_exact_many,
    valid_grids,
)

__all__ = [
    "BOX_SHAPES",
    "DEFAULT_MAX_NODES",
    "DIFFICULTIES",
    "EXTREME_MIN_GUESSES",
    "HF_REPO",
    "SIZES",
    "VOCAB_SIZE",
    "ExactOutcome",
    "SolveResult",
    "SolveStats",
    "SolverGaveUp",
    "Sudoku",
    "SudokuAugmentations",
    "SudokuCollection",
    "apply_augmentations",
    "augment_tokens",
    "box_shape",
    "build_sudoku_dataset",
    "build_sudoku_splits",
    "difficulty_rank",
    "download_sudoku_extreme",
    "find_conflict",
    "format_grid",
    "gave_up_reason",
    "generate_collection",
    "generate_sudoku",
    "invert_augmentations",
    "is_valid_solution",
    "parse_difficulties",
    "parse_grid",
    "random_augmentations",
    "random_full_grid",
    "rate_difficulty",
    "read_csv",
    "read_sudoku_file",
    "read_text",
    "solve_exact",
    "solve_exact_many",
    "sudoku_metadata",
    "sudoku_puzzle_set",
    "valid_grids",
]
