"""Start the CellProfiler GUI for a test: as users start it, in a private home, under Xvfb.

The GUI is started with the project's own ``impartial-cellprofiler`` command (the path the README
gives users); what this harness adds is only what a test machine needs:

- a private ``HOME`` / ``XDG_*`` with CellProfiler's first-run questions answered (telemetry off,
  no telemetry prompt, no start-up blurb, no update check), so no modal dialog waits for a person
  and the user's real configuration is never read or written;
- a fresh ``xvfb-run`` per attempt, retried when the program could not connect to the X server
  (on this machine kind Xvfb drops a few percent of new X connections right after ``connect()``;
  a GTK program that loses that race aborts at start-up).
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
SCREEN = "-screen 0 1600x1000x24"
DISPLAY_ERRORS = ("Unable to access the X Display", "wxEntryStart failed",
                  "without a display connection", "cannot open display")

#: Put on PYTHONPATH for the GUI process only: runs the file $IMPARTIAL_GUI_HOOK in a daemon thread.
SITECUSTOMIZE = r'''
import os, sys
# Debian's own sitecustomize (if any) still runs
try:
    import importlib.util as _u
    for _p in sys.path[1:]:
        _f = os.path.join(_p, "sitecustomize.py")
        if os.path.isfile(_f) and os.path.dirname(os.path.abspath(__file__)) != os.path.abspath(_p):
            _s = _u.spec_from_file_location("_orig_sitecustomize", _f)
            _s.loader.exec_module(_u.module_from_spec(_s))
            break
except Exception:
    pass
if os.environ.get("IMPARTIAL_GUI_HOOK"):
    import runpy, threading
    threading.Thread(target=lambda: runpy.run_path(os.environ["IMPARTIAL_GUI_HOOK"], run_name="__hook__"),
                     daemon=True).start()
'''

#: The start of every hook: CONFIG (from $IMPARTIAL_GUI_HOOK_CONFIG: status, screenshot, watchdog_s),
#: STATUS written to CONFIG["status"], log(), screenshot(), finish(), a watchdog, the wait for the
#: main window (``wx`` is then bound), and ``guarded`` for the steps, which run in the GUI thread.
HOOK_PRELUDE = r'''
"""Runs in CellProfiler's GUI process (started from a daemon thread by sitecustomize)."""
import json, os, subprocess, sys, time, traceback

CONFIG = json.load(open(os.environ["IMPARTIAL_GUI_HOOK_CONFIG"]))
STATUS = {"steps": [], "errors": []}


def save_status():
    with open(CONFIG["status"] + ".tmp", "w") as fd:
        json.dump(STATUS, fd, indent=1, default=str)
    os.replace(CONFIG["status"] + ".tmp", CONFIG["status"])


def log(message):
    STATUS["steps"].append("%.1f %s" % (time.monotonic() - T0, message))
    save_status()


def screenshot(path):
    for attempt in range(8):
        if subprocess.run(["import", "-window", "root", path], stderr=subprocess.DEVNULL).returncode == 0 \
                and os.path.exists(path):
            return True
        time.sleep(0.5)
    STATUS["errors"].append("screenshot failed: %s" % path)
    return False


def finish(code=0):
    STATUS["done"] = code == 0
    save_status()
    os._exit(code)


T0 = time.monotonic()

# CellProfiler 5.0.0.dev784's figure code calls matplotlib.cm.get_cmap, removed in matplotlib 3.9:
# scripts/constraints-cp5.txt pins matplotlib 3.8.4 so label displays work; fail loudly otherwise.
import matplotlib.cm
assert hasattr(matplotlib.cm, "get_cmap"), "matplotlib >= 3.9 breaks CellProfiler 5's label displays"


def watchdog():
    # a modal error dialog (or a hang) must not leave the test waiting: report and leave
    STATUS["errors"].append("watchdog: the GUI hook did not finish in %s s" % CONFIG["watchdog_s"])
    screenshot(CONFIG["screenshot"].replace(".png", "-watchdog.png"))
    finish(1)


