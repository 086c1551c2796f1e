"""Scribbles from paint images: one colour per class (see :data:`SCRIBBLE_COLOURS`), and back."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from . import SCRIBBLE_COLOURS, SCRIBBLE_VALUES, UNANNOTATED, validate_scribbles

#: the default colour map of the functions below: :data:`SCRIBBLE_COLOURS`, keyed by colour
_PAINT_COLOURS: Dict[Tuple[int, int, int], int] = {colour: value for value, colour in SCRIBBLE_COLOURS.items()}


def _rgb_to_255(rgb: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Split an RGB(A) image into float RGB on a 0..255 scale and an opacity mask (or None)."""
    if np.issubdtype(rgb.dtype, np.integer) or rgb.dtype == bool:
        # uint8 stays; wider integers (16-bit exports, 12-bit cameras stored in uint16) are scaled
        # by the bit depth their largest value needs
        peak = int(rgb.max()) if rgb.size else 0
        bits = max(8, int(np.ceil(np.log2(peak + 1))))
        scale = 255.0 / (2 ** bits - 1)
        full = 255.0
        data = rgb.astype(np.float64) * scale
    elif np.issubdtype(rgb.dtype, np.floating):
        # floats in [0, 1] are the usual convention (a little above 1 is rounding, or an interpolated
        # brush edge); clearly larger floats are taken as 0..255
        finite_max = float(np.nanmax(rgb)) if rgb.size else 0.0
        data = rgb.astype(np.float64) * (255.0 if finite_max <= 1.5 else 1.0)
        full = 255.0
    else:
        raise ValueError(f"rgb: unsupported dtype {rgb.dtype}")
    colour = data[..., :3]
    opaque = None
    if rgb.shape[-1] == 4:
        # transparent (alpha below half) pixels carry no paint
        opaque = data[..., 3] >= full / 2
    return colour, opaque


def scribbles_from_rgb(
    rgb: np.ndarray,
    colours: Optional[Dict[Tuple[int, int, int], int]] = None,
    tolerance: float = 60.0,
    source: str = "rgb",
) -> np.ndarray:
    """Turn a paint image (one colour per class) into a scribble label image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3) or (H, W, 4)
        Paint image, uint8, uint16 or float (floats in [0, 1], or 0..255 when larger than 1).
        With an alpha channel, pixels less than half opaque are unannotated.
    colours : dict (r, g, b) -> scribble value, optional
        Colours on a 0..255 scale. Default: :data:`SCRIBBLE_COLOURS`, blue (0, 0, 255) = background,
        red (255, 0, 0) = nucleus, green (0, 255, 0) = cytoplasm.
    tolerance : float
        Largest per-channel difference (0..255 scale) between a pixel and a colour for the pixel to
        take that colour's class; it absorbs anti-aliased brush edges and lossy saving.

    Returns
    -------
    ndarray of uint8, shape (H, W). Pixels matching no colour (black, white, image content) are 0;
    a pixel within tolerance of several colours takes the nearest one.
    """
    if colours is None:
        colours = _PAINT_COLOURS
    array = np.asarray(rgb)
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # an ImageJ RGB composite is saved channel-first
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"{source}: expected an (H, W, 3) or (H, W, 4) RGB(A) image, got shape {array.shape}")
    if not colours:
        raise ValueError("colours: empty colour map")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    keys = []
    classes = []
    for colour, value in colours.items():
        if len(colour) != 3 or any(not 0 <= c <= 255 for c in colour):
            raise ValueError(f"colours: {colour!r} is not an (r, g, b) triple in 0..255")
        if value not in SCRIBBLE_VALUES:
            raise ValueError(f"colours: class {value!r} of {colour!r} is not a scribble value")
        keys.append(colour)
        classes.append(value)
    palette = np.asarray(keys, dtype=np.float64)  # (K, 3)
    lookup = np.asarray(classes, dtype=np.uint8)
    colour, opaque = _rgb_to_255(array)
    # Chebyshev distance of every pixel to every palette colour: (H, W, K)
    distance = np.max(np.abs(colour[..., None, :] - palette), axis=-1)
    nearest = np.argmin(distance, axis=-1)
    within = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0] <= tolerance
    if opaque is not None:
        within &= opaque
    return np.where(within, lookup[nearest], UNANNOTATED).astype(np.uint8)


def scribbles_to_rgb(
    scribbles: np.ndarray, colours: Optional[Dict[Tuple[int, int, int], int]] = None
) -> np.ndarray:
    """Paint a scribble image with one colour per class (the inverse of :func:`scribbles_from_rgb`).

    Unannotated pixels are black. Useful for display and for round-trip tests.
    """
    if colours is None:
        colours = _PAINT_COLOURS
    values = validate_scribbles(scribbles, np.shape(scribbles))
    table = np.zeros((len(SCRIBBLE_VALUES), 3), dtype=np.uint8)
    for colour, value in colours.items():
        table[value] = colour
    return table[values]

