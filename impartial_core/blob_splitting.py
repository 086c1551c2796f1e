"""Touching objects cut apart, blob by blob: at the necks of a mask's shape or the valleys of a probability.

Both cuts are watersheds from markers that stand at least a given depth above the pass to a
higher maximum (the h-maxima of the distance to the background; the valley split's hills of the
smoothed probability); ``instances`` decides which cut a map gets. Each connected blob is split
on its own, and only when it holds more than one local maximum, so that a large image costs
about as much per object as a small one.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

EIGHT = np.ones((3, 3), dtype=bool)


def _same_object_local_maxima(values: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Pixels of an object no lower than any of their 8 neighbours in the same object."""
    h, w = values.shape
    maxima = objects > 0
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
        # The pixels that have a neighbour at (dy, dx), and those neighbours.
        here = (slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0)))
        there = (slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
        maxima[here] &= ~((objects[there] == objects[here]) & (values[there] > values[here]))
    return maxima


def _deep_maxima(values: np.ndarray, blob: np.ndarray, maxima: np.ndarray, depth: float, whole_hill: bool) -> np.ndarray:
    """The maxima of ``values`` inside ``blob`` (a boolean crop; ``maxima``: its local-maximum
    pixels) that stand at least ``depth`` above the highest pass to a higher one, labelled
    8-connected.

    With ``whole_hill`` False each such maximum is its top plateau (skimage's ``h_maxima``);
    with True, the whole hill around it that stays within ``depth`` of its top (the regional
    maxima of the probability lowered by ``depth`` and rebuilt under itself by a greyscale
    reconstruction).

    How it works: a maximum at height M is deep enough exactly when the hill around it, the
    8-connected part of ``values >= M - depth`` that holds it, rises nowhere above M (a higher
    point reached without descending below M - depth is a higher maximum behind a shallow pass).
    For the tops the hill is ``values > M - depth``: ``h_maxima`` keeps a maximum whose pass lies
    exactly ``depth`` below it, the reconstruction's regional maxima do not. Each hill is
    labelled in a window around its top, doubled until the hill lies inside it or rises above M:
    most hills are a nucleus wide, so this costs far less than a reconstruction, which sorts every
    pixel of the crop (2048² maps: 3.3 s for the default split against 5.7 s on a confident map,
    1.6 s against 7.5 s on a smooth one with large blobs). The highest top has no higher maximum,
    so for the tops alone it needs no hill (the nuclear stains of two 2048² Vectra fields, about
    13,000 nuclei: split in 6.0 s against 6.4 s, the same labels).
    Heights are compared as stored, without the relative tolerance of 2e-6 that ``h_maxima``
    allows float32 values, so maxima that differ by rounding alone are told apart (on the saved
    MIBI, MP6843 and Vectra maps and stains, the objects are the same).
    """
    tops, n_tops = ndi.label(maxima, structure=EIGHT)
    markers = np.zeros(values.shape, dtype=bool)
    # A top's pixels are all equally high (each is no lower than its neighbours).
    heights = np.zeros(n_tops + 1, dtype=values.dtype)
    heights[tops[maxima]] = values[maxima]
    boxes = ndi.find_objects(tops)
    for rank, index in enumerate(np.argsort(-heights[1:], kind="stable") + 1):
        box = boxes[index - 1]
        top = tops[box] == index
        if rank == 0 and not whole_hill:
            # The highest top has no higher maximum to pass to: deep enough without its hill.
            markers[box] |= top
            continue
        if markers[box][top].any():
            continue
        found = _hill(values, blob, box, top, heights[index], depth, whole_hill)
        if found is not None:
            window, hill = found
            if whole_hill:
                markers[window] |= hill
            else:
                markers[box] |= top
    return ndi.label(markers, structure=EIGHT)[0]


def _hill(values: np.ndarray, blob: np.ndarray, box: tuple, top: np.ndarray, height: float, depth: float,
          whole_hill: bool) -> Optional[Tuple[tuple, np.ndarray]]:
    """The hill of the top plateau ``top`` (a boolean crop of ``box``, at ``height``) as (window,
    hill inside the window), or None where it rises above ``height`` (see :func:`_deep_maxima`)."""
    floor = height - depth
    row, col = np.argwhere(top)[0] + (box[0].start, box[1].start)
    margin = 8
    while True:
        window = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, values.shape))
        crop = values[window]
        hills = ndi.label(blob[window] & ((crop >= floor) if whole_hill else (crop > floor)), structure=EIGHT)[0]
        hill = hills == hills[row - window[0].start, col - window[1].start]
        if crop[hill].max() > height:
            return None
        # Complete unless it reaches an edge of the window that is not an edge of the crop.
        rows, cols = hill.any(axis=1), hill.any(axis=0)
        if not ((window[0].start > 0 and rows[0]) or (window[0].stop < values.shape[0] and rows[-1])
                or (window[1].start > 0 and cols[0]) or (window[1].stop < values.shape[1] and cols[-1])):
            return window, hill
        margin *= 2


