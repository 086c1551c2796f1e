"""``impartial-cellprofiler``: start CellProfiler with the ImPartial plugin, working around wx bugs.

Usage is CellProfiler's own (every argument is passed on)::

    impartial-cellprofiler                        # the GUI, with the ImPartial module available
    impartial-cellprofiler -p pipeline.cppipe     # the GUI with a pipeline open
    impartial-cellprofiler -c -r -p P -i IN -o OUT   # a headless run, as ``cellprofiler -c -r``

What it adds to ``cellprofiler``:

1. ``--plugins-directory`` defaults to this project's ``plugins`` folder (when it is installed from
   a checkout), so the ImPartial module is in *Add module* without a trip to the preferences.
   Give ``--plugins-directory`` to use another folder.
2. In the GUI only, and only where the installed wx needs it: CellProfiler 5.0.0.dev784 builds
   ``wx.Point`` / ``wx.Size`` from floats in its module-settings layout and calls
   ``wx.Gauge.SetValue`` with floats. wxPython 4.2 on Python 3.10+ refuses floats there (earlier
   wxPython/Python pairs, such as CellProfiler 4.2's, truncate them). Each refused call is logged
   as "Detected WX error" and leaves that setting at (0, 0): every module's settings are drawn on
   top of each other, and starting an analysis fails with "Failure in analysis startup". The
   launcher probes wx once (``wx.Point(0.5, 0.5)``) and, when floats are refused, makes those
   three calls round floats to the nearest integer. Nothing is changed when wx accepts floats.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Sequence

HEADLESS_SWITCHES = ("-c", "--run-headless")
HELP_SWITCHES = ("-h", "--help", "-v", "--version")
PLUGINS_SWITCH = "--plugins-directory"


def project_plugins_directory() -> Optional[Path]:
    """The ``plugins`` folder that holds ``impartial.py`` beside this package, if there is one."""
    folder = Path(__file__).resolve().parent.parent / "plugins"
    return folder if (folder / "impartial.py").is_file() else None


def wx_refuses_float_coordinates() -> bool:
    """True when the installed wxPython raises ``TypeError`` for ``wx.Point(0.5, 0.5)``."""
    import wx

    try:
        wx.Point(0.5, 0.5)
    except TypeError:
        return True
    return False


def _to_int(value):
    return int(round(value)) if isinstance(value, float) else value


def round_float_coordinates() -> List[str]:
    """Make ``wx.Point``, ``wx.Size``, ``wx.SizerItem.SetDimension`` and ``wx.Gauge.SetValue``
    accept floats by rounding them, as wxPython did before 4.2 on Python 3.10.

    Returns
    -------
    list of str
        The names of the wx calls that were changed (empty when wx accepts floats already).
    """
    import wx

    if not wx_refuses_float_coordinates():
        return []

    class Point(wx.Point):
        def __init__(self, *args, **kwargs):
            super().__init__(*map(_to_int, args), **{k: _to_int(v) for k, v in kwargs.items()})

    class Size(wx.Size):
        def __init__(self, *args, **kwargs):
            super().__init__(*map(_to_int, args), **{k: _to_int(v) for k, v in kwargs.items()})

    Point.__name__, Size.__name__ = "Point", "Size"
    wx.Point, wx.Size = Point, Size

    set_value = wx.Gauge.SetValue
    wx.Gauge.SetValue = lambda self, pos: set_value(self, _to_int(pos))

    set_dimension = wx.SizerItem.SetDimension

    def set_dimension_rounded(self, pos, size):
        if isinstance(pos, tuple):
            pos = tuple(map(_to_int, pos))
        if isinstance(size, tuple):
            size = tuple(map(_to_int, size))
        return set_dimension(self, pos, size)

    wx.SizerItem.SetDimension = set_dimension_rounded
    return ["wx.Point", "wx.Size", "wx.SizerItem.SetDimension", "wx.Gauge.SetValue"]


def cellprofiler_arguments(argv: Sequence[str]) -> List[str]:
    """CellProfiler's arguments: ``argv`` with ``--plugins-directory`` added when it is missing."""
    args = list(argv)
    given = any(a == PLUGINS_SWITCH or a.startswith(PLUGINS_SWITCH + "=") for a in args)
    plugins = project_plugins_directory()
    if not given and plugins is not None and not any(a in HELP_SWITCHES for a in args):
        args = [PLUGINS_SWITCH, str(plugins)] + args
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run CellProfiler's own ``main`` with the plugin folder and, in the GUI, the wx rounding."""
    args = cellprofiler_arguments(sys.argv[1:] if argv is None else argv)
    if not any(a in HEADLESS_SWITCHES or a in HELP_SWITCHES for a in args):
        try:
            changed = round_float_coordinates()
        except ImportError:
            changed = []  # no wx: CellProfiler itself says the GUI cannot start
        if changed:
            sys.stderr.write("impartial-cellprofiler: this wxPython refuses float coordinates; "
                             "rounding them in %s (CellProfiler 5 passes floats)\n" % ", ".join(changed))
    sys.argv = ["cellprofiler"] + args
    from cellprofiler.__main__ import main as cellprofiler_main

    return cellprofiler_main() or 0


if __name__ == "__main__":
    sys.exit(main())
