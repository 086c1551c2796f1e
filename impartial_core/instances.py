"""From probability maps to objects: nuclei, whole cells and cytoplasm with shared numbering.

Numbering contract (what CellProfiler's IdentifySecondaryObjects / IdentifyTertiaryObjects give):
nucleus n, the cell grown from it and that cell's cytoplasm all carry the number n, and the
numbers of each object set are consecutive from 1.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import label as label_regions
from skimage.segmentation import clear_border, watershed

from .blob_splitting import EIGHT, split_at_valleys, split_touching
from .config import InstanceConfig
from .normalization import as_channels_first
from .nuclear_stain import nuclear_contrast, nuclear_radius
from .propagation import propagate


# Cells from a nuclear stain (cells-only models): smoothing of the stain before its threshold, in
# pixels, and the weight of distance against intensity change in the propagation (CellProfiler's
# "regularization factor"). Measured on the MP6843 and Vectra fields (benchmarks/results/cells.md).
NUCLEAR_STAIN_SIGMA = 1.0
PROPAGATION_REGULARIZATION = 0.05

# Nuclei on a confident map (see nuclei_from_probability): read its valleys when the share of its
# pixels above 0.1 that stay under 0.9 is below CONFIDENT_MAP; the probability is smoothed over
# VALLEY_RADII nuclear radii and cut at valleys VALLEY_DEPTH deep, the mask at necks NECK_H px
# deep; pieces under SLIVER_PIXELS where both cut lines run side by side join their neighbour.
# Measured on held-out MIBI images (experiments/split_regimes.py).
CONFIDENT_MAP = 0.5
VALLEY_RADII = 0.4
VALLEY_DEPTH = 0.05
NECK_H = 2.0
SLIVER_PIXELS = 20


def _renumbered(labels: np.ndarray, size: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``labels`` (non-negative) numbered 1..n in the order of their numbers, as skimage's
    ``relabel_sequential`` does, and the map from old numbers to new: an int32 array of at least
    ``size`` entries, 0 for numbers absent. A count per number instead of a sort of all pixels
    (0.5 s less on a 2048² image)."""
    present = np.bincount(labels.ravel(), minlength=size) > 0
    present[0] = False
    forward = np.zeros(present.size, dtype=np.int32)
    forward[present] = np.arange(1, np.count_nonzero(present) + 1, dtype=np.int32)
    return forward[labels], forward


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1 or labels.max() == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    labels = labels.copy()
    labels[small[labels]] = 0
    return labels


def _fill_holes_per_object(labels: np.ndarray) -> np.ndarray:
    """Fill the holes of each object without merging touching objects.

    A hole enclosed by one object becomes part of it. A hole that several touching objects enclose
    together is filled (each pixel going to the nearest object) only while smaller than the smallest
    of them: such a hole is dim pixels where objects meet (on the MIBI nuclei and Vectra cells,
    filling them matches the truth slightly better), while a larger one is background between
    them, e.g. the lumen in a ring of cells, and stays empty (as CellProfiler leaves it).
    """
    holes, n_holes = ndi.label(ndi.binary_fill_holes(labels > 0) & (labels == 0))
    if n_holes == 0:
        return labels
    areas = np.bincount(labels.ravel())
    filled = labels.copy()
    for index, box in enumerate(ndi.find_objects(holes), start=1):
        # The objects around a hole touch it, so its bounding box plus a one-pixel margin holds them.
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        crop = labels[box]
        hole = holes[box] == index
        around = np.unique(crop[ndi.binary_dilation(hole) & ~hole])
        around = around[around > 0]
        if around.size == 1:
            filled[box][hole] = around[0]
        elif hole.sum() < areas[around].min():
            _, (rows, cols) = ndi.distance_transform_edt(crop == 0, return_indices=True)
            filled[box][hole] = crop[rows[hole], cols[hole]]
    return filled


def _objects_in(mask: np.ndarray, config: InstanceConfig) -> np.ndarray:
    """Label a mask's objects: touching ones split when ``config.split_touching``, else its components."""
    return split_touching(mask, config.split_h) if config.split_touching else ndi.label(mask)[0]


def _clean_up(labels: np.ndarray, config: InstanceConfig, min_size: int) -> np.ndarray:
    """Fill holes, drop small (and, if asked, border) objects, number 1..n."""
    if config.fill_holes:
        labels = _fill_holes_per_object(labels)
    labels = _remove_small(labels, min_size)
    if config.exclude_border:
        labels = clear_border(labels)
    return _renumbered(labels)[0]


