"""The scribble editor: a modal wx dialog where the user draws scribbles over the channels.

The ImPartial module opens it from the CellProfiler GUI (Test mode, or Analysis mode through an
interaction request). It shows the channels as a composite with per-channel contrast, the current
scribbles, the objects' outlines and the uncertainty map, and edits the scribbles with one brush per
scribble value, an eraser, undo/redo and zoom/pan. It writes nothing: :func:`edit_scribbles` returns
the edited scribbles on Save and None on Cancel, and the module decides what to keep.

What is drawn (strokes, rasterisation, undo) is :mod:`impartial_core.drawing`; the picture is made
by :mod:`impartial_cellprofiler.editor_render`; the drawing surface is
:mod:`impartial_cellprofiler.editor_canvas`. Only wx APIs that wxPython 4.1 also has.
"""
from __future__ import annotations

from typing import Callable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import wx

from impartial_core.drawing import ERASER, EditingSession
from impartial_core.scribbles import SCRIBBLE_COLOURS, BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT
from impartial_cellprofiler.editor_canvas import ScribbleCanvas
from impartial_cellprofiler.editor_render import UNCERTAINTY_COLOUR, Layers, scribble_lut

MIN_BRUSH, MAX_BRUSH = 1, 50

#: the colours a channel can be shown in
COLOUR_NAMES = {"grey": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
                "cyan": (0, 255, 255), "magenta": (255, 0, 255), "yellow": (255, 255, 0)}

#: ``suggest(scribbles)`` -> places ``(row, col)`` or ``(row, col, what)`` where a stroke would help
#: most, best first (``what``, e.g. "split stroke", is shown in the status line)
Suggest = Callable[[np.ndarray], Sequence[Sequence]]


class Brush(NamedTuple):
    """A brush of the editor: the name shown, the scribble value it paints and its colour (RGB)."""

    name: str
    value: int
    colour: Tuple[int, int, int]


def module_brushes(background: int = BACKGROUND, nucleus: int = NUCLEUS, cytoplasm: Optional[int] = CYTOPLASM,
                   split: Optional[int] = None) -> List[Brush]:
    """The brushes for a module's scribble values (cytoplasm and split left out when None)."""
    brushes = [Brush("Background", background, SCRIBBLE_COLOURS[BACKGROUND]),
               Brush("Nucleus", nucleus, SCRIBBLE_COLOURS[NUCLEUS])]
    if cytoplasm is not None:
        brushes.append(Brush("Cytoplasm", cytoplasm, SCRIBBLE_COLOURS[CYTOPLASM]))
    if split is not None:
        brushes.append(Brush("Split (between touching objects)", split, SCRIBBLE_COLOURS[SPLIT]))
    return brushes


HELP = """Draw scribbles: a few strokes of each kind where the image is typical and where the objects are wrong.

Brushes
  {brush_keys}
  E  eraser (unannotated)
  [ ]  smaller / larger brush
Edit
  Ctrl+Z  undo        Ctrl+Y or Ctrl+Shift+Z  redo
View
  mouse wheel, + -  zoom        F  whole image
  middle or right button drag, or Ctrl + left drag  pan
  O  outlines on/off      U  uncertainty on/off      S  scribbles on/off
  N  next place where a stroke would help (when suggestions are available)
  H or F1  this help
Save keeps the scribbles (Ctrl+S); Cancel leaves everything as it was.

Uncertainty (cyan) is high where the model is unsure: strokes there help most.
Outlines show the current objects: draw background between merged objects, the object's kind inside
missed ones, and a split stroke along the line where two touching objects meet."""


