"""Images with nothing to segment (impartial_core.input_checks), and what the command line does with
them and with other bad input: refused for training before any model file is touched, flagged at
prediction with no objects, inputs checked before outputs, and every hint a command that works.
(Through CellProfiler: tests/test_unusable_inputs.py.)
"""
import re
import shlex

import numpy as np
import pytest

from impartial_core.cli import UNUSABLE_INPUT_STATUS, main
from impartial_core.imageio import read_image, write_tiff
from impartial_core.input_checks import MIN_SIDE, unusable_channels
from tests.synthetic import blobs

pytest.importorskip("torch")


def kinds(image, names=None):
    return [problem.kind for problem in unusable_channels(image, names)]


def test_degenerate_channels_are_named():
    rng = np.random.default_rng(0)
    good = rng.random((64, 64)).astype(np.float32)
    nearly = np.zeros((64, 64), np.float32)
    nearly[:3, :3] = 1.0  # 9 pixels of signal
    saturated = good.copy()
    saturated[:40] = 1.0  # 62% at the maximum
    mostly_nan = good.copy()
    mostly_nan[:40] = np.nan
    assert kinds(np.stack([good, np.full((64, 64), 7.0)]), ["DNA", "Actin"]) == ["constant"]
    problem, = unusable_channels(np.stack([good, np.full((64, 64), 7.0)]), ["DNA", "Actin"])
    assert problem.value == 1 and problem.message.startswith("Actin: every pixel has the value 7")
    assert kinds(nearly[None]) == ["nearly_constant"]
    assert kinds(saturated[None]) == ["saturated"]
    assert kinds(mostly_nan[None]) == ["non_finite"]
    assert kinds(np.full((1, 64, 64), np.nan)) == ["non_finite"]
    mask = (good > 0.5).astype(np.float32)
    assert kinds(mask[None]) == ["few_levels"]
    # a float image with values above 1 as CellProfiler 5's reader gives it: whole numbers
    read = np.floor(good * 1.7 + 0.05)
    problem, = unusable_channels(read[None], ["DNA"])
    assert problem.kind == "few_levels" and problem.message.startswith("DNA: its pixels take only 2 distinct values (0, 1)")
    assert "16-bit integers" in problem.message
    assert kinds(np.floor(good * 7)[None]) == ["few_levels"] and kinds(np.floor(good * 8)[None]) == []
    assert kinds(np.zeros((1, 1, 2))) == ["too_small"] and kinds(np.ones((1, MIN_SIDE - 1, 64))) == ["too_small"]


def test_real_and_sparse_images_pass():
    """No false alarm: a few NaN pixels, a sparse marker (99.9% background), integer images, and every
    bundled image."""
    from benchmarks.data import data_dir

    rng = np.random.default_rng(1)
    image = rng.random((128, 128)).astype(np.float32)
    image[5, 5] = np.nan
    sparse = np.zeros((400, 400), np.uint16)
    sparse[100:110, 100:110] = rng.integers(1, 500, (10, 10))
    assert kinds(image[None]) == [] and kinds(sparse[None]) == []
    assert kinds((np.nan_to_num(image[None]) * 255).astype(np.uint8)) == []
    dim = np.zeros((2048, 2048), np.uint8)  # a sparse, dim 8-bit stain: 8 grey levels in the last row
    dim[-1, 1:29] = np.arange(1, 8).repeat(4)  # past the strided sample: counted in blocks
    assert kinds(dim[None]) == []
    files = [p for p in sorted(data_dir().glob("*/*.tif")) if re.fullmatch(r"(image|F)[0-9_]+\.tif", p.name)]
    assert len(files) >= 7
    for path in files:
        image = read_image(path)
        assert kinds(image if image.ndim == 3 else image[None]) == [], path


# ------------------------------------------------------------------------------------------ the command line
@pytest.fixture
def files(tmp_path):
    image, _, scribbles = blobs(seed=1)
    write_tiff(tmp_path / "a.tif", image.astype(np.float32))
    write_tiff(tmp_path / "a_scribbles.tif", scribbles)
    write_tiff(tmp_path / "blank.tif", np.zeros_like(image, np.float32))
    return tmp_path


