"""Bad inputs, faults and untrusted model files, at the library and command-line level."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impartial_core.config import NetworkConfig, TrainingConfig, nuclei_task, tasks_for
from impartial_core.model import ImPartialModel
from impartial_core.model_io import ModelFileError
from impartial_core.network import ImPartialNet
from impartial_core.prediction import predict_image
from impartial_core.scribbles import validate_scribbles

from .synthetic import blobs

REPO = Path(__file__).resolve().parents[1]
FAST = TrainingConfig(max_iterations=40, batch_size=4, patch_size=64, eval_every=20, learning_rate=3e-3)


@pytest.fixture(scope="module")
def model():
    image, _, scribbles = blobs(seed=1)
    return ImPartialModel.train([image], [scribbles], [nuclei_task()], NetworkConfig(1, 8), FAST)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "model.safetensors"
    model.save(path)
    return path


# ---------------------------------------------------------------- untrusted model files
def test_a_pickle_that_would_run_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = tmp_path / "evil.safetensors"
    crafted.write_bytes(pickle.dumps({"state": Exploit()}))
    with pytest.raises(ModelFileError, match="not a readable ImPartial model file"):
        ImPartialModel.load(crafted)
    # The same payload as a torch.save file (a zip of pickles) is refused too.
    torch_file = tmp_path / "evil.pt"
    torch.save({"x": Exploit()}, torch_file)
    with pytest.raises(ModelFileError):
        ImPartialModel.load(torch_file)
    assert not marker.exists()


def test_truncated_or_corrupted_files_are_refused(model_file, tmp_path):
    data = model_file.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        ImPartialModel.load(truncated)
    corrupted = tmp_path / "corrupted.safetensors"
    corrupted.write_bytes(b"\xff" * 64 + data[64:])
    with pytest.raises(ModelFileError):
        ImPartialModel.load(corrupted)


def test_foreign_safetensors_without_our_metadata_are_refused(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(ModelFileError, match="not written by ImPartial"):
        ImPartialModel.load(other)


def test_model_metadata_must_match_the_images(model_file):
    loaded = ImPartialModel.load(model_file)
    with pytest.raises(ModelFileError, match="trained on 1 channel"):
        loaded.predict(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ModelFileError, match="segments nuclei, but nuclei \\+ cells"):
        loaded.check_compatible(1, ["nuclei", "cells"])


def _edited_copy(model_file: Path, folder: Path, edit) -> Path:
    """A copy of ``model_file`` whose JSON metadata ``edit`` changed in place or replaced (by returning
    something); the weights are unchanged."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model_file), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["impartial"])
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    replaced = edit(metadata)
    metadata = metadata if replaced is None else replaced
    copy = folder / "edited.safetensors"
    save_file(state, str(copy), metadata={"impartial": json.dumps(metadata)})
    return copy


def test_keys_a_newer_version_adds_to_a_task_are_ignored(model, model_file, tmp_path):
    edited = _edited_copy(model_file, tmp_path, lambda meta: meta["tasks"][0].update(new_option=1))
    loaded = ImPartialModel.load(edited)
    assert loaded.tasks == model.tasks and loaded.thresholds == pytest.approx(model.thresholds)


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta["training"].update(time_budget_s=0), "time_budget_s must be positive"),
    (lambda meta: meta.update(training=[1, 2]), "TrainingConfig settings must be a JSON object"),
    (lambda meta: meta.update(tasks=5), "metadata"),
    (lambda meta: [meta], "not an ImPartial model file"),
    (lambda meta: meta.update(format_version="one"), "format version 'one' is not a number"),
    (lambda meta: meta["network"].update(width=10 ** 7), "width must be a whole number from 1 to 256"),
    (lambda meta: meta["network"].update(depth=40), "depth must be a whole number from 1 to 6"),
    (lambda meta: meta["network"].update(width=256, depth=4), "at most 2048"),
    # Within the limits but not the weights stored: refused before the network is built.
    (lambda meta: meta["tasks"][0].update(n_foreground_components=10 ** 8), "weights do not match"),
], ids=["time-budget-0", "training-not-an-object", "tasks-not-a-list", "metadata-not-an-object", "bad-version",
        "huge-width", "huge-depth", "huge-deepest-level", "huge-head"])
def test_damaged_or_crafted_metadata_is_refused_naming_the_file(model_file, tmp_path, edit, message):
    """A model file's metadata is checked as a whole, and a network it describes is never built
    larger than its weights (a crafted file cannot exhaust memory)."""
    edited = _edited_copy(model_file, tmp_path, edit)
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match=message) as refused:
        ImPartialModel.load(edited)
    assert str(edited) in str(refused.value)
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------- atomic, never-clobbering writes
def test_existing_model_is_never_silently_replaced(model, model_file):
    before = model_file.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        model.save(model_file)
    assert model_file.read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_model_file_gets_the_permissions_the_umask_allows(model, tmp_path):
    """Not owner-only (as a temporary file would be): cluster jobs of other users read the model."""
    umask = os.umask(0o022)
    path = tmp_path / "shared.safetensors"
    try:
        model.save(path)
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_disk_full_leaves_the_earlier_model_intact(model, model_file, monkeypatch):
    before = model_file.read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ModelFileError, match="No space left on device.*unchanged"):
        model.save(model_file, overwrite=True)
    assert model_file.read_bytes() == before
    assert [p.name for p in model_file.parent.iterdir()] == [model_file.name]


