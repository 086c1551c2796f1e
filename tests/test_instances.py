"""From probability maps to objects: touching nuclei split, holes filled, cells grown from nuclei,
and nuclei, cells and cytoplasm numbered alike."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impartial_core.config import InstanceConfig
from impartial_core.instances import (cells_from_nuclei, cytoplasm_from, nuclei_from_probability, object_confidence, segment,
                                      smoothness)
from impartial_core.metrics import match_at_iou

from .synthetic import blobs


# ---------------- nuclei: splitting touching ones
def test_touching_nuclei_are_split():
    yy, xx = np.mgrid[:60, :80]
    p = (((yy - 30) ** 2 + (xx - 28) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - 50) ** 2 < 12 ** 2)).astype(np.float32)
    assert nuclei_from_probability(p, 0.5, InstanceConfig(split_touching=False)).max() == 1
    assert nuclei_from_probability(p, 0.5, InstanceConfig(split_touching=True)).max() == 2


def _two_disks(centres_apart: int) -> np.ndarray:
    yy, xx = np.mgrid[:60, :80]
    left, right = 40 - centres_apart // 2, 40 + (centres_apart + 1) // 2
    return ((yy - 30) ** 2 + (xx - left) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - right) ** 2 < 12 ** 2)


def test_smoothness_tells_a_confident_map_from_a_smooth_one():
    mask = _two_disks(22)
    assert smoothness(mask.astype(np.float32)) == 0.0
    assert smoothness(np.where(mask, 0.7, 0.0)) == 1.0
    assert smoothness(np.zeros((8, 8))) == 0.0


def test_a_shallow_neck_splits_a_smooth_map_but_not_a_confident_one():
    """A bulge of one nucleus (a disk of 7 px on the rim of one of 12 px: a neck under 2 px
    shallower than the bulge's centre) is cut off on a smooth map, whose shape is all there is to
    go by, and kept on a confident one, which shows no valley there; two nuclei joined by a deep
    neck are cut on both."""
    yy, xx = np.mgrid[:60, :80]
    bulge = ((yy - 30) ** 2 + (xx - 34) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - 50) ** 2 < 7 ** 2)
    for mask, confident_pieces in ((bulge, 1), (_two_disks(22), 2)):
        assert nuclei_from_probability(np.where(mask, 0.99, 0.0), 0.5).max() == confident_pieces
        assert nuclei_from_probability(np.where(mask, 0.7, 0.0), 0.5).max() == 2


def test_a_valley_without_a_neck_splits_a_confident_map():
    """Two nuclei pressed into one rectangle: no neck in the mask, a valley in the probability."""
    p = np.zeros((40, 70), dtype=np.float32)
    p[10:30, 10:60] = 1.0
    p[10:30, 34:36] = 0.6
    labels = nuclei_from_probability(p, 0.5)
    assert labels.max() == 2 and len(np.unique(labels[10:30, 12:32])) == len(np.unique(labels[10:30, 38:58])) == 1
    smooth = np.where(p > 0, 0.7, 0.0)
    smooth[10:30, 34:36] = 0.6
    assert nuclei_from_probability(smooth, 0.5).max() == 1  # a smooth map's valleys are not read


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images describe the same objects, whatever their numbers."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (np.array_equal(a > 0, b > 0) and len(np.unique(pairs[0])) == pairs.shape[1]
            and len(np.unique(pairs[1])) == pairs.shape[1])


def _touching_discs(seed: int, size: int = 96) -> np.ndarray:
    """A mask of random discs that overlap, touch, nearly touch or stand alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for cy, cx, r in zip(rng.integers(0, size, 14), rng.integers(0, size, 14), rng.integers(3, 12, 14)):
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    return mask


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), h=st.sampled_from([0.5, 1.0, 2.0]))
def test_split_touching_skips_only_blobs_with_one_marker(seed, h):
    """The shortcut (a blob with one local-maximum plateau is one object) changes nothing: the
    result equals splitting every blob on its own."""
    from scipy import ndimage as ndi
    from impartial_core.blob_splitting import _same_object_local_maxima, _split_one_blob, split_touching

    mask = _touching_discs(seed)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0)
    blobs_, _ = ndi.label(mask)
    reference = np.zeros(mask.shape, np.int64)
    for index, box in enumerate(ndi.find_objects(blobs_), start=1):
        blob = blobs_[box] == index
        maxima = _same_object_local_maxima(distance[box], blob) & blob
        reference[box][blob] = _split_one_blob(distance[box], blob, maxima, h)[blob] + 1000 * index
    labels = split_touching(mask, h)
    assert _same_partition(labels, reference)
    assert labels.max() == len(np.unique(labels)) - 1  # numbered 1..n without gaps


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), depth=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_deep_maxima_are_the_h_maxima_and_the_reconstructed_hills(seed, depth):
    """The markers of both splits equal their definitions by greyscale reconstruction: skimage's
    ``h_maxima`` (the tops) and the regional maxima of the values lowered by ``depth`` and rebuilt
    under themselves (the hills). Values on a grid of 1/8, so that plateaus and passes of equal
    height abound and no float rounding blurs the comparison."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima, local_maxima, reconstruction
    from impartial_core.blob_splitting import _deep_maxima, _same_object_local_maxima

    rng = np.random.default_rng(seed)
    mask = _touching_discs(seed)
    values = np.round(ndi.gaussian_filter(rng.random(mask.shape), 2.0) * 400 + 8 * ndi.distance_transform_edt(mask)) / 8
    blob = ndi.label(mask, structure=np.ones((3, 3)))[0] == 1
    maxima = _same_object_local_maxima(values, blob) & blob
    eight = np.ones((3, 3))

    isolated = np.where(blob, values, values[blob].min() - depth - 1.0)
    tops = ndi.label(h_maxima(isolated, depth).astype(bool) & blob, structure=eight)[0]
    assert _same_partition(_deep_maxima(values, blob, maxima, depth, whole_hill=False), tops)

    hill = np.where(blob, values, 0.0)
    lowered = reconstruction(np.maximum(hill - depth, 0.0), hill, method="dilation")
    hills = ndi.label(local_maxima(lowered, connectivity=2) & blob, structure=eight)[0]
    assert _same_partition(_deep_maxima(values, blob, maxima, depth, whole_hill=True), hills)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10 ** 6), rows=st.integers(1, 40), margin=st.integers(1, 8))
def test_distance_in_strips_is_scipys(seed, rows, margin):
    """Strips of a few rows read with a narrow margin give scipy's distances exactly, also where
    a blob is far wider than the margin (the strip is read again with a wider one)."""
    from scipy import ndimage as ndi
    from impartial_core.blob_splitting import _distance_to_background

    mask = _touching_discs(seed)
    mask[10:70, 20:90] |= np.random.default_rng(seed).random() < 0.5  # sometimes one large blob
    expected = ndi.distance_transform_edt(mask).astype(np.float32)
    assert np.array_equal(_distance_to_background(mask, rows, margin), expected)


def test_split_touching_ignores_neighbouring_blobs():
    """A blob's objects do not depend on what lies next to it (tiles of a large image agree)."""
    from impartial_core.instances import split_touching

    yy, xx = np.mgrid[:60, :120]
    pair = ((yy - 30) ** 2 + (xx - 28) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - 50) ** 2 < 12 ** 2)
    neighbour = (yy - 30) ** 2 + (xx - 80) ** 2 < 15 ** 2  # two pixels from the pair
    alone = split_touching(pair)
    together = split_touching(pair | neighbour)
    assert alone.max() == 2 and together.max() == 3
    assert _same_partition(np.where(pair, together, 0), alone)


