"""`PuzzleDataset`: training and evaluation batches from a dataset directory (see `hrm.data.format`).

This is the one data module that imports torch; builders and the format code do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pydantic
import torch
from torch.utils.data import IterableDataset, get_worker_info

from hrm.data.format import IGNORE_LABEL_ID, check_split, load_metadata
from hrm.errors import DataError

# What a PuzzleDataset yields: set name, {inputs, labels, puzzle_identifiers} tensors, effective batch size.
Batch = tuple[str, dict[str, torch.Tensor], int]


class PuzzleDatasetConfig(pydantic.BaseModel):
    """As the reference's. ``epochs_per_iter`` epochs of groups are shuffled into one iteration."""

    seed: int = 0
    dataset_path: str
    global_batch_size: int
    test_set_mode: bool = False
    epochs_per_iter: int = 1
    rank: int = 0
    num_replicas: int = 1


def sample_batch(
    rng: np.random.Generator,
    group_order: np.ndarray,
    puzzle_indices: np.ndarray,
    group_indices: np.ndarray,
    start_index: int,
    global_batch_size: int,
) -> tuple[int, np.ndarray, np.ndarray]:
    """Fill one global batch: for each next group in ``group_order`` draw one puzzle, and from it a
    random subset of its examples (no repeats), until the batch is full or the order runs out.

    Returns the next position in ``group_order``, example indices and their puzzle indices. Unlike the
    reference, the example choice also uses ``rng`` (the reference used numpy's global RNG), so an
    iteration is fully reproducible from the seed.
    """
    batch: list[np.ndarray] = []
    batch_puzzles: list[np.ndarray] = []
    size = 0
    while start_index < group_order.size and size < global_batch_size:
        group = int(group_order[start_index])
        puzzle = int(rng.integers(group_indices[group], group_indices[group + 1]))
        start_index += 1
        first = int(puzzle_indices[puzzle])
        count = int(puzzle_indices[puzzle + 1]) - first
        take = min(count, global_batch_size - size)
        batch_puzzles.append(np.full(take, puzzle, dtype=np.int64))
        batch.append(first + rng.choice(count, take, replace=False))
        size += take
    if not batch:
        return start_index, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return start_index, np.concatenate(batch), np.concatenate(batch_puzzles)


class PuzzleDataset(IterableDataset[Batch]):
    """Batches of a dataset directory, as the reference's PuzzleDataset: yields (set_name, {inputs,
    labels, puzzle_identifiers} int32 tensors, effective global batch size). Training mode samples one
    puzzle per shuffled group; test mode walks every example in order, padding the last batch. Each
    rank gets its slice."""

    def __init__(self, config: PuzzleDatasetConfig | dict[str, Any], split: str = "train") -> None:
        super().__init__()
        if isinstance(config, dict):
            config = PuzzleDatasetConfig(**config)
        self.config = config
        self.split = split
        if config.num_replicas < 1 or not 0 <= config.rank < config.num_replicas:
            raise DataError(f"rank {config.rank} is not in 0..{config.num_replicas - 1} (num_replicas)")
        if config.global_batch_size < 1 or config.global_batch_size % config.num_replicas:
            raise DataError(
                f"global_batch_size {config.global_batch_size} must be a positive multiple of "
                f"num_replicas {config.num_replicas}"
            )
        if config.epochs_per_iter < 1:
            raise DataError(f"epochs_per_iter must be at least 1, got {config.epochs_per_iter}")
        self.metadata = load_metadata(config.dataset_path, split)
        self.local_batch_size = config.global_batch_size // config.num_replicas
        self._data: dict[str, dict[str, np.ndarray]] | None = None
        self._iters = 0

    # Resumable position: the number of training iterations (set passes) already started.
    def state_dict(self) -> dict[str, int]:
        return {"iters": self._iters}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._iters = int(state["iters"])

    def _lazy_load(self) -> dict[str, dict[str, np.ndarray]]:
        if self._data is None:
            # The checks of `hrm data validate` on this split (tokens inside the vocabulary, indices,
            # counts), so a bad dataset fails here in one line rather than mid-run.
            _, sets = check_split(self.config.dataset_path, self.split, mmap=True)
            self._data = {}
            for name, arrays in sets.items():
                d = arrays.as_dict()
                # Index arrays may be stored as uint8/int16: widen so arithmetic cannot overflow.
                for key in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
                    d[key] = np.asarray(d[key], dtype=np.int64)
                self._data[name] = d
        return self._data

    def _collate(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        batch = {k: np.asarray(v).astype(np.int32) for k, v in batch.items()}
        if self.metadata.ignore_label_id is not None:
            batch["labels"][batch["labels"] == self.metadata.ignore_label_id] = IGNORE_LABEL_ID
        pad = self.local_batch_size - batch["puzzle_identifiers"].size
        if pad > 0:
            values = {
                "inputs": self.metadata.pad_id,
                "labels": IGNORE_LABEL_ID,
                "puzzle_identifiers": self.metadata.blank_identifier_id,
            }
            batch = {
                k: np.pad(v, ((0, pad),) + ((0, 0),) * (v.ndim - 1), constant_values=values[k])
                for k, v in batch.items()
            }
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def _iter_test(self) -> Iterator[Batch]:
        cfg = self.config
        for set_name, d in self._lazy_load().items():
            total = len(d["inputs"])
            pidx = d["puzzle_indices"]
            for start in range(0, total, cfg.global_batch_size):
                end = min(total, start + cfg.global_batch_size)
                lo = min(start + cfg.rank * self.local_batch_size, end)
                hi = min(start + (cfg.rank + 1) * self.local_batch_size, end)
                puzzles = np.searchsorted(pidx, np.arange(lo, hi), side="right") - 1
                batch = {
                    "inputs": d["inputs"][lo:hi],
                    "labels": d["labels"][lo:hi],
                    "puzzle_identifiers": d["puzzle_identifiers"][puzzles],
                }
                yield set_name, self._collate(batch), end - start

    def _iter_train(self) -> Iterator[Batch]:
        cfg = self.config
        for set_name, d in self._lazy_load().items():
            self._iters += 1
            rng = np.random.Generator(np.random.Philox(seed=cfg.seed + self._iters))
            num_groups = d["group_indices"].size - 1
            order = np.concatenate([rng.permutation(num_groups) for _ in range(cfg.epochs_per_iter)])
            start = 0
            while start < order.size:
                start, examples, puzzles = sample_batch(
                    rng, order, d["puzzle_indices"], d["group_indices"], start, cfg.global_batch_size
                )
                effective = puzzles.size
                if effective < cfg.global_batch_size:
                    break  # drop the last, partial batch
                sl = slice(cfg.rank * self.local_batch_size, (cfg.rank + 1) * self.local_batch_size)
                examples, puzzles = examples[sl], puzzles[sl]
                # Memory-mapped fancy indexing reads faster in sorted order; restore the drawn order after.
                order_idx = np.argsort(examples, kind="stable")
                inverse = np.empty_like(order_idx)
                inverse[order_idx] = np.arange(order_idx.size)
                batch = {
                    "inputs": d["inputs"][examples[order_idx]][inverse],
                    "labels": d["labels"][examples[order_idx]][inverse],
                    "puzzle_identifiers": d["puzzle_identifiers"][puzzles],
                }
                yield set_name, self._collate(batch), effective

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            raise DataError("PuzzleDataset supports at most one DataLoader worker (num_workers=0 or 1)")
        if self.config.test_set_mode:
            yield from self._iter_test()
        else:
            yield from self._iter_train()
