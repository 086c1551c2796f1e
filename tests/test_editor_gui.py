"""The scribble editor dialog under Xvfb: strokes drawn with synthesised mouse events, keys, Save/Cancel.

CellProfiler 5 environment only (the 4.2 venv has no wxPython): skipped when IMPARTIAL_CP_LINE=cp42,
or when xvfb-run, xdotool, ImageMagick's ``import`` or wx are missing.

A child Python (this environment's) opens :class:`impartial_cellprofiler.editor.ScribbleEditor` on a
small synthetic two-channel image under ``xvfb-run`` and drives it with ``wx.UIActionSimulator``
(real X input events through XTest, so the dialog's own mouse and key handlers run): keys switch
brushes, the mouse draws strokes, Ctrl+Z / Ctrl+Y undo and redo, and the Save or Cancel button is
clicked. The child saves the scribbles after each step and what the dialog returned; the test checks
the values at the stroke pixels. The screenshot goes to out/screenshots/editor_dialog.png.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import helpers_cp as H

pytestmark = [
    pytest.mark.skipif(os.environ.get("IMPARTIAL_CP_LINE") == "cp42",
                       reason="the editor needs wxPython, which the CellProfiler 4.2 environment lacks"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed"),
    pytest.mark.skipif(shutil.which("xdotool") is None or shutil.which("import") is None,
                       reason="xdotool (mouse wheel) or ImageMagick's import (screenshot) is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("wx") is None, reason="wxPython is not installed"),
]

SCREENSHOT = H.REPO / "out" / "screenshots" / "editor_dialog.png"
# what a GTK program prints when Xvfb dropped its connection (this machine drops a few percent)
DISPLAY_ERRORS = ("Unable to access the X Display", "wxEntryStart failed", "without a display connection",
                  "cannot open display")

CHILD = r'''
import json, os, subprocess, sys, time, traceback
out, mode, screenshot, repo = sys.argv[1:5]
sys.argv = sys.argv[:1]  # wx hands sys.argv to GTK
sys.path.insert(0, repo)
import numpy as np
import wx
from impartial_cellprofiler.editor import ScribbleEditor, module_brushes

H, W = 120, 160
rows, cols = np.mgrid[:H, :W]
nuclei = np.zeros((H, W), np.int32)
for n, (r, c) in enumerate([(40, 40), (40, 110), (90, 75)], 1):
    nuclei[(rows - r) ** 2 + (cols - c) ** 2 <= 15 ** 2] = n
channels = np.stack([(nuclei > 0) * 1.0 + 0.05 * np.sin(cols / 5.0),
                     np.exp(-((rows - 60) ** 2 + (cols - 80) ** 2) / 3000.0)], axis=-1).astype(np.float32)
uncertainty = np.exp(-((rows - 90) ** 2 + (cols - 75) ** 2) / 200.0)
scribbles = np.zeros((H, W), np.uint8)
scribbles[5:8, 5:30] = 1  # drawn earlier: must survive

app = wx.App(False)
log = {"steps": [], "errors": []}
snapshots = {}
dialog = ScribbleEditor(None, channels, scribbles, module_brushes(split=4), channel_names=["DNA", "Membrane"],
                        objects={"Nuclei": nuclei}, uncertainty=uncertainty, suggest=lambda s: [(90, 75, "split stroke"), (10, 10)])
sim = wx.UIActionSimulator()


def screen(row, col):
    x, y = dialog.canvas.image_to_client(row, col)
    return dialog.canvas.ClientToScreen(wx.Point(x, y))


def button_centre(button):
    rect = button.GetScreenRect()
    return wx.Point(rect.x + rect.width // 2, rect.y + rect.height // 2)


def stroke(points):
    """Press, move in big jumps, release: steps for the action queue."""
    yield lambda: sim.MouseMove(screen(*points[0]))
    yield lambda: sim.MouseDown(wx.MOUSE_BTN_LEFT)
    for p in points[1:]:
        yield lambda p=p: sim.MouseMove(screen(*p))
    yield lambda: sim.MouseUp(wx.MOUSE_BTN_LEFT)


def snap(name):
    def take():
        snapshots[name] = dialog.session.result()
        width, height = dialog.canvas.screen_size()
        log["steps"].append({"name": name, "brush": dialog.canvas.brush_value,
                             "radius": dialog.canvas.brush_radius, "undo_depth": dialog.session.undo_depth,
                             "centre": dialog.canvas.client_to_image(width // 2, height // 2),
                             "zoom": dialog.canvas.view.zoom, "origin": (dialog.canvas.view.x, dialog.canvas.view.y),
                             "under_pointer": dialog.canvas.client_to_image(*dialog.canvas.pointer)
                             if dialog.canvas.pointer else None})
    return take


def key(char, modifiers=wx.MOD_NONE):
    return lambda: sim.Char(ord(char), modifiers)


def take_screenshot():
    for attempt in range(8):
        if subprocess.run(["import", "-window", "root", screenshot], stderr=subprocess.DEVNULL).returncode == 0:
            log["screenshot"] = screenshot
            return
        time.sleep(0.5)
    log["errors"].append("screenshot failed")


def wheel_up():
    """One wheel step up with xdotool (UIActionSimulator has no wheel); its X connection may be dropped."""
    for attempt in range(6):
        if subprocess.run(["xdotool", "click", "4"], stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.3)
    log["errors"].append("xdotool click 4 failed")


def close_help():
    """The help dialog is modal: read it and close it."""
    for window in wx.GetTopLevelWindows():
        if isinstance(window, wx.Dialog) and window.GetTitle() == "Scribble editor: help" and window.IsModal():
            log["help"] = "\n".join(child.GetLabel() for child in window.GetChildren()
                                     if isinstance(child, wx.StaticText))
            window.EndModal(wx.ID_OK)
            return
    log["errors"].append("no help dialog open")


def start():
    dialog.Raise()
    dialog.canvas.SetFocus()
    log["zoom"] = dialog.canvas.view.zoom


actions = [start, lambda: sim.MouseMove(screen(60, 80)), key("2"), snap("brush 2")]
actions += list(stroke([(30, 20), (30, 45), (31, 70)])) + [snap("stroke A")]
actions += [key("3"), key("]")] + list(stroke([(75, 20), (75, 140)])) + [snap("stroke B")]
actions += [key("z", wx.MOD_CONTROL), snap("undo"), key("y", wx.MOD_CONTROL), snap("redo")]
actions += [key("e")] + list(stroke([(15, 45), (45, 45)])) + [snap("eraser")]
if mode == "save":
    actions += [lambda: sim.MouseMove(screen(100, 100)), snap("before pan"),
                lambda: sim.MouseDown(wx.MOUSE_BTN_MIDDLE), lambda: sim.MouseMove(screen(100, 100) + wx.Point(50, 30)),
                lambda: sim.MouseUp(wx.MOUSE_BTN_MIDDLE), snap("after pan"), wheel_up, snap("after wheel")]
    actions += [key("u"), key("n"), snap("view"), key("f"), take_screenshot,
                lambda: sim.MouseMove(button_centre(dialog.save_button)), lambda: sim.MouseClick(wx.MOUSE_BTN_LEFT)]
else:
    actions += [key("h"), close_help, lambda: sim.MouseMove(button_centre(dialog.cancel_button)),
                lambda: sim.MouseClick(wx.MOUSE_BTN_LEFT)]


def run_next():
    if not actions:
        return
    try:
        actions.pop(0)()
    except Exception:
        log["errors"].append(traceback.format_exc())
        dialog.EndModal(wx.ID_ABORT)
        return
    wx.CallLater(150, run_next)


def watchdog():
    log["errors"].append("watchdog: the dialog did not close")
    dialog.EndModal(wx.ID_ABORT)


wx.CallLater(800, run_next)
wx.CallLater(60000, watchdog)
code = dialog.ShowModal()
log["code"] = {wx.ID_OK: "ok", wx.ID_CANCEL: "cancel"}.get(code, str(code))
log["result_is_none"] = dialog.result is None
log["suggestion_marker"] = list(dialog.canvas.marker) if dialog.canvas.marker is not None else None
log["uncertainty_shown"] = dialog.layers.show_uncertainty
log["status"] = dialog.status.GetLabel()
if dialog.result is not None:
    snapshots["result"] = dialog.result
np.savez(os.path.join(out, "snapshots.npz"), **snapshots)
with open(os.path.join(out, "log.json"), "w") as handle:
    json.dump(log, handle, indent=1)
dialog.Destroy()
app.Destroy()
'''


def _run_child(tmp_path, mode):
    out = tmp_path / mode
    out.mkdir()
    script = tmp_path / "editor_child.py"
    script.write_text(CHILD)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"), TMPDIR=str(tmp_path),
               NO_AT_BRIDGE="1")
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, str(script), str(out), mode,
               str(SCREENSHOT), str(H.REPO)]
    for attempt in range(5):
        process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        if (out / "log.json").exists():
            break
        if not any(error in process.stderr for error in DISPLAY_ERRORS):
            break
    assert (out / "log.json").exists(), "the editor child wrote nothing:\n%s\n%s" % (process.stdout, process.stderr[-4000:])
    log = json.loads((out / "log.json").read_text())
    assert not log["errors"], "\n".join(log["errors"])
    return log, dict(np.load(out / "snapshots.npz"))


def _line(scribbles, row, cols):
    return scribbles[row, cols[0]:cols[1]]


def test_draw_undo_redo_erase_save(tmp_path):
    log, snaps = _run_child(tmp_path, "save")
    steps = {s["name"]: s for s in log["steps"]}
    assert steps["brush 2"]["brush"] == 2  # key "2" chose the nucleus brush
    # stroke A (nucleus, radius 3) from (30, 20) over (30, 45) to (31, 70): drawn through the jumps
    a = snaps["stroke A"]
    assert (_line(a, 30, (20, 46)) == 2).all() and (a[29:32, 46:70] == 2).all()
    assert (a[5:8, 5:30] == 1).all()  # the earlier scribbles are kept
    assert set(np.unique(a)) == {0, 1, 2}
    assert not a[40:].any()
    # key "3" then "]": cytoplasm brush, radius 4; stroke B along row 75
    assert steps["stroke B"]["brush"] == 3 and steps["stroke B"]["radius"] == 4
    b = snaps["stroke B"]
    assert (b[72:79, 20:141] == 3).all() and not b[80:].any()
    np.testing.assert_array_equal(b[:60], a[:60])
    # Ctrl+Z restores exactly the state before stroke B; Ctrl+Y brings it back
    np.testing.assert_array_equal(snaps["undo"], a)
    np.testing.assert_array_equal(snaps["redo"], b)
    assert steps["undo"]["undo_depth"] == 1 and steps["redo"]["undo_depth"] == 2
    # key "e": the eraser cuts stroke A at column 45
    e = snaps["eraser"]
    assert steps["eraser"]["brush"] == 0
    assert (e[25:36, 42:49] == 0).all() and (e[28:33, 20:38] == 2).all() and (e[29:32, 52:70] == 2).all()
    # Save returned exactly what was drawn
    assert log["code"] == "ok" and not log["result_is_none"]
    np.testing.assert_array_equal(snaps["result"], e)
    assert snaps["result"].dtype == np.uint8
    # "u" showed the uncertainty map, "n" went to the suggested place
    assert log["uncertainty_shown"] and log["suggestion_marker"] == [90.0, 75.0]
    assert "suggestion 1 of 2 (split stroke) at row 90, col 75" in log["status"]
    assert np.allclose(steps["view"]["centre"], (90, 75), atol=1.0)
    # middle-button drag panned by the distance dragged; the wheel zoomed in around the pointer
    zoom = steps["before pan"]["zoom"]
    assert steps["after pan"]["zoom"] == zoom
    np.testing.assert_allclose(np.subtract(steps["before pan"]["origin"], steps["after pan"]["origin"]),
                               (50 / zoom, 30 / zoom), atol=0.01)
    assert steps["after wheel"]["zoom"] == pytest.approx(zoom * 1.25)
    np.testing.assert_allclose(steps["after wheel"]["under_pointer"], steps["after pan"]["under_pointer"], atol=1e-6)
    np.testing.assert_array_equal(snaps["after wheel"], e)  # panning and zooming drew nothing
    assert steps["view"]["zoom"] >= 2.0
    assert SCREENSHOT.exists()


def test_cancel_returns_none(tmp_path):
    log, snaps = _run_child(tmp_path, "cancel")
    assert (snaps["eraser"] > 0).sum() > 100  # strokes were drawn before Cancel
    assert log["code"] == "cancel" and log["result_is_none"]
    assert "Ctrl+Z" in log["help"] and "1  Background" in log["help"]  # "h" opened the help
    assert "result" not in snaps
