"""Where to scribble next: places in a set of images, ranked by how much a stroke there should help.

Two kinds of place are suggested:

- ``uncertain``: a window (``window`` x ``window`` pixels) where the model is unsure of many pixels
  (mean uncertainty, the binary entropy of the foreground probability), and where few scribbles
  are already. A stroke there (foreground on what is an object, background on what is not) gives
  the scribble loss pixels the model currently gets wrong or barely right.
- ``split``: an object whose shape says it holds several touching objects (far from convex and
  larger than the typical object). The place is the object's narrowest point between its two
  largest distance-transform peaks, where a split stroke (the ``split`` scribble value) belongs. A
  window over such a place is not suggested as ``uncertain``: the seam between touching nuclei is
  about as bright as a dim nucleus, and background strokes there were measured to lower F1@0.5
  (0.69 -> 0.65 on the MIBI images, ``experiments/correct_merges.py``).

Both scores lie in [0, 1]; the places are chosen greedily, best first, no two of one image closer
than ``window`` pixels (Chebyshev distance) to each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from .config import InstanceConfig
from .scribbles import SPLIT as SPLIT_STROKE

UNCERTAIN = "uncertain"
SPLIT = "split"

#: An object at least this much larger than the median object, and at most this solid, looks merged.
MERGED_AREA_RATIO = 1.4
MERGED_SOLIDITY = 0.9
#: A window with this fraction of its pixels scribbled already scores 0.
SCRIBBLED_ENOUGH = 0.05


@dataclass(frozen=True)
class Suggestion:
    """One place to scribble.

    Attributes
    ----------
    image : int
        Index of the image in the sequence given.
    row, col : int
        Centre of the place, in pixels.
    kind : str
        ``"uncertain"`` (add foreground or background strokes) or ``"split"`` (draw a split stroke
        across the object where its parts touch).
    score : float
        In [0, 1], higher first.
    object_number : int
        For ``split``, the number of the object in the label image; 0 for a window.
    """

    image: int
    row: int
    col: int
    kind: str
    score: float
    object_number: int = 0


def _convex_areas(labels: np.ndarray, n: int) -> np.ndarray:
    """Convex hull area of each object 1..n (0 for absent numbers), from its pixel corners."""
    from scipy.spatial import ConvexHull, QhullError

    areas = np.zeros(n + 1)
    for number, box in enumerate(ndi.find_objects(labels, max_label=n), start=1):
        if box is None:
            continue
        rows, cols = np.nonzero(labels[box] == number)
        # every pixel's four corners, so a one-pixel-wide object still has an area
        corners = np.concatenate([np.stack([rows + dr, cols + dc], axis=1) for dr in (0, 1) for dc in (0, 1)])
        try:
            areas[number] = ConvexHull(corners).volume
        except QhullError:
            areas[number] = len(rows)
    return areas


def _neck(object_mask: np.ndarray) -> Optional[tuple]:
    """The narrowest point between the two largest distance peaks of one object, or None."""
    from skimage.feature import peak_local_max

    distance = ndi.distance_transform_edt(np.pad(object_mask, 1))[1:-1, 1:-1]
    peaks = peak_local_max(distance, min_distance=2, num_peaks=2, exclude_border=False,
                           labels=object_mask.astype(np.int32))
    if len(peaks) < 2:
        return None
    (r0, c0), (r1, c1) = peaks
    steps = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
    rows = np.round(np.linspace(r0, r1, steps)).astype(int)
    cols = np.round(np.linspace(c0, c1, steps)).astype(int)
    along = distance[rows, cols]
    i = int(np.argmin(along))
    return int(rows[i]), int(cols[i])


def merged_objects(labels: np.ndarray) -> List[Suggestion]:
    """``split`` suggestions for the objects of one label image that look like several merged.

    An object qualifies when its area is at least ``MERGED_AREA_RATIO`` times the median object's
    and its solidity (area / convex hull area) at most ``MERGED_SOLIDITY``. Its score grows with how
    far it is from convex and how much larger than the median it is.
    """
    labels = np.asarray(labels)
    n = int(labels.max(initial=0))
    if n < 2:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    present = areas[1:] > 0
    median = float(np.median(areas[1:][present]))
    candidates = np.flatnonzero((areas >= MERGED_AREA_RATIO * median) & (np.arange(n + 1) > 0))
    if candidates.size == 0:
        return []
    hull = _convex_areas(labels, n)
    found = []
    boxes = ndi.find_objects(labels, max_label=n)
    for number in candidates:
        solidity = areas[number] / max(hull[number], 1.0)
        if solidity > MERGED_SOLIDITY:
            continue
        box = boxes[number - 1]
        neck = _neck(labels[box] == number)
        if neck is None:
            continue
        concavity = min((MERGED_SOLIDITY - solidity) / 0.2, 1.0)
        size = min(areas[number] / median - 1.0, 1.0)
        score = float(np.clip(0.5 * concavity + 0.5 * size, 0.0, 1.0))
        found.append(Suggestion(0, box[0].start + neck[0], box[1].start + neck[1], SPLIT, score, int(number)))
    return found


def uncertain_windows(uncertainty: np.ndarray, window: int, scribbles: Optional[np.ndarray] = None,
                      skip: Optional[np.ndarray] = None) -> List[Suggestion]:
    """``uncertain`` candidates of one image, on a grid of half-window steps.

    Parameters
    ----------
    uncertainty : (H, W) array
        Per-pixel uncertainty in [0, 1].
    window : int
        Side of the window, in pixels.
    scribbles : (H, W) array, optional
        Current scribbles (0 = none); windows already scribbled score lower, down to 0 at
        ``SCRIBBLED_ENOUGH`` of their pixels.
    skip : (H, W) bool array, optional
        Pixels where no window may be centred (the objects suggested for a split).
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    height, width = uncertainty.shape
    size = min(window, height, width)
    mean = ndi.uniform_filter(uncertainty, size=size, mode="constant")
    if scribbles is not None:
        scribbled = ndi.uniform_filter((np.asarray(scribbles) > 0).astype(np.float64), size=size, mode="constant")
        mean = mean * np.clip(1.0 - scribbled / SCRIBBLED_ENOUGH, 0.0, 1.0)
    step = max(size // 2, 1)
    rows = np.arange(size // 2, max(height - size // 2, size // 2 + 1), step)
    cols = np.arange(size // 2, max(width - size // 2, size // 2 + 1), step)
    grid_r, grid_c = np.meshgrid(np.minimum(rows, height - 1), np.minimum(cols, width - 1), indexing="ij")
    scores = mean[grid_r, grid_c]
    keep = scores > 0
    if skip is not None:
        keep &= ~np.asarray(skip, dtype=bool)[grid_r, grid_c]
    return [Suggestion(0, int(r), int(c), UNCERTAIN, float(s))
            for r, c, s in zip(grid_r[keep], grid_c[keep], scores[keep])]


def suggest(uncertainty: Sequence[np.ndarray], objects: Sequence[Optional[np.ndarray]], count: int,
            scribbles: Optional[Sequence[Optional[np.ndarray]]] = None, window: int = 32) -> List[Suggestion]:
    """Rank places to scribble over a set of images, best first.

    Parameters
    ----------
    uncertainty : sequence of (H, W) arrays
        Per image, the uncertainty map of the task whose objects are given.
    objects : sequence of (H, W) label arrays or None
        Per image, the objects (nuclei, or cells without nuclei); None gives no split suggestions.
    count : int
        How many places to return at most (at least 1).
    scribbles : sequence of (H, W) arrays or None, optional
        Per image, the scribbles drawn so far.
    window : int
        Side of a suggested window in pixels (at least 4); also the minimum distance between two
        places of one image.

    Returns
    -------
    list of Suggestion
        At most ``count``, in decreasing score.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if window < 4:
        raise ValueError(f"window must be at least 4 pixels, got {window}")
    if len(objects) != len(uncertainty) or (scribbles is not None and len(scribbles) != len(uncertainty)):
        raise ValueError("give one uncertainty map, one label image (or None) and one scribble image per image")
    candidates: List[Suggestion] = []
    for index, (image_uncertainty, labels) in enumerate(zip(uncertainty, objects)):
        splits = merged_objects(labels) if labels is not None else []
        skip = np.isin(labels, [s.object_number for s in splits]) if splits else None
        drawn = scribbles[index] if scribbles is not None else None
        for place in splits + uncertain_windows(image_uncertainty, window, drawn, skip):
            candidates.append(Suggestion(index, place.row, place.col, place.kind, place.score, place.object_number))
    candidates.sort(key=lambda s: (-s.score, s.image, s.row, s.col))
    chosen: List[Suggestion] = []
    for place in candidates:
        if len(chosen) == count:
            break
        if all(p.image != place.image or max(abs(p.row - place.row), abs(p.col - place.col)) >= window
               for p in chosen):
            chosen.append(place)
    return chosen


def suggest_for_model(model, images: Sequence[np.ndarray], count: int,
                      scribbles: Optional[Sequence[Optional[np.ndarray]]] = None, window: int = 32,
                      flips: bool = False, device: str = "auto", nuclear_channel: Optional[int] = None,
                      config: InstanceConfig = InstanceConfig()) -> List[Suggestion]:
    """Places to scribble next in ``images`` (channels first), for a trained model.

    The nuclei task's uncertainty and nuclei are used when the model has that task; otherwise the
    cell task's and its cells. Cells seeded by the nuclei of ``nuclear_channel`` (as
    ``model.segment`` makes them for the user) merge only where their nuclei did: an irregular
    cell's outline says nothing of a merge, so merged places are looked for among those nuclei
    (numbered as their cells). The objects are made with ``config`` (the instance settings the user
    predicts with), cut by the split strokes already among ``scribbles``: an object a stroke has
    divided is not suggested again.
    """
    drawn = list(scribbles) if scribbles is not None else [None] * len(images)
    uncertainty, objects = [], []
    for image, strokes in zip(images, drawn):
        maps = model.predict(image, flips=flips, device=device)
        task = "nuclei" if "nuclei" in maps else "cells"
        seeded = task == "cells" and nuclear_channel is not None
        uncertainty.append(maps[task].uncertainty)
        split = None if strokes is None else np.asarray(strokes) == SPLIT_STROKE
        found = model.segment(maps, config, image=image, nuclear_channel=nuclear_channel if seeded else None,
                              split_strokes=split)
        objects.append(found.nuclei if seeded else getattr(found, task))
    return suggest(uncertainty, objects, count, scribbles=scribbles, window=window)
