"""Shared helpers for the tests that run CellProfiler itself (headless, batch, GUI).

- which CellProfiler line this interpreter runs (``IMPARTIAL_CP_LINE`` = cp5 | cp42, else guessed
  from cellprofiler_core's version), and its ``cellprofiler`` executable (next to sys.executable);
- small inputs: crops of the bundled MIBI and Vectra images, written as files CellProfiler reads;
- programmatic pipeline edits: load a shipped .cppipe with cellprofiler_core, change settings
  (e.g. ImPartial's training budget), add modules, dump to a temp file;
- headless runs with a log file and a timeout, and readers for the CSV outputs.

CellProfiler exits 0 after many failures: callers must assert on the output files, not on the
return code (``run_cellprofiler`` returns it only for messages).
"""
import csv
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from impartial_cellprofiler import pipelines
from impartial_cellprofiler.pipelines import absolute_folder, add_module, set_values, start_headless, write_pipeline  # noqa: F401
from impartial_cellprofiler.pipelines import find_module as module  # noqa: F401

REPO = pathlib.Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
PIPELINES = REPO / "pipelines"
DATA = REPO / "examples" / "data"
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"

#: ImPartial settings that make training short enough for tests on a 2-core machine
FAST_TRAINING = {"time_budget": 25.0, "show_advanced": True, "network_width": 8, "max_iterations": 150,
                 "patch_size": 64, "batch_size": 4}


def cp_line():
    line = os.environ.get("IMPARTIAL_CP_LINE")
    if line:
        return line
    import cellprofiler_core

    return "cp42" if cellprofiler_core.__version__.startswith("4.") else "cp5"


def cellprofiler_executable():
    return pathlib.Path(sys.executable).parent / "cellprofiler"


def cellprofiler_env(threads=1):
    """Environment for a CellProfiler subprocess: Java for 4.2, few threads on a busy machine."""
    env = dict(os.environ)
    env.setdefault("JAVA_HOME", JAVA_HOME)
    env["MPLBACKEND"] = "Agg"
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    # the repository's impartial_core, whatever the current directory
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def line_arguments():
    """Extra command-line arguments of this line: CellProfiler 5 reads TIFF with imageio."""
    return ["-e", "imageio_reader"] if cp_line() == "cp5" else []


def run_cellprofiler(args, log_path, timeout=420, env=None, cwd=None):
    """Run this interpreter's cellprofiler with args (plus the plugins folder); log to log_path.

    Returns (return code, log text, seconds). Never trust the return code alone.
    """
    command = [str(cellprofiler_executable())] + [str(a) for a in args] + ["--plugins-directory", str(PLUGINS)]
    command += line_arguments()
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write("$ %s\n" % " ".join(command))
        log.flush()
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env or cellprofiler_env(),
                              timeout=timeout, cwd=cwd or str(REPO))
    return proc.returncode, pathlib.Path(log_path).read_text(errors="replace"), time.monotonic() - start


def popen_cellprofiler(args, log_path, env=None):
    """Start this interpreter's cellprofiler in the background (for parallel workers)."""
    command = [str(cellprofiler_executable())] + [str(a) for a in args] + ["--plugins-directory", str(PLUGINS)]
    command += line_arguments()
    log = open(log_path, "w")
    log.write("$ %s\n" % " ".join(command))
    log.flush()
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env or cellprofiler_env(),
                            cwd=str(REPO)), log


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


# ---------------------------------------------------------------------------------- pipelines
def load_pipeline(path):
    """(pipeline, load problems) of a .cppipe loaded with this interpreter's cellprofiler_core."""
    start_headless(PLUGINS)
    return pipelines.load_pipeline(path)


# ---------------------------------------------------------------------------------- inputs
def write_mibi_crops(folder, images=("image0", "image3"), crop=(slice(0, 200), slice(0, 200))):
    """Crops of MIBI images with their n100 scribbles and ground truth, named as the originals."""
    import tifffile

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem in images:
        for suffix in ("", "_scribbles_n100", "_nuclei_labels"):
            data = np.asarray(tifffile.imread(str(DATA / "mibi_dsdna" / ("%s%s.tif" % (stem, suffix)))))
            tifffile.imwrite(str(folder / ("%s%s.tif" % (stem, suffix))), np.ascontiguousarray(data[crop]))
    return folder


def write_vectra_crops(folder, images=("image1", "image2"), crop=(slice(0, 200), slice(0, 200))):
    """Crops of the derived per-channel Vectra files and scribbles (examples/make_vectra_inputs.py)."""
    import tifffile

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem in images:
        for suffix in ("_PanCK", "_DAPI", "_scribbles"):
            source = DATA / "vectra_2ch" / ("%s%s.tif" % (stem, suffix))
            data = np.asarray(tifffile.imread(str(source)))
            tifffile.imwrite(str(folder / source.name), np.ascontiguousarray(data[crop]))
    return folder


# ---------------------------------------------------------------------------------- outputs
def read_csv(path):
    with open(path, newline="") as fd:
        return list(csv.DictReader(fd))


def by_image(rows, key="ImageNumber"):
    result = {}
    for row in rows:
        result.setdefault(int(row[key]), []).append(row)
    return result


def column(rows, name, kind=float):
    return [kind(r[name]) for r in rows]
