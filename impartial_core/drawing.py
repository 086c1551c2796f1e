"""What a scribble editor draws: strokes, their rasterisation, and an editing session with undo.

No GUI here: a view (the CellProfiler editor's wx dialog, a test) turns mouse positions into image
coordinates and calls :class:`EditingSession`; everything that decides which pixels get which value
lives in this module and is unit-tested on small arrays.

Coordinates are ``(row, col)`` floats in image pixels, the centre of pixel ``(r, c)`` being at
``(r, c)``. A stroke paints every pixel whose centre lies within ``radius`` of the polyline through
its points (a round brush swept along straight segments), so consecutive mouse positions far apart
still give one continuous stroke. The eraser is a stroke with value ``0`` (unannotated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from impartial_core.scribbles import UNANNOTATED

#: value written by the eraser
ERASER = UNANNOTATED

#: smallest brush radius: half a pixel gives a one-pixel wide line without gaps (8-connected)
MIN_RADIUS = 0.5

Point = Tuple[float, float]
Box = Tuple[int, int, int, int]  # row start, row stop, col start, col stop (stops exclusive)


@dataclass(frozen=True)
class Stroke:
    """A brush stroke: a polyline in image coordinates, the value it writes and the brush radius.

    Parameters
    ----------
    points : sequence of (row, col)
        At least one point; one point paints a disc.
    value : int
        Scribble value written (0..255); ``0`` (:data:`ERASER`) erases.
    radius : float
        Brush radius in pixels, at least :data:`MIN_RADIUS`.
    """

    points: Tuple[Point, ...]
    value: int
    radius: float

    def __post_init__(self) -> None:
        points = tuple((float(r), float(c)) for r, c in self.points)
        if not points:
            raise ValueError("a stroke needs at least one point")
        if not all(np.isfinite(v) for p in points for v in p):
            raise ValueError("stroke points must be finite numbers")
        if not 0 <= int(self.value) <= 255 or int(self.value) != self.value:
            raise ValueError(f"stroke value {self.value!r} must be a whole number from 0 to 255 (uint8 scribbles)")
        if not float(self.radius) >= MIN_RADIUS:
            raise ValueError(f"brush radius {self.radius!r} must be at least {MIN_RADIUS} pixel")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "value", int(self.value))
        object.__setattr__(self, "radius", float(self.radius))


def segment_box(start: Point, end: Point, radius: float, shape: Tuple[int, int]) -> Optional[Box]:
    """Pixel box (clipped to ``shape``) that can hold pixels within ``radius`` of a segment, or None."""
    rows = (min(start[0], end[0]) - radius, max(start[0], end[0]) + radius)
    cols = (min(start[1], end[1]) - radius, max(start[1], end[1]) + radius)
    r0, r1 = max(int(np.ceil(rows[0])), 0), min(int(np.floor(rows[1])) + 1, shape[0])
    c0, c1 = max(int(np.ceil(cols[0])), 0), min(int(np.floor(cols[1])) + 1, shape[1])
    if r0 >= r1 or c0 >= c1:
        return None
    return r0, r1, c0, c1


def segment_mask(start: Point, end: Point, radius: float, box: Box) -> np.ndarray:
    """Boolean mask over ``box`` of the pixels whose centre lies within ``radius`` of the segment."""
    r0, r1, c0, c1 = box
    rows = np.arange(r0, r1, dtype=np.float64)[:, None]
    cols = np.arange(c0, c1, dtype=np.float64)[None, :]
    dr, dc = end[0] - start[0], end[1] - start[1]
    length2 = dr * dr + dc * dc
    if length2 == 0.0:
        t = 0.0
    else:  # position of each pixel's projection along the segment, clamped to its ends
        t = np.clip(((rows - start[0]) * dr + (cols - start[1]) * dc) / length2, 0.0, 1.0)
    nearest_r = start[0] + t * dr
    nearest_c = start[1] + t * dc
    # a tiny tolerance so a radius of exactly k pixels reaches the pixel k away despite rounding
    return (rows - nearest_r) ** 2 + (cols - nearest_c) ** 2 <= radius * radius + 1e-9


def _segments(points: Sequence[Point]) -> List[Tuple[Point, Point]]:
    if len(points) == 1:
        return [(points[0], points[0])]
    return list(zip(points[:-1], points[1:]))


def paint_segment(scribbles: np.ndarray, start: Point, end: Point, value: int, radius: float) -> Optional[Box]:
    """Write ``value`` under a round brush swept from ``start`` to ``end``, in place.

    Returns the box of pixels that may have changed (None if the segment is outside the image).
    """
    box = segment_box(start, end, radius, scribbles.shape[:2])
    if box is None:
        return None
    r0, r1, c0, c1 = box
    scribbles[r0:r1, c0:c1][segment_mask(start, end, radius, box)] = value
    return box


def stroke_mask(stroke: Stroke, shape: Tuple[int, int]) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the pixels a stroke paints (parts outside the image are dropped)."""
    mask = np.zeros(tuple(int(s) for s in shape), dtype=bool)
    for start, end in _segments(stroke.points):
        box = segment_box(start, end, stroke.radius, mask.shape)
        if box is not None:
            r0, r1, c0, c1 = box
            mask[r0:r1, c0:c1] |= segment_mask(start, end, stroke.radius, box)
    return mask


