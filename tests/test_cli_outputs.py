"""The command line's files and messages: output names, name clashes, ``--overwrite``, checks made
before any work, and errors that name the file or option at fault.

The commands run in-process (``cli.main``) on tiny images with an untrained model, so each test
takes well under a second: what is tested is where outputs go and what is refused, not accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import tifffile
import torch

from impartial_core import cli
from impartial_core.config import NetworkConfig, tasks_for
from impartial_core.imageio import image_stem
from impartial_core.model import ImPartialModel
from impartial_core.network import ImPartialNet

from .synthetic import blobs


def _run(capsys, *args: str) -> Tuple[int, str, str]:
    """Run ``impartial ARGS`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _model(folder: Path, task: str = "nuclei") -> Path:
    """An untrained one-channel model file (its outputs' names and counts are what matter here)."""
    torch.manual_seed(0)
    path = folder / f"{task}.safetensors"
    ImPartialModel(ImPartialNet(NetworkConfig(1, 4), tasks_for(task, 1)).eval(), {"nuclei": 0.5, "cells": 0.5}).save(path)
    return path


def _image(path: Path, seed: int = 0) -> Path:
    """A small synthetic nuclei image at ``path`` (its folder is made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, blobs(seed=seed, size=32, n=3)[0])
    return path


def _names(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- output names
@pytest.mark.parametrize("name, stem", [
    ("2024.01.05_A01.tif", "2024.01.05_A01"),
    ("plate.v2/A01.TIFF", "A01"),
    ("x.ome.tif", "x"),
    ("x.OME.TIFF", "x"),
    ("scan.1.png", "scan.1"),
    ("labels.npy", "labels"),
    (".tif", ".tif"),
])
def test_image_stem_removes_only_the_image_suffix(name, stem):
    assert image_stem(name) == stem


def test_predict_keeps_dotted_names_apart(tmp_path, capsys):
    """Dated names differ only after their first dot: each image gets its own outputs."""
    model = _model(tmp_path)
    images = [_image(tmp_path / "2024.01.05_A01.tif", 1), _image(tmp_path / "2024.01.05_A02.tif", 2),
              _image(tmp_path / "B.ome.tif", 3)]
    status, out, err = _run(capsys, "predict", "--model", model, *[a for i in images for a in ("--image", i)],
                            "--out-dir", tmp_path / "out")
    assert status == 0, err
    assert _names(tmp_path / "out") == sorted(f"{stem}_{part}.tif" for stem in ("2024.01.05_A01", "2024.01.05_A02", "B")
                                              for part in ("nuclei", "nuclei_probability", "nuclei_uncertainty"))
    assert len(out.splitlines()) == 3


@pytest.mark.parametrize("first, second", [("plate1/A01.tif", "plate2/A01.tif"), ("A01.tif", "A01.ome.tif")])
def test_predict_refuses_two_inputs_with_the_same_output_names_before_any_work(tmp_path, capsys, first, second):
    model = _model(tmp_path)
    _image(tmp_path / first)
    _image(tmp_path / second)
    status, _, err = _run(capsys, "predict", "--model", model, "--image", tmp_path / first, "--image", tmp_path / second,
                          "--out-dir", tmp_path / "out")
    assert status == 2
    assert first in err and second in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_predict_replaces_only_its_own_outputs_unless_overwrite(tmp_path, capsys):
    model, image = _model(tmp_path), _image(tmp_path / "A01.tif")
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "A01_nuclei_uncertainty.tif"
    mine.write_bytes(b"the user's file")
    status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", out)
    assert status == 2 and str(mine) in err and "--overwrite" in err
    assert mine.read_bytes() == b"the user's file" and _names(out) == [mine.name]
    status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", out, "--overwrite")
    assert status == 0, err
    assert tifffile.imread(mine).shape == (32, 32) and len(_names(out)) == 3
    status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", out)
    assert status == 0, err  # its own earlier outputs are replaced without --overwrite


def test_predict_never_writes_over_one_of_its_inputs(tmp_path, capsys):
    """``a.tif`` writes ``a_nuclei.tif``: when that is another input, even --overwrite is refused."""
    model = _model(tmp_path)
    inputs = [_image(tmp_path / "a_nuclei.tif", 1), _image(tmp_path / "a.tif", 2)]
    before = inputs[0].read_bytes()
    status, _, err = _run(capsys, "predict", "--model", model, "--image", inputs[0], "--image", inputs[1],
                          "--out-dir", tmp_path, "--overwrite")
    assert status == 2 and "input" in err
    assert inputs[0].read_bytes() == before


def test_predict_min_size_applies_to_cells(tmp_path, capsys):
    """With threshold 0 the whole 32x32 image is one cell: --min-size above its area removes it."""
    model, image = _model(tmp_path, "cells"), _image(tmp_path / "A01.tif")
    counts = {}
    for min_size in (0, 2000):
        out = tmp_path / f"out{min_size}"
        status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", out,
                              "--threshold", "0", "--no-split", "--min-size", min_size)
        assert status == 0, err
        counts[min_size] = int(tifffile.imread(out / "A01_cells.tif").max())
    assert counts == {0: 1, 2000: 0}


def test_predict_float32_writes_the_float32_maps(tmp_path, capsys):
    """``--float32`` runs the network in float32 where bfloat16 would be used (the maps of other
    float32 tools); without it the maps are those of ``predict``'s default precision."""
    from impartial_core.devices import bfloat16_native

    model, image = _model(tmp_path), _image(tmp_path / "A01.tif", seed=3)
    loaded, raw = ImPartialModel.load(model), tifffile.imread(image)
    written = {}
    for flag, mixed in (["--float32"], False), ([], True):
        out = tmp_path / f"out{mixed}"
        status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", out, *flag)
        assert status == 0, err
        written[mixed] = tifffile.imread(out / "A01_nuclei_probability.tif")
        assert np.array_equal(written[mixed], loaded.predict(raw, mixed_precision=mixed)["nuclei"].foreground_probability)
    assert np.array_equal(written[False], written[True]) != bfloat16_native(torch.device("cpu"))


# ---------------------------------------------------------------- scribbles
def test_simulated_scribbles_keep_dotted_names_and_are_not_replaced_without_overwrite(tmp_path, capsys):
    truths = []
    for index, name in enumerate(("2024.01.05_A01.tif", "2024.01.05_A02.tif")):
        truths.append(tmp_path / name)
        tifffile.imwrite(truths[-1], blobs(seed=index, size=32, n=3)[1])
    out = tmp_path / "out"
    command = ["scribbles", "--simulate", *truths, "--budget", "4", "--out-dir", out]
    status, _, err = _run(capsys, *command)
    assert status == 0, err
    assert _names(out) == ["2024.01.05_A01_scribbles.tif", "2024.01.05_A02_scribbles.tif"]
    assert _run(capsys, *command)[0] == 0  # a re-run replaces the files impartial wrote itself
    edited = out / "2024.01.05_A01_scribbles.tif"
    tifffile.imwrite(edited, tifffile.imread(edited))  # the user re-saves it (e.g. after editing)
    status, _, err = _run(capsys, *command)
    assert status == 2 and str(edited) in err
    assert _run(capsys, *command, "--overwrite")[0] == 0
    same_name = tmp_path / "other" / "2024.01.05_A01.tif"
    same_name.parent.mkdir()
    tifffile.imwrite(same_name, blobs(seed=5, size=32, n=3)[1])
    status, _, err = _run(capsys, "scribbles", "--simulate", truths[0], same_name, "--out-dir", tmp_path / "out2")
    assert status == 2 and "would both write" in err and not (tmp_path / "out2").exists()


def test_converted_scribbles_are_not_replaced_without_overwrite(tmp_path, capsys):
    labels = tmp_path / "labels.tif"
    tifffile.imwrite(labels, np.array([[0, 10, 20]], np.uint8))
    out = tmp_path / "s.tif"
    out.write_bytes(b"the user's scribbles")
    status, _, err = _run(capsys, "scribbles", "--from-labels", labels, "--remap", "10:1,20:2", "--out", out)
    assert status == 2 and str(out) in err and out.read_bytes() == b"the user's scribbles"
    assert _run(capsys, "scribbles", "--from-labels", labels, "--remap", "10:1,20:2", "--out", out, "--overwrite")[0] == 0
    assert tifffile.imread(out).tolist() == [[0, 1, 2]]


def test_scribbles_from_instances_need_to_be_told_what_the_objects_are(tmp_path, capsys):
    """Inside a nucleus is 2, inside a cell 3: a silent default would mislabel nuclei as cytoplasm."""
    instances = tmp_path / "nuclei.tif"
    tifffile.imwrite(instances, blobs(seed=0, size=48, n=3)[1])
    status, _, err = _run(capsys, "scribbles", "--from-instances", instances, "--out", tmp_path / "s.tif")
    assert status == 2 and "--objects" in err and not (tmp_path / "s.tif").exists()
    status, _, err = _run(capsys, "scribbles", "--from-instances", instances, "--objects", "nuclei",
                          "--out", tmp_path / "s.tif")
    assert status == 0, err
    assert set(np.unique(tifffile.imread(tmp_path / "s.tif"))) == {0, 1, 2}


def test_scribbles_from_instances_ring_only_where_the_like_image_is_dark(tmp_path, capsys):
    labels = np.zeros((32, 40), np.uint16)
    labels[8:24, 4:18] = 1
    image = np.zeros((32, 40), np.float32)
    image[8:24, 4:34] = 1.0            # the traced object and an untraced bright one beside it
    tifffile.imwrite(tmp_path / "cells.tif", labels)
    tifffile.imwrite(tmp_path / "image.tif", image)
    common = ["scribbles", "--from-instances", tmp_path / "cells.tif", "--objects", "cells"]
    assert _run(capsys, *common, "--like", tmp_path / "image.tif", "--out", tmp_path / "dark.tif")[0] == 0
    assert _run(capsys, *common, "--like", tmp_path / "image.tif", "--ring-everywhere", "--out",
                tmp_path / "all.tif")[0] == 0
    dark, everywhere = tifffile.imread(tmp_path / "dark.tif"), tifffile.imread(tmp_path / "all.tif")
    assert (everywhere[10:22, 18] == 1).all() and not (dark[10:22, 18] == 1).any()
    assert (dark[6, 6:16] == 1).all()
    tifffile.imwrite(tmp_path / "small.tif", image[:16])
    status, _, err = _run(capsys, *common, "--like", tmp_path / "small.tif", "--out", tmp_path / "x.tif")
    assert status == 2 and "--like" in err and "40x16" in err and not (tmp_path / "x.tif").exists()


# ---------------------------------------------------------------- train: early checks
@pytest.fixture
def no_training(monkeypatch):
    """Training that fails the test: the checks under test must stop the command before it."""
    def train(*_args, **_kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(ImPartialModel, "train", train)


@pytest.mark.parametrize("folder", ["missing", "a_file.txt"])
def test_train_checks_the_model_folder_before_training(tmp_path, capsys, no_training, folder):
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    (tmp_path / "a_file.txt").write_text("not a folder")
    status, _, err = _run(capsys, "train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif",
                          "--model", tmp_path / folder / "m.safetensors")
    assert status == 2 and str(tmp_path / folder) in err


def test_unmapped_scribble_values_name_their_file(tmp_path, capsys, no_training):
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
        tifffile.imwrite(tmp_path / f"{name}_s.tif", scribbles)
    scribbles[0, 0] = 7
    tifffile.imwrite(tmp_path / "b_s.tif", scribbles)
    status, _, err = _run(capsys, "train", "--image", tmp_path / "a.tif", "--image", tmp_path / "b.tif",
                          "--scribbles", tmp_path / "a_s.tif", "--scribbles", tmp_path / "b_s.tif",
                          "--remap", "1:1,2:2", "--model", tmp_path / "m.safetensors")
    assert status == 2 and str(tmp_path / "b_s.tif") in err and "[7]" in err


# ---------------------------------------------------------------- messages
@pytest.mark.parametrize("command, option, value", [
    ("train", "--iterations", "0"), ("train", "--time-budget", "0"), ("train", "--time-budget", "nan"),
    ("train", "--width", "0"), ("train", "--width", "100000"), ("train", "--seed", "-1"),
    ("train", "--haze", "-0.5"), ("train", "--haze", "inf"),
    ("predict", "--min-size", "-1"), ("predict", "--threshold", "1.5"), ("predict", "--split-depth", "0"),
    ("scribbles", "--budget", "0"),
])
def test_bad_numbers_are_refused_naming_the_option(capsys, command, option, value):
    required = {"train": ["--image", "a.tif", "--scribbles", "s.tif", "--model", "m.safetensors"],
                "predict": ["--model", "m.safetensors", "--image", "a.tif", "--out-dir", "out"],
                "scribbles": ["--simulate", "t.tif"]}[command]
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, *required, option, value])
    assert stopped.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err


def test_evaluate_names_the_files_of_a_bad_pair(tmp_path, capsys):
    good = np.zeros((16, 16), np.uint16)
    good[4:8, 4:8] = 1
    tifffile.imwrite(tmp_path / "good.tif", good)
    tifffile.imwrite(tmp_path / "bad.tif", np.full((16, 16), 0.5, np.float32))
    status, _, err = _run(capsys, "evaluate", "--pred", tmp_path / "good.tif", "--truth", tmp_path / "good.tif",
                          "--pred", tmp_path / "good.tif", "--truth", tmp_path / "bad.tif")
    assert status == 2 and str(tmp_path / "bad.tif") in err


def test_system_errors_are_one_line_without_a_traceback(tmp_path, capsys):
    model, image = _model(tmp_path), _image(tmp_path / "A01.tif")
    status, _, err = _run(capsys, "predict", "--model", model, "--image", image, "--out-dir", image / "sub")
    assert status == 2
    assert err.startswith("impartial predict: error: ") and len(err.splitlines()) == 1


# ---------------------------------------------------------------- fine-tuning
def test_fine_tuning_keeps_the_models_nuclear_channel(tmp_path, capsys):
    """A model whose nuclei task learnt from channel 1 is fine-tuned on channel 1 when the option is
    left out, and a different --nuclear-channel is refused rather than re-using its head elsewhere."""
    torch.manual_seed(0)
    base = tmp_path / "base.safetensors"
    ImPartialModel(ImPartialNet(NetworkConfig(2, 4), tasks_for("nuclei", 2, 1)).eval(), {"nuclei": 0.5}).save(base)
    image, _, scribbles = blobs(seed=1, size=64, n=4)
    tifffile.imwrite(tmp_path / "a.tif", np.stack([image[::-1], image]))
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    command = ["train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif", "--fine-tune", base,
               "--iterations", "2", "--quiet"]
    status, _, err = _run(capsys, *command, "--model", tmp_path / "tuned.safetensors")
    assert status == 0, err
    assert ImPartialModel.load(tmp_path / "tuned.safetensors").tasks == tasks_for("nuclei", 2, 1)
    status, _, err = _run(capsys, *command, "--nuclear-channel", "0", "--model", tmp_path / "other.safetensors")
    assert status == 2 and "reconstructed_channels (1,) (asked: (0,))" in err


def test_scribble_conversions_refuse_what_would_be_written_wrong(tmp_path, capsys):
    """A label stack is not one scribble plane, and a paint image without the paint colours holds
    no scribbles: both are refused naming the file, nothing is written."""
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.ones((5, 16, 16), np.uint8))
    status, _, err = _run(capsys, "scribbles", "--from-labels", stack, "--remap", "1:2", "--out", tmp_path / "s.tif")
    assert status == 2 and str(stack) in err and "2-D" in err
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, np.full((16, 16, 3), 128, np.uint8))
    status, _, err = _run(capsys, "scribbles", "--from-rgb", grey, "--out", tmp_path / "s.tif")
    assert status == 2 and str(grey) in err and "scribble colours" in err
    assert not (tmp_path / "s.tif").exists()


# ---------------------------------------------------------------- inputs checked before any output is written
def test_train_never_writes_the_model_over_one_of_its_inputs(tmp_path, capsys, no_training):
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    before = (tmp_path / "a.tif").read_bytes()
    status, _, err = _run(capsys, "train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif",
                          "--model", tmp_path / "a.tif", "--overwrite")
    assert status == 2 and "is one of the training images or scribbles" in err
    assert (tmp_path / "a.tif").read_bytes() == before


def test_train_names_the_image_whose_channels_differ(tmp_path, capsys, no_training):
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    tifffile.imwrite(tmp_path / "one.tif", image)
    tifffile.imwrite(tmp_path / "two.tif", np.stack([image, image]))
    tifffile.imwrite(tmp_path / "s.tif", scribbles)
    status, _, err = _run(capsys, "train", "--image", tmp_path / "one.tif", "--image", tmp_path / "two.tif",
                          "--scribbles", tmp_path / "s.tif", "--scribbles", tmp_path / "s.tif", "--model", tmp_path / "m.safetensors")
    assert status == 2 and f"{tmp_path / 'two.tif'} has 2 channel(s) but {tmp_path / 'one.tif'} has 1" in err


def test_predict_checks_every_image_before_writing_anything(tmp_path, capsys):
    model, good = _model(tmp_path), _image(tmp_path / "in" / "good.tif")
    two_channels = tmp_path / "in" / "two.tif"
    tifffile.imwrite(two_channels, np.stack([tifffile.imread(good)] * 2))
    tifffile.imwrite(tmp_path / "in" / "empty.tif", np.zeros((0, 0), np.uint8))
    for bad, message in [(two_channels, "trained on 1 channel(s) but 2"), (tmp_path / "in" / "empty.tif", "empty")]:
        status, _, err = _run(capsys, "predict", "--model", model, "--image", good, "--image", bad,
                              "--out-dir", tmp_path / "out")
        assert status == 2 and str(bad) in err and message in err, err
        assert not (tmp_path / "out").exists()


def test_scribble_sources_and_outputs_go_together(tmp_path, capsys):
    truth = tmp_path / "t.tif"
    tifffile.imwrite(truth, blobs(seed=0, size=32, n=3)[1])
    status, _, err = _run(capsys, "scribbles", "--simulate", truth, "--out", tmp_path / "one.tif")
    assert status == 2 and "--out-dir" in err and not (tmp_path / "one.tif").exists()
    status, _, err = _run(capsys, "scribbles", "--from-instances", truth, "--objects", "nuclei", "--out-dir", tmp_path)
    assert status == 2 and "--out-dir is for --simulate" in err
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, np.full((8, 8), 0.5, np.float32))
    status, _, err = _run(capsys, "scribbles", "--simulate", image, "--out-dir", tmp_path / "s")
    assert status == 2 and str(image) in err  # not "instance_labels_list[0]"


def test_rois_outside_the_like_image_are_refused_and_crossing_ones_noted(tmp_path, capsys):
    from impartial_core.scribbles.imagej_rois import Roi, rois_beyond

    def square(name, x, y, side=10):
        corners = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], float)
        return Roi(name, "polygon", corners, True, [corners], 0.0)

    rois = [square("inside", 5, 5), square("edge", 95, 40), square("away", 300, 300)]
    assert rois_beyond(rois, (100, 100)) == (["away"], ["edge"])
    assert rois_beyond(rois[:1], (100, 100)) == ([], [])
    # the bundled Vectra traces belong to 400x400 images: a 200x200 --like is the wrong image
    traces = Path(__file__).resolve().parents[1] / "examples" / "data" / "vectra_2ch" / "image1_cells.roi.zip"
    for side, expected, message in [(200, 2, "lie wholly outside --like"), (400, 0, "")]:
        tifffile.imwrite(tmp_path / "like.tif", np.zeros((side, side), np.uint8))
        status, _, err = _run(capsys, "scribbles", "--from-rois", traces, "--like", tmp_path / "like.tif",
                              "--out", tmp_path / f"s{side}.tif")
        assert status == expected and message in err, err
        assert (tmp_path / f"s{side}.tif").exists() == (status == 0)


def test_evaluate_json_is_strict_json(tmp_path, capsys):
    import json

    labels = np.zeros((16, 16), np.uint16)
    labels[4:8, 4:8] = 1
    tifffile.imwrite(tmp_path / "l.tif", labels)
    status, out, _ = _run(capsys, "evaluate", "--pred", tmp_path / "l.tif", "--truth", tmp_path / "l.tif", "--json")
    summary = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
    assert status == 0 and summary["pixel_f1"] is None and summary["f1_iou50"] == 1.0


# ---------------------------------------------------------------- train: the model file
def test_train_reuses_the_same_model_and_keeps_a_backup_of_another(tmp_path, capsys):
    """The model store's policy, as in the CellProfiler module: a file that holds a model of the
    same images, scribbles and learnt settings is reused (another device does not count); one that
    holds another model is refused without --overwrite, and kept as a dated backup with it."""
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    model = tmp_path / "m.safetensors"
    command = ["train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif", "--model", model,
               "--iterations", "2", "--width", "4", "--quiet"]
    status, out, err = _run(capsys, *command)
    assert status == 0 and "saved" in out, err
    first = model.read_bytes()
    status, out, err = _run(capsys, *command, "--device", "cpu")
    assert status == 0 and "not training" in out, err
    assert model.read_bytes() == first
    status, out, err = _run(capsys, *command, "--seed", "1")
    assert status == 2 and "--overwrite" in err and model.read_bytes() == first
    status, out, err = _run(capsys, *command, "--seed", "1", "--overwrite")
    assert status == 0, err
    backups = list(tmp_path.glob("m.*.bak.safetensors"))
    assert len(backups) == 1 and backups[0].read_bytes() == first and str(backups[0]) in out
    assert model.read_bytes() != first


def test_train_names_the_scribble_class_that_is_missing(tmp_path, capsys, no_training):
    image, _, scribbles = blobs(seed=0, size=32, n=3)
    scribbles[scribbles == 2] = 0
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    status, _, err = _run(capsys, "train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif",
                          "--model", tmp_path / "m.safetensors")
    assert status == 2 and "--scribbles" in err and "no foreground scribbles for the nuclei task" in err


# ---------------------------------------------------------------- progress in logs
def test_training_progress_in_a_file_is_one_line_per_update(tmp_path, capsys):
    from impartial_core.cli import _progress
    from impartial_core.training import TrainingProgress

    show = _progress(stream=open(tmp_path / "log.txt", "w"), every_s=10.0)
    for iteration, elapsed in ((1, 0.5), (5, 4.0), (10, 11.0), (15, 15.0), (20, 22.0)):
        show(TrainingProgress(iteration=iteration, max_iterations=20, elapsed_s=elapsed, remaining_s=22.0 - elapsed,
                              losses={"total": 0.5}))
    text = (tmp_path / "log.txt").read_text()
    assert "\r" not in text
    # the first update, one about every 10 s, and the last
    assert [line.split(",")[0] for line in text.splitlines()] == [
        "training: iteration 1/20", "training: iteration 10/20", "training: iteration 20/20"]
    assert "about 11 s left" in text.splitlines()[1]


def test_train_haze_option_is_the_models_learnt_setting(tmp_path, capsys):
    """``--haze 0`` trains without the haze augmentation and says so in the model file (a learnt
    setting: another fingerprint than the default's, so neither model is taken for the other)."""
    image, _, scribbles = blobs(seed=1, size=64, n=4)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_s.tif", scribbles)
    command = ["train", "--image", tmp_path / "a.tif", "--scribbles", tmp_path / "a_s.tif", "--iterations", "2",
               "--no-time-limit", "--quiet"]
    for haze, name in ((None, "default.safetensors"), ("0", "none.safetensors")):
        status, _, err = _run(capsys, *command, *(["--haze", haze] if haze else []), "--model", tmp_path / name)
        assert status == 0, err
    default, none = (ImPartialModel.load(tmp_path / name) for name in ("default.safetensors", "none.safetensors"))
    assert default.training.haze == 1.0 and none.training.haze == 0.0
    assert default.fingerprint != none.fingerprint
