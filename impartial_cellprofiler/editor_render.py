"""What the scribble editor shows, as numpy arrays: channel composite, overlays, zoomed views.

No wx here (the dialog in :mod:`impartial_cellprofiler.editor` draws the arrays this module makes),
so the picture can be checked without a display.

Screen and image coordinates: at zoom ``z`` (screen pixels per image pixel) with ``origin`` the image
position ``(x, y)`` shown at the screen's top-left corner, screen pixel ``(sx, sy)`` shows image pixel
``floor(origin + (s + 0.5) / z)``. Strokes use pixel centres (pixel ``(r, c)`` has its centre at
``(r, c)``), see :mod:`impartial_core.drawing`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

Colour = Tuple[int, int, int]

#: colours of the channels in the composite, by number of channels (one channel is shown grey)
CHANNEL_COLOURS: Dict[int, List[Colour]] = {
    1: [(255, 255, 255)],
    2: [(0, 255, 0), (255, 0, 255)],
    3: [(255, 0, 0), (0, 255, 0), (0, 0, 255)],
}
_MORE_COLOURS: List[Colour] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0)]

#: outline colours of the object sets, in order
OUTLINE_COLOURS: List[Colour] = [(255, 255, 0), (255, 255, 255), (255, 128, 192), (128, 128, 255)]

#: colour of the uncertainty map (more opaque where the model is less sure)
UNCERTAINTY_COLOUR: Colour = (0, 255, 255)

#: colour of scribble values no brush paints
OTHER_VALUE_COLOUR: Colour = (160, 160, 160)

#: the grey shown outside the image
OUTSIDE: Colour = (48, 48, 48)

MIN_ZOOM, MAX_ZOOM = 1 / 64, 64.0


def channel_colours(n_channels: int) -> List[Colour]:
    """Default composite colours for ``n_channels`` channels."""
    if n_channels in CHANNEL_COLOURS:
        return list(CHANNEL_COLOURS[n_channels])
    return [_MORE_COLOURS[i % len(_MORE_COLOURS)] for i in range(n_channels)]


def as_channels(channels: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` float32 from ``(H, W)`` or ``(H, W, C)``; NaNs become 0."""
    array = np.asarray(channels, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"channels must be an (H, W, C) or (H, W) image, got shape {np.shape(channels)}")
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)


def percentile_table(channel: np.ndarray, max_samples: int = 1_000_000) -> np.ndarray:
    """Intensities at percentiles 0, 0.1, ..., 100 of a channel (1001 values, from a subsample)."""
    values = np.asarray(channel, dtype=np.float32).ravel()
    if values.size > max_samples:
        values = values[:: int(np.ceil(values.size / max_samples))]
    return np.percentile(values, np.linspace(0.0, 100.0, 1001)).astype(np.float32)


def composite(channels: np.ndarray, lows: Sequence[float], highs: Sequence[float],
              colours: Sequence[Colour], visible: Sequence[bool]) -> np.ndarray:
    """Additive colour composite (uint8 RGB) of the visible channels, each scaled from low to high."""
    height, width, n = channels.shape
    planes = np.zeros((3, height, width), np.float32)  # one plane per colour component: no (H, W, 3) temporaries
    scaled = np.empty((height, width), np.float32)
    for c in range(n):
        if not visible[c]:
            continue
        span = max(float(highs[c]) - float(lows[c]), 1e-12)
        np.subtract(channels[:, :, c], float(lows[c]), out=scaled)
        np.multiply(scaled, 255.0 / span, out=scaled)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        for k in range(3):
            if colours[c][k]:
                planes[k] += scaled * (colours[c][k] / 255.0) if colours[c][k] != 255 else scaled
    np.clip(planes, 0.0, 255.0, out=planes)
    planes += 0.5
    return np.ascontiguousarray(planes.astype(np.uint8).transpose(1, 2, 0))


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of each object that touch another label (or background) on a side: its outline."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    differs = labels[1:, :] != labels[:-1, :]
    edge[1:, :] |= differs
    edge[:-1, :] |= differs
    differs = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= differs
    edge[:, :-1] |= differs
    return edge & (labels > 0)


