"""``impartial-cellprofiler``: the plugin folder it adds and the wx rounding it applies only where needed."""
import json
import subprocess
import sys

import pytest

from impartial_cellprofiler import launch
from tests import helpers_cp as H


def test_plugins_directory_is_added_when_missing():
    args = launch.cellprofiler_arguments(["-p", "x.cppipe"])
    assert args[:2] == ["--plugins-directory", str(H.PLUGINS)]
    assert args[2:] == ["-p", "x.cppipe"]


@pytest.mark.parametrize("given", [["--plugins-directory", "/elsewhere"], ["--plugins-directory=/elsewhere"]])
def test_plugins_directory_given_by_the_user_is_kept(given):
    assert launch.cellprofiler_arguments(given + ["-c"]) == given + ["-c"]


def test_help_is_passed_on_unchanged():
    assert launch.cellprofiler_arguments(["--help"]) == ["--help"]


ROUNDING = r"""
import json, wx
from impartial_cellprofiler import launch
refused = launch.wx_refuses_float_coordinates()
changed = launch.round_float_coordinates()
print(json.dumps({"refused": refused, "changed": changed, "accepts_now": not launch.wx_refuses_float_coordinates(),
                  "point": list(wx.Point(0.4, 1.6)), "size": list(wx.Size(2.4, 3.0)), "gauge": callable(wx.Gauge.SetValue)}))
"""


def test_wx_rounding_only_where_wx_refuses_floats():
    pytest.importorskip("wx")
    done = subprocess.run([sys.executable, "-c", ROUNDING], capture_output=True, text=True, cwd=str(H.REPO))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # changed exactly when this wx refuses floats (wxPython 4.2 on Python 3.10+), never otherwise
    assert bool(result["changed"]) == result["refused"], result
    assert result["accepts_now"]
    if result["refused"]:  # rounded to the nearest integer, not truncated
        assert result["point"] == [0, 2] and result["size"] == [2, 3]