@pytest.mark.parametrize("seed", range(6))
def test_nuclei_from_channel_finds_stained_nuclei_without_training(seed):
    """Every nucleus once, no speck of noise as a nucleus. (At noise 0.3 a speck now and then
    passes the minimum size, with or without the background subtraction: 4-5 of 12 images.)"""
    from impartial_core.instances import nuclei_from_channel

    image, labels, _ = blobs(seed=seed, size=96, n=8, noise=0.25)
    found = nuclei_from_channel(image * 500 + 100)  # raw intensities: the scale must not matter
    match = match_at_iou(found, labels, 0.5)
    assert match["tp"] == labels.max() and found.max() == labels.max()
    assert nuclei_from_channel(np.full((32, 32), 7.0)).max() == 0


# ---------------- holes
def test_holes_are_filled_by_the_enclosing_object_only():
    from impartial_core.instances import _fill_holes_per_object

    labels = np.zeros((12, 20), np.int32)
    labels[1:8, 1:8] = 1
    labels[3:5, 3:5] = 0  # a hole in object 1
    labels[1:8, 9:16] = 2
    labels[1:8, 8] = 3  # object 3 touches both
    labels[3:6, 11:14] = 0  # a hole in object 2
    labels[9:11, 1:5] = 4  # not a hole: open to the background
    labels[9, 2] = 0
    filled = _fill_holes_per_object(labels)
    assert (filled[3:5, 3:5] == 1).all() and (filled[3:6, 11:14] == 2).all()
    assert filled[9, 2] == 0
    unchanged = labels > 0
    assert np.array_equal(filled[unchanged], labels[unchanged])


