"""The library API both front ends call: scribble decoding and checks as structured problems, the
model file's typed information, the model store's policy, and the object sets a model makes.

Tiny synthetic inputs and untrained models: what is tested is the decisions (reuse, backup, which
field a problem names), not accuracy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
from impartial_core.model import ImPartialModel
from impartial_core.model_io import read_model_info
from impartial_core.model_store import ModelStore, TrainingRequest
from impartial_core.network import ImPartialNet
from impartial_core.object_sets import instance_config, object_sets, relationships
from impartial_core.problems import InputError
from impartial_core.scribbles.values import ScribbleValues, decode_scribbles, missing_classes


# ---------------------------------------------------------------- scribble decoding
def test_decoding_undoes_a_readers_rescaling():
    labels = np.array([[0, 1, 2], [3, 0, 7]])
    np.testing.assert_array_equal(decode_scribbles(labels.astype(np.uint8)), labels)
    np.testing.assert_array_equal(decode_scribbles(labels / 255.0), labels)  # 8-bit, as CellProfiler loads it
    np.testing.assert_array_equal(decode_scribbles(labels / 65535.0), labels)  # 16-bit
    np.testing.assert_array_equal(decode_scribbles(labels / 4095.0, scale=4095), labels)  # the reader's own scale
    np.testing.assert_array_equal(decode_scribbles(np.dstack([labels] * 3).astype(np.uint8)), labels)  # grey as RGB


@pytest.mark.parametrize("data, kind", [
    (np.dstack([np.zeros((4, 4)), np.ones((4, 4)), np.zeros((4, 4))]), "colour"),
    (np.full((4, 4), 0.123456), "not_whole_numbers"),
])
def test_undecodable_scribbles_are_problems_of_the_scribble_input(data, kind):
    with pytest.raises(InputError) as raised:
        decode_scribbles(data)
    assert (raised.value.first.field, raised.value.first.kind) == ("scribbles", kind)


# ---------------------------------------------------------------- scribble values and classes
def test_two_classes_on_one_value_name_the_second_class():
    problems = ScribbleValues(5, 7, 5).problems()
    assert [(p.field, p.kind, p.value) for p in problems] == [("cytoplasm", "same_value", 5)]
    assert "background and cytoplasm classes are both 5" in problems[0].message
    # for nuclei alone the cytoplasm value is not used: it yields to the others instead of clashing
    nuclei_only = ScribbleValues(5, 7, 5, uses_cytoplasm=False)
    assert nuclei_only.problems() == [] and nuclei_only.mapping() == {5: 1, 7: 2, 4: 4}  # 4: the split stroke


def test_values_of_no_class_are_listed_with_a_hint_for_signed_files():
    values = ScribbleValues(5, 7, 9)
    np.testing.assert_array_equal(values.to_classes(np.array([[0, 5], [7, 9]])), [[0, 1], [2, 3]])
    problem = values.unknown_values(np.array([[0, 5], [8, 9]]))
    assert (problem.field, problem.kind, problem.value) == ("scribbles", "unknown_values", (8,))
    assert "unsigned" not in problem.message
    assert "unsigned 8- or 16-bit" in values.unknown_values(np.array([[32773, 5]])).message
    with pytest.raises(InputError, match=r"\[8\]"):
        values.to_classes(np.array([[8]]))


def test_missing_classes_say_which_task_and_role_lack_scribbles():
    nothing = [np.zeros((4, 4), np.uint8)] * 2
    assert [p.kind for p in missing_classes(nothing, tasks_for("nuclei", 1))] == ["no_scribbles"]
    background_only = [np.ones((4, 4), np.uint8)]
    problems = missing_classes(background_only, tasks_for("nuclei+cells", 1))
    assert [(p.kind, p.value) for p in problems] == [("missing_class", (2,)), ("missing_class", (2, 3))]
    assert "no foreground scribbles for the nuclei task in any image: draw some nucleus" in problems[0].message
    complete = [np.array([[1, 2, 3]], np.uint8)]
    assert missing_classes(complete, tasks_for("nuclei+cells", 1)) == []


# ---------------------------------------------------------------- model files
def _untrained(channel_names=("DNA",), task="nuclei", nuclear_channel=0, fingerprint=""):
    torch.manual_seed(0)
    net = ImPartialNet(NetworkConfig(len(channel_names), 4), tasks_for(task, len(channel_names), nuclear_channel))
    return ImPartialModel(net.eval(), {"nuclei": 0.5, "cells": 0.5}, tuple(channel_names), TrainingConfig(), fingerprint)


def test_model_info_names_what_differs_from_a_run(tmp_path):
    path = tmp_path / "m.safetensors"
    _untrained(("Membrane", "DNA"), nuclear_channel=1).save(path)
    info = read_model_info(path)
    assert (info.n_channels, info.channel_names, info.task_names, info.nuclear_channel) == (
        2, ("Membrane", "DNA"), ("nuclei",), 1)
    assert info.problems_with(["Membrane", "DNA"], ["nuclei"], 1) == []
    assert [(p.field, p.kind, p.value) for p in info.problems_with(["DNA"], ["nuclei"], 0)] == [("channels", "count", 2)]
    found = info.problems_with(["DNA", "Membrane"], ["nuclei", "cells"], 0)
    assert [(p.field, p.value) for p in found] == [("channels", ("Membrane", "DNA")), ("nuclear_channel", 1),
                                                  ("tasks", ("nuclei",))]
    assert "learnt nuclei from channel 2 (DNA)" in found[1].message


# ---------------------------------------------------------------- the model store
def _request(seed=0, device="auto", **training):
    image = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) % 7
    scribbles = np.zeros((32, 32), np.uint8)
    scribbles[2, 2:10], scribbles[20, 20:25] = 1, 2
    return TrainingRequest([image], [scribbles], tasks_for("nuclei", 1), NetworkConfig(1, 4),
                           TrainingConfig(seed=seed, device=device, max_iterations=1, **training))


class _Trainer:
    """Stands for ImPartialModel.train: an untrained model with the request's fingerprint."""

    def __init__(self):
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return _untrained(fingerprint=request.fingerprints()[0])


