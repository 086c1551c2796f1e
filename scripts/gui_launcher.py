#!/usr/bin/env python
"""Start the CellProfiler 5 GUI for tests/screenshots, with first-run prompts pre-disabled.

Run it with the CellProfiler 5 venv's Python, on an X display (Xvfb):

    xvfb-run -a -s '-screen 0 1600x1000x24' .venv/bin/python scripts/gui_launcher.py \
        --plugins-directory plugins -p pipeline.cppipe [other cellprofiler args]
    # in another shell, same DISPLAY:  import -window root shot.png

What it does:
  1. HOME, XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_CACHE_HOME -> a fresh temp dir (or --home DIR),
     so the user's real CellProfiler config is never read or written.
  2. In a child process (a throwaway wx.App), writes the config: telemetry off, telemetry prompt
     off, startup blurb off, update check off, plugin directory = --plugins-directory. Without
     this, the GUI waits on a modal telemetry dialog and retries an unreachable telemetry server.
  3. Unless --no-wx-patches: works around CellProfiler 5's float-to-int bugs on Python 3.11 +
     wx 4.2 (wx.Point/wx.Size built from floats in its module-settings sizer, so every setting is
     drawn on top of the others; Gauge.SetValue(float) -> "Failure in analysis startup").
     These are CellProfiler's bugs; the product must not rely on these patches.
  4. Runs cellprofiler.__main__.main() with the remaining arguments in a child process, and
     starts it again if it could not connect to the X server (on this machine kind Xvfb drops
     a few percent of new connections; see run_gui_child). SIGTERM/SIGINT are forwarded.

Launcher options (everything else goes to CellProfiler):
  --home DIR         use DIR as HOME (kept), instead of a new temp dir
  --no-wx-patches    do not patch wx
  --print-home       print the HOME used (first line of stdout) before starting
"""
import os
import signal
import subprocess
import sys
import tempfile
import time


def _split_args(argv):
    launcher = {"home": None, "patch": True, "print_home": False}
    rest = []
    it = iter(argv)
    for a in it:
        if a == "--home":
            launcher["home"] = next(it)
        elif a.startswith("--home="):
            launcher["home"] = a.split("=", 1)[1]
        elif a == "--no-wx-patches":
            launcher["patch"] = False
        elif a == "--print-home":
            launcher["print_home"] = True
        else:
            rest.append(a)
    return launcher, rest


def _plugins_dir(cp_args):
    for i, a in enumerate(cp_args):
        if a == "--plugins-directory" and i + 1 < len(cp_args):
            return os.path.abspath(cp_args[i + 1])
        if a.startswith("--plugins-directory="):
            return os.path.abspath(a.split("=", 1)[1])
    return None


def set_private_home(home):
    os.makedirs(home, exist_ok=True)
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_CACHE_HOME", ".cache")):
        os.environ[var] = os.path.join(home, sub)
        os.makedirs(os.environ[var], exist_ok=True)
    os.environ["HOME"] = home


PRESET_CODE = r"""
import os, sys
sys.argv = sys.argv[:1]  # wx.App hands sys.argv to GTK; keep it clean
import wx
app = wx.App(False)
import cellprofiler_core.preferences as p
p.set_telemetry(False)
p.set_telemetry_prompt(False)
p.set_startup_blurb(False)
if hasattr(p, "set_check_update"):
    p.set_check_update(False)
if os.environ.get("_CP_PRESET_PLUGINS"):
    p.set_plugin_directory(os.environ["_CP_PRESET_PLUGINS"])
p.get_config().Flush()
app.Destroy()
"""