import threading
_timer = threading.Timer(CONFIG["watchdog_s"], watchdog)
_timer.daemon = True
_timer.start()
# wait for the main window (wx imported, App and its frame made)
while True:
    wx = sys.modules.get("wx")
    app = wx.GetApp() if wx is not None and hasattr(wx, "GetApp") else None
    if app is not None and getattr(app, "frame", None) is not None:
        break
    if time.monotonic() - T0 > 120:
        STATUS["errors"].append("no CellProfiler main window after 120 s")
        finish(1)
    time.sleep(0.5)
log("main window exists")


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception:
            STATUS["errors"].append(traceback.format_exc())
            try:
                screenshot(CONFIG["screenshot"].replace(".png", "-error.png"))
            finally:
                finish(1)
    return wrapper


'''


def hook_environment(folder: Path, hook: str, config: Dict) -> Dict[str, str]:
    """Write ``hook`` (a script run inside the GUI process), its ``config`` and the sitecustomize
    that starts it into ``folder``; the environment that runs it (CellProfiler's own, plus a
    private temporary folder: the GUI is ended without closing its test-mode measurements)."""
    from tests import helpers_cp as H

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (folder / "hook.py").write_text(hook)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tmp").mkdir(exist_ok=True)
    env = H.cellprofiler_env()
    env.update(TMPDIR=str(folder / "tmp"), PYTHONPATH=os.pathsep.join([str(folder), env["PYTHONPATH"]]),
               IMPARTIAL_GUI_HOOK=str(folder / "hook.py"), IMPARTIAL_GUI_HOOK_CONFIG=str(folder / "config.json"))
    return env


PRESET = r"""
import sys
sys.argv = sys.argv[:1]
import wx
app = wx.App(False)
import cellprofiler_core.preferences as p
p.set_telemetry(False)
p.set_telemetry_prompt(False)
p.set_startup_blurb(False)
if hasattr(p, "set_check_update"):
    p.set_check_update(False)
p.get_config().Flush()
app.Destroy()
"""


def private_home(home: Path) -> Dict[str, str]:
    """Environment variables that give CellProfiler ``home`` as its whole world."""
    env = {"HOME": str(home)}
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_CACHE_HOME", ".cache")):
        env[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True)
    return env


def _run_under_xvfb(command: List[str], env: Dict[str, str], log_path: Path, timeout_s: float) -> Optional[int]:
    """Run ``command`` under a new ``xvfb-run``; kill its whole process group on timeout."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["xvfb-run", "-a", "-s", SCREEN] + command, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=str(REPO), start_new_session=True)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.poll() is None:  # our own process group only (xvfb-run, Xvfb, CellProfiler)
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def run_gui(args: List[str], home: Path, env: Dict[str, str], log_path: Path, timeout_s: float,
            attempts: int = 6) -> Optional[int]:
    """Start ``impartial-cellprofiler ARGS`` in the GUI under Xvfb with a private, preset home.

    Returns the exit status (None when it ran past ``timeout_s``); the output is in ``log_path``.
    ``env`` is the base environment (it may carry a test hook); the home variables are added.
    """
    env = dict(env, **private_home(home))
    preset_log = log_path.with_name(log_path.stem + "_preset.log")
    for attempt in range(attempts):
        if _run_under_xvfb([str(VENV_BIN / "python"), "-c", PRESET], _without_hooks(env), preset_log, 60) == 0:
            break
        time.sleep(1)
    else:
        raise RuntimeError("could not preset CellProfiler's configuration:\n" + preset_log.read_text(errors="replace"))
    for attempt in range(attempts):
        started = time.monotonic()
        rc = _run_under_xvfb([str(VENV_BIN / "impartial-cellprofiler")] + list(args), env, log_path, timeout_s)
        text = log_path.read_text(errors="replace")
        if rc == 0 or rc is None or not any(e in text for e in DISPLAY_ERRORS) or time.monotonic() - started > 60:
            return rc
        time.sleep(1)
    return rc


def _without_hooks(env: Dict[str, str]) -> Dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("IMPARTIAL_GUI_HOOK")}
