"""A nuclear stain made ready for a threshold: its nuclei's size, and contrast to their surroundings.

Used to seed whole cells when only the cell task was trained (``instances.nuclei_from_channel``).
A global threshold of a raw nuclear stain misses dim nuclei wherever brighter ones set it: in
tissue, the nuclei of one cell type are often several times brighter than those of another
(Vectra: bright stromal nuclei beside dim tumour nuclei). Dividing the stain by its own local
background level, measured over about one nucleus, puts dim and bright nuclei on one scale.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian

from .normalization import normalize

# The scales tried for the nuclear radius, in pixels of the Laplacian-of-Gaussian's sigma: nuclei
# from about 2 to 16 pixels in radius (sigma * sqrt(2) is the radius of the blob a sigma answers best),
# each 20% above the last: the radius only sets the width of the local level, where 20% is immaterial.
RADIUS_SIGMAS = 1.5 * 1.2 ** np.arange(12)
# Larger stains are measured on this many tiles of this side spread over the image (each read with a
# margin wide enough for the largest filter), which keeps the measurement under a second.
RADIUS_TILES = 4
RADIUS_TILE = 256
_MARGIN = int(np.ceil(4 * RADIUS_SIGMAS[-1]))
#: The width of the local level, as a fraction of the nuclear radius: a Gaussian mean over about
#: one nucleus, so that a pixel counts when it is brighter than the nucleus-sized neighbourhood
#: around it, and the seam between two touching nuclei, darker than that, does not. Measured (same
#: cell probability maps, cells seeded from the nuclei): Vectra traced cells' mDICE 0.559 at 1 x the
#: radius, 0.574 / 0.575 / 0.567 at 0.35 / 0.5 / 0.7, 0.516 at 2; MP6843 F1@0.5 0.927 at 1 and 0.5,
#: mDICE 0.892 -> 0.897. The nuclei themselves, against the MIBI images' nuclei (no training):
#: F1@0.5 0.614 / 0.634 / 0.628 / 0.590 and mDICE 0.665 / 0.689 / 0.692 / 0.676 at 1 / 0.7 / 0.5 /
#: 0.35. On a blurred edge a nucleus takes about one pixel more than at 1 x the radius.
LEVEL_SCALE = 0.5
#: The half-width of the window the stain's background is measured over, in nuclear radii: wider
#: than any nucleus, so a grey opening of that window removes nuclei and keeps what varies slowly
#: (a diffuse haze, uneven illumination), which is then subtracted. Measured by
#: ``experiments/haze.py`` ("Seeds alone": MP6843 held-out fields, cells grown over the clean
#: field's probability from the nuclei of its DAPI under a Gaussian haze 0 / 0.5 / 1 times the
#: stain's range high): F1@0.5 0.920 / 0.660 / 0.643 without it; 0.916 / 0.920 / 0.925 at 3 radii,
#: 0.916 / 0.920 / 0.920 at 4, 0.920 / 0.922 / 0.851 at 6, 0.916 / 0.828 / 0.780 at 8 (a wider
#: window follows a haze less closely). Without a haze it changes next to nothing (on the saved
#: maps of ``experiments/vectra_seeds.py``: Vectra traced cells 0.575 -> 0.572; the MIBI nuclei,
#: no training, F1@0.5 0.625 -> 0.629).
BACKGROUND_RADII = 4.0


def _tiles(shape):
    """(window, core) slice pairs: ``RADIUS_TILES`` tiles spread evenly over an image larger than
    them, each window a tile plus the filter margin (within the image), the core the tile within it."""
    h, w = shape
    if h * w <= RADIUS_TILES * RADIUS_TILE ** 2:
        return [((slice(0, h), slice(0, w)), (slice(0, h), slice(0, w)))]
    side_h, side_w = min(h, RADIUS_TILE), min(w, RADIUS_TILE)
    rows, cols = -(-h // side_h), -(-w // side_w)
    picked = np.linspace(0, rows * cols - 1, RADIUS_TILES).round().astype(int)
    out = []
    for index in picked:
        top, left = min((index // cols) * side_h, h - side_h), min((index % cols) * side_w, w - side_w)
        y0, x0 = max(top - _MARGIN, 0), max(left - _MARGIN, 0)
        window = (slice(y0, min(top + side_h + _MARGIN, h)), slice(x0, min(left + side_w + _MARGIN, w)))
        out.append((window, (slice(top - y0, top - y0 + side_h), slice(left - x0, left - x0 + side_w))))
    return out


def nuclear_radius(stain: np.ndarray) -> float:
    """The typical radius of the nuclei of a (normalised) nuclear stain, in pixels.

    How it works: a scale-normalised Laplacian of Gaussian, ``-sigma**2 * LoG_sigma``, answers most
    strongly at the centre of a bright blob of radius ``sigma * sqrt(2)``. Its 99th percentile over
    the image, as a function of sigma, peaks at the scale of the image's many nuclei (a percentile,
    not the maximum, so that one large bright clump does not decide; on a large image, over a few
    tiles spread across it). Measured: 6.3-7.6 px on the Vectra fields, 9.1-11 px on the MP6843 fields
    (whose nuclei are larger).
    """
    stain = np.asarray(stain, dtype=np.float32)
    tiles = _tiles(stain.shape)
    responses = [np.percentile(np.concatenate([ndi.gaussian_laplace(stain[window], sigma)[core].ravel() for window, core in tiles]),
                               1) * -sigma * sigma for sigma in RADIUS_SIGMAS]
    return float(RADIUS_SIGMAS[int(np.argmax(responses))] * np.sqrt(2))


def without_background(stain: np.ndarray, half_width: float) -> np.ndarray:
    """The stain minus its slowly varying background: a grey opening over a square of side
    ``2 * half_width`` pixels (the stain with every brighter structure narrower than that
    removed), smoothed by a Gaussian of ``half_width``, so that neither the square's edges nor
    the noise's local minima show in it (smoothed by a quarter of that, a noisy stain kept up to
    7 specks of noise as nuclei where the stain without the subtraction kept 3)."""
    stain = np.asarray(stain, dtype=np.float32)
    side = max(int(round(2 * half_width)), 1)
    return stain - _smoothed(ndi.grey_opening(stain, size=(side, side)), half_width)


def _smoothed(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian of ``sigma`` pixels of ``image``, computed on a grid ``sigma / 4`` pixels apart.

    How it works: a Gaussian that wide keeps nothing that varies over fewer than about sigma
    pixels, so it is computed on the means of ``step`` x ``step`` blocks (``step`` = sigma / 4,
    a quarter of the width: 4 samples per sigma) and interpolated back linearly from the blocks'
    centres. On 2048 x 2048 pixels and sigma 40 this took 0.08 s where the full-resolution filter
    took 1.0-1.2 s (2 Intel cores); on the MP6843, Vectra and MIBI nuclear stains the two differ
    by at most 0.0006 in a range of 1.2-2.2, and the nuclei found there by at most 15 pixels of a
    field, with the same counts (``python -m benchmarks.speed --parts instances`` times the whole
    step from a nuclear stain to its nuclei).
    """
    step = int(sigma // 4)
    if step < 2:
        return ndi.gaussian_filter(image, sigma)
    h, w = image.shape
    padded = np.pad(image, ((0, -h % step), (0, -w % step)), mode="reflect" if min(h, w) > 1 else "edge")
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step).mean(axis=(1, 3))
    blocks = ndi.gaussian_filter(blocks, sigma / step)
    rows, row_weights = _between_blocks(h, step, blocks.shape[0])
    cols, col_weights = _between_blocks(w, step, blocks.shape[1])
    blocks = np.pad(blocks, ((0, 1), (0, 1)), mode="edge")      # so that block ``before + 1`` always exists
    blocks = blocks[rows] * (1 - row_weights[:, None]) + blocks[rows + 1] * row_weights[:, None]
    return blocks[:, cols] * (1 - col_weights) + blocks[:, cols + 1] * col_weights


