"""Whole cells, nuclei and cytoplasm from a cells-only model: tiny synthetic images with known cells."""
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from impartial_core.config import InstanceConfig
from impartial_core.instances import (cells_from_probability, cells_from_seeds, nuclei_from_channel, propagate, segment,
                                      split_at_valleys)
from impartial_core.metrics import match_at_iou
from impartial_core.object_sets import instance_config


def _two_touching_cells(size=(40, 70)):
    """Two rectangular cells side by side sharing one border at column 35, each with a nucleus;
    the cell channel is brighter along their shared border (cortical actin)."""
    truth = np.zeros(size, np.int32)
    truth[5:35, 5:35] = 1
    truth[5:35, 35:65] = 2
    nuclei = np.zeros(size, np.int32)
    nuclei[15:25, 12:20] = 1
    nuclei[15:25, 52:60] = 2
    cell_channel = np.where(truth > 0, 0.4, 0.0)
    cell_channel[5:35, 34:37] = 1.0
    dapi = np.where(nuclei > 0, 1.0, 0.05)
    probability = np.where(truth > 0, 0.95, 0.02).astype(np.float32)
    return truth, nuclei, np.stack([cell_channel, dapi]).astype(np.float32), probability


@pytest.mark.parametrize("cellprofiler_installed", [True, False])
def test_propagation_puts_the_border_where_the_image_changes(cellprofiler_installed, monkeypatch):
    """Seeds off-centre: cell 2's just right of the shared border, so halfway between the seeds
    is column 26, deep inside cell 1; the bright border line still draws the boundary at 34-36,
    with CellProfiler's propagation and with the watershed used where it is not installed."""
    from impartial_core import propagation

    if not cellprofiler_installed:
        monkeypatch.setattr(propagation, "_propagate_module", lambda: None)
    elif propagation._propagate_module() is None:
        pytest.skip("neither centrosome nor centriole is installed")
    truth, _, image, probability = _two_touching_cells()
    seeds = np.zeros(truth.shape, np.int32)
    seeds[15:25, 8:14] = 1
    seeds[15:25, 38:44] = 2
    cells = propagate(seeds, probability > 0.5, image[0])
    assert set(np.unique(cells)) == {0, 1, 2}
    assert np.array_equal(cells > 0, truth > 0)
    assert match_at_iou(cells, truth, 0.9)["tp"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_propagation_part_by_part_labels_as_one_call_on_the_whole_image(seed):
    """Many touching seeds in a mask of several parts, some on the image's edge, one without a
    seed, over a smooth noisy image: the same labels as CellProfiler's propagate called once on
    the whole image."""
    from impartial_core import propagation

    module = propagation._propagate_module()
    if module is None:
        pytest.skip("neither centrosome nor centriole is installed")
    rng = np.random.default_rng(seed)
    shape = (90, 110)
    mask = ndi.binary_opening(ndi.gaussian_filter(rng.random(shape), 3) > 0.5, iterations=1)
    mask[57:73, 0:11] = False
    mask[60:70, 0:8] = True
    seeds = np.zeros(shape, np.int32)
    for number, (r, c) in enumerate(rng.integers(0, shape, size=(40, 2)), start=1):
        seeds[max(r - 2, 0):r + 2, max(c - 2, 0):c + 2] = number
    seeds[57:73, 0:11] = 0                                    # a part no seed reaches
    image = ndi.gaussian_filter(rng.random(shape), 1.5)
    whole, _ = module.propagate(image, seeds, mask | (seeds > 0), 0.05)
    by_part = propagation.propagate(seeds, mask, image, 0.05)
    assert len(np.unique(by_part)) > 20 and (by_part[60:70, 0:8] == 0).all()
    assert np.array_equal(by_part, whole)


def test_cells_only_model_with_a_nuclear_stain_gives_nuclei_cells_and_cytoplasm():
    truth, nuclei_truth, image, probability = _two_touching_cells()
    objects = segment({"cells": probability}, {"cells": 0.5}, InstanceConfig(min_size=5, cell_min_size=5),
                      image=image, nuclear_channel=1)
    assert objects.cells.max() == 2 and objects.nuclei.max() == 2 and objects.cytoplasm.max() == 2
    assert match_at_iou(objects.cells, truth, 0.9)["tp"] == 2
    # found with their blurred rim (a pixel all round these flat 10 x 8 nuclei: IoU 0.69)
    assert match_at_iou(objects.nuclei, nuclei_truth, 0.6)["tp"] == 2
    for n in (1, 2):
        # numbered alike: nucleus n lies in cell n; cytoplasm n is cell n minus nucleus n
        assert (objects.cells[objects.nuclei == n] == n).all()
        assert np.array_equal(objects.cytoplasm == n, (objects.cells == n) & (objects.nuclei != n))


def test_a_shallower_split_depth_cuts_more_touching_nuclei_from_the_stain():
    """The split depth (the module's setting, ``--split-depth``) sets how deep a neck between touching
    nuclei of the nuclear stain must be to cut them: on a crop of the Vectra stroma's DAPI, where
    nuclei touch, 0.5 px cuts more than 1 and 1 more than 2."""
    dapi = tifffile.imread(Path(__file__).resolve().parents[1] / "examples" / "data" / "vectra_2ch" / "image1.tif")[1]
    counts = [int(nuclei_from_channel(dapi[:96, :96].astype(np.float32), instance_config(split_depth=depth)).max())
              for depth in (0.5, 1.0, 2.0)]
    assert counts[0] > counts[1] > counts[2] > 10


def test_without_a_nuclear_channel_a_cells_only_model_gives_cells_only():
    truth, _, image, probability = _two_touching_cells()
    objects = segment({"cells": probability}, {"cells": 0.5}, InstanceConfig(cell_min_size=5), image=image)
    assert objects.nuclei is None and objects.cytoplasm is None and objects.cells is not None


def test_nuclear_channel_out_of_range_is_refused_by_name():
    _, _, image, probability = _two_touching_cells()
    with pytest.raises(ValueError, match="nuclear channel 2"):
        segment({"cells": probability}, {"cells": 0.5}, image=image, nuclear_channel=2)


def test_a_nucleus_outside_the_cell_mask_is_a_cell_of_its_own_pixels():
    """As IdentifySecondaryObjects: every seed gives a cell, at least the nucleus itself, with the
    usual numbering (nucleus n in cell n)."""
    truth, nuclei, image, probability = _two_touching_cells()
    probability[5:35, 35:65] = 0.02          # the cell task calls cell 2 background
    found_nuclei, cells = cells_from_seeds(nuclei, probability, 0.5, image[0], InstanceConfig(cell_min_size=30))
    assert cells.max() == 2 and found_nuclei.max() == 2
    assert (cells[truth == 1] == 1).all()
    assert np.array_equal(cells == 2, nuclei == 2) and np.array_equal(found_nuclei == 2, nuclei == 2)


def test_cells_that_lose_their_nucleus_to_the_size_limit_go_with_it():
    truth, nuclei, image, probability = _two_touching_cells()
    small = np.where(nuclei == 2, 0, nuclei)
    small[20:24, 55:59] = 2                  # a 16-pixel nucleus outside the cell mask
    probability[5:35, 35:65] = 0.02
    found_nuclei, cells = cells_from_seeds(small, probability, 0.5, image[0], InstanceConfig(cell_min_size=30))
    assert cells.max() == 1 and found_nuclei.max() == 1
    assert (cells[truth == 1] == 1).all() and (found_nuclei[nuclei == 1] == 1).all()


def test_an_irregular_cell_without_a_probability_valley_stays_one_object():
    """A dumbbell: two lobes joined by a thin neck, uniformly confident. The distance transform
    has two maxima, but nothing in the probability separates them."""
    p = np.zeros((40, 80), np.float32)
    yy, xx = np.mgrid[:40, :80]
    p[(yy - 20) ** 2 + (xx - 20) ** 2 <= 15 ** 2] = 0.95
    p[(yy - 20) ** 2 + (xx - 60) ** 2 <= 15 ** 2] = 0.95
    p[18:23, 20:60] = 0.95
    assert cells_from_probability(p, 0.5, InstanceConfig()).max() == 1
    # The same shape with a valley of probability across the neck is two cells.
    p[:, 39:42] = np.where(p[:, 39:42] > 0.5, 0.6, p[:, 39:42])
    cells = cells_from_probability(p, 0.5, InstanceConfig())
    assert cells.max() == 2 and cells[20, 20] != cells[20, 60]


def test_valley_split_keeps_every_pixel_of_the_mask():
    rng = np.random.default_rng(0)
    p = np.clip(rng.normal(0.7, 0.2, (32, 32)), 0, 1).astype(np.float32)
    mask = p > 0.5
    labels = split_at_valleys(p, mask)
    assert np.array_equal(labels > 0, mask)
