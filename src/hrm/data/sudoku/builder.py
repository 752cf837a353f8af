"""Sudoku datasets: augmentation by the sudoku symmetries and `build_sudoku_dataset`.

On disk (the reference encoding) every cell is stored +1: PAD 0, blank 1, digit d as d+1; vocabulary
11 for 9x9.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hrm.data.build import BLANK_IDENTIFIER, SET_NAME, BuildResult, check_build_size, dataset_metadata
from hrm.data.format import DatasetMetadata, PuzzleSetArrays, check_out_dir, write_dataset
from hrm.data.sudoku.collection import SudokuCollection
from hrm.data.sudoku.generator import difficulty_rank, generate_collection
from hrm.data.sudoku.importers import download_sudoku_extreme, read_sudoku_file
from hrm.data.sudoku.solver import SIZES, box_shape
from hrm.errors import DataError

VOCAB_SIZE = {n: n + 2 for n in SIZES}  # PAD + blank + n digits (11 for 9x9, as the reference)


@dataclass
class SudokuAugmentations:
    """K validity-preserving transforms of an n x n sudoku, one per row of each array.

    Applied to a grid x (n x n): optionally transpose (square boxes only), then take rows ``row_perm``
    and columns ``col_perm`` (band/row-in-band and stack/column-in-stack permutations), then relabel
    digits by ``digit_map`` (index 0, the blank, maps to 0), as the reference's shuffle_sudoku.
    """

    digit_map: np.ndarray  # [K, n+1]
    row_perm: np.ndarray  # [K, n]
    col_perm: np.ndarray  # [K, n]
    transpose: np.ndarray  # [K] bool

    def __len__(self) -> int:
        return int(self.transpose.shape[0])

    @property
    def size(self) -> int:
        return int(self.row_perm.shape[1])

    def __getitem__(self, index: slice | np.ndarray) -> SudokuAugmentations:
        return SudokuAugmentations(
            self.digit_map[index], self.row_perm[index], self.col_perm[index], self.transpose[index]
        )

    def source_index(self) -> np.ndarray:
        """[K, n*n]: the flat source cell of each output cell."""
        n = self.size
        i = np.repeat(np.arange(n), n)
        j = np.tile(np.arange(n), n)
        r = self.row_perm[:, i].astype(np.int32)
        c = self.col_perm[:, j].astype(np.int32)
        return np.where(self.transpose[:, None], c * n + r, r * n + c)


def _random_perms(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Random permutations of range(k) along a last axis of length k, vectorised."""
    return np.argsort(rng.random((*shape, k)), axis=-1).astype(np.uint8)


