"""The ``impartial`` command line as the README shows it: train, predict, evaluate, info, scribbles."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from .synthetic import blobs

REPO = Path(__file__).resolve().parents[1]


# ---------------- train, predict, evaluate and info, as the README shows them
def _tiff_inputs(folder: Path):
    image, truth, scribbles = blobs(seed=3, size=128, n=12)
    tifffile.imwrite(folder / "a.tif", image)
    tifffile.imwrite(folder / "a_s.tif", scribbles)
    return truth


def test_command_line_contract(tmp_path):
    truth = _tiff_inputs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "impartial_core", *args], cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=600)
    trained = run("train", "--image", "a.tif", "--scribbles", "a_s.tif", "--task", "nuclei", "--model", "m.safetensors",
                  "--seed", "1", "--iterations", "60", "--width", "8", "--quiet")
    assert trained.returncode == 0, trained.stderr
    predicted = run("predict", "--model", "m.safetensors", "--image", "a.tif", "--out-dir", "out")
    assert predicted.returncode == 0, predicted.stderr
    labels = tifffile.imread(tmp_path / "out" / "a_nuclei.tif")
    probability = tifffile.imread(tmp_path / "out" / "a_nuclei_probability.tif")
    uncertainty = tifffile.imread(tmp_path / "out" / "a_nuclei_uncertainty.tif")
    assert probability.dtype == np.float32 and uncertainty.dtype == np.float32
    assert abs(int(labels.max()) - int(truth.max())) <= 4
    tifffile.imwrite(tmp_path / "truth.tif", truth)
    scored = run("evaluate", "--pred", "out/a_nuclei.tif", "--truth", "truth.tif", "--json")
    assert scored.returncode == 0 and '"f1_iou50"' in scored.stdout
    again = run("train", "--image", "a.tif", "--scribbles", "a_s.tif", "--model", "m.safetensors", "--quiet")
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = run("predict", "--model", "a.tif", "--image", "a.tif", "--out-dir", "out")
    assert wrong.returncode == 2 and "not a readable ImPartial model file" in wrong.stderr
    info = run("info", "--model", "m.safetensors")
    assert info.returncode == 0 and '"training_data_fingerprint"' in info.stdout and '"nuclei"' in info.stdout


# ---------------- scribble conversions
def test_command_line_scribble_conversions(tmp_path):
    """The README's `impartial scribbles` routes: Fiji ROI zip, RGB paint image, other label values."""
    vectra = REPO / "examples" / "data" / "vectra_2ch"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "impartial_core", "scribbles", *args], cwd=tmp_path,
                                       env=env, capture_output=True, text=True, timeout=300)
    rois = run("--from-rois", str(vectra / "image1_cells.roi.zip"), "--like", str(vectra / "image1.tif"), "--out", "r.tif")
    assert rois.returncode == 0, rois.stderr
    from_rois = tifffile.imread(tmp_path / "r.tif")
    assert from_rois.shape == (400, 400) and set(np.unique(from_rois)) == {0, 1, 3}
    paint = np.zeros((20, 30, 3), np.uint8)
    paint[2, :] = (0, 0, 255)
    paint[10, 5:9] = (255, 0, 0)
    paint[15, 5:9] = (0, 255, 0)
    tifffile.imwrite(tmp_path / "paint.tif", paint)
    assert run("--from-rgb", "paint.tif", "--out", "p.tif").returncode == 0
    painted = tifffile.imread(tmp_path / "p.tif")
    assert (painted[2] == 1).all() and (painted[10, 5:9] == 2).all() and (painted[15, 5:9] == 3).all()
    assert (painted == 0).sum() == 20 * 30 - 30 - 8
    tifffile.imwrite(tmp_path / "labels.tif", (painted * 10).astype(np.uint8))
    assert run("--from-labels", "labels.tif", "--remap", "10:1,20:2,30:3", "--out", "l.tif").returncode == 0
    assert np.array_equal(tifffile.imread(tmp_path / "l.tif"), painted)
    bad = run("--from-labels", "labels.tif", "--remap", "10:1", "--out", "x.tif")
    assert bad.returncode == 2 and "20" in bad.stderr