def paint_stroke(scribbles: np.ndarray, stroke: Stroke) -> Optional[Box]:
    """Write a stroke into a uint8 scribble array in place; returns the box that may have changed."""
    _check_scribbles(scribbles)
    box: Optional[Box] = None
    for start, end in _segments(stroke.points):
        box = _union(box, paint_segment(scribbles, start, end, stroke.value, stroke.radius))
    return box


def _union(a: Optional[Box], b: Optional[Box]) -> Optional[Box]:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _check_scribbles(scribbles: np.ndarray) -> None:
    if not isinstance(scribbles, np.ndarray) or scribbles.ndim != 2 or scribbles.dtype != np.uint8:
        raise ValueError(f"scribbles must be a 2-D uint8 array, got "
                         f"{getattr(scribbles, 'dtype', type(scribbles).__name__)} {np.shape(scribbles)}")


@dataclass
class _Edit:
    """One undoable change: the pixels of ``box`` before and after it."""

    box: Box
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclass
class _LiveStroke:
    value: int
    radius: float
    points: List[Point] = field(default_factory=list)
    box: Optional[Box] = None
    snapshot: Optional[np.ndarray] = None


class EditingSession:
    """A scribble array being edited: strokes painted live, bounded undo/redo, a "changed" flag.

    Parameters
    ----------
    scribbles : ndarray (H, W)
        Current scribbles (whole numbers 0..255); copied, the caller's array is never modified.
    max_undo : int
        Most edits kept for undo; older ones are dropped first.
    max_undo_bytes : int
        Memory the undo history may hold (each edit keeps the before/after pixels of its box).

    Notes
    -----
    Use :meth:`begin_stroke` / :meth:`extend_stroke` / :meth:`end_stroke` while the mouse moves (the
    array shows each segment as soon as it is drawn), or :meth:`apply_stroke` for a whole stroke.
    Undo restores exactly the pixels a stroke overwrote.
    """

    def __init__(self, scribbles: np.ndarray, max_undo: int = 100, max_undo_bytes: int = 256 * 2 ** 20) -> None:
        array = np.asarray(scribbles)
        if array.ndim != 2:
            raise ValueError(f"scribbles must be a 2-D label image, got shape {array.shape}")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.integer) or (array.size and (array.min() < 0 or array.max() > 255)):
                raise ValueError(f"scribbles must hold whole numbers from 0 to 255, got {array.dtype}")
        if max_undo < 1:
            raise ValueError("max_undo must be at least 1")
        self._scribbles = array.astype(np.uint8, copy=True)
        self._saved = self._scribbles.copy()
        self._undo: List[_Edit] = []
        self._redo: List[_Edit] = []
        self._live: Optional[_LiveStroke] = None
        self.max_undo = int(max_undo)
        self.max_undo_bytes = int(max_undo_bytes)

    # ------------------------------------------------------------------ state
    @property
    def scribbles(self) -> np.ndarray:
        """The current scribbles (read-only view; use :meth:`result` for a copy)."""
        view = self._scribbles.view()
        view.flags.writeable = False
        return view

    @property
    def shape(self) -> Tuple[int, int]:
        return self._scribbles.shape  # type: ignore[return-value]

    def result(self) -> np.ndarray:
        """A copy of the current scribbles (uint8)."""
        return self._scribbles.copy()

    @property
    def changed(self) -> bool:
        """Whether the scribbles differ from the ones given (or last marked saved)."""
        return not np.array_equal(self._scribbles, self._saved)

    def mark_saved(self) -> None:
        """Take the current scribbles as the unchanged state (after they were written)."""
        self._saved = self._scribbles.copy()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) and self._live is None

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and self._live is None

    @property
    def drawing(self) -> bool:
        """Whether a stroke is in progress."""
        return self._live is not None

    # ------------------------------------------------------------------ strokes
    def begin_stroke(self, point: Point, value: int, radius: float) -> Optional[Box]:
        """Start a stroke at ``point`` (paints a disc there); returns the box that changed."""
        if self._live is not None:
            self.end_stroke()
        Stroke((point,), value, radius)  # validates
        self._live = _LiveStroke(int(value), float(radius), snapshot=self._scribbles.copy())
        return self.extend_stroke(point)

    def extend_stroke(self, point: Point) -> Optional[Box]:
        """Continue the stroke to ``point`` (a straight segment from the last point)."""
        live = self._live
        if live is None:
            raise RuntimeError("extend_stroke called with no stroke in progress (call begin_stroke first)")
        point = (float(point[0]), float(point[1]))
        start = live.points[-1] if live.points else point
        live.points.append(point)
        box = paint_segment(self._scribbles, start, point, live.value, live.radius)
        live.box = _union(live.box, box)
        return box

    def end_stroke(self) -> Optional[Stroke]:
        """Finish the stroke and record it for undo; returns it (None if none was in progress)."""
        live = self._live
        if live is None:
            return None
        self._live = None
        if live.box is not None:
            r0, r1, c0, c1 = live.box
            before = live.snapshot[r0:r1, c0:c1].copy()
            after = self._scribbles[r0:r1, c0:c1].copy()
            if not np.array_equal(before, after):
                self._record(_Edit(live.box, before, after))
        return Stroke(tuple(live.points), live.value, live.radius)

    def apply_stroke(self, stroke: Stroke) -> Optional[Box]:
        """Paint a whole stroke as one undoable edit; returns the box that may have changed."""
        self.begin_stroke(stroke.points[0], stroke.value, stroke.radius)
        for point in stroke.points[1:]:
            self.extend_stroke(point)
        box = self._live.box if self._live is not None else None
        self.end_stroke()
        return box

    def clear(self) -> None:
        """Erase every scribble, as one undoable edit."""
        self.replace(np.zeros_like(self._scribbles))

    def replace(self, scribbles: np.ndarray) -> None:
        """Replace the whole array (e.g. scribbles reloaded), as one undoable edit."""
        self.end_stroke()
        new = np.asarray(scribbles)
        if new.shape != self._scribbles.shape:
            raise ValueError(f"replacement scribbles have shape {new.shape}, expected {self._scribbles.shape}")
        new = new.astype(np.uint8)
        if np.array_equal(new, self._scribbles):
            return
        box = (0, self.shape[0], 0, self.shape[1])
        self._record(_Edit(box, self._scribbles.copy(), new.copy()))
        self._scribbles[...] = new

    # ------------------------------------------------------------------ history
    def _record(self, edit: _Edit) -> None:
        self._undo.append(edit)
        self._redo.clear()
        while len(self._undo) > self.max_undo or (
                len(self._undo) > 1 and sum(e.nbytes for e in self._undo) > self.max_undo_bytes):
            self._undo.pop(0)

    def undo(self) -> Optional[Box]:
        """Undo the last edit; returns its box (None if there was nothing to undo)."""
        self.end_stroke()
        if not self._undo:
            return None
        edit = self._undo.pop()
        r0, r1, c0, c1 = edit.box
        self._scribbles[r0:r1, c0:c1] = edit.before
        self._redo.append(edit)
        return edit.box

    def redo(self) -> Optional[Box]:
        """Redo the last undone edit; returns its box (None if there was nothing to redo)."""
        self.end_stroke()
        if not self._redo:
            return None
        edit = self._redo.pop()
        r0, r1, c0, c1 = edit.box
        self._scribbles[r0:r1, c0:c1] = edit.after
        self._undo.append(edit)
        return edit.box

    @property
    def undo_depth(self) -> int:
        """How many edits can be undone."""
        return len(self._undo)

    @property
    def redo_depth(self) -> int:
        """How many undone edits can be redone."""
        return len(self._redo)