class ScribbleEditor(wx.Dialog):
    """Modal scribble editor; see :func:`edit_scribbles` for the parameters.

    After ``ShowModal()`` returns ``wx.ID_OK`` (Save), :attr:`result` holds the edited scribbles;
    after Cancel it is None.
    """

    def __init__(self, parent: Optional[wx.Window], channels: np.ndarray, scribbles: Optional[np.ndarray],
                 brushes: Sequence[Brush], channel_names: Optional[Sequence[str]] = None,
                 objects: Optional[Mapping[str, np.ndarray]] = None, uncertainty: Optional[np.ndarray] = None,
                 suggest: Optional[Suggest] = None, title: str = "ImPartial: scribbles",
                 channel_colours: Optional[Sequence[Tuple[int, int, int]]] = None) -> None:
        super().__init__(parent, title=title, style=wx.DEFAULT_DIALOG_STYLE | wx.RESIZE_BORDER | wx.MAXIMIZE_BOX)
        self.layers = Layers(channels, objects, uncertainty, channel_colours)
        shape = self.layers.shape
        if scribbles is None:
            scribbles = np.zeros(shape, np.uint8)
        if np.shape(scribbles) != shape:
            raise ValueError(f"scribbles: shape {np.shape(scribbles)} does not match the image {shape}")
        if not brushes:
            raise ValueError("the editor needs at least one brush")
        values = [b.value for b in brushes]
        if not all(0 < v < 256 and int(v) == v for v in values):
            raise ValueError(f"brush values {values} must be whole numbers from 1 to 255 (uint8 scribbles)")
        if len(set(values)) != len(values):
            raise ValueError(f"brush values {values} must be distinct")
        self.brushes = list(brushes)
        self.session = EditingSession(scribbles)
        self.suggest = suggest
        self.result: Optional[np.ndarray] = None
        self._suggestions: Optional[List[Tuple[float, float, str]]] = None
        self._next_suggestion = 0
        self.note = ""  # a message shown in the status line (suggestions)
        names = list(channel_names) if channel_names is not None else [
            "Channel %d" % (i + 1) for i in range(self.layers.channels.shape[2])]
        if len(names) != self.layers.channels.shape[2]:
            raise ValueError(f"{len(names)} channel names for {self.layers.channels.shape[2]} channels")
        self.channel_names = names

        lut = scribble_lut({b.value: b.colour for b in self.brushes})
        self.canvas = ScribbleCanvas(self, self.layers, self.session, lut, self.update_status)
        self.canvas.brush_value = self.brushes[0].value
        controls = wx.ScrolledWindow(self, style=wx.VSCROLL)
        controls.SetScrollRate(0, 10)
        self._build_controls(controls)
        self.status = wx.StaticText(self, label="")
        self.save_button = wx.Button(self, wx.ID_OK, "Save")
        self.cancel_button = wx.Button(self, wx.ID_CANCEL, "Cancel")
        self.save_button.SetDefault()

        body = wx.BoxSizer(wx.HORIZONTAL)
        body.Add(self.canvas, 1, wx.EXPAND)
        body.Add(controls, 0, wx.EXPAND | wx.LEFT, 4)
        bottom = wx.BoxSizer(wx.HORIZONTAL)
        bottom.Add(self.status, 1, wx.ALIGN_CENTER_VERTICAL | wx.LEFT, 6)
        bottom.Add(self.cancel_button, 0, wx.ALL, 4)
        bottom.Add(self.save_button, 0, wx.ALL, 4)
        outer = wx.BoxSizer(wx.VERTICAL)
        outer.Add(body, 1, wx.EXPAND)
        outer.Add(bottom, 0, wx.EXPAND)
        self.SetSizer(outer)

        display = wx.Display(max(wx.Display.GetFromWindow(parent), 0) if parent is not None else 0)
        area = display.GetClientArea()
        self.SetSize((min(1400, int(area.width * 0.9)), min(950, int(area.height * 0.9))))
        self.SetMinSize((700, 450))
        self.CentreOnScreen()

        self.save_button.Bind(wx.EVT_BUTTON, self.on_save)
        self.cancel_button.Bind(wx.EVT_BUTTON, self.on_cancel)
        self.Bind(wx.EVT_CHAR_HOOK, self._on_key)
        self.Bind(wx.EVT_CLOSE, self._on_close)
        self.update_status()

    # ------------------------------------------------------------------ controls
    def _build_controls(self, panel: wx.ScrolledWindow) -> None:
        sizer = wx.BoxSizer(wx.VERTICAL)
        brush_box = wx.StaticBoxSizer(wx.VERTICAL, panel, "Brush")
        self.brush_buttons: List[wx.RadioButton] = []
        for i, brush in enumerate(self.brushes + [Brush("Eraser", ERASER, (0, 0, 0))]):
            key = "E" if brush.value == ERASER else str(i + 1) if i < 9 else ""
            button = wx.RadioButton(panel, label="%s  (%s)" % (brush.name, key) if key else brush.name,
                                    style=wx.RB_GROUP if i == 0 else 0)
            button.Bind(wx.EVT_RADIOBUTTON, lambda event, value=brush.value: self.select_brush(value))
            colour = brush.colour if brush.value != ERASER else (255, 255, 255)
            brush_box.Add(self._with_swatch(panel, colour, button), 0, wx.ALL, 2)
            self.brush_buttons.append(button)
        self.size_label = wx.StaticText(panel, label="")
        self.size_slider = wx.Slider(panel, value=3, minValue=MIN_BRUSH, maxValue=MAX_BRUSH)
        self.size_slider.Bind(wx.EVT_SLIDER, lambda event: self.set_brush_radius(self.size_slider.GetValue()))
        brush_box.Add(self.size_label, 0, wx.TOP | wx.LEFT, 4)
        brush_box.Add(self.size_slider, 0, wx.EXPAND)
        edit_row = wx.BoxSizer(wx.HORIZONTAL)
        self.undo_button = wx.Button(panel, label="Undo")
        self.redo_button = wx.Button(panel, label="Redo")
        self.undo_button.Bind(wx.EVT_BUTTON, lambda event: self.undo())
        self.redo_button.Bind(wx.EVT_BUTTON, lambda event: self.redo())
        edit_row.Add(self.undo_button, 1, wx.RIGHT, 2)
        edit_row.Add(self.redo_button, 1)
        brush_box.Add(edit_row, 0, wx.EXPAND | wx.TOP, 4)
        sizer.Add(brush_box, 0, wx.EXPAND | wx.ALL, 4)

        channel_box = wx.StaticBoxSizer(wx.VERTICAL, panel, "Channels (contrast: percentiles)")
        for c, name in enumerate(self.channel_names):
            show = wx.CheckBox(panel, label=name)
            show.SetValue(True)
            show.Bind(wx.EVT_CHECKBOX, lambda event, c=c: self._set_layer(self.layers.visible, c, event.IsChecked()))
            names = list(COLOUR_NAMES)
            current = tuple(self.layers.colours[c])
            if current not in COLOUR_NAMES.values():
                names.append("as given")
            colour = wx.Choice(panel, choices=names)
            colour.SetSelection(next((i for i, n in enumerate(names) if COLOUR_NAMES.get(n) == current), len(names) - 1))
            colour.Bind(wx.EVT_CHOICE, lambda event, c=c, given=current: self._set_channel_colour(
                c, COLOUR_NAMES.get(event.GetString(), given)))
            row = wx.BoxSizer(wx.HORIZONTAL)
            row.Add(show, 1, wx.ALIGN_CENTER_VERTICAL)
            row.Add(colour, 0)
            channel_box.Add(row, 0, wx.EXPAND | wx.TOP, 4)
            for which, attribute in (("low", "low_percentile"), ("high", "high_percentile")):
                value = getattr(self.layers, attribute)[c]
                slider = wx.Slider(panel, value=int(round(value * 10)), minValue=0, maxValue=1000)
                label = wx.StaticText(panel, label="%s %.1f%%" % (which, value))
                slider.Bind(wx.EVT_SLIDER, lambda event, c=c, a=attribute, w=which, lab=label:
                            self._set_contrast(c, a, event.GetInt() / 10.0, w, lab))
                row = wx.BoxSizer(wx.HORIZONTAL)
                row.Add(label, 0, wx.ALIGN_CENTER_VERTICAL | wx.RIGHT, 2)
                row.Add(slider, 1)
                channel_box.Add(row, 0, wx.EXPAND)
        sizer.Add(channel_box, 0, wx.EXPAND | wx.ALL, 4)

        show_box = wx.StaticBoxSizer(wx.VERTICAL, panel, "Show")
        self.scribbles_check = wx.CheckBox(panel, label="Scribbles  (S)")
        self.scribbles_check.SetValue(True)
        self.scribbles_check.Bind(wx.EVT_CHECKBOX, lambda event: self.toggle_scribbles(event.IsChecked()))
        show_box.Add(self.scribbles_check, 0, wx.TOP, 2)
        show_box.Add(self._opacity_slider(panel, self.canvas.scribble_opacity, self._set_scribble_opacity)[0], 0, wx.EXPAND)
        self.outline_checks: List[wx.CheckBox] = []
        for i, (name, _, colour) in enumerate(self.layers.outlines):
            check = wx.CheckBox(panel, label="Outlines: %s  (O)" % name)
            check.SetValue(True)
            check.Bind(wx.EVT_CHECKBOX, lambda event, i=i: self._set_layer(self.layers.show_outlines, i, event.IsChecked()))
            show_box.Add(self._with_swatch(panel, colour, check), 0, wx.TOP, 2)
            self.outline_checks.append(check)
        self.uncertainty_check = wx.CheckBox(panel, label="Uncertainty  (U)")
        self.uncertainty_check.Bind(wx.EVT_CHECKBOX, lambda event: self.toggle_uncertainty(event.IsChecked()))
        show_box.Add(self._with_swatch(panel, UNCERTAINTY_COLOUR, self.uncertainty_check), 0, wx.TOP, 6)
        row, slider = self._opacity_slider(panel, self.layers.uncertainty_opacity, self._set_uncertainty_opacity)
        show_box.Add(row, 0, wx.EXPAND)
        if self.layers.uncertainty is None:
            self.uncertainty_check.Disable()
            slider.Disable()
        sizer.Add(show_box, 0, wx.EXPAND | wx.ALL, 4)

        view_row = wx.BoxSizer(wx.HORIZONTAL)
        for label, handler in (("Whole image (F)", lambda event: self.canvas.fit()),
                               ("Help (H)", lambda event: self.show_help())):
            button = wx.Button(panel, label=label)
            button.Bind(wx.EVT_BUTTON, handler)
            view_row.Add(button, 1, wx.RIGHT, 2)
        sizer.Add(view_row, 0, wx.EXPAND | wx.ALL, 4)
        self.suggest_button = wx.Button(panel, label="Next suggestion (N)")
        self.suggest_button.Bind(wx.EVT_BUTTON, lambda event: self.next_suggestion())
        self.suggest_button.Enable(self.suggest is not None)
        sizer.Add(self.suggest_button, 0, wx.EXPAND | wx.ALL, 4)
        panel.SetSizer(sizer)
        panel.SetMinSize((max(sizer.GetMinSize()[0] + 20, 250), -1))
        self.set_brush_radius(3)

    @staticmethod
    def _with_swatch(panel: wx.Window, colour: Tuple[int, int, int], control: wx.Window) -> wx.Sizer:
        """A small square of ``colour`` before ``control``."""
        row = wx.BoxSizer(wx.HORIZONTAL)
        swatch = wx.Panel(panel, size=(14, 14))
        swatch.SetBackgroundColour(wx.Colour(*colour))
        row.Add(swatch, 0, wx.ALIGN_CENTER_VERTICAL | wx.RIGHT, 4)
        row.Add(control, 1, wx.ALIGN_CENTER_VERTICAL)
        return row

    def _opacity_slider(self, panel: wx.Window, value: float,
                        setter: Callable[[float], None]) -> Tuple[wx.Sizer, wx.Slider]:
        row = wx.BoxSizer(wx.HORIZONTAL)
        label = wx.StaticText(panel, label="opacity")
        slider = wx.Slider(panel, value=int(round(value * 100)), minValue=0, maxValue=100)
        slider.Bind(wx.EVT_SLIDER, lambda event: setter(event.GetInt() / 100.0))
        row.Add(label, 0, wx.ALIGN_CENTER_VERTICAL | wx.RIGHT, 2)
        row.Add(slider, 1)
        return row, slider

    # ------------------------------------------------------------------ actions
    def select_brush(self, value: int) -> None:
        """Paint ``value`` from now on (``0`` = eraser)."""
        self.canvas.brush_value = int(value)
        for brush, button in zip(self.brushes + [Brush("Eraser", ERASER, (0, 0, 0))], self.brush_buttons):
            if brush.value == value and not button.GetValue():
                button.SetValue(True)
        self.update_status()

    def set_brush_radius(self, radius: float) -> None:
        radius = int(np.clip(round(radius), MIN_BRUSH, MAX_BRUSH))
        self.canvas.brush_radius = float(radius)
        self.size_slider.SetValue(radius)
        self.size_label.SetLabel("Size: radius %d pixel%s  ([ ])" % (radius, "" if radius == 1 else "s"))
        self.canvas.redraw()

    def undo(self) -> None:
        if self.session.undo() is not None:
            self.canvas.redraw()
        self.update_status()

    def redo(self) -> None:
        if self.session.redo() is not None:
            self.canvas.redraw()
        self.update_status()

    def toggle_scribbles(self, show: Optional[bool] = None) -> None:
        self.canvas.show_scribbles = not self.canvas.show_scribbles if show is None else bool(show)
        self.scribbles_check.SetValue(self.canvas.show_scribbles)
        self.canvas.redraw()

    def toggle_outlines(self) -> None:
        show = not any(self.layers.show_outlines)
        for i, check in enumerate(self.outline_checks):
            check.SetValue(show)
            self._set_layer(self.layers.show_outlines, i, show)

    def toggle_uncertainty(self, show: Optional[bool] = None) -> None:
        if self.layers.uncertainty is None:
            return
        self.layers.show_uncertainty = not self.layers.show_uncertainty if show is None else bool(show)
        self.uncertainty_check.SetValue(self.layers.show_uncertainty)
        self._refresh_layers()

    def next_suggestion(self) -> None:
        """Centre the view on the next place the suggestion callback ranks (asked once, on first use)."""
        if self.suggest is None:
            return
        if self._suggestions is None:
            try:
                with wx.BusyCursor():
                    self._suggestions = [(float(place[0]), float(place[1]), str(place[2]) if len(place) > 2 else "")
                                         for place in self.suggest(self.session.result())]
            except Exception as error:  # the editor stays usable; the message says what went wrong
                self.note = "Could not compute suggestions: %s" % error
                self.update_status()
                return
        if not self._suggestions:
            self.note = "No suggestions: the model found no place where a stroke would help more."
            self.update_status()
            return
        index = self._next_suggestion % len(self._suggestions)
        row, col, what = self._suggestions[index]
        self._next_suggestion += 1
        self.canvas.marker = (row, col)
        self.canvas.centre_on(row, col, min_zoom=2.0)
        self.note = "suggestion %d of %d%s at row %d, col %d" % (
            index + 1, len(self._suggestions), " (%s)" % what if what else "", row, col)
        self.update_status()

    def show_help(self) -> None:
        keys = "\n  ".join("%d  %s" % (i + 1, b.name) for i, b in enumerate(self.brushes[:9]))
        with wx.Dialog(self, title="Scribble editor: help") as dialog:
            text = wx.StaticText(dialog, label=HELP.format(brush_keys=keys))
            sizer = wx.BoxSizer(wx.VERTICAL)
            sizer.Add(text, 1, wx.ALL, 12)
            sizer.Add(dialog.CreateButtonSizer(wx.OK), 0, wx.EXPAND | wx.ALL, 8)
            dialog.SetSizerAndFit(sizer)
            dialog.CentreOnParent()
            dialog.ShowModal()

    def on_save(self, event: Optional[wx.Event] = None) -> None:
        self.session.end_stroke()
        self.result = self.session.result()
        self.EndModal(wx.ID_OK)

    def on_cancel(self, event: Optional[wx.Event] = None) -> None:
        self.session.end_stroke()
        self.result = None
        self.EndModal(wx.ID_CANCEL)

    def _on_close(self, event: wx.CloseEvent) -> None:
        if self._discard_ok():
            self.on_cancel()
        elif event.CanVeto():
            event.Veto()

    def _discard_ok(self) -> bool:
        if not self.session.changed:
            return True
        answer = wx.MessageBox("Discard the scribbles drawn since the editor opened?", "Scribble editor",
                               wx.YES_NO | wx.NO_DEFAULT | wx.ICON_QUESTION, self)
        return answer == wx.YES

    # ------------------------------------------------------------------ helpers
    def _set_layer(self, flags: List[bool], index: int, value: bool) -> None:
        flags[index] = bool(value)
        self._refresh_layers()

    def _set_contrast(self, channel: int, attribute: str, percentile: float, which: str, label: wx.StaticText) -> None:
        getattr(self.layers, attribute)[channel] = percentile
        label.SetLabel("%s %.1f%%" % (which, percentile))
        self._refresh_layers()

    def _set_channel_colour(self, channel: int, colour: Tuple[int, int, int]) -> None:
        self.layers.colours[channel] = tuple(colour)
        self._refresh_layers()

    def _set_scribble_opacity(self, opacity: float) -> None:
        self.canvas.scribble_opacity = opacity
        self.canvas.redraw()

    def _set_uncertainty_opacity(self, opacity: float) -> None:
        self.layers.uncertainty_opacity = opacity
        self._refresh_layers()

    def _refresh_layers(self) -> None:
        self.layers.invalidate()
        self.canvas.redraw()

    def brush_name(self, value: int) -> str:
        for brush in self.brushes:
            if brush.value == value:
                return brush.name
        return "eraser" if value == ERASER else "value %d" % value

    def update_status(self) -> None:
        """Status line: pixel under the pointer, brush, zoom, edits."""
        parts = []
        if self.canvas.pointer is not None:
            pixel = self.canvas.pixel_under(*self.canvas.pointer)
            if pixel is not None:
                value = int(self.session.scribbles[pixel])
                parts.append("row %d, col %d: %s" % (pixel[0], pixel[1], self.brush_name(value) if value else "-"))
        parts.append("brush: %s, radius %d" % (self.brush_name(self.canvas.brush_value), self.canvas.brush_radius))
        parts.append("zoom %d%%" % round(self.canvas.view.zoom * 100))
        parts.append("%d edit%s%s" % (self.session.undo_depth, "" if self.session.undo_depth == 1 else "s",
                                      ", unsaved" if self.session.changed else ""))
        if self.note:
            parts.append(self.note)
        self.status.SetLabel("    ".join(parts))
        self.undo_button.Enable(self.session.can_undo)
        self.redo_button.Enable(self.session.can_redo)

    def _on_key(self, event: wx.KeyEvent) -> None:
        code = event.GetKeyCode()
        control = event.ControlDown() or event.CmdDown()
        char = chr(code).upper() if 32 <= code < 127 else ""
        if control and char == "Z":
            self.redo() if event.ShiftDown() else self.undo()
        elif control and char == "Y":
            self.redo()
        elif control and char == "S":
            self.on_save()
        elif control:
            event.Skip()
        elif code == wx.WXK_ESCAPE:
            if self._discard_ok():
                self.on_cancel()
        elif char.isdigit() and 1 <= int(char) <= min(len(self.brushes), 9):
            self.select_brush(self.brushes[int(char) - 1].value)
        elif char == "E":
            self.select_brush(ERASER)
        elif char in ("[", "]"):
            self.set_brush_radius(self.canvas.brush_radius + (1 if char == "]" else -1))
        elif char in ("+", "=") or code in (wx.WXK_ADD, wx.WXK_NUMPAD_ADD):
            self.canvas.zoom_by(1.25)
        elif char == "-" or code in (wx.WXK_SUBTRACT, wx.WXK_NUMPAD_SUBTRACT):
            self.canvas.zoom_by(0.8)
        elif char == "F":
            self.canvas.fit()
        elif char == "O":
            self.toggle_outlines()
        elif char == "U":
            self.toggle_uncertainty()
        elif char == "S":
            self.toggle_scribbles()
        elif char == "N":
            self.next_suggestion()
        elif char == "H" or code == wx.WXK_F1:
            self.show_help()
        else:
            event.Skip()