def test_train_refuses_an_unusable_image_before_touching_the_model(files, blob_model_file, capsys):
    model = files / "model.safetensors"
    model.write_bytes(blob_model_file.read_bytes())
    before = model.read_bytes()
    argv = ["train", "--image", str(files / "a.tif"), "--scribbles", str(files / "a_scribbles.tif"),
            "--image", str(files / "blank.tif"), "--scribbles", str(files / "a_scribbles.tif"),
            "--model", str(model), "--iterations", "2"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"--image {files / 'blank.tif'}: channel 1: every pixel has the value 0" in error
    assert "nothing was trained" in error and "--overwrite" not in error  # the input first, not the output
    assert model.read_bytes() == before and sorted(p.name for p in files.glob("model*")) == ["model.safetensors"]
    # an image of 1x2 pixels with a background and a nucleus scribble
    write_tiff(files / "tiny.tif", np.array([[0.1, 0.9]], np.float32))
    write_tiff(files / "tiny_scribbles.tif", np.array([[1, 2]], np.uint8))
    assert main(["train", "--image", str(files / "tiny.tif"), "--scribbles", str(files / "tiny_scribbles.tif"),
                 "--model", str(files / "tiny.safetensors")]) == 2
    assert f"needs at least {MIN_SIDE}x{MIN_SIDE}" in capsys.readouterr().err
    assert not (files / "tiny.safetensors").exists()


def test_predict_flags_an_unusable_image_and_segments_the_others(files, blob_model_file, capsys):
    out = files / "out"
    status = main(["predict", "--model", str(blob_model_file), "--image", str(files / "a.tif"),
                   "--image", str(files / "blank.tif"), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert status == UNUSABLE_INPUT_STATUS
    assert f"warning: {files / 'blank.tif'}: unusable, no objects" in captured.err
    assert "1 of 2 image(s) were unusable" in captured.err
    assert read_image(out / "a_nuclei.tif").max() > 0
    assert read_image(out / "blank_nuclei.tif").max() == 0 and not (out / "blank_nuclei_probability.tif").exists()


def test_fixed_iterations_give_the_same_model(files, capsys, monkeypatch):
    """--no-time-limit: the iterations, not the clock, end training, and it runs on 2 threads whatever
    the machine allows (the thread count changes the sums' rounding), so two runs give one model."""
    import torch

    from impartial_core.model import ImPartialModel

    common = ["train", "--image", str(files / "a.tif"), "--scribbles", str(files / "a_scribbles.tif"),
              "--iterations", "3", "--width", "4", "--no-time-limit", "--time-budget", "0.001"]
    before = torch.get_num_threads()
    try:
        assert main(common + ["--model", str(files / "one.safetensors")]) == 0
        assert torch.get_num_threads() == 2  # impartial_core.threads.REPRODUCIBLE_THREADS
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a machine, or a job, of one thread
        assert main(common + ["--model", str(files / "two.safetensors")]) == 0
    finally:
        torch.set_num_threads(before)
    assert "(3 iterations, stopped: iteration budget)" in capsys.readouterr().out
    one, two = (ImPartialModel.load(files / name) for name in ("one.safetensors", "two.safetensors"))
    assert one.fingerprint == two.fingerprint and one.thresholds == two.thresholds
    for key, value in one.net.state_dict().items():  # the files differ only in when and how long they trained
        assert np.array_equal(value.numpy(), two.net.state_dict()[key].numpy()), key


def _hinted_command(message):
    """The command a message quotes between backticks, as arguments of ``main``."""
    quoted = re.search(r"`impartial ([^`]+)`", message)
    assert quoted, message
    return shlex.split(quoted.group(1))


@pytest.mark.parametrize("labels", [
    np.array([[0, 10, 20, 7]] * 16 * 4, np.uint8).reshape(16, 16),  # another tool's label values
    np.eye(16, dtype=bool),  # a boolean mask
    np.zeros((16, 16, 3), np.uint8),  # an RGB paint image
])
def test_scribble_hints_are_commands_that_work(tmp_path, labels, capsys):
    """Follow the error's hint exactly as written: it runs, and its output trains."""
    import tifffile

    image = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    write_tiff(tmp_path / "image.tif", image)
    if labels.ndim == 3:
        labels[2:4, :, 2] = 255  # blue: background
        labels[8:10, :, 0] = 255  # red: nucleus
    tifffile.imwrite(str(tmp_path / "labels.tif"), labels)
    train = ["train", "--image", str(tmp_path / "image.tif"), "--model", str(tmp_path / "m.safetensors"),
             "--iterations", "1", "--width", "4", "--quiet"]
    assert main(train + ["--scribbles", str(tmp_path / "labels.tif")]) == 2
    command = _hinted_command(capsys.readouterr().err)
    assert main(command) == 0, capsys.readouterr().err
    converted = command[command.index("--out") + 1]
    if labels.dtype == bool:  # a mask becomes nucleus strokes (True), and training asks for background
        assert set(np.unique(read_image(converted))) == {0, 2}
        return
    assert main(train + ["--scribbles", converted]) == 0, capsys.readouterr().err


def test_option_hints_work_as_written(files, blob_model_file, capsys):
    """Each hint naming an option: the command with the hint applied succeeds."""
    image, scribbles = str(files / "a.tif"), str(files / "a_scribbles.tif")
    train = ["train", "--image", image, "--scribbles", scribbles, "--iterations", "1", "--width", "4", "--quiet"]
    # a folder as --model: "give a file name such as <folder>/model.safetensors"
    assert main(train + ["--model", str(files)]) == 2
    suggested = re.search(r"such as (\S+)", capsys.readouterr().err).group(1)
    assert main(train + ["--model", suggested]) == 0
    # a model file of other settings: "use --overwrite to replace it"
    assert main(train + ["--model", suggested, "--seed", "1"]) == 2
    assert "use --overwrite" in capsys.readouterr().err
    assert main(train + ["--model", suggested, "--seed", "1", "--overwrite"]) == 0
    # an output file impartial did not write: "use --overwrite to replace it"
    out = files / "out"
    out.mkdir()
    import tifffile

    tifffile.imwrite(str(out / "a_nuclei.tif"), np.ones((4, 4), np.uint16))  # e.g. labels corrected by hand
    predict = ["predict", "--model", str(blob_model_file), "--image", image, "--out-dir", str(out)]
    assert main(predict) == 2 and "use --overwrite" in capsys.readouterr().err
    assert main(predict + ["--overwrite"]) == 0
    # --from-labels without --remap: "e.g. --remap 10:1,20:2"
    labels = files / "labels.tif"
    write_tiff(labels, np.where(read_image(scribbles) == 1, 10, np.where(read_image(scribbles) == 2, 20, 0)).astype(np.uint8))
    convert = ["scribbles", "--from-labels", str(labels), "--out", str(files / "converted.tif")]
    assert main(convert) == 2
    example = re.search(r"e\.g\. (--remap \S+)", capsys.readouterr().err).group(1).split()
    assert main(convert + example) == 0
    np.testing.assert_array_equal(read_image(files / "converted.tif"), read_image(scribbles))
