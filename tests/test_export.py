"""`impartial export`: the bioimage.io model package, checked by bioimage.io's own validator.

The validator (``bioimageio test`` of bioimageio.core) lives in a venv of its own, made by
``scripts/setup_bioimageio.sh``; the tests that need it skip, saying so, when it is missing.
Tolerance: the package run by bioimageio.core gives the foreground probability of
``ImPartialModel.predict`` (what ``impartial predict`` writes) within 1e-4 on whole images up to
512 pixels a side. The two differ only by bioimage.io's ``eps`` = 1e-6 added to each channel's
percentile range, and float rounding. bioimageio.core's ``predict`` pads an image by the halo
(symmetric padding) before it runs the network, so there the outermost halo pixels (24 for the
default network) differ; further in, the same tolerance holds.
"""
from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
from impartial_core.export import ExportError, export_model, halo, spec_preprocessing, to_yaml
from impartial_core.imageio import read_image
from impartial_core.model import ImPartialModel
from impartial_core.normalization import normalize

REPO = Path(__file__).resolve().parents[1]
BIOIMAGEIO = REPO / ".venv-bioimageio" / "bin"
MIBI_IMAGE = REPO / "examples" / "data" / "mibi_dsdna" / "image5.tif"
TOLERANCE = 1e-4
HALO = halo(NetworkConfig().depth)

needs_bioimageio = pytest.mark.skipif(
    not (BIOIMAGEIO / "bioimageio").exists(),
    reason=f"bioimage.io's validator is not installed ({BIOIMAGEIO}/bioimageio); run scripts/setup_bioimageio.sh")

# Run in the bioimageio venv: the package's outputs for one image, computed by bioimageio.core (its
# preprocessing from rdf.yaml, then the TorchScript weights) in two ways: "network", the image as
# it is; "predict", bioimageio.core's predict, which first pads the image by the halo (symmetric
# padding), as tools that tile large images do.
_PREDICT = """
import sys, numpy as np
from bioimageio.core import create_prediction_pipeline, load_model_description, predict
from bioimageio.core.digest_spec import create_sample_for_model
package, image, out = sys.argv[1:4]
model = load_model_description(package)
x = np.load(image)
unpadded = create_prediction_pipeline(model).predict_sample_without_blocking(
    create_sample_for_model(model, inputs={"raw": x}), skip_input_padding=True, skip_output_cropping=True)
padded = predict(model=model, inputs={"raw": x})
np.savez(out, **{f"{way}_{k}": v.data.to_numpy() for way, s in (("network", unpadded), ("predict", padded))
                 for k, v in s.members.items()})
"""


def _no_network_env() -> dict:
    return {**os.environ, "BIOIMAGEIO_PERFORM_IO_CHECKS": "false", "BIOIMAGEIO_CACHE_PATH": os.environ.get(
        "BIOIMAGEIO_CACHE_PATH", str(REPO / ".cache" / "bioimageio"))}


def bioimageio_test(package: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIOIMAGEIO / "bioimageio"), "test", str(package)], capture_output=True, text=True,
                          env=_no_network_env(), timeout=600)


def bioimageio_predict(package: Path, image: np.ndarray, tmp_path: Path) -> dict:
    """The package's outputs for a raw (C, H, W) image, computed by bioimageio.core."""
    np.save(tmp_path / "input.npy", image[None].astype(np.float32))
    done = subprocess.run([str(BIOIMAGEIO / "python"), "-c", _PREDICT, str(package), str(tmp_path / "input.npy"),
                           str(tmp_path / "output.npz")], capture_output=True, text=True, env=_no_network_env(),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "output.npz") as outputs:
        return {k: outputs[k] for k in outputs.files}


@pytest.fixture(scope="module")
def two_task_model(tmp_path_factory) -> Path:
    """A nuclei+cells model of 2 channels, trained for 3 iterations on a synthetic 96 x 96 image."""
    from .synthetic import blobs

    image, labels, nuclei_scribbles = blobs(seed=2)
    cytoplasm_marker = np.where(labels > 0, 0.3, 0.0) + image * 0.1
    scribbles = nuclei_scribbles.copy()
    scribbles[48, 2:6] = 3  # a few cytoplasm pixels, so the cells task has both classes
    config = TrainingConfig(max_iterations=3, batch_size=2, patch_size=32, eval_every=3, seed=0)
    model = ImPartialModel.train([np.stack([cytoplasm_marker, image]).astype(np.float32)], [scribbles],
                                 tasks_for("nuclei+cells", 2, nuclear_channel=1), NetworkConfig(2, 4), config,
                                 channel_names=("PanCK", "DAPI"))
    path = tmp_path_factory.mktemp("two_tasks") / "two tasks.safetensors"
    model.save(path)
    return path