def blend(rgb: np.ndarray, mask: np.ndarray, colour: Colour, opacity) -> None:
    """Blend ``colour`` into ``rgb`` (uint8, in place) where ``mask``, with a scalar or per-pixel opacity."""
    if np.ndim(opacity) == 0:
        if opacity <= 0 or not mask.any():
            return
        alpha = float(min(opacity, 1.0))
        rgb[mask] = (rgb[mask] * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha + 0.5).astype(np.uint8)
        return
    # a per-pixel opacity (a map): blend each colour component over the whole image, no masked copies
    alpha = np.where(mask, np.clip(np.asarray(opacity, np.float32), 0.0, 1.0), np.float32(0.0))
    for k in range(3):
        plane = rgb[:, :, k].astype(np.float32)
        plane += (float(colour[k]) - plane) * alpha
        plane += 0.5
        rgb[:, :, k] = plane.astype(np.uint8)


def scribble_lut(colours: Mapping[int, Colour]) -> np.ndarray:
    """RGB colour of every uint8 scribble value (0 and unknown values get the 'other' grey)."""
    lut = np.tile(np.asarray(OTHER_VALUE_COLOUR, np.uint8), (256, 1))
    for value, colour in colours.items():
        lut[int(value)] = colour
    return lut


@dataclass
class View:
    """Zoom (screen pixels per image pixel) and the image position at the screen's top-left."""

    zoom: float = 1.0
    x: float = 0.0
    y: float = 0.0

    def fit(self, screen: Tuple[int, int], image: Tuple[int, int]) -> None:
        """Show the whole image, centred. ``screen`` is (width, height), ``image`` (H, W)."""
        sw, sh = max(screen[0], 1), max(screen[1], 1)
        height, width = image
        self.zoom = float(np.clip(min(sw / width, sh / height), MIN_ZOOM, MAX_ZOOM))
        self.x = (width - sw / self.zoom) / 2.0
        self.y = (height - sh / self.zoom) / 2.0

    def zoom_at(self, factor: float, sx: float, sy: float) -> None:
        """Zoom by ``factor`` keeping the image point under screen position ``(sx, sy)`` in place."""
        sx, sy = sx + 0.5, sy + 0.5  # the centre of that screen pixel
        x, y = self.x + sx / self.zoom, self.y + sy / self.zoom
        self.zoom = float(np.clip(self.zoom * factor, MIN_ZOOM, MAX_ZOOM))
        self.x, self.y = x - sx / self.zoom, y - sy / self.zoom

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by ``(dx, dy)`` screen pixels."""
        self.x -= dx / self.zoom
        self.y -= dy / self.zoom

    def centre_on(self, row: float, col: float, screen: Tuple[int, int]) -> None:
        """Put the centre of pixel ``(row, col)`` in the middle of a screen of (width, height)."""
        self.x = col + 0.5 - screen[0] / (2.0 * self.zoom)
        self.y = row + 0.5 - screen[1] / (2.0 * self.zoom)

    def to_image(self, sx: float, sy: float) -> Tuple[float, float]:
        """Image ``(row, col)`` (pixel-centre convention) under the centre of screen pixel ``(sx, sy)``."""
        return self.y + (sy + 0.5) / self.zoom - 0.5, self.x + (sx + 0.5) / self.zoom - 0.5

    def to_screen(self, row: float, col: float) -> Tuple[float, float]:
        """Screen ``(sx, sy)`` of image position ``(row, col)`` (pixel-centre convention)."""
        return (col + 0.5 - self.x) * self.zoom - 0.5, (row + 0.5 - self.y) * self.zoom - 0.5

    def sample(self, screen: Tuple[int, int], image: Tuple[int, int]):
        """Which image pixels the screen shows: (rows, cols, row_ok, col_ok) index arrays."""
        sw, sh = screen
        cols = np.floor(self.x + (np.arange(sw) + 0.5) / self.zoom).astype(np.int64)
        rows = np.floor(self.y + (np.arange(sh) + 0.5) / self.zoom).astype(np.int64)
        return rows, cols, (rows >= 0) & (rows < image[0]), (cols >= 0) & (cols < image[1])


def render(base: np.ndarray, scribbles: np.ndarray, lut: np.ndarray, scribble_opacity: float,
           view: View, screen: Tuple[int, int]) -> np.ndarray:
    """The screen picture (sh, sw, 3) uint8: ``base`` (H, W, 3) zoomed, scribbles blended on top."""
    sw, sh = max(int(screen[0]), 1), max(int(screen[1]), 1)
    out = np.empty((sh, sw, 3), np.uint8)
    out[...] = OUTSIDE
    rows, cols, row_ok, col_ok = view.sample((sw, sh), base.shape[:2])
    if not row_ok.any() or not col_ok.any():
        return out
    # nearest-neighbour zoom: whole rows, then whole columns (faster than one 2-D fancy index)
    block = base.take(rows[row_ok], axis=0).take(cols[col_ok], axis=1)
    if scribble_opacity > 0:
        values = scribbles.take(rows[row_ok], axis=0).take(cols[col_ok], axis=1)
        painted = values > 0
        if painted.any():
            weight = int(round(float(np.clip(scribble_opacity, 0.0, 1.0)) * 256))
            colours = lut[values[painted]].astype(np.uint16)
            block[painted] = ((block[painted].astype(np.uint16) * (256 - weight) + colours * weight + 128) >> 8
                              ).astype(np.uint8)
    r0, c0 = int(np.argmax(row_ok)), int(np.argmax(col_ok))
    out[r0:r0 + block.shape[0], c0:c0 + block.shape[1]] = block
    return out


class Layers:
    """The picture under the scribbles: channel composite, outlines and uncertainty, at full size.

    Parameters
    ----------
    channels : (H, W, C) or (H, W) float image.
    objects : object set name -> label image (H, W); their outlines are drawn.
    uncertainty : (H, W) map, higher = less sure, or None.
    colours : composite colour of each channel (default :func:`channel_colours`).
    """

    def __init__(self, channels: np.ndarray, objects: Optional[Mapping[str, np.ndarray]] = None,
                 uncertainty: Optional[np.ndarray] = None, colours: Optional[Sequence[Colour]] = None) -> None:
        self.channels = as_channels(channels)
        shape = self.channels.shape[:2]
        n = self.channels.shape[2]
        self.colours = [tuple(int(v) for v in c) for c in colours] if colours is not None else channel_colours(n)
        if len(self.colours) != n:
            raise ValueError(f"{len(self.colours)} channel colours given for {n} channels")
        self.tables = [percentile_table(self.channels[:, :, c]) for c in range(n)]
        self.low_percentile = [0.5] * n
        self.high_percentile = [99.5] * n
        self.visible = [True] * n
        self.outlines: List[Tuple[str, np.ndarray, Colour]] = []
        for i, (name, labels) in enumerate((objects or {}).items()):
            labels = np.asarray(labels)
            if labels.shape != shape:
                raise ValueError(f"objects {name!r}: shape {labels.shape} does not match the image {shape}")
            self.outlines.append((name, outline_mask(labels), OUTLINE_COLOURS[i % len(OUTLINE_COLOURS)]))
        self.show_outlines = [True] * len(self.outlines)
        self.uncertainty: Optional[np.ndarray] = None
        if uncertainty is not None:
            u = np.nan_to_num(np.asarray(uncertainty, np.float32))
            if u.shape != shape:
                raise ValueError(f"uncertainty map: shape {u.shape} does not match the image {shape}")
            top = float(np.percentile(u, 99.9)) if u.size else 0.0
            self.uncertainty = np.clip(u / top, 0.0, 1.0) if top > 0 else np.zeros_like(u)
        self.show_uncertainty = False
        self.uncertainty_opacity = 0.6
        self._base: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, int]:
        return self.channels.shape[:2]  # type: ignore[return-value]

    def intensity(self, channel: int, percentile: float) -> float:
        """The channel's intensity at a percentile (0..100, steps of 0.1)."""
        return float(self.tables[channel][int(round(np.clip(percentile, 0.0, 100.0) * 10))])

    def invalidate(self) -> None:
        """Call after changing contrast, visibility or overlay settings."""
        self._base = None

    def base(self) -> np.ndarray:
        """(H, W, 3) uint8: the composite with the outlines and uncertainty map shown on it."""
        if self._base is None:
            n = self.channels.shape[2]
            lows = [self.intensity(c, self.low_percentile[c]) for c in range(n)]
            highs = [max(self.intensity(c, self.high_percentile[c]), lows[c] + 1e-6) for c in range(n)]
            rgb = composite(self.channels, lows, highs, self.colours, self.visible)
            if self.uncertainty is not None and self.show_uncertainty:
                blend(rgb, self.uncertainty > 0, UNCERTAINTY_COLOUR, self.uncertainty * self.uncertainty_opacity)
            for (name, edge, colour), shown in zip(self.outlines, self.show_outlines):
                if shown:
                    blend(rgb, edge, colour, 1.0)
            self._base = rgb
        return self._base
