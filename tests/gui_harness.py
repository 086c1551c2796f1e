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
