"""Shared pytest setup: point CellProfiler at this repository's plugins before it loads modules.

CellProfiler scans the plugin directory when ``cellprofiler_core.modules`` is first imported, so
this must run before any test module imports it. Without CellProfiler installed it does nothing.
"""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytest_configure(config):
    try:
        import cellprofiler_core.preferences as preferences
    except ImportError:
        return
    preferences.set_headless()
    preferences.set_plugin_directory(str(REPO / "plugins"), globally=False)
    os.environ.setdefault("MPLBACKEND", "Agg")

