"""The scribble editor's drawing surface: a wx panel showing the image, painting with the mouse.

Left button: paint with the current brush (an :class:`impartial_core.drawing.EditingSession` does the
painting and keeps the undo history). Mouse wheel: zoom around the pointer. Middle or right button
drag, or Ctrl + left drag: pan. Only wx APIs that wxPython 4.1 (CellProfiler 4.2) also has.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import wx

from impartial_core.drawing import EditingSession
from impartial_cellprofiler.editor_render import Layers, View, render

WHEEL_ZOOM = 1.25


class ScribbleCanvas(wx.Panel):
    """Shows ``layers`` with the session's scribbles on top and paints strokes into the session.

    Parameters
    ----------
    parent : wx window.
    layers : the picture under the scribbles.
    session : the scribbles being edited.
    lut : (256, 3) uint8 colour of each scribble value.
    on_change : called after each painted segment, undo or view change (to update the status).
    """

    def __init__(self, parent: wx.Window, layers: Layers, session: EditingSession, lut: np.ndarray,
                 on_change: Callable[[], None]) -> None:
        super().__init__(parent, style=wx.WANTS_CHARS | wx.FULL_REPAINT_ON_RESIZE)
        self.SetBackgroundStyle(wx.BG_STYLE_PAINT)
        self.SetMinSize((400, 300))
        self.layers = layers
        self.session = session
        self.lut = lut
        self.on_change = on_change
        self.view = View()
        self.brush_value = 1
        self.brush_radius = 3.0
        self.scribble_opacity = 0.7
        self.show_scribbles = True
        self.marker: Optional[Tuple[float, float]] = None  # a suggested place, drawn as a ring
        self.pointer: Optional[Tuple[int, int]] = None
        self._fitted = False
        self._pan_from: Optional[Tuple[int, int]] = None
        self.Bind(wx.EVT_PAINT, self._on_paint)
        self.Bind(wx.EVT_SIZE, self._on_size)
        self.Bind(wx.EVT_LEFT_DOWN, self._on_left_down)
        self.Bind(wx.EVT_LEFT_UP, self._on_button_up)
        self.Bind(wx.EVT_MIDDLE_DOWN, self._on_pan_down)
        self.Bind(wx.EVT_MIDDLE_UP, self._on_button_up)
        self.Bind(wx.EVT_RIGHT_DOWN, self._on_pan_down)
        self.Bind(wx.EVT_RIGHT_UP, self._on_button_up)
        self.Bind(wx.EVT_MOTION, self._on_motion)
        self.Bind(wx.EVT_MOUSEWHEEL, self._on_wheel)
        self.Bind(wx.EVT_LEAVE_WINDOW, self._on_leave)
        self.Bind(wx.EVT_MOUSE_CAPTURE_LOST, self._on_capture_lost)

    # ------------------------------------------------------------------ coordinates and view
    def screen_size(self) -> Tuple[int, int]:
        width, height = self.GetClientSize()
        return max(int(width), 1), max(int(height), 1)

    def image_to_client(self, row: float, col: float) -> Tuple[int, int]:
        """Client (window) pixel showing image position ``(row, col)``."""
        sx, sy = self.view.to_screen(row, col)
        return int(round(sx)), int(round(sy))

    def client_to_image(self, x: int, y: int) -> Tuple[float, float]:
        """Image ``(row, col)`` under client pixel ``(x, y)``."""
        return self.view.to_image(x, y)

    def pixel_under(self, x: int, y: int) -> Optional[Tuple[int, int]]:
        """The image pixel under client pixel ``(x, y)``, or None outside the image."""
        row, col = self.client_to_image(x, y)
        r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        height, width = self.layers.shape
        return (r, c) if 0 <= r < height and 0 <= c < width else None

    def fit(self) -> None:
        """Show the whole image."""
        self.view.fit(self.screen_size(), self.layers.shape)
        self._changed()

    def zoom_by(self, factor: float, at: Optional[Tuple[int, int]] = None) -> None:
        """Zoom around client pixel ``at`` (default: the middle)."""
        sw, sh = self.screen_size()
        x, y = at if at is not None else (sw / 2.0, sh / 2.0)
        self.view.zoom_at(factor, x, y)
        self._changed()

    def centre_on(self, row: float, col: float, min_zoom: float = 0.0) -> None:
        """Bring image position ``(row, col)`` to the middle, zooming in to ``min_zoom`` if below."""
        self.view.zoom = max(self.view.zoom, min_zoom)
        self.view.centre_on(row, col, self.screen_size())
        self._changed()

    def redraw(self) -> None:
        self.Refresh(False)

    def _changed(self) -> None:
        self.Refresh(False)
        self.on_change()

    # ------------------------------------------------------------------ painting on screen
    def _on_size(self, event: wx.SizeEvent) -> None:
        if not self._fitted and min(self.GetClientSize()) > 1:
            self._fitted = True
            self.view.fit(self.screen_size(), self.layers.shape)
        self.Refresh(False)
        event.Skip()

    def _on_paint(self, event: wx.PaintEvent) -> None:
        dc = wx.AutoBufferedPaintDC(self)
        sw, sh = self.screen_size()
        opacity = self.scribble_opacity if self.show_scribbles else 0.0
        picture = render(self.layers.base(), self.session.scribbles, self.lut, opacity, self.view, (sw, sh))
        bitmap = wx.Bitmap.FromBuffer(sw, sh, np.ascontiguousarray(picture))
        dc.DrawBitmap(bitmap, 0, 0)
        dc.SetBrush(wx.TRANSPARENT_BRUSH)
        if self.marker is not None:
            x, y = self.image_to_client(*self.marker)
            radius = max(12, int(16 * self.view.zoom))
            for colour, width in ((wx.BLACK, 4), (wx.WHITE, 2)):
                dc.SetPen(wx.Pen(colour, width))
                dc.DrawCircle(x, y, radius)
        if self.pointer is not None and self._pan_from is None:
            radius = max(1, int(round(self.brush_radius * self.view.zoom)))
            x, y = self.pointer
            for colour, style in ((wx.BLACK, wx.PENSTYLE_SOLID), (wx.WHITE, wx.PENSTYLE_SHORT_DASH)):
                dc.SetPen(wx.Pen(colour, 1, style))
                dc.DrawCircle(x, y, radius)

    # ------------------------------------------------------------------ mouse
    def _on_left_down(self, event: wx.MouseEvent) -> None:
        self.SetFocus()
        if event.ControlDown():
            self._on_pan_down(event)
            return
        self._capture()
        self.session.begin_stroke(self.client_to_image(event.GetX(), event.GetY()),
                                  self.brush_value, self.brush_radius)
        self._changed()

    def _on_pan_down(self, event: wx.MouseEvent) -> None:
        self.session.end_stroke()
        self._capture()
        self._pan_from = (event.GetX(), event.GetY())
        self.SetCursor(wx.Cursor(wx.CURSOR_HAND))

    def _on_motion(self, event: wx.MouseEvent) -> None:
        x, y = event.GetX(), event.GetY()
        self.pointer = (x, y)
        if self._pan_from is not None:
            self.view.pan(x - self._pan_from[0], y - self._pan_from[1])
            self._pan_from = (x, y)
        elif self.session.drawing:
            if event.LeftIsDown():
                self.session.extend_stroke(self.client_to_image(x, y))
            else:  # the button came up outside the window
                self.session.end_stroke()
        self._changed()

    def _on_button_up(self, event: wx.MouseEvent) -> None:
        if self.session.drawing:
            self.session.extend_stroke(self.client_to_image(event.GetX(), event.GetY()))
            self.session.end_stroke()
        self._pan_from = None
        self.SetCursor(wx.NullCursor)
        self._release()
        self._changed()

    def _on_wheel(self, event: wx.MouseEvent) -> None:
        steps = event.GetWheelRotation() / float(event.GetWheelDelta() or 120)
        if steps:
            self.zoom_by(WHEEL_ZOOM ** steps, (event.GetX(), event.GetY()))

    def _on_leave(self, event: wx.MouseEvent) -> None:
        if not self.HasCapture():
            self.pointer = None
            self.Refresh(False)
        event.Skip()

    def _on_capture_lost(self, event: wx.MouseCaptureLostEvent) -> None:
        self.session.end_stroke()
        self._pan_from = None
        self.on_change()

    def _capture(self) -> None:
        if not self.HasCapture():
            self.CaptureMouse()

    def _release(self) -> None:
        if self.HasCapture():
            self.ReleaseMouse()