def random_augmentations(size: int, count: int, rng: np.random.Generator) -> SudokuAugmentations:
    """``count`` random transforms from the sudoku symmetry group of this size."""
    br, bc = box_shape(size)
    digits = _random_perms(rng, (count,), size) + 1
    digit_map = np.concatenate([np.zeros((count, 1), np.uint8), digits], axis=1)
    bands = _random_perms(rng, (count,), size // br)
    rows_in_band = _random_perms(rng, (count, size // br), br)
    row_perm = (bands[:, :, None] * br + rows_in_band).reshape(count, size)
    stacks = _random_perms(rng, (count,), size // bc)
    cols_in_stack = _random_perms(rng, (count, size // bc), bc)
    col_perm = (stacks[:, :, None] * bc + cols_in_stack).reshape(count, size)
    if br == bc:
        transpose = rng.random(count) < 0.5
    else:
        transpose = np.zeros(count, dtype=bool)  # transposing a 2x3-box sudoku gives 3x2 boxes
    return SudokuAugmentations(digit_map, row_perm.astype(np.uint8), col_perm.astype(np.uint8), transpose)


def apply_augmentations(grids: np.ndarray, augs: SudokuAugmentations) -> np.ndarray:
    """Grid k transformed by augmentation k: [K, n*n] -> [K, n*n]. A single grid [n*n] is broadcast."""
    grids = np.asarray(grids)
    if grids.ndim == 1:
        grids = np.broadcast_to(grids, (len(augs), grids.size))
    moved = np.take_along_axis(grids, augs.source_index(), axis=1)
    return np.take_along_axis(augs.digit_map, moved.astype(np.intp), axis=1).astype(grids.dtype)


def invert_augmentations(grids: np.ndarray, augs: SudokuAugmentations) -> np.ndarray:
    """The inverse of `apply_augmentations`: restores the grids the augmentations were applied to."""
    grids = np.asarray(grids)
    inverse_digits = np.argsort(augs.digit_map, axis=1)
    relabelled = np.take_along_axis(inverse_digits, grids.astype(np.intp), axis=1)
    out = np.empty_like(relabelled)
    np.put_along_axis(out, augs.source_index(), relabelled, axis=1)
    return out.astype(grids.dtype)


def augment_tokens(
    puzzles: np.ndarray,
    solutions: np.ndarray,
    num_aug: int,
    rng: np.random.Generator,
    progress: bool = False,
    chunk: int = 1 << 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Token arrays (+1 encoding) of every puzzle followed by its ``num_aug`` augmentations, as the
    reference orders them: [N*(1+num_aug), n*n] uint8 inputs and labels. Vectorised in chunks."""
    n_puzzles, cells = puzzles.shape
    size = math.isqrt(cells)
    per = 1 + num_aug
    inputs = np.empty((n_puzzles * per, cells), dtype=np.uint8)
    labels = np.empty_like(inputs)
    inputs[::per] = puzzles + 1
    labels[::per] = solutions + 1
    total = n_puzzles * num_aug
    if total == 0:
        return inputs, labels
    augs = random_augmentations(size, total, rng)
    # Augmentation t belongs to puzzle t // num_aug and lands in row (t // num_aug) * per + 1 + t % num_aug.
    source = np.arange(total) // num_aug
    dest = source * per + 1 + np.arange(total) % num_aug
    token_maps = augs.digit_map + 1  # digit relabelling and the +1 token shift in one lookup
    with tqdm(
        total=total, desc="augmenting", unit="ex", unit_scale=True, disable=not progress, leave=False
    ) as bar:
        for lo in range(0, total, chunk):
            hi = min(total, lo + chunk)
            part = augs[lo:hi]
            src = part.source_index()
            rows = source[lo:hi, None]
            for base, out in ((puzzles, inputs), (solutions, labels)):
                moved = base[rows, src]
                out[dest[lo:hi]] = np.take_along_axis(token_maps[lo:hi], moved.astype(np.intp), axis=1)
            bar.update(hi - lo)
    return inputs, labels


def sudoku_metadata(size: int, num_examples: int, num_groups: int) -> DatasetMetadata:
    """Metadata of a split of ``size`` x ``size`` sudokus (one example per puzzle)."""
    return dataset_metadata(
        vocab_size=VOCAB_SIZE[size],
        seq_len=size * size,
        total_groups=num_groups,
        mean_puzzle_examples=1,
        total_puzzles=num_examples,
    )


def sudoku_puzzle_set(
    collection: SudokuCollection, num_aug: int, rng: np.random.Generator, progress: bool = False
) -> PuzzleSetArrays:
    """The reference layout: one group per source puzzle holding it and its augmentations, each a
    puzzle of one example."""
    inputs, labels = augment_tokens(collection.puzzles, collection.solutions, num_aug, rng, progress=progress)
    m = inputs.shape[0]
    return PuzzleSetArrays(
        inputs=inputs,
        labels=labels,
        puzzle_identifiers=np.zeros(m, dtype=np.int32),
        puzzle_indices=np.arange(m + 1, dtype=np.int32),
        group_indices=np.arange(0, m + 1, 1 + num_aug, dtype=np.int32),
    )


def _excluded_puzzles(path: str | os.PathLike[str] | None) -> set[bytes]:
    """The puzzles of an --exclude file (givens, blanks as 0) as bytes; empty without one."""
    if path is None:
        return set()
    listed = read_sudoku_file(path, skip_invalid=True)  # a puzzle that cannot be read is in no split
    return {bytes(row) for row in listed.puzzles}


def _leave_out(collection: SudokuCollection, puzzles: set[bytes]) -> SudokuCollection:
    """`collection` without the puzzles in `puzzles` (its other fields follow)."""
    if not puzzles or not len(collection):
        return collection
    keep = np.array([bytes(row) not in puzzles for row in collection.puzzles], dtype=bool)
    return collection if keep.all() else collection.take(np.flatnonzero(keep))


def _filter_min_difficulty(
    collection: SudokuCollection, min_difficulty: str | int | None
) -> SudokuCollection:
    if min_difficulty is None:
        return collection
    if collection.kind == "csv":
        try:
            threshold = int(min_difficulty)
        except ValueError:
            raise DataError(
                f"--min-difficulty for a published CSV is its integer rating, got {min_difficulty!r}"
            ) from None
        keep = np.flatnonzero(np.asarray(collection.ratings) >= threshold)
    else:
        level = difficulty_rank(str(min_difficulty))
        keep = np.array(
            [i for i, r in enumerate(collection.ratings) if difficulty_rank(r) >= level], dtype=np.int64
        )
    return collection.take(keep)


def _subsample(collection: SudokuCollection, n: int | None, rng: np.random.Generator) -> SudokuCollection:
    if n is None or n >= len(collection):
        return collection
    if n < 0:
        raise DataError(f"--subsample must be positive, got {n}")
    return collection.take(np.sort(rng.choice(len(collection), n, replace=False)))


def build_sudoku_splits(
    *,
    source: str | os.PathLike[str] | None = None,
    test_source: str | os.PathLike[str] | None = None,
    download: bool = False,
    count: int | None = None,
    size: int = 9,
    difficulty: str = "medium",
    min_clues: int = 0,
    test_count: int | None = None,
    subsample: int | None = None,
    min_difficulty: str | int | None = None,
    seed: int = 0,
    skip_invalid: bool = False,
    progress: bool = False,
    workers: int | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> tuple[SudokuCollection, SudokuCollection]:
    """The train and test puzzles (before augmentation), from a file, the download or the generator.

    Sources: ``download`` (published train.csv/test.csv), ``source`` (a file; the test split is
    ``test_source``, else ``test_count`` puzzles held out from it, by default 10%), or generation of
    ``count`` puzzles (and ``test_count``, default count // 10). ``min_difficulty`` filters first, then
    the test split is taken, then ``subsample`` picks training puzzles. All randomness comes from ``seed``.
    ``exclude``: a file of puzzles (one per line, e.g. a held-out benchmark set) left out of both
    splits, before the test split is taken.
    """
    if sum(x is not None and x is not False for x in (source, count)) + bool(download) != 1:
        raise DataError("give exactly one puzzle source: --from FILE, --download, or --count N (generate)")
    if download and (test_source is not None or test_count is not None):
        raise DataError("--download brings its own test split; --test-from and --test-count do not apply")
    if seed < 0:
        raise DataError(f"--seed must not be negative, got {seed}")
    if test_count is not None and test_count < 0:
        raise DataError(f"--test-count must be zero or positive, got {test_count}")
    gen_ss, test_ss, hold_ss, sub_ss = np.random.SeedSequence(seed).spawn(4)

    left_out = _excluded_puzzles(exclude)

    def read(path: str | os.PathLike[str]) -> SudokuCollection:
        return _leave_out(
            read_sudoku_file(path, skip_invalid=skip_invalid, progress=progress, workers=workers), left_out
        )

    if download:
        train = _filter_min_difficulty(read(download_sudoku_extreme("train")), min_difficulty)
        test = _filter_min_difficulty(read(download_sudoku_extreme("test")), min_difficulty)
    elif source is not None:
        train = _filter_min_difficulty(read(source), min_difficulty)
        if test_source is not None:
            if test_count is not None:
                raise DataError("give --test-from or --test-count, not both")
            test = _filter_min_difficulty(read(test_source), min_difficulty)
        else:
            held = len(train) // 10 if test_count is None else test_count
            if held < 0:
                raise DataError(f"--test-count must be zero or positive, got {held}")
            if held > 0 and held >= len(train):
                raise DataError(
                    f"--test-count {held} leaves no training puzzles: "
                    f"{source} has {len(train)} usable puzzles"
                )
            perm = np.random.default_rng(hold_ss).permutation(len(train))
            test = train.take(np.sort(perm[:held]))
            train = train.take(np.sort(perm[held:]))
    else:
        assert count is not None
        if count < 1:
            raise DataError(f"--count must be at least 1, got {count}")
        if size in SIZES and not 0 <= min_clues < size * size:
            raise DataError(
                f"--min-clues must be between 0 and {size * size - 1} for {size}x{size} sudokus "
                f"(a puzzle needs a blank), got {min_clues}"
            )
        if test_source is not None:
            test = _filter_min_difficulty(read(test_source), min_difficulty)
        else:
            n_test = max(1, count // 10) if test_count is None else test_count
            if n_test < 0:
                raise DataError(f"--test-count must be zero or positive, got {n_test}")
            test = _leave_out(
                generate_collection(
                    n_test, size, difficulty, np.random.default_rng(test_ss), progress, "test", min_clues
                ),
                left_out,
            )
        train = generate_collection(
            count, size, difficulty, np.random.default_rng(gen_ss), progress, "train", min_clues
        )
        train = _filter_min_difficulty(_leave_out(train, left_out), min_difficulty)
    train = _subsample(train, subsample, np.random.default_rng(sub_ss))
    if len(test) and len(train) and test.size != train.size:
        raise DataError(
            f"the test puzzles are {test.size}x{test.size} but the training puzzles {train.size}x{train.size}"
        )
    if len(train) == 0:
        raise DataError("no training puzzles left (after filtering and skipping invalid ones)")
    if len(test) == 0 and test.size != train.size:
        test = SudokuCollection.empty(train.size, test.kind, test.source, test.skipped)
    return train, test


def build_sudoku_dataset(
    out_dir: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    test_source: str | os.PathLike[str] | None = None,
    download: bool = False,
    count: int | None = None,
    size: int = 9,
    difficulty: str = "medium",
    min_clues: int = 0,
    test_count: int | None = None,
    num_aug: int = 0,
    subsample: int | None = None,
    min_difficulty: str | int | None = None,
    seed: int = 0,
    skip_invalid: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    workers: int | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Build a sudoku dataset directory: train augmented ``num_aug`` times, test never.

    The puzzles come from exactly one of ``source`` (a file), ``download`` (the published
    Sudoku-Extreme set) or ``count`` (generate); see `build_sudoku_splits` for the other options.
    ``workers`` processes solve imported puzzles (default: up to 8). Same ``seed``, same bytes.

    Example: ``build_sudoku_dataset("data/sudoku-gen", count=100, difficulty="hard", num_aug=10)``.
    """
    check_out_dir(out_dir, overwrite, [p for p in (source, test_source, exclude) if p is not None])
    if num_aug < 0:
        raise DataError(f"--num-aug must be zero or positive, got {num_aug}")
    advice = "lower --num-aug, --count or --subsample"
    # Bounds first, from what the options imply: one 4x4 puzzle at least, or the puzzles to generate.
    check_build_size({"train": 1 + num_aug}, 16, advice)
    if count is not None and count >= 1 and source is None and not download:
        n_train = count if subsample is None else min(count, max(subsample, 0))
        n_test = 0 if test_source is not None else max(1, count // 10) if test_count is None else test_count
        check_build_size({"train": n_train * (1 + num_aug), "test": max(n_test, 0)}, size * size, advice)
    train, test = build_sudoku_splits(
        source=source,
        test_source=test_source,
        download=download,
        count=count,
        size=size,
        difficulty=difficulty,
        min_clues=min_clues,
        test_count=test_count,
        subsample=subsample,
        min_difficulty=min_difficulty,
        seed=seed,
        skip_invalid=skip_invalid,
        progress=progress,
        workers=workers,
        exclude=exclude,
    )
    check_build_size({"train": len(train) * (1 + num_aug), "test": len(test)}, train.size**2, advice)
    aug_ss = np.random.SeedSequence(seed).spawn(5)[4]
    train_set = sudoku_puzzle_set(train, num_aug, np.random.default_rng(aug_ss), progress=progress)
    test_set = sudoku_puzzle_set(test, 0, np.random.default_rng(0))
    n = train.size
    summary = write_dataset(
        out_dir,
        {"train": {SET_NAME: train_set}, "test": {SET_NAME: test_set}},
        {
            "train": sudoku_metadata(n, train_set.num_examples, train_set.num_groups),
            "test": sudoku_metadata(n, test_set.num_examples, test_set.num_groups),
        },
        [BLANK_IDENTIFIER],
        overwrite=overwrite,
    )
    skipped = train.skipped + (test.skipped if test.source != train.source else 0)
    summary.notes.append(f"{n}x{n} sudokus from {train.source}; {num_aug} augmentations per training puzzle")
    if skipped:
        summary.notes.append(f"skipped {skipped} invalid entries")
    sources = [train.source] + ([test.source] if test.source != train.source else [])
    return BuildResult(
        out_dir=Path(out_dir),
        summary=summary,
        puzzles={"train": len(train), "test": len(test)},
        skipped=skipped,
        grid_size=n,
        sources=sources,
    )
