"""The CellProfiler side of ImPartial: code that imports CellProfiler or wx.

``impartial_core`` holds the method and never imports CellProfiler; the module class itself lives in
``plugins/impartial.py`` (CellProfiler loads it from its plugins folder). What the module needs on
the CellProfiler side beyond its settings and ``run`` (the GUI launcher, the scribble editor's wx
view) lives here, in modules of one idea each.
"""
