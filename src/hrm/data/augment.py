"""Grid augmentations shared by the maze and ARC builders: the 8 dihedral symmetries and colour
permutations, each with its inverse.

Transform ids follow the reference HRM code (``dataset/common.py``) so that identifiers written by
either tool name the same transform:

====  ==========================================
 id   transform (of the last two axes)
====  ==========================================
 0    identity
 1    rotate 90° counter-clockwise (``np.rot90``)
 2    rotate 180°
 3    rotate 270° counter-clockwise
 4    flip left-right (mirror the columns)
 5    flip up-down (mirror the rows)
 6    transpose (reflect in the main diagonal)
 7    reflect in the anti-diagonal
====  ==========================================

All functions act on the last two axes, so a batch ``[B, H, W]`` transforms like a single grid.
"""

from __future__ import annotations

import numpy as np

NUM_DIHEDRAL = 8

# DIHEDRAL_INVERSE[t] undoes transform t: only the two quarter turns are not their own inverse.
DIHEDRAL_INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)

ARC_NUM_COLOURS = 10


def _check_tid(tid: int) -> int:
    tid = int(tid)
    if not 0 <= tid < NUM_DIHEDRAL:
        raise ValueError(f"dihedral transform id must be in 0..7, got {tid}")
    return tid


def dihedral_transform(grid: np.ndarray, tid: int) -> np.ndarray:
    """Apply dihedral transform ``tid`` (0..7, see the module docstring) to the last two axes."""
    tid = _check_tid(tid)
    arr = np.asarray(grid)
    if arr.ndim < 2:
        raise ValueError(f"a grid needs at least 2 dimensions, got shape {arr.shape}")
    # Slicing and swapaxes rather than np.rot90/np.flip: same result, a fraction of the overhead,
    # which matters when the ARC builder transforms millions of small grids.
    if tid == 0:
        out = arr
    elif tid == 1:  # np.rot90(arr, 1)
        out = np.swapaxes(arr[..., :, ::-1], -2, -1)
    elif tid == 2:
        out = arr[..., ::-1, ::-1]
    elif tid == 3:  # np.rot90(arr, 3)
        out = np.swapaxes(arr, -2, -1)[..., :, ::-1]
    elif tid == 4:
        out = arr[..., :, ::-1]
    elif tid == 5:
        out = arr[..., ::-1, :]
    elif tid == 6:
        out = np.swapaxes(arr, -2, -1)
    else:  # np.fliplr(np.rot90(arr)): the anti-diagonal reflection
        out = np.swapaxes(arr[..., ::-1, ::-1], -2, -1)
    # A contiguous copy: views with negative strides surprise hashing, tobytes() and torch.from_numpy.
    return np.ascontiguousarray(out)


def inverse_dihedral_transform(grid: np.ndarray, tid: int) -> np.ndarray:
    """Undo :func:`dihedral_transform` with the same ``tid``."""
    return dihedral_transform(grid, DIHEDRAL_INVERSE[_check_tid(tid)])


def dihedral_variants(grid: np.ndarray) -> list[np.ndarray]:
    """All 8 dihedral images of ``grid``, indexed by transform id."""
    return [dihedral_transform(grid, tid) for tid in range(NUM_DIHEDRAL)]


def random_colour_permutation(
    rng: np.random.Generator, num_colours: int = ARC_NUM_COLOURS, fixed: tuple[int, ...] = (0,)
) -> np.ndarray:
    """A mapping ``old colour -> new colour`` (uint8 array of length ``num_colours``) that permutes
    every colour except those in ``fixed`` (ARC keeps 0, the background, in place)."""
    mapping = np.arange(num_colours, dtype=np.uint8)
    movable = np.array([c for c in range(num_colours) if c not in fixed], dtype=np.uint8)
    mapping[movable] = rng.permutation(movable)
    return mapping


def check_permutation(mapping: np.ndarray) -> np.ndarray:
    """Return ``mapping`` as a uint8 array after checking it is a permutation of ``0..n-1``."""
    arr = np.asarray(mapping)
    if arr.ndim != 1 or sorted(arr.tolist()) != list(range(arr.shape[0])):
        raise ValueError(f"not a permutation of 0..{arr.shape[0] - 1}: {arr.tolist()}")
    return arr.astype(np.uint8)


def invert_permutation(mapping: np.ndarray) -> np.ndarray:
    """The mapping that undoes ``mapping`` (``inv[mapping[c]] == c``)."""
    return np.argsort(check_permutation(mapping)).astype(np.uint8)


def apply_colour_permutation(grid: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Recolour ``grid``: every cell of colour ``c`` becomes ``mapping[c]``."""
    return np.asarray(mapping, dtype=np.uint8)[np.asarray(grid)]


def augment_grid(grid: np.ndarray, tid: int, mapping: np.ndarray | None = None) -> np.ndarray:
    """Recolour with ``mapping`` (if any), then apply dihedral transform ``tid``.

    The two commute (one moves cells, the other changes their values); this order matches the
    reference builder."""
    out = np.asarray(grid)
    if mapping is not None:
        out = apply_colour_permutation(out, mapping)
    return dihedral_transform(out, tid)


def inverse_augment_grid(grid: np.ndarray, tid: int, mapping: np.ndarray | None = None) -> np.ndarray:
    """Undo :func:`augment_grid` with the same ``tid`` and ``mapping``."""
    out = inverse_dihedral_transform(grid, tid)
    if mapping is not None:
        out = apply_colour_permutation(out, invert_permutation(mapping))
    return out
