"""Per-image, per-channel percentile normalisation (paper: percentiles 1 and 99.8, no clipping)."""
from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.8
# Normalised values are clipped to [-CLIP, CLIP]: a hot camera pixel 30x brighter than the
# nuclei otherwise lights up a nucleus-sized blob around it (about 27 pixels flipped to
# foreground at 20x, 140 at 100x, MIBI example model); at 3x it flips 3-4, under any minimum
# object size. The bundled MIBI and Vectra images never exceed 1.7, so clipping leaves them as
# they were.
CLIP = 3.0
# Above this many pixels, percentiles are estimated on a regular subsample: exact enough for
# scaling, and it keeps an 8192x8192 image from being copied and sorted per channel.
_SUBSAMPLE_ABOVE = 4_000_000


def as_channels_first(image: np.ndarray, n_channels: int | None = None, source: str = "image") -> np.ndarray:
    """Return a (C, H, W) view of a 2-D image or channel-first stack; reject anything else.

    A (H, W) image is one channel. A 3-D array is read as channel-first unless its last axis is
    small (<= 4) and its first is not, which is how RGB files and CellProfiler colour images come.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        out = image[None]
    elif image.ndim == 3:
        if image.shape[-1] <= 4 < image.shape[0]:
            out = np.moveaxis(image, -1, 0)
        else:
            out = image
    else:
        raise ValueError(
            f"{source}: ImPartial works on 2-D images (one plane, optionally several channels); got an array of shape "
            f"{image.shape}. Split 3-D stacks and time series into planes first."
        )
    if out.shape[0] == 0 or out.shape[1] == 0 or out.shape[2] == 0:
        raise ValueError(f"{source}: the image is empty (array of shape {image.shape})")
    if n_channels is not None and out.shape[0] != n_channels:
        raise ValueError(f"{source}: expected {n_channels} channel(s), got {out.shape[0]} (array of shape {image.shape})")
    return out


def normalize(image: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> np.ndarray:
    """Scale each channel of a (C, H, W) image so its low/high percentiles map to 0 and 1.

    Non-finite pixels (NaN, inf) are ignored for the percentiles and then set to 0 (the
    channel's low percentile), so one bad pixel cannot poison a whole image. A constant channel
    maps to zeros rather than dividing by zero; a sparse one is scaled by its signal pixels
    (see the code). Values are clipped to [-CLIP, CLIP] (see there).
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"normalize expects (C, H, W), got shape {image.shape}")
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        channel = image[c].astype(np.float32, copy=False)
        sample = channel
        if channel.size > _SUBSAMPLE_ABOVE:
            step = int(np.ceil(np.sqrt(channel.size / _SUBSAMPLE_ABOVE)))
            sample = channel[::step, ::step]
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:
            out[c] = 0.0
            continue
        lo, hi = np.percentile(finite, [low, high])
        scale = hi - lo
        if not scale > 0:
            # A sparse channel (a marker on a few cells: over 99.8% of pixels at the low value)
            # has no spread between the two percentiles. Its high percentile is taken among the
            # pixels above the low value, so one hot pixel does not set the scale for all.
            above = finite[finite > lo]
            scale = float(np.percentile(above, high) - lo) if above.size else 0.0
        if not scale > 0:
            out[c] = 0.0
            continue
        np.subtract(channel, lo, out=out[c])
        out[c] /= scale
        out[c][~np.isfinite(out[c])] = 0.0
    np.clip(out, -CLIP, CLIP, out=out)
    return out