def smoothness(probability: np.ndarray) -> float:
    """The share of a probability map's pixels above 0.1 that stay under 0.9 (0 for a map without any).

    Low on a confident map, whose objects are plateaus near 1 (0.24-0.47 on held-out MIBI images
    after the default 3-minute training); high on a map from a short training (0.48-0.91 after
    150 iterations).
    """
    above = probability > 0.1
    return float(np.count_nonzero(above & (probability < 0.9)) / max(np.count_nonzero(above), 1))


def split_at_valleys_or_necks(probability: np.ndarray, mask: np.ndarray, neck_h: float = NECK_H) -> np.ndarray:
    """Label a mask of nuclei, cutting where the probability has a valley or the mask a deep neck.

    The pieces of :func:`split_at_valleys` (the probability smoothed over ``VALLEY_RADII`` of the
    nuclear radius measured in it, valleys ``VALLEY_DEPTH`` deep) cut again by those of
    :func:`split_touching` at necks ``neck_h`` px deep. A textured nucleus whose mask has an inlet
    (two shallow maxima of its distance transform, which the 1-px split cuts into fragments) stays
    whole; touching nuclei are cut where either the probability or the shape separates them.
    """
    valleys = split_at_valleys(probability, mask, VALLEY_DEPTH, VALLEY_RADII * nuclear_radius(probability))
    necks = split_touching(mask, neck_h)
    # One key per (valley piece, neck piece) pair (0 outside the mask, as both are); each
    # 4-connected region of one key is a piece. In place: on large maps memory is what limits.
    key = valleys.astype(np.int64)
    del valleys
    key *= int(necks.max()) + 1
    key += necks
    del necks
    pieces = label_regions(key, background=0, connectivity=1)
    # Where the two cut lines run side by side they leave slivers: given to the nearest piece.
    sliver = (np.bincount(pieces.ravel()) < SLIVER_PIXELS)[pieces] & mask
    if not sliver.any():
        return pieces.astype(np.int32)
    return _given_to_nearest(np.where(sliver, 0, pieces).astype(np.int32), sliver, 3)


def _given_to_nearest(labels: np.ndarray, pixels: np.ndarray, distance: int) -> np.ndarray:
    """``labels`` with each of ``pixels`` (unlabelled) given the label of the nearest labelled pixel
    within ``distance`` (left 0 beyond), as skimage's ``expand_labels`` does; computed on a crop
    around each group of such pixels rather than over the whole image (0.1 s instead of 0.5 s
    for the ~2,000 slivers of a 2048² map)."""
    out = labels.copy()
    groups, _ = ndi.label(pixels, structure=EIGHT)
    for index, box in enumerate(ndi.find_objects(groups), start=1):
        box = tuple(slice(max(s.start - distance, 0), s.stop + distance) for s in box)
        crop = labels[box]
        if not crop.any():
            continue
        group = groups[box] == index
        near, (rows, cols) = ndi.distance_transform_edt(crop == 0, return_indices=True)
        given = crop[rows, cols]
        out[box][group] = np.where(near[group] <= distance, given[group], 0)
    return out