def test_package_holds_the_described_files(blob_model_file, tmp_path):
    package = export_model(blob_model_file, tmp_path / "nuclei.zip", read_image(MIBI_IMAGE))
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        rdf = z.read("rdf.yaml").decode()
        readme = z.read("README.md").decode()
        test_input = np.load(z.open("test_input.npy"))
    assert {"rdf.yaml", "weights_torchscript.pt", "test_input.npy", "test_output_foreground_probability.npy",
            "test_output_uncertainty.npy", "cover.png", "README.md", "model.safetensors"} <= names
    assert "scale_range" in rdf and "99.8" in rdf and "clip" in rdf
    assert "10.1101/2021.01.20.427458" in rdf and "ImPartial: Partial Annotations" in readme
    assert test_input.shape == (1, 1, 400, 400)  # the bundled image is 400 x 400: whole, not cropped
    yaml = pytest.importorskip("yaml")
    described = yaml.safe_load(rdf)
    assert described["inputs"][0]["preprocessing"][1]["kwargs"] == {
        "axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.8, "eps": 1e-6}
    assert [o["id"] for o in described["outputs"]] == ["foreground_probability", "uncertainty"]
    assert described["config"]["impartial"]["thresholds"] == ImPartialModel.load(blob_model_file).thresholds


def test_spec_preprocessing_is_the_core_normalisation():
    image = read_image(MIBI_IMAGE)[None].astype(np.float32)
    assert np.abs(spec_preprocessing(image) - normalize(image)).max() < 1e-4


def test_yaml_writer_round_trips():
    yaml = pytest.importorskip("yaml")
    data = {"a": [{"id": "x", "kwargs": {"min": -3.0, "names": ["n: 1", "two"]}}, {"type": "batch"}],
            "b": "text with: colon and \"quotes\"", "c": {"d": {"e": 1, "f": [1.5, 2]}, "g": None, "h": True}}
    assert yaml.safe_load(to_yaml(data)) == data


def test_export_refuses_bad_destinations(blob_model_file, tmp_path):
    with pytest.raises(ExportError, match="--out .*zip"):
        export_model(blob_model_file, tmp_path / "model.tar")
    (tmp_path / "taken.zip").write_bytes(b"mine")
    with pytest.raises(ExportError, match="already exists"):
        export_model(blob_model_file, tmp_path / "taken.zip")
    assert (tmp_path / "taken.zip").read_bytes() == b"mine"
    with pytest.raises(ExportError, match="at least"):
        export_model(blob_model_file, tmp_path / "small.zip", np.zeros((20, 20), np.float32))
    with pytest.raises(ExportError, match="NaN or infinite"):
        export_model(blob_model_file, tmp_path / "nan.zip", np.full((64, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match="channel"):
        export_model(blob_model_file, tmp_path / "two.zip", np.zeros((2, 64, 64), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.zip"]  # nothing half-written left behind


def test_cli_exports(blob_model_file, tmp_path, capsys):
    from impartial_core.cli import main

    out = tmp_path / "cli.zip"
    assert main(["export", "--model", str(blob_model_file), "--out", str(out), "--image", str(MIBI_IMAGE),
                 "--author", "A. Person", "--name", "MIBI nuclei"]) == 0
    assert out.exists() and str(out) in capsys.readouterr().out
    assert main(["export", "--model", str(blob_model_file), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@needs_bioimageio
def test_bioimageio_test_passes_and_matches_predict(blob_model_file, tmp_path):
    package = export_model(blob_model_file, tmp_path / "nuclei.zip", read_image(MIBI_IMAGE))
    done = bioimageio_test(package)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert "passed" in done.stdout
    image = read_image(MIBI_IMAGE)[None]
    outputs = bioimageio_predict(package, image, tmp_path)
    # The package's network runs in float32, as ImPartial does where bfloat16 is not native.
    maps = ImPartialModel.load(blob_model_file).predict(image, mixed_precision=False)["nuclei"]
    np.testing.assert_allclose(outputs["network_foreground_probability"][0, 0], maps.foreground_probability,
                               rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(outputs["network_uncertainty"][0, 0], maps.uncertainty, rtol=0, atol=10 * TOLERANCE)
    # bioimageio.core's predict pads the image by the halo first: only the border changes.
    inside = (slice(HALO, -HALO),) * 2
    predicted = outputs["predict_foreground_probability"][0, 0]
    np.testing.assert_allclose(predicted[inside], maps.foreground_probability[inside], rtol=0, atol=TOLERANCE)
    assert 0.01 < maps.foreground_probability.mean() < 0.99  # a map, not a constant


@needs_bioimageio
def test_two_tasks_two_channels(two_task_model, tmp_path):
    image = read_image(REPO / "examples" / "data" / "vectra_2ch" / "image1.tif")
    package = export_model(two_task_model, tmp_path / "cells.zip", image)
    done = bioimageio_test(package)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    with zipfile.ZipFile(package) as z:
        rdf = z.read("rdf.yaml").decode()
    assert '["PanCK", "DAPI"]' in rdf and '["nuclei", "cells"]' in rdf
    outputs = bioimageio_predict(package, image, tmp_path)
    maps = ImPartialModel.load(two_task_model).predict(image, mixed_precision=False)
    for i, task in enumerate(("nuclei", "cells")):
        np.testing.assert_allclose(outputs["network_foreground_probability"][0, i], maps[task].foreground_probability,
                                   rtol=0, atol=TOLERANCE)