def _split_one_blob(distance: np.ndarray, blob: np.ndarray, maxima: np.ndarray, h: float) -> np.ndarray:
    """Watershed of one blob (a boolean crop) from the h-maxima of ``distance`` inside it; the
    blob is split as if it were alone in the image: neighbours never add or suppress its markers."""
    markers = _deep_maxima(distance, blob, maxima, h, whole_hill=False)
    if markers.max() <= 1:
        return blob.astype(np.int32)
    return watershed(-distance, markers, mask=blob).astype(np.int32)


def _distance_to_background(mask: np.ndarray, rows: int = 256, margin: int = 32) -> np.ndarray:
    """scipy's Euclidean distance transform of ``mask``, as float32, in strips of ``rows`` rows.

    scipy's transform works with about 33 bytes a pixel (2.2 GB for 8192 x 8192 pixels); strip by
    strip that is the strip's. Each strip is read with ``margin`` more rows above and below: a
    distance under the margin has its nearest background pixel among the rows read, so it is
    exact, and a strip holding a larger one is read again with twice the margin.
    """
    out = np.empty(mask.shape, dtype=np.float32)
    height = mask.shape[0]
    for top in range(0, height, rows):
        bottom, reach = min(top + rows, height), margin
        while True:
            start, stop = max(top - reach, 0), min(bottom + reach, height)
            strip = ndi.distance_transform_edt(mask[start:stop])[top - start:bottom - start]
            if strip.max(initial=0.0) < reach or (start == 0 and stop == height):
                break
            reach *= 2
        out[top:bottom] = strip
    return out


def split_touching(mask: np.ndarray, h: float = 1.0) -> np.ndarray:
    """Label a binary mask, splitting touching blobs by a watershed on the distance transform.

    Markers are the h-maxima of the (lightly smoothed) distance to the background within each
    blob (4-connected component): a neck between two nuclei splits them when each side is at
    least ``h`` pixels "thicker" than the neck. On the MIBI example this beat peak_local_max
    markers and probability-based markers (see experiments/README.md); nuclei on a confident map
    are cut where its valleys say so too (:func:`.instances.nuclei_from_probability`). Blob by blob
    (:func:`_split_blobs`).
    """
    blobs, n_blobs = ndi.label(mask)
    if n_blobs == 0:
        return np.zeros(mask.shape, dtype=np.int32)
    distance = ndi.gaussian_filter(_distance_to_background(mask), 1.0)
    return _split_blobs(distance, blobs, n_blobs, lambda values, blob, maxima: _split_one_blob(values, blob, maxima, h))


