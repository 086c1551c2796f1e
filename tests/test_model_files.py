"""Model files: data that is never executed, checked as a whole, written without ever clobbering
or leaving a half-written model, and reused while their training fingerprint matches."""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
from impartial_core import model as model_module
from impartial_core.model import ImPartialModel
from impartial_core.model_io import ModelFileError

from .synthetic import blobs

REPO = Path(__file__).resolve().parents[1]


# ---------------- a model file is data: crafted or damaged files are refused, never executed
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


def test_truncated_or_corrupted_files_are_refused(blob_model_file, tmp_path):
    data = blob_model_file.read_bytes()
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


def test_keys_a_newer_version_adds_to_a_task_are_ignored(blob_model, blob_model_file, tmp_path):
    edited = _edited_copy(blob_model_file, tmp_path, lambda meta: meta["tasks"][0].update(new_option=1))
    loaded = ImPartialModel.load(edited)
    assert loaded.tasks == blob_model.tasks and loaded.thresholds == pytest.approx(blob_model.thresholds)


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
def test_damaged_or_crafted_metadata_is_refused_naming_the_file(blob_model_file, tmp_path, monkeypatch, edit, message):
    """A model file's metadata is checked as a whole, and a network it describes is never built
    larger than its weights (a crafted file cannot exhaust memory)."""
    edited = _edited_copy(blob_model_file, tmp_path, edit)
    built = []

    def recorded(*args, **kwargs):
        net = network_class(*args, **kwargs)
        built.append({parameter.device.type for parameter in net.parameters()})
        return net

    network_class = model_module.ImPartialNet
    monkeypatch.setattr(model_module, "ImPartialNet", recorded)
    with pytest.raises(ModelFileError, match=message) as refused:
        ImPartialModel.load(edited)
    assert str(edited) in str(refused.value)
    assert all(devices == {"meta"} for devices in built), built   # described on the meta device only, never allocated


# ---------------- a model file fits its images
def test_model_metadata_must_match_the_images(blob_model_file):
    loaded = ImPartialModel.load(blob_model_file)
    with pytest.raises(ModelFileError, match="trained on 1 channel"):
        loaded.predict(np.zeros((2, 64, 64), np.float32))
    with pytest.raises(ModelFileError, match="segments nuclei, but nuclei \\+ cells"):
        loaded.check_compatible(1, ["nuclei", "cells"])


# ---------------- writing never clobbers: atomic, refusing, intact after a failure or a kill
def test_existing_model_is_never_silently_replaced(blob_model, blob_model_file):
    before = blob_model_file.read_bytes()
    with pytest.raises(ModelFileError, match="already exists"):
        blob_model.save(blob_model_file)
    assert blob_model_file.read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_model_file_gets_the_permissions_the_umask_allows(blob_model, tmp_path):
    """Not owner-only (as a temporary file would be): cluster jobs of other users read the model."""
    umask = os.umask(0o022)
    path = tmp_path / "shared.safetensors"
    try:
        blob_model.save(path)
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_disk_full_leaves_the_earlier_model_intact(blob_model, blob_model_file, monkeypatch):
    before = blob_model_file.read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ModelFileError, match="No space left on device.*unchanged"):
        blob_model.save(blob_model_file, overwrite=True)
    assert blob_model_file.read_bytes() == before
    assert [p.name for p in blob_model_file.parent.iterdir()] == [blob_model_file.name]


def test_missing_folder_is_named(blob_model, tmp_path):
    with pytest.raises(ModelFileError, match="folder .*nowhere does not exist"):
        blob_model.save(tmp_path / "nowhere" / "m.safetensors")