def preset_config(plugins_directory):
    """Write the preferences in a child process (wx.Config needs a wx.App and a display)."""
    if not os.environ.get("DISPLAY"):
        sys.exit("gui_launcher: no DISPLAY; run under xvfb-run (see --help)")
    env = dict(os.environ, _CP_PRESET_PLUGINS=plugins_directory or "")
    # Right after xvfb-run starts, GTK sometimes cannot connect yet ("Can't create a
    # GtkStyleContext without a display connection", SIGTRAP): retry, which also waits for the
    # display to be usable before CellProfiler's own wx.App starts in this process.
    for attempt in range(10):
        if subprocess.run([sys.executable, "-c", PRESET_CODE], env=env,
                          stderr=subprocess.DEVNULL if attempt < 9 else None).returncode == 0:
            return
        time.sleep(1)
    sys.exit("gui_launcher: could not open the display %s to preset the config" % os.environ["DISPLAY"])


def patch_wx():
    import wx

    def _i(v):
        return int(round(v)) if isinstance(v, float) else v

    class Point(wx.Point):
        def __init__(self, *args, **kwargs):
            super().__init__(*[_i(a) for a in args], **{k: _i(v) for k, v in kwargs.items()})

    class Size(wx.Size):
        def __init__(self, *args, **kwargs):
            super().__init__(*[_i(a) for a in args], **{k: _i(v) for k, v in kwargs.items()})

    Point.__name__, Size.__name__ = "Point", "Size"
    wx.Point, wx.Size = Point, Size

    orig_gauge_set = wx.Gauge.SetValue

    def gauge_set_value(self, pos):
        return orig_gauge_set(self, _i(pos))

    wx.Gauge.SetValue = gauge_set_value

    orig_set_dimension = wx.SizerItem.SetDimension

    def set_dimension(self, pos, size):
        if isinstance(pos, tuple):
            pos = tuple(_i(v) for v in pos)
        if isinstance(size, tuple):
            size = tuple(_i(v) for v in size)
        return orig_set_dimension(self, pos, size)

    wx.SizerItem.SetDimension = set_dimension


DISPLAY_ERRORS = ("Unable to access the X Display", "wxEntryStart failed",
                  "without a display connection", "cannot open display")


def run_gui_child(cp_args, patch, attempts=6):
    """Run CellProfiler in a child process; retry when it could not connect to the X server.

    On this machine kind, roughly 5-25% of new X connections to Xvfb are dropped by the server
    right after connect() (seen with xdotool and raw libxcb too, with or without -ac, any
    display number). A GTK app that loses that race aborts at start-up, so the supervisor
    starts it again; once connected it keeps its one connection.
    """
    env = dict(os.environ, _CP_GUI_CHILD="1" if patch else "nopatch")
    child = None

    def forward(signum, frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for attempt in range(1, attempts + 1):
        t0 = time.time()
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + cp_args, env=env,
                                 stderr=subprocess.PIPE, text=True, errors="replace")
        display_error = False
        for line in child.stderr:
            sys.stderr.write(line)
            if any(e in line for e in DISPLAY_ERRORS):
                display_error = True
        rc = child.wait()
        if rc == 0 or not display_error or time.time() - t0 > 60 or attempt == attempts:
            return rc if rc >= 0 else 128 - rc
        sys.stderr.write("gui_launcher: X connection failed (attempt %d), retrying\n" % attempt)
        time.sleep(1)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("_CP_GUI_CHILD"):
        # Child: config is preset, HOME is set; patch and run CellProfiler in this process.
        if os.environ.pop("_CP_GUI_CHILD") == "1":
            patch_wx()
        sys.argv = ["cellprofiler"] + argv
        from cellprofiler.__main__ import main as cp_main

        return cp_main()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    launcher, cp_args = _split_args(argv)
    home = launcher["home"] or tempfile.mkdtemp(prefix="cp-gui-home-")
    set_private_home(os.path.abspath(home))
    if launcher["print_home"]:
        print(os.environ["HOME"], flush=True)
    preset_config(_plugins_dir(cp_args))
    return run_gui_child(cp_args, launcher["patch"])


if __name__ == "__main__":
    sys.exit(main())