def nuclei_from_probability(probability: np.ndarray, threshold: float, config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Nuclei labels: threshold, split touching nuclei, fill holes, drop small and border objects.

    The split depends on how confident the map is (:func:`smoothness` under ``CONFIDENT_MAP``):
    a confident map is cut at its valleys and at deep necks of its mask
    (:func:`split_at_valleys_or_necks`), a smooth one, whose valleys are shallow, at the necks of
    the mask only (:func:`split_touching`, depth ``config.split_h``). Held out (MIBI,
    leave-one-image-out, two seeds): F1@0.5 0.715 / 0.718 against 0.700 / 0.698 for the mask's
    necks alone after 3-minute trainings, level after 150 iterations, and the same nuclei on the
    smooth maps of brief trainings on small crops, where the valleys alone merged them.
    """
    mask = probability > threshold
    if config.split_touching and smoothness(probability) < CONFIDENT_MAP:
        objects = split_at_valleys_or_necks(probability, mask)
    else:
        objects = _objects_in(mask, config)
    return _clean_up(objects, config, config.min_size)


def cells_from_nuclei(
    nuclei: np.ndarray, cell_probability: np.ndarray, threshold: float, config: InstanceConfig = InstanceConfig()
) -> np.ndarray:
    """Whole cells grown from the nuclei inside the cell mask; cell n contains nucleus n.

    A watershed on the inverted cell probability, seeded by the nuclei, divides the cell mask
    between the nuclei. Rule for parts of the cell mask that no nucleus reaches (cells whose
    nucleus is out of plane or missed): they are dropped, because every cell must carry its
    nucleus's number. Each nucleus gets at least its own pixels as a cell.
    """
    mask = (cell_probability > threshold) | (nuclei > 0)
    cells = watershed(-cell_probability.astype(np.float32), nuclei, mask=mask)
    cells[nuclei > 0] = nuclei[nuclei > 0]
    if config.fill_holes:
        cells = _fill_holes_per_object(cells)
    return cells.astype(np.int32)


def cytoplasm_from(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Cytoplasm n = cell n minus nucleus n.

    A cell that its nucleus fills entirely keeps one pixel of cytoplasm (as
    IdentifyTertiaryObjects does) so that nuclei, cells and cytoplasm counts stay aligned.
    """
    cytoplasm = np.where(nuclei > 0, 0, cells).astype(np.int32)
    n = int(cells.max())
    if n == 0:
        return cytoplasm
    # Counts per number rather than sorts of every pixel (1 s less on a 2048² image of 6700 cells).
    empty = (np.bincount(cells.ravel(), minlength=n + 1) > 0) & (np.bincount(cytoplasm.ravel(), minlength=n + 1) == 0)
    empty[0] = False
    if empty.any():
        # The first pixel (raster order) of each such cell: among those cells' pixels only.
        pixels = np.flatnonzero(empty[cells.ravel()])
        numbers, first = np.unique(cells.ravel()[pixels], return_index=True)
        cytoplasm.ravel()[pixels[first]] = numbers
    return cytoplasm


def nuclei_from_channel(channel: np.ndarray, config: InstanceConfig = InstanceConfig(), sigma: float = 1.0) -> np.ndarray:
    """Nuclei found in a nuclear-stain channel without training: local contrast, Otsu, split.

    The seeds of cells when only the whole-cell task was trained: the nuclear stain says where
    each cell is even where the cell probability shows no boundary between touching cells.
    The channel is smoothed (``sigma`` pixels) and divided by its local level over about one
    nucleus (:func:`.nuclear_stain.nuclear_contrast`), so that dim nuclei beside bright ones are
    found too, and the seams between touching ones fall below it.
    Measured on the same probability maps (one model per fold), with the level at the whole
    radius: Vectra traced cells' mDICE 0.456 -> 0.536 (a global Otsu threshold missed the dim
    tumour nuclei); MP6843 F1@0.5 0.943 -> 0.927, mDICE 0.892 -> 0.892, 382 cells for 351 (369
    before); at half the radius, see ``LEVEL_SCALE``.
    """
    contrast, _ = nuclear_contrast(channel, sigma)
    # A constant channel has no foreground (Otsu is undefined there).
    if not np.ptp(contrast) > 0:
        return np.zeros(contrast.shape, dtype=np.int32)
    # The contrast is not a probability: its objects are split by their shape alone.
    return _clean_up(_objects_in(contrast > threshold_otsu(contrast), config), config, config.min_size)


def cells_from_probability(cell_probability: np.ndarray, threshold: float, config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Cells when only the whole-cell task was trained and there is no nuclear stain.

    The cell mask is split where the probability has a valley between touching cells
    (:func:`split_at_valleys`), never by the mask's shape alone; without ``config.split_touching``
    each connected part of the mask is one cell.
    """
    mask = cell_probability > threshold
    labels = split_at_valleys(cell_probability, mask) if config.split_touching else ndi.label(mask)[0]
    return _clean_up(labels, config, config.cell_min_size)


def cells_from_seeds(
    seeds: np.ndarray, cell_probability: np.ndarray, threshold: float, landscape: np.ndarray,
    config: InstanceConfig = InstanceConfig(), regularization: float = 0.05,
) -> Tuple[np.ndarray, np.ndarray]:
    """Nuclei and whole cells grown from labelled ``seeds`` (nuclei) within the cell mask.

    Each seed grows by :func:`propagate` over ``landscape`` (an image whose changes mark where
    touching cells meet) through the mask ``cell_probability > threshold``; parts of the mask no
    seed reaches are left out, as IdentifySecondaryObjects does, so that every cell has its
    nucleus. As there, every seed is a cell, at least its own pixels: a nucleus whose cell the
    cell task calls background (on the Vectra fields, stromal cells with little cytoplasm) is a
    cell of its nucleus alone (traced cells' mDICE 0.525 -> 0.536 against dropping such seeds;
    the MP6843 cells were unchanged). Cells under ``config.cell_min_size`` pixels are dropped with
    their nuclei.

    Returns
    -------
    (nuclei, cells) : int32 label images, nucleus n inside cell n, both numbered 1..n.
    """
    seeds = _renumbered(np.asarray(seeds, dtype=np.int32))[0]
    cells = propagate(seeds, cell_probability > threshold, landscape, regularization)
    cells[seeds > 0] = seeds[seeds > 0]
    if config.fill_holes:
        cells = _fill_holes_per_object(cells)
    cells = _remove_small(cells, config.cell_min_size)
    cells, forward = _renumbered(cells, size=int(seeds.max(initial=0)) + 1)
    nuclei = np.where(forward[seeds] == cells, cells, 0)
    return nuclei.astype(np.int32), cells


@dataclass
class Objects:
    """The object sets of one image; absent sets are None."""

    nuclei: Optional[np.ndarray] = None
    cells: Optional[np.ndarray] = None
    cytoplasm: Optional[np.ndarray] = None


def task_threshold(task: str, thresholds: dict, config: InstanceConfig = InstanceConfig()) -> float:
    """The probability threshold applied to a task's map: ``config.threshold`` when set, else the one
    learnt at training (``thresholds``), else 0.5."""
    return float(config.threshold) if config.threshold is not None else float(thresholds.get(task, 0.5))


def segment(
    foreground_probability: dict, thresholds: dict, config: InstanceConfig = InstanceConfig(),
    image: Optional[np.ndarray] = None, nuclear_channel: Optional[int] = None,
) -> Objects:
    """Objects from per-task foreground probabilities (keys ``nuclei`` and/or ``cells``).

    ``config.threshold`` overrides the per-task ``thresholds`` learnt at training when set.

    - nuclei (+ cells): nuclei from their probability; cells grown from them, cytoplasm between.
    - cells only, with ``image`` (raw, (H, W) or (C, H, W)) and its ``nuclear_channel``: nuclei
      found in the nuclear stain (:func:`nuclei_from_channel`) seed the cells, which grow over the
      cell probability by CellProfiler's propagation (:func:`cells_from_seeds`); nuclei, cells and
      cytoplasm are returned, numbered alike.
    - cells only, without a nuclear channel: cells only, split where the probability has a valley
      (:func:`cells_from_probability`).
    """
    def threshold(task: str) -> float:
        return task_threshold(task, thresholds, config)

    objects = Objects()
    if "nuclei" in foreground_probability:
        with_cells = "cells" in foreground_probability
        # With cells, the border rule applies to cells: a nucleus near the border is kept until its
        # cell is grown, or the neighbouring cells would flood its place and reach the border.
        nuclei_config = dataclasses.replace(config, exclude_border=False) if with_cells else config
        objects.nuclei = nuclei_from_probability(foreground_probability["nuclei"], threshold("nuclei"), nuclei_config)
        if with_cells:
            objects.cells = cells_from_nuclei(objects.nuclei, foreground_probability["cells"], threshold("cells"), config)
    elif "cells" in foreground_probability and image is not None and nuclear_channel is not None:
        channels = as_channels_first(image)
        if not 0 <= nuclear_channel < channels.shape[0]:
            raise ValueError(f"nuclear channel {nuclear_channel} does not exist in an image of {channels.shape[0]} "
                             f"channel(s) (channels are numbered from 0)")
        cell_probability = foreground_probability["cells"]
        stain = nuclei_from_channel(channels[nuclear_channel], dataclasses.replace(config, exclude_border=False),
                                    sigma=NUCLEAR_STAIN_SIGMA)
        # Grown over the cell probability itself: on the MP6843 fields it drew better boundaries
        # than the cell channel (actin) or the mean of both (benchmarks/results/mp6843_instances.txt).
        objects.nuclei, objects.cells = cells_from_seeds(
            stain, cell_probability, threshold("cells"), cell_probability, config, PROPAGATION_REGULARIZATION)
    elif "cells" in foreground_probability:
        objects.cells = cells_from_probability(foreground_probability["cells"], threshold("cells"), config)
    if objects.nuclei is not None and objects.cells is not None:
        if config.exclude_border:
            # A cell touching the border goes, and so do its nucleus and cytoplasm.
            kept = np.unique(clear_border(objects.cells))
            objects.nuclei[~np.isin(objects.nuclei, kept)] = 0
            objects.cells[~np.isin(objects.cells, kept)] = 0
            objects.nuclei, forward = _renumbered(objects.nuclei, size=int(objects.cells.max(initial=0)) + 1)
            objects.cells = forward[objects.cells]
        objects.cytoplasm = cytoplasm_from(objects.cells, objects.nuclei)
    return objects


def object_confidence(labels: np.ndarray, probability: np.ndarray, uncertainty: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per object 1..max(labels): mean foreground probability and mean uncertainty.

    Objects are where a user should look first: low probability or high uncertainty marks a
    doubtful object (to filter, or to scribble on). Numbers absent from ``labels`` give NaN.
    """
    n = int(labels.max(initial=0))
    if n == 0:
        return np.zeros(0), np.zeros(0)
    index = np.arange(1, n + 1)
    return (np.asarray(ndi.mean(probability, labels, index), dtype=float),
            np.asarray(ndi.mean(uncertainty, labels, index), dtype=float))