# A child process that trains a tiny model through the command line and saves it over an earlier
# one, but pauses halfway through writing the file's bytes: it writes the first half, flushes it,
# says "writing" and sleeps until it is killed.
_PAUSED_WRITER = """
import os, sys, time
import impartial_core.model_io as model_io

class HalfWritten:
    def __init__(self, handle):
        self.handle = handle
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)
    def write(self, data):
        self.handle.write(data[:len(data) // 2])
        self.handle.flush()
        print("writing", flush=True)
        time.sleep(600)

class PausingOs:
    def __getattr__(self, name):
        return getattr(os, name)
    def fdopen(self, *args, **kwargs):
        return HalfWritten(os.fdopen(*args, **kwargs))

model_io.os = PausingOs()
from impartial_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_while_the_model_file_is_written_keeps_the_earlier_model(blob_model_file, tmp_path):
    """SIGKILL in the middle of writing a model's bytes (no clean-up can run): the earlier model
    is still whole under its name, and the half-written bytes are only in the writer's hidden
    temporary file, which is no model file (loading it is refused) and is never a reader's name."""
    image, _, scribbles = blobs(seed=3, size=64, n=4)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    old = tmp_path / "model.safetensors"
    old.write_bytes(blob_model_file.read_bytes())
    command = [sys.executable, "-c", _PAUSED_WRITER, "train", "--image", "a.tif", "--scribbles", "a_s.tif",
               "--model", "model.safetensors", "--overwrite", "--iterations", "3", "--width", "4", "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = process.stdout.readline()
        assert said == "writing\n", process.communicate(timeout=60)[1]
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".model.safetensors.")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0   # inside the write: half of it is on disk
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert old.read_bytes() == blob_model_file.read_bytes()
    assert ImPartialModel.load(old).thresholds == ImPartialModel.load(blob_model_file).thresholds
    # beside it at most a dated backup of that same earlier model (replacing a model keeps one)
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    backups = [name for name in visible if name.startswith("model.") and name.endswith(".bak.safetensors")]
    assert sorted(set(visible) - set(backups)) == ["a.tif", "a_s.tif", "model.safetensors"]
    assert all((tmp_path / name).read_bytes() == old.read_bytes() for name in backups)
    assert partial[0].exists() and partial[0].name.endswith(".partial")
    with pytest.raises(ModelFileError, match="not a readable ImPartial model file"):
        ImPartialModel.load(partial[0])


# ---------------- a saved model is reused while its training fingerprint matches
def test_training_fingerprint_is_stable_across_versions_and_execution_settings():
    """A saved model is reused while its training fingerprint matches, so the fingerprint of the
    same inputs must not change with a release that only adds a way of executing the step: the
    value below is what version 0.1 computed. A change of it makes every user's pipeline train its
    models again. Where, at what precision and how the step runs never changes it; a learnt
    setting does."""
    from impartial_core.model import ImPartialModel

    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) % 17
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5, 5:20], scribbles[30, 30:40] = 1, 2
    inputs = ([image], [scribbles], tasks_for("nuclei", 1), NetworkConfig(1, 16))
    # the training version 0.1 did, before the haze augmentation existed (haze 0)
    fingerprint = ImPartialModel.fingerprint_for(*inputs, TrainingConfig(haze=0.0))
    assert fingerprint == "56868f15d7c575367f2f327fde61312f7bf5ca39fc9e603505b0d518d91c5482"
    # a learnt setting added later changes it where it differs from what training did before
    assert ImPartialModel.fingerprint_for(*inputs, TrainingConfig()) != fingerprint
    for execution in ({"cuda_graphs": False}, {"device": "cpu"}, {"mixed_precision": False},
                      {"compile_network": True}):
        assert ImPartialModel.fingerprint_for(*inputs, TrainingConfig(haze=0.0, **execution)) == fingerprint, execution
    assert ImPartialModel.fingerprint_for(*inputs, TrainingConfig(haze=0.0, seed=1)) != fingerprint
    # a file that version 0.1 wrote after training on the CPU only hashed device "cpu": still recognised
    cpu_only = ImPartialModel.fingerprints_for(*inputs, TrainingConfig(haze=0.0), saved_training=TrainingConfig(device="cpu", haze=0.0))
    assert cpu_only[0] == fingerprint and cpu_only[1] != fingerprint


def test_every_training_setting_is_either_learnt_or_how_training_runs():
    """The fingerprint covers an allow-list: a new TrainingConfig field must be placed in one list."""
    import dataclasses

    from impartial_core.config import EXECUTION_TRAINING_FIELDS, LEARNT_TRAINING_FIELDS

    names = [field.name for field in dataclasses.fields(TrainingConfig)]
    assert sorted(LEARNT_TRAINING_FIELDS + EXECUTION_TRAINING_FIELDS) == sorted(names)
    assert not set(LEARNT_TRAINING_FIELDS) & set(EXECUTION_TRAINING_FIELDS)
