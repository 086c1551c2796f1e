"""ImPartial in the CellProfiler 5 GUI, under Xvfb: menu entry, settings panel, one image set in test mode.

CellProfiler 5 only (the 4.2 venv has no wxPython): skipped when IMPARTIAL_CP_LINE=cp42, or when
xvfb-run, ImageMagick's ``import`` or wx are missing.

How: ``impartial-cellprofiler``, the command users start the GUI with (plugin folder preset, wx
float->int rounding where CellProfiler 5 needs it), starts the GUI on a copy of
``pipelines/nuclei_mibi.cppipe`` with a short training, under ``xvfb-run``, in a private home with
the first-run questions answered (``tests/gui_harness.py``). A ``sitecustomize.py`` put on PYTHONPATH for that process only runs a hook inside the
GUI process once the main window exists (wx.CallLater chain, in the GUI thread):

1. opens *Add Modules*, checks that ImPartial is listed under "Object Processing" (the dialog's own
   module table, built from CellProfiler's module registry), selects it there;
2. adds two image files to the file list, selects ImPartial in the pipeline and checks that its
   settings panel was built (setting controls present);
3. starts test mode (ImPartial trains in ``prepare_group``) and steps the first image set through
   ImPartial and the measurement modules; reads the test-mode measurements (Count_Nuclei,
   ImPartial's confidence) and the objects made;
4. takes screenshots with ``import -window root`` (retried: Xvfb here drops some new X
   connections), writes a JSON status file, and exits.

Screenshots: out/screenshots/gui_impartial.png (main window, ImPartial selected, test mode),
gui_impartial_add_modules.png, gui_impartial_advanced.png (the settings panel scrolled to its
advanced settings), gui_impartial_figure.png (the module's display window).

CellProfiler 5's figure code also needs matplotlib < 3.9, which the cp5 environment pins.
"""
import json
import shutil
import subprocess
import time

import pytest

from tests import gui_harness, helpers_cp as H

