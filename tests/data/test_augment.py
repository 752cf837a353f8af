from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hrm.data.augment import (
    DIHEDRAL_INVERSE,
    NUM_DIHEDRAL,
    apply_colour_permutation,
    augment_grid,
    dihedral_transform,
    dihedral_variants,
    inverse_augment_grid,
    inverse_dihedral_transform,
    invert_permutation,
    random_colour_permutation,
)

shapes = st.tuples(st.integers(1, 30), st.integers(1, 30))
grids = shapes.flatmap(lambda s: arrays(np.uint8, s, elements=st.integers(0, 9)))
tids = st.integers(0, NUM_DIHEDRAL - 1)


@given(grids, tids)
def test_dihedral_maps_grids_to_grids_and_inverts(grid, tid):
    out = dihedral_transform(grid, tid)
    assert out.dtype == grid.dtype
    assert sorted(out.shape) == sorted(grid.shape)
    assert out.flags.c_contiguous
    assert np.array_equal(np.sort(out, axis=None), np.sort(grid, axis=None))  # cells move, values stay
    assert np.array_equal(inverse_dihedral_transform(out, tid), grid)
    assert np.array_equal(dihedral_transform(out, DIHEDRAL_INVERSE[tid]), grid)


def test_dihedral_transforms_are_the_eight_distinct_symmetries():
    grid = np.arange(12).reshape(3, 4)
    images = dihedral_variants(grid)
    assert len({(im.shape, im.tobytes()) for im in images}) == 8
    assert np.array_equal(images[0], grid)
    assert np.array_equal(images[1], np.rot90(grid))
    assert np.array_equal(images[4], grid[:, ::-1])
    assert np.array_equal(images[5], grid[::-1])
    assert np.array_equal(images[6], grid.T)
    assert np.array_equal(images[7], np.rot90(grid, 2).T)  # anti-diagonal reflection


@given(grids)
def test_dihedral_matches_the_reference_definitions(grid):
    reference = [
        grid,
        np.rot90(grid, k=1),
        np.rot90(grid, k=2),
        np.rot90(grid, k=3),
        np.fliplr(grid),
        np.flipud(grid),
        grid.T,
        np.fliplr(np.rot90(grid, k=1)),
    ]
    for tid, expected in enumerate(reference):
        assert np.array_equal(dihedral_transform(grid, tid), expected)


@given(grids, tids)
def test_dihedral_acts_on_the_last_two_axes_of_a_batch(grid, tid):
    batch = np.stack([grid, grid + 1])
    out = dihedral_transform(batch, tid)
    assert np.array_equal(out[1], dihedral_transform(grid + 1, tid))


def test_dihedral_rejects_bad_ids():
    with pytest.raises(ValueError):
        dihedral_transform(np.zeros((2, 2)), 8)
    with pytest.raises(ValueError):
        dihedral_transform(np.zeros(3), 0)


@given(grids, st.integers(0, 2**32 - 1))
def test_colour_permutation_keeps_zero_and_inverts(grid, seed):
    mapping = random_colour_permutation(np.random.default_rng(seed))
    assert mapping[0] == 0
    assert sorted(mapping.tolist()) == list(range(10))
    out = apply_colour_permutation(grid, mapping)
    assert out.dtype == np.uint8 and out.shape == grid.shape
    assert out.min() >= 0 and out.max() <= 9
    assert np.array_equal(out == 0, grid == 0)
    assert np.array_equal(apply_colour_permutation(out, invert_permutation(mapping)), grid)


@given(grids, tids, st.integers(0, 2**32 - 1))
def test_augment_then_inverse_restores(grid, tid, seed):
    mapping = random_colour_permutation(np.random.default_rng(seed))
    out = augment_grid(grid, tid, mapping)
    assert np.array_equal(inverse_augment_grid(out, tid, mapping), grid)
    # Recolouring and moving cells commute.
    assert np.array_equal(out, apply_colour_permutation(dihedral_transform(grid, tid), mapping))


def test_invert_permutation_rejects_non_permutations():
    with pytest.raises(ValueError):
        invert_permutation(np.array([0, 1, 1]))