def test_missing_folder_is_named(model, tmp_path):
    with pytest.raises(ModelFileError, match="folder .*nowhere does not exist"):
        model.save(tmp_path / "nowhere" / "m.safetensors")


def _tiff_inputs(folder: Path):
    image, truth, scribbles = blobs(seed=3, size=128, n=12)
    tifffile.imwrite(folder / "a.tif", image)
    tifffile.imwrite(folder / "a_s.tif", scribbles)
    return truth


def test_killing_training_leaves_no_partial_file_and_keeps_the_old_model(tmp_path):
    _tiff_inputs(tmp_path)
    old = tmp_path / "model.safetensors"
    old.write_bytes(b"the user's earlier model")
    command = [sys.executable, "-m", "impartial_core", "train", "--image", "a.tif", "--scribbles", "a_s.tif",
               "--model", "model.safetensors", "--overwrite", "--iterations", "100000", "--time-budget", "600",
               "--width", "4", "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    time.sleep(8)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert old.read_bytes() == b"the user's earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "a_s.tif", "model.safetensors"]


# ---------------------------------------------------------------- bad images
def test_constant_zero_and_non_finite_images_give_no_objects_and_no_crash(model):
    for image in (np.zeros((64, 80)), np.full((64, 80), 5.0), np.full((64, 80), np.nan)):
        maps = model.predict(image)
        objects = model.segment(maps)
        assert np.isfinite(maps["nuclei"].foreground_probability).all()
        assert objects.nuclei.shape == (64, 80)
    image, _, _ = blobs(seed=4)
    image[10:12, 10:12] = np.nan
    image[50, 50] = np.inf
    assert np.isfinite(model.predict(image)["nuclei"].foreground_probability).all()


def test_uint8_uint16_and_float_inputs_give_the_same_objects(model):
    image, _, _ = blobs(seed=5)
    scaled = (image - image.min()) / (image.max() - image.min())
    labels = [model.segment(model.predict(x)).nuclei for x in
              (scaled.astype(np.float32), (scaled * 65535).astype(np.uint16), (scaled * 255).astype(np.uint8))]
    assert labels[0].max() > 0
    for other in labels[1:]:
        agreement = ((labels[0] > 0) == (other > 0)).mean()
        assert agreement > 0.99 and abs(int(other.max()) - int(labels[0].max())) <= 1


def test_stacks_and_time_series_get_a_2d_only_message(model):
    with pytest.raises(ValueError, match="2-D images"):
        model.predict(np.zeros((3, 2, 64, 64)))


def test_images_smaller_than_a_patch_train_and_predict():
    image, _, scribbles = blobs(seed=6, size=40, n=3)
    small = ImPartialModel.train([image], [scribbles], [nuclei_task()], NetworkConfig(1, 4),
                                 TrainingConfig(max_iterations=3, batch_size=2, patch_size=64, eval_every=2))
    assert small.predict(image[:13, :21])["nuclei"].foreground_probability.shape == (13, 21)


def test_scribbles_covering_every_pixel_still_train():
    image, truth, _ = blobs(seed=7, size=64, n=4)
    full = np.where(truth > 0, 2, 1).astype(np.uint8)
    trained = ImPartialModel.train([image], [full], [nuclei_task()], NetworkConfig(1, 4),
                                   TrainingConfig(max_iterations=4, batch_size=2, patch_size=32, eval_every=2))
    assert trained.training_summary["iterations"] == 4


@pytest.mark.parametrize("bad, message", [
    (np.zeros((64, 64, 3), np.uint8), "RGB"),
    (np.full((64, 64), 1.5), "whole numbers|integer"),
    (np.zeros((32, 64), np.uint8), "32"),
])
def test_bad_scribble_images_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_scribbles(bad, (64, 64), source="my_scribbles.tif")


def test_scribble_values_outside_the_mapping_are_listed():
    from impartial_core.scribbles import remap_scribbles

    with pytest.raises(ValueError, match="^plate2/A01_scribbles.tif: values \\[7\\]"):
        remap_scribbles(np.array([[0, 5, 7]]), {5: 1}, source="plate2/A01_scribbles.tif")


def test_gpu_asked_for_but_absent_falls_back_to_cpu_with_a_warning(caplog):
    from impartial_core.devices import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with caplog.at_level("WARNING", logger="impartial_core.devices"):
        assert resolve_device("cuda").type == "cpu"
    assert "'cuda' was requested but is not available; using the CPU" in caplog.text


# ---------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None)
@given(height=st.integers(20, 140), width=st.integers(20, 140), seed=st.integers(0, 10_000),
       tile=st.sampled_from([48, 64, 96]))
def test_tiled_prediction_equals_untiled_on_random_images(height, width, seed, tile):
    torch.manual_seed(0)
    net = ImPartialNet(NetworkConfig(1, 4), tasks_for("nuclei", 1)).eval()
    image = np.random.default_rng(seed).random((1, height, width)).astype(np.float32)
    whole = predict_image(net, image, tile_size=1024)["nuclei"].foreground_probability
    tiled = predict_image(net, image, tile_size=tile, overlap=tile // 2)["nuclei"].foreground_probability
    assert whole.shape == (height, width)
    assert np.abs(whole - tiled).max() < 0.01


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
