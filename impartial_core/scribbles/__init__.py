"""The scribble label convention: what each value of a scribble image means.

A scribble image is a label image with the same height and width as the image it annotates (uint8):
``0`` = not annotated, ``1`` = background (outside any cell), ``2`` = nucleus, ``3`` = cytoplasm
(inside a cell, outside its nucleus), ``4`` = split stroke (where touching objects meet). The
nuclei task reads foreground {2} / background {1, 3}; the cell task reads foreground {2, 3} /
background {1}; a split stroke is neither (see :mod:`impartial_core.split_strokes`).

This module needs numpy only, so configuration and front ends can import it cheaply. Users bring
other conventions; the submodules map them onto this one:

- :mod:`.paint`: RGB paint images (one colour per class);
- :mod:`.imagej_rois`: ImageJ/Fiji ``.roi`` files and ROI Manager zips, rasterised;
- :mod:`.objects`: whole annotated objects (instance masks, traced ROIs) turned into scribbles;
- :mod:`.simulation`: scribbles simulated from full ground truth, for benchmarks.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

import numpy as np

UNANNOTATED = 0
BACKGROUND = 1
NUCLEUS = 2
CYTOPLASM = 3
SPLIT = 4

#: every value a valid scribble image may hold
SCRIBBLE_VALUES = (UNANNOTATED, BACKGROUND, NUCLEUS, CYTOPLASM, SPLIT)

#: the scribble colours (RGB, 0..255), for painting and for display: blue = background,
#: red = nucleus, green = cytoplasm, orange = split stroke. Unannotated pixels have no colour.
SCRIBBLE_COLOURS: Dict[int, Tuple[int, int, int]] = {
    BACKGROUND: (0, 0, 255),
    NUCLEUS: (255, 0, 0),
    CYTOPLASM: (0, 255, 0),
    SPLIT: (255, 128, 0),
}

#: the segmentation tasks: what the foreground is
TASKS = ("nuclei", "cells")


def foreground_value_for(task: str) -> int:
    """The scribble value that says "inside an object" for a task.

    Parameters
    ----------
    task : {"nuclei", "cells"}

    Returns
    -------
    int
        NUCLEUS (2) for nuclei, CYTOPLASM (3) for whole cells (the cell task reads {2, 3} as
        foreground, and 3 does not claim that the pixel is in a nucleus).
    """
    if task not in TASKS:
        raise ValueError(f"task must be 'cells' or 'nuclei', got {task!r}")
    return CYTOPLASM if task == "cells" else NUCLEUS


def _converted_path(source: str) -> str:
    """Where a hint writes the scribbles converted from the file ``source``: beside it."""
    from ..imageio import image_stem

    return os.path.join(os.path.dirname(source), f"{image_stem(source)}_converted_scribbles.tif")


def conversion_hint(source: str, values: Sequence[int] = ()) -> str:
    """A command converting the label image ``source`` to scribbles, when ``source`` is a file (else
    ""): ``values`` present in it, the first mapped to background, the second to nucleus, the others
    ignored, an example that runs as written and that the user adapts."""
    if not os.path.isfile(source):
        return ""
    targets = [BACKGROUND, NUCLEUS] + [UNANNOTATED] * max(0, len(values) - 2)
    mapping = ",".join(f"{int(v)}:{t}" for v, t in zip(values, targets)) or "1:2"
    option = f"--remap={mapping}" if mapping.startswith("-") else f"--remap {mapping}"
    return (f", e.g. `impartial scribbles --from-labels {source} {option} --out {_converted_path(source)}` "
            f"(value:class pairs; 0 ignores "
            f"a value; impartial train takes the same --remap)")


def as_integer_labels(values: np.ndarray, source: str) -> np.ndarray:
    """Return ``values`` as an int64 array; floats are accepted only when they hold whole numbers.

    TIFF readers often return float arrays for label images, so integer-valued floats are fine.
    ``source`` (e.g. a file name) is named in error messages.
    """
    values = np.asarray(values)
    if values.dtype == bool:
        # a boolean mask has no class values: True would silently become "background"
        raise ValueError(
            f"{source}: got a boolean mask; scribbles need class values "
            f"(0 unannotated, 1 background, 2 nucleus, 3 cytoplasm, 4 split stroke); map them to these values"
            f"{conversion_hint(source)}"
        )
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64, copy=False)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{source}: contains NaN or infinite values")
        if not np.all(values == np.round(values)):
            raise ValueError(
                f"{source}: float values that are not whole numbers (e.g. "
                f"{values[values != np.round(values)].ravel()[0]!r}); "
                f"scribbles must be class labels"
            )
        return values.astype(np.int64)
    raise ValueError(f"{source}: unsupported dtype {values.dtype}; expected integers")


def remap_scribbles(labels: np.ndarray, mapping: Dict[int, int], source: str = "labels") -> np.ndarray:
    """Map the values of a user's label image onto the scribble convention.

    Parameters
    ----------
    labels : ndarray of int (or whole-number floats)
        The user's annotation, any shape.
    mapping : dict int -> int
        User value -> scribble value (0..3). ``0`` maps to ``0`` unless the mapping says otherwise.
    source : str
        What ``labels`` is (e.g. its file name), named in error messages.

    Returns
    -------
    ndarray of uint8, same shape as ``labels``.

    Raises
    ------
    ValueError
        If ``labels`` holds values that are neither 0 nor keys of ``mapping`` (all of them are
        listed), or if a target value is not a scribble value.
    """
    bad_targets = sorted({int(v) for v in mapping.values()} - set(SCRIBBLE_VALUES))
    if bad_targets:
        raise ValueError(
            f"mapping: target values {bad_targets} are not scribble values {list(SCRIBBLE_VALUES)}"
        )
    labels = np.asarray(labels)
    values = as_integer_labels(labels.astype(np.uint8) if labels.dtype == bool else labels, source)
    table = {0: UNANNOTATED}
    table.update({int(k): int(v) for k, v in mapping.items()})
    present, inverse = np.unique(values, return_inverse=True)
    unexpected = [int(v) for v in present if int(v) not in table]
    if unexpected:
        raise ValueError(
            f"{source}: values {unexpected} are not in the mapping {sorted(table)}; "
            f"add them to the mapping (map to 0 to ignore them)"
        )
    lookup = np.array([table[int(v)] for v in present], dtype=np.uint8)
    return lookup[inverse].reshape(values.shape)


def validate_scribbles(
    scribbles: np.ndarray, image_shape: Sequence[int], source: str = "scribbles"
) -> np.ndarray:
    """Check a scribble image against the convention and the image it annotates.

    Parameters
    ----------
    scribbles : ndarray
        2-D label image (integers, or floats holding whole numbers). Singleton axes, as TIFF readers
        sometimes add, are squeezed away.
    image_shape : sequence of int
        ``(H, W)`` of the image the scribbles belong to.
    source : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    ndarray of uint8, shape ``(H, W)``, values in {0, 1, 2, 3, 4}.

    Raises
    ------
    ValueError
        RGB(A) input, non-2-D input, non-whole floats, a shape mismatch, negative values or values
        above 4; each message names ``source``.
    """
    array = np.asarray(scribbles)
    # (1, H, W) with W of 3 or 4 is a squeezable label image, not colour
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] != 1:
        raise ValueError(
            f"{source}: looks like an RGB(A) image {array.shape}; scribbles must be a 2-D label "
            f"image. Convert a paint image (blue background, red nucleus, green cytoplasm) with "
            + (f"`impartial scribbles --from-rgb {source} --out {_converted_path(source)}`" if os.path.isfile(source)
               else "impartial scribbles --from-rgb")
        )
    if array.ndim > 2:
        # TIFF readers may return (1, H, W) or (H, W, 1)
        array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"{source}: must be a 2-D label image, got shape {np.shape(scribbles)}")
    expected = tuple(int(s) for s in image_shape)
    if len(expected) != 2:
        raise ValueError(f"image_shape must be (H, W), got {tuple(image_shape)}")
    if array.shape != expected:
        raise ValueError(
            f"{source}: shape {array.shape} does not match the image shape {expected}"
        )
    values = as_integer_labels(array, source)
    if values.size and values.min() < 0:
        raise ValueError(f"{source}: negative values (min {int(values.min())}) are not allowed")
    if values.size and values.max() > SPLIT:
        present = [int(v) for v in np.unique(values) if v > SPLIT]
        raise ValueError(
            f"{source}: values {present[:10]} are not scribble values "
            f"(0 unannotated, 1 background, 2 nucleus, 3 cytoplasm, 4 split stroke); map them to these values"
            f"{conversion_hint(source, [int(v) for v in np.unique(values) if v])}"
        )
    return values.astype(np.uint8)