def _split_blobs(values: np.ndarray, blobs: np.ndarray, n_blobs: int, split_one) -> np.ndarray:
    """``blobs`` (labels 1..n_blobs) with every blob that has two or more local-maximum plateaus of
    ``values`` replaced by the pieces ``split_one(values[box], blob, maxima)`` returns for it (labels
    1..k over the blob's bounding box; the first keeps the blob's number, the others get new ones;
    ``maxima`` are the blob's local-maximum pixels).

    Speed: a blob whose values have a single local-maximum plateau has a single marker under any
    rule built on those maxima, so it is one object without any watershed; only the other blobs
    (touching objects, a minority) are cut out by their bounding box and split one by one.
    """
    # Plateaus of local maxima, 4-connected so that no plateau spans two blobs (blobs may touch
    # diagonally); counting them per blob over-counts at worst, which only costs time.
    maxima = _same_object_local_maxima(values, blobs)
    plateaus, n_plateaus = ndi.label(maxima)
    blob_of_plateau = np.zeros(n_plateaus + 1, dtype=np.int64)
    on_plateau = plateaus > 0
    blob_of_plateau[plateaus[on_plateau]] = blobs[on_plateau]
    plateaus_per_blob = np.bincount(blob_of_plateau[1:], minlength=n_blobs + 1)
    labels = blobs.astype(np.int32)
    next_label = n_blobs + 1
    for index, box in enumerate(ndi.find_objects(blobs), start=1):
        if plateaus_per_blob[index] < 2:
            continue
        blob = blobs[box] == index
        pieces = split_one(values[box], blob, maxima[box] & blob)
        if pieces.max() > 1:
            crop = labels[box]
            crop[blob] = np.where(pieces[blob] == 1, index, pieces[blob] + next_label - 2)
            next_label += int(pieces.max()) - 1
    return labels


def split_at_valleys(probability: np.ndarray, mask: np.ndarray, depth: float = 0.1, sigma: float = 1.0) -> np.ndarray:
    """Label a mask, splitting touching objects only where the probability says so.

    Markers are the maxima of the probability, smoothed by a Gaussian of ``sigma`` pixels, that
    stand at least ``depth`` above the lowest point of any path to a higher maximum; a watershed
    of the smoothed probability grows them over the mask. Two objects are thus cut apart only
    along a valley of the probability at least ``depth`` deep: an irregular cell, whose
    probability is high throughout, stays one object whatever its shape.

    The default depth was measured on held-out fields without their nuclear channel (MP6843,
    150-iteration models: F1@0.5 0.668 and mDICE 0.774 for 416 cells of 351, where the
    distance-transform split gave 0.685 and 0.837 for 557; depth 0.05: 0.644 / 0.830 for 559,
    0.2: 0.569 / 0.679 for 320; Vectra traced cells mDICE 0.487, distance split 0.483).
    """
    mask = np.asarray(mask, dtype=bool)
    # Kept in double precision, in which scipy filters anyway.
    smooth = ndi.gaussian_filter(probability, sigma, output=np.float64)
    smooth[~mask] = 0.0
    # 8-connected blobs, as the hills that make the markers join diagonal neighbours.
    blobs, n_blobs = ndi.label(mask, structure=EIGHT)
    return _split_blobs(smooth, blobs, n_blobs, lambda values, blob, maxima: _split_one_hill(values, blob, maxima, depth))


def _split_one_hill(smooth: np.ndarray, blob: np.ndarray, maxima: np.ndarray, depth: float) -> np.ndarray:
    """Watershed of one blob (a boolean crop) of a smoothed probability from its maxima at least
    ``depth`` deep, each marker the whole hill within ``depth`` of its top; parts joined to the
    rest only diagonally, which the watershed's 4-neighbour flooding does not reach, are pieces of
    their own."""
    markers = _deep_maxima(smooth, blob, maxima, depth, whole_hill=True)
    if markers.max() <= 1:
        return blob.astype(np.int32)
    pieces = watershed(-smooth, markers, mask=blob).astype(np.int32)
    rest = blob & (pieces == 0)
    if rest.any():
        pieces[rest] = ndi.label(rest)[0][rest] + pieces.max()
    return pieces
