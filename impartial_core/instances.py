"""From probability maps to objects: nuclei, whole cells and cytoplasm with shared numbering.

Numbering contract (what CellProfiler's IdentifySecondaryObjects / IdentifyTertiaryObjects give):
nucleus n, the cell grown from it and that cell's cytoplasm all carry the number n, and the
numbers of each object set are consecutive from 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import clear_border, relabel_sequential, watershed

from .config import InstanceConfig


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
    """Fill holes inside each object without merging touching objects.

    Holes of the union are given to the object that surrounds them (the nearest label), which is
    the only object a hole can belong to when it is enclosed by one object.
    """
    mask = labels > 0
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return labels
    _, nearest = ndi.distance_transform_edt(~mask, return_indices=True)
    filled = labels.copy()
    filled[holes] = labels[nearest[0][holes], nearest[1][holes]]
    return filled


def split_touching(mask: np.ndarray, h: float = 1.0) -> np.ndarray:
    """Label a binary mask, splitting touching blobs by a watershed on the distance transform.

    Markers are the h-maxima of the (lightly smoothed) distance to the background: a neck between
    two nuclei splits them when each side is at least ``h`` pixels "thicker" than the neck. On the
    MIBI example this beat peak_local_max markers and probability-based markers (see README).
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0)
    markers = ndi.label(h_maxima(distance, h) & mask)[0]
    labels = watershed(-distance, markers, mask=mask)
    # Blobs without a marker (thin slivers the smoothing flattened) stay as components of their own.
    orphans = ndi.label(mask & (labels == 0))[0]
    labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    return labels


def _clean_up(labels: np.ndarray, config: InstanceConfig, min_size: int) -> np.ndarray:
    """Fill holes, drop small (and, if asked, border) objects, number 1..n."""
    if config.fill_holes:
        labels = _fill_holes_per_object(labels)
    labels = _remove_small(labels, min_size)
    if config.exclude_border:
        labels = clear_border(labels)
    return relabel_sequential(labels)[0].astype(np.int32)


def nuclei_from_probability(probability: np.ndarray, threshold: float, config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Nuclei labels: threshold, (split touching), fill holes, drop small and border objects."""
    mask = probability > threshold
    labels = split_touching(mask, config.split_h) if config.split_touching else ndi.label(mask)[0]
    return _clean_up(labels, config, config.min_size)


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
    present = np.zeros(n + 1, dtype=bool)
    present[np.unique(cytoplasm)] = True
    empty = np.flatnonzero(~present[1:]) + 1
    empty = empty[np.isin(empty, np.unique(cells))]
    if empty.size:
        # The first pixel (raster order) of each such cell.
        flat = cells.ravel()
        order = np.argsort(flat, kind="stable")
        first = np.searchsorted(flat[order], empty)
        cytoplasm.ravel()[order[first]] = empty
    return cytoplasm


def cells_from_probability(
    cell_probability: np.ndarray, threshold: float, config: InstanceConfig = InstanceConfig(),
    seeds: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Cells when only the whole-cell task was trained: split the cell mask by itself.

    ``seeds`` (for instance maxima of a nuclear channel) replace the distance-transform maxima as
    watershed markers when given; seeds outside the cell mask are ignored.
    """
    mask = cell_probability > threshold
    if seeds is not None:
        markers = ndi.label(seeds & mask)[0]
        labels = watershed(-cell_probability.astype(np.float32), markers, mask=mask)
    elif config.split_touching:
        labels = split_touching(mask, config.split_h)
    else:
        labels = ndi.label(mask)[0]
    return _clean_up(labels, config, config.cell_min_size)


@dataclass
class Objects:
    """The object sets of one image; absent sets are None."""

    nuclei: Optional[np.ndarray] = None
    cells: Optional[np.ndarray] = None
    cytoplasm: Optional[np.ndarray] = None


def segment(
    foreground_probability: dict, thresholds: dict, config: InstanceConfig = InstanceConfig()
) -> Objects:
    """Objects from per-task foreground probabilities (keys ``nuclei`` and/or ``cells``).

    ``config.threshold`` overrides the per-task ``thresholds`` learnt at training when set.
    """
    def threshold(task: str) -> float:
        return config.threshold if config.threshold is not None else thresholds.get(task, 0.5)

    objects = Objects()
    if "nuclei" in foreground_probability:
        objects.nuclei = nuclei_from_probability(foreground_probability["nuclei"], threshold("nuclei"), config)
        if "cells" in foreground_probability:
            objects.cells = cells_from_nuclei(objects.nuclei, foreground_probability["cells"], threshold("cells"), config)
            if config.exclude_border:
                # A cell touching the border goes, and so do its nucleus and cytoplasm.
                kept = np.unique(clear_border(objects.cells))
                drop = ~np.isin(objects.nuclei, kept)
                objects.nuclei[drop] = 0
                objects.cells[~np.isin(objects.cells, kept)] = 0
                objects.nuclei, forward, _ = relabel_sequential(objects.nuclei)
                objects.cells = forward[objects.cells].astype(np.int32)
                objects.nuclei = objects.nuclei.astype(np.int32)
            objects.cytoplasm = cytoplasm_from(objects.cells, objects.nuclei)
    elif "cells" in foreground_probability:
        objects.cells = cells_from_probability(foreground_probability["cells"], threshold("cells"), config)
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