def edit_scribbles(parent: Optional[wx.Window], channels: np.ndarray, scribbles: Optional[np.ndarray],
                   brushes: Sequence[Brush], channel_names: Optional[Sequence[str]] = None,
                   objects: Optional[Mapping[str, np.ndarray]] = None, uncertainty: Optional[np.ndarray] = None,
                   suggest: Optional[Suggest] = None, title: str = "ImPartial: scribbles",
                   channel_colours: Optional[Sequence[Tuple[int, int, int]]] = None) -> Optional[np.ndarray]:
    """Open the scribble editor (modal) and return the edited scribbles, or None if cancelled.

    Parameters
    ----------
    parent : the window it belongs to (CellProfiler's frame), or None.
    channels : (H, W, C) or (H, W) float image, shown as a colour composite.
    scribbles : (H, W) current scribbles in the module's values (uint8-range integers), or None for none.
    brushes : one per scribble value the user can paint (see :func:`module_brushes`); keys 1..9 select them.
    channel_names : names shown for the channels' contrast controls.
    objects : object set name -> label image (H, W); outlines are shown.
    uncertainty : (H, W) uncertainty map (higher = less sure), shown on request (U).
    suggest : called with the current scribbles when the user asks for the next suggestion (N);
        returns places ``(row, col)`` where a stroke would help most, best first.
    title : the window title.
    channel_colours : RGB colour of each channel in the composite (default: grey for one channel,
        green and magenta for two, red, green, blue for three); the user can change them.

    Returns
    -------
    uint8 (H, W) scribbles on Save (also when unchanged), None on Cancel. Nothing is written to disk.
    """
    dialog = ScribbleEditor(parent, channels, scribbles, brushes, channel_names, objects, uncertainty, suggest, title,
                            channel_colours)
    try:
        dialog.ShowModal()
        return dialog.result
    finally:
        dialog.Destroy()