def test_the_store_reuses_a_file_of_the_same_model_and_backs_up_another(tmp_path):
    path, train = tmp_path / "m.safetensors", _Trainer()
    first = ModelStore().train_or_reuse(path, _request(), train)
    assert (first.source, first.backup, len(train.requests)) == ("trained", None, 1)
    stamp = path.stat().st_mtime_ns
    # a new session with only the file, training elsewhere: the file is loaded, nothing is written
    again = ModelStore().train_or_reuse(path, _request(device="cpu"), train)
    assert again.source == "file" and len(train.requests) == 1 and path.stat().st_mtime_ns == stamp
    before = path.read_bytes()
    other = ModelStore().train_or_reuse(path, _request(seed=1), train)
    assert other.source == "trained" and len(train.requests) == 2
    assert other.backup.name.startswith("m.") and other.backup.name.endswith(".bak.safetensors")
    assert other.backup.read_bytes() == before and path.read_bytes() != before


def test_a_file_that_version_0_1_wrote_after_training_on_the_cpu_is_reused(tmp_path):
    """Version 0.1 hashed every training setting but cuda_graphs, its device among them: a model it
    trained with "Use a GPU" unticked (device "cpu") holds that fingerprint, and is still reused."""
    import dataclasses
    import hashlib
    import json

    request = _request(device="cpu", haze=0.0)   # version 0.1 had no haze augmentation
    digest = hashlib.sha256()  # the fingerprint as version 0.1 computed it
    for array in list(request.images) + list(request.scribbles):
        array = np.ascontiguousarray(array[None] if array.dtype == np.float32 else array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    training = {k: v for k, v in dataclasses.asdict(request.training).items() if k not in ("cuda_graphs", "haze")}
    extra = {"tasks": [dataclasses.asdict(t) for t in request.tasks], "start_from": ""}
    for data in (dataclasses.asdict(request.network), training, extra):
        digest.update(json.dumps(data, sort_keys=True).encode())
    old = _untrained(fingerprint=digest.hexdigest())
    old.training = request.training
    path = tmp_path / "old.safetensors"
    old.save(path)
    assert digest.hexdigest() != request.fingerprints()[0]
    for device in ("cpu", "auto"):
        assert ModelStore().train_or_reuse(path, _request(device=device, haze=0.0), _Trainer()).source == "file"
    assert ModelStore().train_or_reuse(path, _request(seed=1, device="cpu", haze=0.0), _Trainer()).source == "trained"


def test_a_file_from_before_the_haze_augmentation_is_not_taken_for_a_hazed_training(tmp_path):
    """A model file without the haze setting was trained without it: read back as haze 0, reused
    by a request for that training, trained anew for today's default training."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from impartial_core.model_io import read_model_info

    request = _request(haze=0.0)
    old = _untrained(fingerprint=request.fingerprints()[0])
    old.training = request.training
    path = tmp_path / "old.safetensors"
    old.save(path)
    # drop the setting from the file's metadata, as a version without it wrote the file
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    metadata = json.loads(header["impartial"])
    del metadata["training"]["haze"]
    save_file(tensors, str(path), metadata={**header, "impartial": json.dumps(metadata)})
    assert read_model_info(path).training.haze == 0.0
    assert ModelStore().train_or_reuse(path, _request(haze=0.0), _Trainer()).source == "file"
    assert ModelStore().train_or_reuse(path, _request(), _Trainer()).source == "trained"


def test_the_store_keeps_a_bounded_number_of_models(tmp_path):
    store, train = ModelStore(max_models=1), _Trainer()
    store.train_or_reuse(tmp_path / "a.safetensors", _request(seed=0), train)
    store.train_or_reuse(tmp_path / "b.safetensors", _request(seed=1), train)
    assert store.train_or_reuse(tmp_path / "b.safetensors", _request(seed=1), train).source == "memory"
    assert store.train_or_reuse(tmp_path / "a.safetensors", _request(seed=0), train).source == "file"
    assert len(train.requests) == 2


# ---------------------------------------------------------------- object sets
def test_object_sets_and_their_relationships():
    assert [s.name for s in object_sets(("nuclei",))] == ["nuclei"]
    assert [s.name for s in object_sets(("cells",))] == ["cells"]
    made = object_sets(("nuclei", "cells"))
    assert [(s.name, s.task, s.has_threshold) for s in made] == [
        ("nuclei", "nuclei", True), ("cells", "cells", True), ("cytoplasm", "cells", False)]
    assert [(a.name, b.name) for a, b in relationships(("nuclei", "cells"))] == [
        ("nuclei", "cells"), ("nuclei", "cytoplasm"), ("cells", "cytoplasm")]
    assert relationships(("cells",)) == ()
    config = instance_config(0.4, 33, split_touching=False)
    assert (config.threshold, config.min_size, config.cell_min_size, config.split_touching) == (0.4, 33, 33, False)
