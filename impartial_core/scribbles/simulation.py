"""Scribbles simulated from full ground truth, as the ImPartial paper did, for benchmarks."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from . import BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT
from .objects import check_instances, skeleton_labels


def simulate_scribbles(
    instance_labels_list: Sequence[np.ndarray],
    budget: int,
    seed: int,
    box: int = 32,
    ring: int = 4,
    foreground_value: int = NUCLEUS,
    sources: Optional[Sequence[str]] = None,
) -> List[np.ndarray]:
    """Simulate scribbles from full instance masks as the ImPartial paper did (for benchmarks).

    The budget (number of scribbled objects) is split evenly over the images, the first
    ``budget % n_images`` images taking one more. Per image, repeatedly: pick a random unannotated
    object, open a ``box`` x ``box`` window around its centre; every object touching the window gets
    its skeleton as foreground and costs one unit; background is the window's 1-px outline plus a
    ``ring``-px ring around those objects, minus all object pixels. This stops once the image's
    budget is spent or every object is annotated; the last window may overshoot the budget (the
    paper's own n100 scribbles hold 102 objects).

    Parameters
    ----------
    instance_labels_list : sequence of (H, W) int arrays
    budget : int
        Total number of objects to scribble over all images.
    seed : int
        Seed of ``numpy.random.default_rng``: the result is deterministic given the seed.
    box, ring : int
        Window side and background ring width in pixels.
    foreground_value : int
        Scribble value of object skeletons (NUCLEUS for nuclei masks).
    sources : sequence of str, optional
        The inputs' names (file names) for error messages.

    Returns
    -------
    list of uint8 (H, W) scribble images, one per input image.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if box < 1 or ring < 0:
        raise ValueError(f"box must be >= 1 and ring >= 0, got box={box}, ring={ring}")
    if foreground_value not in (NUCLEUS, CYTOPLASM):
        raise ValueError(
            f"foreground_value must be {NUCLEUS} or {CYTOPLASM}, got {foreground_value}"
        )
    n_images = len(instance_labels_list)
    if n_images == 0:
        return []
    rng = np.random.default_rng(seed)
    per_image = np.full(n_images, budget // n_images, dtype=np.int64)
    per_image[: budget % n_images] += 1

    results = []
    for index, raw in enumerate(instance_labels_list):
        labels = check_instances(raw, sources[index] if sources else f"instance_labels_list[{index}]")
        height, width = labels.shape
        scribbles = np.zeros(labels.shape, dtype=np.uint8)
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if ids.size == 0 or per_image[index] == 0:
            results.append(scribbles)
            continue
        skeleton = skeleton_labels(labels)
        slices = ndi.find_objects(labels)  # slices[k - 1] = bounding box of label k
        centres = np.asarray(ndi.center_of_mass(np.ones(labels.shape), labels, ids))
        centres = centres.reshape(-1, 2)
        position = {int(k): i for i, k in enumerate(ids)}
        annotated = np.zeros(ids.size, dtype=bool)
        background = np.zeros(labels.shape, dtype=bool)
        spent = 0
        # a loop over picked objects (tens per image); each step works on a local window
        while spent < per_image[index] and not annotated.all():
            pick = int(rng.choice(np.flatnonzero(~annotated)))
            cy, cx = np.round(centres[pick]).astype(np.int64)
            r0, r1 = max(cy - box // 2, 0), min(cy - box // 2 + box, height)
            c0, c1 = max(cx - box // 2, 0), min(cx - box // 2 + box, width)
            touched = np.unique(labels[r0:r1, c0:c1])
            touched = touched[touched > 0]
            # the picked object always belongs (its centroid may lie outside it if it is concave)
            touched = np.union1d(touched, [ids[pick]])
            new = np.array([position[int(k)] for k in touched])
            spent += int(np.count_nonzero(~annotated[new]))
            annotated[new] = True

            window, drawn = _box_background(labels, slices, touched, (r0, r1, c0, c1), ring)
            background[window] |= drawn
        scribbles[background & (labels == 0)] = BACKGROUND
        chosen_ids = ids[annotated]
        scribbles[np.isin(skeleton, chosen_ids) & (skeleton > 0)] = foreground_value
        results.append(scribbles)
    return results


def _box_background(labels: np.ndarray, slices: Sequence, touched: np.ndarray, box: tuple, ring: int) -> tuple:
    """The background one box draws, before object pixels are taken out of it: the box's 1-px
    outline and a ``ring``-px ring around the ``touched`` objects.

    Works on a local window that holds the box (``box`` = (r0, r1, c0, c1)) and the touched
    objects whole (``slices`` = ``ndi.find_objects(labels)``), grown by the ring; returns the
    window (a pair of slices of ``labels``) and the background mask over it.
    """
    height, width = labels.shape
    r0, r1, c0, c1 = box
    bounds = [slices[int(k) - 1] for k in touched]
    wr0 = max(min([r0] + [b[0].start for b in bounds]) - ring - 1, 0)
    wr1 = min(max([r1] + [b[0].stop for b in bounds]) + ring + 1, height)
    wc0 = max(min([c0] + [b[1].start for b in bounds]) - ring - 1, 0)
    wc1 = min(max([c1] + [b[1].stop for b in bounds]) + ring + 1, width)
    chosen = np.isin(labels[wr0:wr1, wc0:wc1], touched)
    background = np.zeros(chosen.shape, dtype=bool)
    if ring > 0 and chosen.any():
        background |= ndi.distance_transform_edt(~chosen) <= ring
    outline = background[r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0]
    outline[[0, -1], :] = True
    outline[:, [0, -1]] = True
    return (slice(wr0, wr1), slice(wc0, wc1)), background


def annotate_box(
    instance_labels: np.ndarray,
    row: int,
    col: int,
    box: int = 32,
    ring: int = 4,
    predicted: Optional[np.ndarray] = None,
    merged_fraction: float = 0.5,
    foreground_value: int = NUCLEUS,
) -> np.ndarray:
    """The strokes a simulated annotator draws in one box, from full ground truth.

    As in :func:`simulate_scribbles`: every true object touching the ``box`` x ``box`` window
    centred on (``row``, ``col``) (clipped to the image) gets its whole skeleton as foreground;
    background is the window's 1-px outline plus a ``ring``-px ring around those objects, minus
    all object pixels. Given the current model's objects (``predicted``), split strokes are added
    where one predicted object merges two or more of those true objects (it covers at least
    ``merged_fraction`` of each): each pixel of that predicted object goes to the nearest of them,
    and the split stroke is where these parts meet, 2 px wide, across the whole predicted object
    (between touching true objects, along their shared border; across a gap, in its middle).

    Parameters
    ----------
    instance_labels : (H, W) int array
        Ground-truth objects, 0 = background.
    row, col : int
        Centre of the box, inside the image.
    box, ring : int
        Window side and background ring width in pixels.
    predicted : (H, W) int array, optional
        The current model's objects (0 = background); None draws no split strokes.
    merged_fraction : float
        Fraction of a true object a predicted object must cover to hold it, in [0.5, 1] (so that
        each true object is held by at most one predicted object).
    foreground_value : int
        Scribble value of object skeletons (NUCLEUS for nuclei masks).

    Returns
    -------
    (H, W) uint8 array
        The new strokes: BACKGROUND, ``foreground_value`` and SPLIT pixels, 0 elsewhere. The
        caller adds them where nothing is scribbled yet.
    """
    labels = check_instances(instance_labels)
    height, width = labels.shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"the box centre ({row}, {col}) lies outside the {height} x {width} image")
    if box < 1 or ring < 0:
        raise ValueError(f"box must be >= 1 and ring >= 0, got box={box}, ring={ring}")
    if not 0.5 <= merged_fraction <= 1.0:
        raise ValueError(f"merged_fraction must be in [0.5, 1], got {merged_fraction}")
    if predicted is not None and np.shape(predicted) != labels.shape:
        raise ValueError(f"predicted {np.shape(predicted)} and instance_labels {labels.shape} differ in size")
    r0, r1 = max(row - box // 2, 0), min(row - box // 2 + box, height)
    c0, c1 = max(col - box // 2, 0), min(col - box // 2 + box, width)
    touched = np.unique(labels[r0:r1, c0:c1])
    touched = touched[touched > 0]
    slices = ndi.find_objects(labels)  # slices[k - 1] = bounding box of label k
    window, background = _box_background(labels, slices, touched, (r0, r1, c0, c1), ring)
    local = labels[window]
    chosen = np.isin(local, touched)
    strokes = np.zeros(labels.shape, dtype=np.uint8)
    drawn = strokes[window]
    drawn[background & (local == 0)] = BACKGROUND
    skeleton = skeleton_labels(local)
    drawn[chosen & (skeleton > 0)] = foreground_value
    if predicted is None or not touched.size:
        return strokes
    strokes[_merge_seams(labels, np.asarray(predicted), touched, slices, merged_fraction)] = SPLIT
    return strokes


def _merge_seams(labels: np.ndarray, objects: np.ndarray, candidates: np.ndarray, slices: Sequence,
                 fraction: float) -> np.ndarray:
    """Where predicted objects merge true objects: the split strokes of :func:`annotate_box`.

    Parameters
    ----------
    labels, objects : (H, W) int arrays
        True and predicted objects (0 = background).
    candidates : 1-D int array
        The true objects that may count as merged.
    slices : sequence of slice pairs
        ``ndi.find_objects(labels)``: the bounding box of true object k is ``slices[k - 1]``.
    fraction : float
        A predicted object holds a true object when it covers at least this fraction of it.

    Returns
    -------
    (H, W) bool array
        In every predicted object that holds two or more candidates, the pixels where the parts of
        the object nearest to different held candidates meet (both sides of that line).
    """
    holders = {}
    for number in candidates:
        box = slices[number - 1]
        covered = objects[box][labels[box] == number]
        counts = np.bincount(covered[covered > 0].astype(np.int64))
        if counts.size and counts.max() >= fraction * covered.size:
            holders.setdefault(int(counts.argmax()), []).append(int(number))
    seams = np.zeros(labels.shape, dtype=bool)
    for number, held in holders.items():
        if len(held) < 2:
            continue
        rows, cols = np.nonzero(objects == number)
        r0 = min([rows.min()] + [slices[k - 1][0].start for k in held])
        r1 = max([rows.max() + 1] + [slices[k - 1][0].stop for k in held])
        c0 = min([cols.min()] + [slices[k - 1][1].start for k in held])
        c1 = max([cols.max() + 1] + [slices[k - 1][1].stop for k in held])
        members = np.where(np.isin(labels[r0:r1, c0:c1], held), labels[r0:r1, c0:c1], 0)
        inside = objects[r0:r1, c0:c1] == number
        nearest = ndi.distance_transform_edt(members == 0, return_distances=False, return_indices=True)
        regions = np.where(inside, members[tuple(nearest)], 0)
        larger = ndi.maximum_filter(regions, size=3, mode="nearest") > regions
        others = np.where(inside, regions, regions.max() + 1)
        smaller = ndi.minimum_filter(others, size=3, mode="nearest") < regions
        seams[r0:r1, c0:c1] |= inside & (larger | smaller)
    return seams


def count_scribbled_objects(
    scribbles: np.ndarray,
    instance_labels: np.ndarray,
    foreground_values: Sequence[int] = (NUCLEUS, CYTOPLASM),
) -> int:
    """Number of ground-truth objects touched by at least one foreground scribble pixel."""
    scribbles = np.asarray(scribbles)
    labels = check_instances(instance_labels)
    if scribbles.shape != labels.shape:
        raise ValueError(
            f"scribbles shape {scribbles.shape} does not match instance_labels shape {labels.shape}"
        )
    touched = np.unique(labels[np.isin(scribbles, foreground_values)])
    return int(np.count_nonzero(touched))