def test_holes_shared_by_touching_objects_are_filled_only_when_smaller_than_them():
    """A lumen that a ring of touching cells encloses stays background; a hole inside one object
    and a speck where several objects meet are filled."""
    from impartial_core.instances import _fill_holes_per_object

    yy, xx = np.mgrid[:80, :80]
    radius, angle = np.hypot(yy - 40, xx - 40), np.arctan2(yy - 40, xx - 40)
    ring = (radius >= 15) & (radius < 30)
    labels = np.where(ring, (angle + np.pi) // (np.pi / 4) % 8 + 1, 0).astype(np.int32)  # 8 cells around a lumen
    filled = _fill_holes_per_object(labels)
    np.testing.assert_array_equal(filled[radius < 15], 0)
    labels[22, 42] = 0  # a hole inside one cell
    labels[39:41, 56] = 0  # a speck on the seam between two cells
    filled = _fill_holes_per_object(labels)
    assert filled[22, 42] == labels[21, 42] and set(filled[39:41, 56]) == {labels[38, 56], labels[41, 56]}
    np.testing.assert_array_equal(filled[radius < 15], 0)


# ---------------- cells and cytoplasm: one numbering for nuclei, cells and cytoplasm
label_images = st.integers(0, 2 ** 31 - 1).map(lambda seed: blobs(seed=seed, size=48, n=6)[1])


@settings(max_examples=30, deadline=None)
@given(truth=label_images, seed=st.integers(0, 1000))
def test_instance_construction_properties(truth, seed):
    rng = np.random.default_rng(seed)
    nuclei_p = (truth > 0).astype(np.float32)
    cell_p = np.clip(nuclei_p + (rng.random(truth.shape) > 0.5) * 0.6, 0, 1).astype(np.float32)
    objects = segment({"nuclei": nuclei_p, "cells": cell_p}, {"nuclei": 0.5, "cells": 0.5}, InstanceConfig(min_size=1))
    nuclei, cells, cytoplasm = objects.nuclei, objects.cells, objects.cytoplasm
    n = int(nuclei.max())
    # Numbering: 1..n in each set, nothing lost or invented.
    for labels in (nuclei, cells, cytoplasm):
        assert set(np.unique(labels)) - {0} == set(range(1, n + 1))
    # Each nucleus lies inside the cell with its number.
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    # Cytoplasm = cell minus nucleus, apart from the one pixel kept for a fully filled cell.
    expected = np.where(inside, 0, cells)
    differs = cytoplasm != expected
    assert differs.sum() <= n and (cytoplasm[differs] == cells[differs]).all()


def test_cytoplasm_keeps_one_pixel_of_a_filled_cell():
    nuclei = np.zeros((10, 10), np.int32)
    nuclei[2:5, 2:5] = 1
    nuclei[6:9, 6:9] = 2
    cells = nuclei.copy()
    cells[6:10, 6:10] = 2
    cytoplasm = cytoplasm_from(cells, nuclei)
    assert (cytoplasm == 1).sum() == 1 and (cytoplasm == 2).sum() == 7


def test_cells_grow_from_nuclei_inside_the_cell_mask():
    nuclei = np.zeros((30, 60), np.int32)
    nuclei[10:15, 10:15] = 1
    nuclei[10:15, 40:45] = 2
    cell_p = np.zeros((30, 60), np.float32)
    cell_p[5:20, 5:55] = 0.9
    cells = cells_from_nuclei(nuclei, cell_p, 0.5)
    assert set(np.unique(cells)) == {0, 1, 2}
    assert (cells[5:20, 5:55] > 0).all() and (cells[:5] == 0).all()
    assert cells[12, 6] == 1 and cells[12, 54] == 2


def test_border_rule_with_cells_keeps_the_inner_cells_whole():
    """Discarding border objects with nuclei + cells: the border cell goes with its nucleus, and its
    touching neighbour keeps its own extent (it must not flood the discarded cell's place)."""
    nuclei, cells = np.zeros((40, 90), np.float32), np.zeros((40, 90), np.float32)
    cells[5:35, 0:58], cells[5:35, 60:88] = 0.9, 0.9  # a cell on the left border touching a middle cell
    cells[5:35, 28:30] = 0.6  # their faint shared edge
    nuclei[15:25, 0:8], nuclei[15:25, 40:50], nuclei[15:25, 70:80] = 0.9, 0.9, 0.9
    kept = segment({"nuclei": nuclei, "cells": cells}, {"nuclei": 0.5, "cells": 0.5},
                   InstanceConfig(exclude_border=True, min_size=5))
    everything = segment({"nuclei": nuclei, "cells": cells}, {"nuclei": 0.5, "cells": 0.5}, InstanceConfig(min_size=5))
    assert everything.cells.max() == 3 and kept.cells.max() == kept.nuclei.max() == 2
    middle = everything.cells == everything.cells[20, 45]
    np.testing.assert_array_equal(kept.cells == kept.cells[20, 45], middle)
    assert not middle[:, :28].any()


# ---------------- per-object confidence
def test_object_confidence():
    labels = np.array([[1, 1, 0, 2]])
    p = np.array([[0.8, 1.0, 0.0, 0.6]])
    mean_p, mean_u = object_confidence(labels, p, 1 - p)
    assert np.allclose(mean_p, [0.9, 0.6]) and np.allclose(mean_u, [0.1, 0.4])
