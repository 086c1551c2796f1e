"""Split strokes: lines a person draws where touching objects meet, and the cut they make.

A split stroke (scribble value 4, :data:`impartial_core.scribbles.SPLIT`) is neither foreground nor
background: the seam between two touching nuclei is about as bright as a dim nucleus, so calling
it background teaches the network to drop dim nuclei (measured on the MIBI images: F1@0.5 0.69 ->
0.65, ``experiments/correct_merges.py``). Training therefore leaves split pixels out of the
scribble loss, and the object step uses them on the image they were drawn on: every object a
stroke crosses is divided into the parts the stroke separates.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as connected_regions
from skimage.segmentation import relabel_sequential

if TYPE_CHECKING:
    from .instances import Objects


def cut_objects(labels: np.ndarray, split: np.ndarray, min_size: int = 1) -> np.ndarray:
    """Divide every object that a split stroke crosses into the parts the stroke separates.

    Parameters
    ----------
    labels : (H, W) integer array
        Objects, 0 = background.
    split : (H, W) bool array
        Pixels of split strokes.
    min_size : int
        Parts of a crossed object smaller than this are not objects of their own: they rejoin the
        nearest part of the same object.

    Returns
    -------
    (H, W) int32 array
        The objects numbered 1..n in raster order of their first pixel; an object no stroke divides
        keeps its pixels (stroke pixels inside it included). Stroke pixels go to the nearest part
        of the object they lie in, so no gap is left where the stroke was drawn.
    """
    labels = np.asarray(labels)
    split = np.asarray(split, dtype=bool)
    if labels.shape != split.shape:
        raise ValueError(f"split strokes {split.shape} and objects {labels.shape} differ in size")
    if not (split & (labels > 0)).any():
        return relabel_sequential(labels.astype(np.int32))[0]
    # How it works: remove the stroke pixels, find the 4-connected parts of each object (pixels of
    # different objects never join: ``label`` separates regions of different values), drop parts
    # under min_size, then give every removed pixel of an object the part nearest to it.
    parts = connected_regions(np.where(split, 0, labels), background=0, connectivity=1).astype(np.int32)
    if min_size > 1 and parts.max() > 0:
        owner = np.zeros(parts.max() + 1, dtype=labels.dtype)
        owner[parts] = labels
        crossed = np.isin(owner, labels[split & (labels > 0)])  # parts of objects a stroke crosses
        small = (np.bincount(parts.ravel(), minlength=owner.size) < min_size) & crossed
        small[0] = False
        parts[small[parts]] = 0
    orphans = (labels > 0) & (parts == 0)
    if orphans.any() and parts.max() > 0:
        _, (rows, cols) = ndi.distance_transform_edt(parts == 0, return_indices=True)
        nearest = parts[rows, cols]
        same_object = labels[rows, cols] == labels
        parts[orphans & same_object] = nearest[orphans & same_object]
    return relabel_sequential(parts)[0].astype(np.int32)


def split_objects(objects: "Objects", split: np.ndarray, min_size: int = 1) -> "Objects":
    """The object sets of one image with its split strokes applied.

    Nuclei are cut (or, without nuclei, cells); with nuclei and cells, a cell whose nucleus was cut
    is divided between the parts of its nucleus (each pixel to the nearest part) and every cell
    keeps the number of its nucleus; cytoplasm is made again from both.
    """
    from skimage.segmentation import watershed

    from .instances import Objects, cytoplasm_from

    split = np.asarray(split, dtype=bool)
    if not split.any():
        return objects
    if objects.nuclei is None:
        return Objects(cells=cut_objects(objects.cells, split, min_size) if objects.cells is not None else None)
    nuclei = cut_objects(objects.nuclei, split, min_size)
    if objects.cells is None:
        return Objects(nuclei=nuclei)
    old_nuclei, old_cells = objects.nuclei, objects.cells
    cells = np.zeros_like(nuclei)
    for number, box in enumerate(ndi.find_objects(old_cells), start=1):
        if box is None:
            continue
        cell = old_cells[box] == number
        parts = np.unique(nuclei[box][(old_nuclei[box] == number) & (nuclei[box] > 0)])
        if parts.size == 1:
            cells[box][cell] = parts[0]
        elif parts.size > 1:
            markers = np.where(cell & np.isin(nuclei[box], parts), nuclei[box], 0)
            grown = watershed(np.zeros(cell.shape), markers, mask=cell)
            cells[box][cell] = grown[cell]
    cells[nuclei > 0] = nuclei[nuclei > 0]
    return Objects(nuclei=nuclei, cells=cells, cytoplasm=cytoplasm_from(cells, nuclei))
