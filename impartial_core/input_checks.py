"""Images no model can learn from or be applied to: too small, or a channel with no usable signal.

A reader can turn a file into an image that looks valid and is not: CellProfiler 5's TIFF reader
makes a float image holding a few NaN pixels into one value almost everywhere, and one holding
values above 1 into whole numbers (two or three grey levels); a failed acquisition is all zeros,
an overexposed field is mostly at the maximum. Normalisation maps such a channel to (nearly)
zeros or a few levels, so training learns nothing real from it and prediction invents or
loses every object. :func:`unusable_channels` says so as data (``problems.Problem``), before any
work: the front ends refuse the image for training (naming its file) and, at prediction, flag it
and make no objects.

The limits are far from any image a person would segment: a sparse marker on a few cells (over
99.8% of pixels at the background value, which normalisation handles) passes, as does an image
with a few NaN pixels (normalisation ignores them).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .problems import InputError, Problem

#: the least height and width of an image, in pixels (an object and the blind-spot neighbourhood
#: around a hidden pixel need a few pixels on each side; smaller images are padded for a patch)
MIN_SIDE = 16
#: a channel with more non-finite (NaN, infinite) pixels than this fraction is unusable; fewer are
#: ignored by normalisation
MAX_NON_FINITE_FRACTION = 0.5
#: a channel with more pixels at its maximum than this fraction is unusable (saturated, or a reader
#: that rescaled a float image holding NaN)
MAX_SATURATED_FRACTION = 0.5
#: a channel whose pixels above its minimum are fewer than this is (nearly) constant: not one
#: object of the default minimum size could be found in it
MIN_SIGNAL_PIXELS = 16
#: a channel with fewer distinct values than this is a mask, or lost its values in reading (a
#: microscope's noise alone gives an image dozens of grey levels)
MIN_LEVELS = 8
# what a reader is known to do to a float file, and what to do about it
_LOST_IN_READING = ("values lost when the file was read: CellProfiler 5 reads a float TIFF holding NaN pixels, or "
                    "values above 1, as a few whole numbers; save such images as 16-bit integers, or scaled to 0-1 "
                    "without NaN")
# distinct values are counted a block of this many pixels at a time, stopping at MIN_LEVELS
_LEVELS_BLOCK = 1 << 20


def unusable_channels(image: np.ndarray, channel_names: Optional[Sequence[str]] = None) -> List[Problem]:
    """What makes a (C, H, W) image unusable, one :class:`Problem` per fault (none: usable).

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
        The image as the reader gave it (before normalisation), any real dtype.
    channel_names : sequence of str, optional
        A name per channel, used in the messages (default ``channel 1``, ``channel 2``, ...).

    Returns
    -------
    list of Problem
        ``field`` is ``"image"`` for a too-small image (kind ``too_small``), else ``"channels"``
        with the channel's index, from 0, as ``value`` and kind ``non_finite``, ``constant``,
        ``nearly_constant``, ``few_levels`` or ``saturated``. The message names the channel and
        the numbers.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"unusable_channels expects (C, H, W), got shape {image.shape}")
    names = list(channel_names) if channel_names is not None else [f"channel {c + 1}" for c in range(image.shape[0])]
    if len(names) != image.shape[0]:
        raise ValueError(f"{len(names)} channel name(s) for an image of {image.shape[0]} channel(s)")
    height, width = image.shape[1:]
    if min(height, width) < MIN_SIDE:
        return [Problem("image", "too_small", f"the image is {width}x{height} pixels; ImPartial needs at least "
                                              f"{MIN_SIDE}x{MIN_SIDE}", None)]
    return [problem for c, name in enumerate(names) for problem in _channel_problems(image[c], name, c)]


def _channel_problems(channel: np.ndarray, name: str, index: int) -> List[Problem]:
    def problem(kind: str, message: str) -> List[Problem]:
        return [Problem("channels", kind, f"{name}: {message}", index)]

    finite = np.isfinite(channel)
    n_finite = int(np.count_nonzero(finite))
    if channel.size - n_finite > MAX_NON_FINITE_FRACTION * channel.size:
        return problem("non_finite", f"{100 * (1 - n_finite / channel.size):.1f}% of its pixels are NaN or infinite")
    values = channel[finite] if n_finite < channel.size else channel.ravel()
    low, high = values.min(), values.max()
    if low == high:
        return problem("constant", f"every pixel has the value {float(low):g}; there is nothing to segment")
    above = int(np.count_nonzero(values > low))
    if above < MIN_SIGNAL_PIXELS:
        return problem("nearly_constant", f"only {above} pixel(s) differ from the value {float(low):g} of all others")
    at_max = values.size - int(np.count_nonzero(values < high))
    if at_max > MAX_SATURATED_FRACTION * values.size:
        return problem("saturated", f"{100 * at_max / values.size:.1f}% of its pixels are at its maximum "
                                    f"{float(high):g} (overexposed, or {_LOST_IN_READING})")
    levels = _few_levels(values)
    if levels is not None:
        shown = ", ".join(f"{float(v):g}" for v in levels)
        return problem("few_levels", f"its pixels take only {len(levels)} distinct values ({shown}): a mask or label "
                                     f"image, or {_LOST_IN_READING}")
    return []


def _few_levels(values: np.ndarray) -> Optional[np.ndarray]:
    """The distinct values of ``values`` if fewer than :data:`MIN_LEVELS`, else None.

    A strided sample answers for almost every image; only a channel whose sample holds few values
    (a sparse marker, a mask) is counted in full, block by block, stopping once there are enough.
    """
    flat = values.ravel()
    if np.unique(flat[::max(1, flat.size // 65536)]).size >= MIN_LEVELS:
        return None
    seen = np.empty(0, flat.dtype)
    for start in range(0, flat.size, _LEVELS_BLOCK):
        seen = np.union1d(seen, flat[start:start + _LEVELS_BLOCK])
        if seen.size >= MIN_LEVELS:
            return None
    return seen


def check_usable(images: Sequence[np.ndarray], sources: Optional[Sequence[str]] = None,
                 channel_names: Optional[Sequence[str]] = None) -> None:
    """Raise :class:`~impartial_core.problems.InputError` if any (C, H, W) image is unusable.

    Each problem's message starts with the image's source (default ``training image 1``, ...).
    """
    sources = list(sources) if sources is not None else [f"training image {i + 1}" for i in range(len(images))]
    problems = [Problem(p.field, p.kind, f"{source}: {p.message}", p.value)
                for image, source in zip(images, sources) for p in unusable_channels(image, channel_names)]
    if problems:
        raise InputError(problems)