def _between_blocks(n: int, step: int, blocks: int):
    """For each of ``n`` pixels along an axis, the block centre at or before it and its linear
    weight on the next one (block i's centre is pixel (i + 0.5) * step - 0.5); pixels beyond the
    first or last centre take that block's value."""
    position = np.clip((np.arange(n, dtype=np.float32) + 0.5) / step - 0.5, 0, blocks - 1)
    before = position.astype(np.int64)
    return before, (position - before).astype(np.float32)


def local_contrast(stain: np.ndarray, scale: float) -> np.ndarray:
    """The stain divided by its local level: a Gaussian mean of width ``scale`` pixels plus the
    image's median (so that empty background, near 0, is not divided by nearly nothing).

    A nucleus then stands out by its brightness relative to what surrounds it, whether the nuclei
    around are dim or bright.
    """
    stain = np.asarray(stain, dtype=np.float32)
    stain = stain - stain.min()
    level = ndi.gaussian_filter(stain, scale) + float(np.median(stain))
    return stain / np.maximum(level, np.finfo(np.float32).tiny)


def nuclear_contrast(channel: np.ndarray, sigma: float = 1.0) -> Tuple[np.ndarray, float]:
    """A nuclear-stain channel made ready for a threshold, and its nuclear radius in pixels.

    The channel is percentile-normalised and smoothed (``sigma`` pixels), so that one hot pixel
    neither sets a threshold nor becomes a nucleus; its background beyond ``BACKGROUND_RADII``
    nuclear radii is subtracted (:func:`without_background`), so that a haze does not lift the
    gaps between nuclei to their level; it is then divided by its local level over
    ``LEVEL_SCALE`` nuclear radii (:func:`local_contrast`).
    """
    normalised = normalize(np.asarray(channel, dtype=np.float32)[None])[0]
    radius = nuclear_radius(normalised)
    stain = without_background(gaussian(normalised, sigma=sigma), BACKGROUND_RADII * radius)
    return local_contrast(stain, LEVEL_SCALE * radius), radius