pytestmark = [
    pytest.mark.skipif(H.cp_line() != "cp5", reason="the GUI test needs CellProfiler 5 (the 4.2 venv is headless)"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed"),
    pytest.mark.skipif(shutil.which("import") is None, reason="ImageMagick's import is not installed"),
]

SCREENSHOTS = H.REPO / "out" / "screenshots"
TIMEOUT_S = 300



HOOK = gui_harness.HOOK_PRELUDE + r'''
def parts():
    frame = wx.GetApp().frame
    return (frame, frame._CPFrame__pipeline, frame._CPFrame__pipeline_controller,
            frame._CPFrame__pipeline_list_view, frame._CPFrame__module_view)


@guarded
def step_add_modules():
    frame, pipeline, controller, list_view, module_view = parts()
    frame.SetPosition((0, 0))  # no window manager under Xvfb: size it to the screen
    frame.SetSize((1600, 1000))
    controller.open_add_modules()
    dialog = controller._PipelineController__add_module_frame
    table = dialog._AddModuleFrame__module_dict
    STATUS["categories"] = {category: sorted(names) for category, names in table.items()}
    # CellProfiler 5 shows plugins as "\U0001f9e9 ImPartial" (puzzle-piece prefix); 4.2 by name
    STATUS["impartial_category"] = [c for c, names in table.items() if c != "All"
                                    and any(n.split()[-1] == "ImPartial" for n in names)]
    STATUS["impartial_in_all"] = any(n.split()[-1] == "ImPartial" for n in table.get("All", {}))
    # show it selected in the dialog, as a user would see it
    categories = dialog._AddModuleFrame__module_files
    box = dialog._AddModuleFrame__module_categories_list_box
    if "Object Processing" in categories:
        box.SetSelection(categories.index("Object Processing"))
        dialog._AddModuleFrame__on_category_selected(None)
        modules_box = dialog._AddModuleFrame__module_list_box
        items = [i.split()[-1] if i.split() else i for i in modules_box.GetItems()]
        if "ImPartial" in items:
            modules_box.SetSelection(items.index("ImPartial"))
    log("add modules dialog: ImPartial in %s" % STATUS["impartial_category"])
    wx.CallLater(2000, step_screenshot_add_modules)


@guarded
def step_screenshot_add_modules():
    screenshot(CONFIG["screenshot"].replace(".png", "_add_modules.png"))
    frame, pipeline, controller, list_view, module_view = parts()
    controller._PipelineController__add_module_frame.Hide()
    pipeline.add_pathnames_to_file_list(CONFIG["files"])
    STATUS["modules"] = [m.module_name for m in pipeline.modules()]
    impartial = [m for m in pipeline.modules() if m.module_name == "ImPartial"][0]
    list_view.select_one_module(impartial.module_num)
    log("files added; ImPartial selected")
    wx.CallLater(2000, step_settings_panel)


@guarded
def step_settings_panel():
    frame, pipeline, controller, list_view, module_view = parts()
    panel = module_view.module_panel
    texts = []

    def walk(window):
        for child in window.GetChildren():
            if isinstance(child, wx.StaticText) and child.GetLabel().strip():
                texts.append(child.GetLabel().strip())
            walk(child)
    walk(panel)
    STATUS["settings_labels"] = texts
    STATUS["settings_panel_module"] = getattr(module_view.get_current_module(), "module_name", None) \
        if hasattr(module_view, "get_current_module") else None
    log("settings panel: %d labels" % len(texts))
    wx.CallLater(500, step_test_mode)


@guarded
def step_test_mode():
    frame, pipeline, controller, list_view, module_view = parts()
    log("starting test mode (ImPartial trains in prepare_group)")
    started = controller.start_debugging() if list_view.reset_debug_module() is not None else False
    STATUS["test_mode_started"] = bool(started)
    log("test mode started: %s" % started)
    if not started:
        finish(1)
    wx.CallLater(500, step_run, 0)


@guarded
def step_run(count):
    frame, pipeline, controller, list_view, module_view = parts()
    module = controller.current_debug_module()
    if module is not None and module.module_name in CONFIG["run_modules"] and count < 20:
        ok = controller.do_step(module)
        log("ran %s in test mode: %s" % (module.module_name, ok))
        if not ok:
            STATUS["errors"].append("test mode step failed at %s" % module.module_name)
            finish(1)
        controller.next_debug_module()
        wx.CallLater(300, step_run, count + 1)
        return
    m = controller._PipelineController__debug_measurements
    objects = controller._PipelineController__debug_object_set
    STATUS["image_set_number"] = m.image_set_number
    STATUS["measurements"] = {
        "Count_Nuclei": m.get_current_image_measurement("Count_Nuclei"),
        "ImPartial_Threshold_Nuclei": m.get_current_image_measurement("ImPartial_Threshold_Nuclei"),
        "Nuclei_ImPartial_MeanForegroundProbability": [float(x) for x in m.get_current_measurement(
            "Nuclei", "ImPartial_MeanForegroundProbability")],
        "Nuclei_AreaShape_Area": [float(x) for x in m.get_current_measurement("Nuclei", "AreaShape_Area")],
    }
    STATUS["object_names"] = list(objects.get_object_names())
    STATUS["windows"] = [w.GetTitle() for w in wx.GetTopLevelWindows() if w.IsShown()]
    list_view.select_one_module([x for x in pipeline.modules() if x.module_name == "ImPartial"][0].module_num)
    log("first image set done")
    wx.CallLater(2500, step_screenshots)


@guarded
def step_screenshots():
    frame, pipeline, controller, list_view, module_view = parts()
    figures = [w for w in wx.GetTopLevelWindows() if w.IsShown() and "ImPartial" in w.GetTitle()]
    for w in wx.GetTopLevelWindows():
        if w.IsShown() and w is not frame:
            w.Lower()
    frame.Raise()
    wx.Yield()
    time.sleep(1.0)
    screenshot(CONFIG["screenshot"])
    # the settings panel scrolled to its end: the advanced settings, the split depth among them
    module_view.module_panel.Scroll(0, module_view.module_panel.GetVirtualSize()[1])
    wx.Yield()
    time.sleep(1.0)
    screenshot(CONFIG["screenshot"].replace(".png", "_advanced.png"))
    if figures:
        figures[0].Raise()
        figures[0].SetSize((1200, 900))
        wx.Yield()
        time.sleep(1.5)
        screenshot(CONFIG["screenshot"].replace(".png", "_figure.png"))
    log("screenshots taken")
    finish(0)


wx.CallAfter(lambda: wx.CallLater(int(CONFIG.get("settle_ms", 3000)), step_add_modules))
'''


def _wx_available():
    python = H.REPO / ".venv" / "bin" / "python"
    return subprocess.run([str(python), "-c", "import wx"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def gui_run(tmp_path_factory):
    if not _wx_available():
        pytest.skip("wxPython is not importable in .venv")
    tmp = tmp_path_factory.mktemp("gui")
    inputs = H.write_mibi_crops(tmp / "in", crop=(slice(0, 160), slice(0, 160)))
    out = tmp / "out"
    out.mkdir()
    pipeline, problems = H.load_pipeline(H.PIPELINES / "nuclei_mibi.cppipe")
    assert not problems
    impartial = H.module(pipeline, "ImPartial")
    H.set_values(impartial, **dict(H.FAST_TRAINING, time_budget=15.0, max_iterations=60))
    impartial.model_directory.value = H.absolute_folder(out)
    impartial.show_window = True  # the module's display window opens in test mode
    path = H.write_pipeline(pipeline, tmp / "gui.cppipe")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    status = tmp / "status.json"
    config = {
        "status": str(status),
        "screenshot": str(SCREENSHOTS / "gui_impartial.png"),
        "files": sorted(str(p) for p in inputs.glob("*.tif")),
        "watchdog_s": TIMEOUT_S - 60,
        "run_modules": ["ImPartial", "MeasureObjectSizeShape", "MeasureObjectIntensity", "OverlayOutlines"],
    }
    env = gui_harness.hook_environment(tmp / "hook", HOOK, config)
    args = ["-p", str(path), "-o", str(out),
            "-e", "imageio_reader"]  # TIFF via imageio (Bio-Formats would download its jars)
    start = time.monotonic()
    rc = gui_harness.run_gui(args, tmp / "home", env, tmp / "gui.log", TIMEOUT_S)
    seconds = time.monotonic() - start
    print("GUI run: %.0f s, exit %s" % (seconds, rc))
    result = json.loads(status.read_text()) if status.exists() else {}
    return {"status": result, "rc": rc, "log": (tmp / "gui.log").read_text(errors="replace"), "seconds": seconds}


def _explain(run):
    return "status: %s\nlog:\n%s" % (json.dumps(run["status"], indent=1, default=str)[:4000], H.tail(run["log"], 60))


def test_gui_lists_impartial_under_object_processing(gui_run):
    status = gui_run["status"]
    assert status, "the GUI hook wrote no status (exit %s)\n%s" % (gui_run["rc"], _explain(gui_run))
    assert status.get("impartial_category") == ["Object Processing"], _explain(gui_run)
    assert "IdentifyPrimaryObjects" in status["categories"]["Object Processing"]  # the same list as CP's own
    assert status.get("impartial_in_all")


def test_gui_settings_panel_builds(gui_run):
    status = gui_run["status"]
    assert "settings_labels" in status, _explain(gui_run)
    # CellProfiler 5 logs each float coordinate that wx 4.2 refuses: the launcher's rounding leaves none
    assert "Detected WX error" not in gui_run["log"], H.tail(gui_run["log"], 60)
    labels = " | ".join(status["settings_labels"])
    for text in ("Select a channel image", "What do you want to segment?", "Model",
                 "Select the scribble image", "Training time budget",
                 "Neck depth that splits touching nuclei (pixels)"):  # an advanced setting, shown here
        assert text in labels, (text, labels)


def test_gui_test_mode_runs_one_image_set(gui_run):
    status = gui_run["status"]
    assert status.get("test_mode_started"), _explain(gui_run)
    assert not status.get("errors"), _explain(gui_run)
    assert status.get("done"), _explain(gui_run)
    m = status["measurements"]
    assert status["image_set_number"] == 1
    assert "Nuclei" in status["object_names"]
    count = int(m["Count_Nuclei"])
    assert 10 <= count <= 300, count  # 160 x 160 crop of image0: ~45 nuclei in the ground truth
    assert len(m["Nuclei_ImPartial_MeanForegroundProbability"]) == count == len(m["Nuclei_AreaShape_Area"])
    assert 0 < float(m["ImPartial_Threshold_Nuclei"]) < 1
    assert any("ImPartial" in title for title in status["windows"]), status["windows"]


@pytest.mark.parametrize("name", ["gui_impartial.png", "gui_impartial_advanced.png"])
def test_gui_screenshot_written(gui_run, name):
    shot = SCREENSHOTS / name
    assert shot.is_file() and shot.stat().st_size > 20000, _explain(gui_run)
    # not a blank screen: many distinct colours
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1600, 1000)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200
