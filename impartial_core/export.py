"""Export a trained model as a bioimage.io model package (model description format 0.5).

The package is a zip that Fiji (deepImageJ), QuPath, ilastik, napari and bioimage.io's own
``bioimageio.core`` open: ``rdf.yaml`` (the description), the network as TorchScript, a test input
with the outputs it must give, a cover image, documentation with the citation, and the ImPartial
model file itself (an attachment, so this project can fine-tune or segment with it again).

What the package holds, and what it does not:

- Input: the raw image, (batch, channel, y, x). Its preprocessing is written in the description
  as the spec's own operations: ``scale_range`` per sample and channel between the 1st and 99.8th
  percentiles, then ``clip`` to [-3, 3]; the same scaling ``normalization.normalize`` applies.
  Two refinements of ``normalize`` have no counterpart in the spec and are left out: a sparse
  channel (over 99.8% of its pixels at one value) is scaled by its signal pixels here but maps to
  zeros there, and images above 4 megapixels take their percentiles from a subsample here.
- Outputs: per task, the foreground probability and its uncertainty (the binary entropy in bits,
  as ``prediction.binary_entropy``), both computed inside the network.
- Left behind: the object step (nuclei, cells and cytoplasm from the maps: thresholds, splitting
  touching objects, minimum sizes), which this project does; the thresholds are recorded in the
  description's ``config.impartial`` and in the attached model file.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from . import __version__
from .model import ImPartialModel
from .normalization import CLIP, HIGH_PERCENTILE, LOW_PERCENTILE, as_channels_first

# Format 0.5 at an earlier patch level, which tools released before the newest spec library
# also read; bioimageio.spec 0.5.12 reads it as 0.5.12 (bioimageio test reports that).
FORMAT_VERSION = "0.5.4"
# bioimage.io's default for scale_range: (x - low) / (high - low + EPS).
EPS = 1e-6
# The test input is at most this many pixels a side (a centred crop): it travels in the package.
MAX_TEST_SIZE = 512
CITATION = ("Martinez N, Sapiro G, Tannenbaum A, Hollmann TJ, Nadeem S. ImPartial: Partial Annotations for "
            "Cell Instance Segmentation. bioRxiv 2021.01.20.427458 (2021).")
CITATION_DOI = "10.1101/2021.01.20.427458"
INPUT_ID = "raw"
OUTPUT_IDS = ("foreground_probability", "uncertainty")


class ExportError(ValueError):
    """The model or an option given to the export cannot make a valid package."""


class ProbabilityAndUncertainty(nn.Module):
    """The network as exported: a preprocessed (B, C, H, W) image to two (B, T, H, W) maps.

    ``T`` is the number of tasks, in the model's order: the foreground probability of each task and
    its binary entropy in bits (0 where certain, 1 at p = 0.5, with p clipped to [1e-6, 1 - 1e-6]
    as ``prediction.binary_entropy`` does).
    """

    def __init__(self, model: ImPartialModel) -> None:
        super().__init__()
        self.net = model.net
        self.task_names = model.task_names

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        outputs = self.net(x)
        p = torch.stack([outputs[name].foreground_probability for name in self.task_names], dim=1).clamp(0.0, 1.0)
        q = p.clamp(1e-6, 1 - 1e-6)
        entropy = -(q * torch.log2(q) + (1 - q) * torch.log2(1 - q))
        return p, entropy


def spec_preprocessing(image: np.ndarray) -> np.ndarray:
    """What the package's preprocessing makes of a raw (C, H, W) image: the reference for its test output.

    ``scale_range`` over (y, x) per channel, with the spec's ``eps`` in the denominator, then
    ``clip``. Equal to ``normalize`` up to that ``eps`` on images without a sparse channel.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=(1, 2), keepdims=True)
    scaled = (image - lo.astype(np.float32)) / (hi - lo + EPS).astype(np.float32)
    return np.clip(scaled, -CLIP, CLIP).astype(np.float32)


def halo(depth: int) -> int:
    """Pixels cropped from each side of an output tile when a tool predicts a large image in tiles.

    The U-Net's receptive field reaches about 6 * 2**depth pixels (two 3x3 convolutions per level
    on the way down and up); the outputs nearer to a tile's edge than that see its zero padding.
    """
    return 6 * 2 ** depth


def _identifier(name: str, fallback: str) -> str:
    """A name as the spec's identifiers allow (letters, digits, underscores; starting with a letter)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return cleaned if cleaned and cleaned[0].isalpha() else fallback


def channel_names(model: ImPartialModel) -> List[str]:
    """The input's channel names for the package: the model's own, made valid and distinct."""
    names = [_identifier(n, f"channel{i}") for i, n in enumerate(model.channel_names)]
    if len(names) != model.n_channels or len(set(names)) != len(names):
        names = [f"channel{i}" for i in range(model.n_channels)]
    return names


def package_test_input(model: ImPartialModel, image: Optional[np.ndarray]) -> np.ndarray:
    """The package's test input, (C, H, W) float32: a centred crop of ``image`` to at most
    MAX_TEST_SIZE a side and a multiple of the network's size step; without an image, a synthetic
    one of bright discs on a dark background in every channel (valid for the checks, but a real
    image makes a cover worth looking at)."""
    m = model.net.multiple
    if image is None:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[:128, :128]
        plane = np.zeros((128, 128), np.float32)
        for cy, cx in rng.uniform(12, 116, size=(12, 2)):
            plane[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 1.0
        plane += rng.normal(0.0, 0.05, plane.shape).astype(np.float32)
        return np.repeat(plane[None], model.n_channels, axis=0)
    image = as_channels_first(image, source="the test image").astype(np.float32)
    model.check_compatible(image.shape[0], source="the model")
    if not np.isfinite(image).all():
        raise ExportError("the test image has NaN or infinite pixels, which other tools' scaling does not skip; "
                          "give another --image")
    _, h, w = image.shape
    size_h, size_w = min(h, MAX_TEST_SIZE) // m * m, min(w, MAX_TEST_SIZE) // m * m
    minimum = min_size(model)
    if size_h < minimum or size_w < minimum:
        raise ExportError(f"the test image is {h}x{w} pixels; the package needs at least {minimum}x{minimum}")
    y0, x0 = (h - size_h) // 2, (w - size_w) // 2
    return np.ascontiguousarray(image[:, y0:y0 + size_h, x0:x0 + size_w])


def min_size(model: ImPartialModel) -> int:
    """The smallest input side the package accepts: the halo on both sides and a step between."""
    return 2 * halo(model.net.network.depth) + model.net.multiple


def trace(model: ImPartialModel, example: np.ndarray) -> torch.jit.ScriptModule:
    """The exported network as TorchScript, traced on CPU on ``example`` (a preprocessed (C, H, W) image).

    The trace is size-independent (checked by the package's tests on other sizes); torch's
    deprecation notice for ``torch.jit.trace`` is silenced: TorchScript is what the tools read.
    """
    module = ProbabilityAndUncertainty(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return torch.jit.trace(module, torch.from_numpy(example[None]), check_trace=False)


def _cover(raw: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """A 2:1 RGB picture: the first input channel (percentile-scaled) beside the foreground probability
    (one task in grey; two tasks as green and magenta)."""
    def grey(a: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(a, [LOW_PERCENTILE, HIGH_PERCENTILE])
        return np.clip((a - lo) / max(float(hi - lo), 1e-12), 0, 1)

    left = np.repeat(grey(raw[0])[..., None], 3, axis=-1)
    if probability.shape[0] == 1:
        right = np.repeat(probability[0][..., None], 3, axis=-1)
    else:
        right = np.stack([probability[1], probability[0], probability[1]], axis=-1)
    return (np.concatenate([left, right], axis=1) * 255).round().astype(np.uint8)


def _documentation(model: ImPartialModel, names: Sequence[str], source_name: str) -> str:
    tasks = ", ".join(model.task_names)
    summary = model.training_summary or {}
    return f"""# ImPartial model: {tasks}

Pixel classification of 2-D images into {tasks} by ImPartial (a U-Net trained from a few scribbles
with a self-supervised reconstruction loss), exported by ImPartial for CellProfiler {__version__}
from the model file `{source_name}`.

## Input
`{INPUT_ID}`: a 2-D image with {model.n_channels} channel(s) ({", ".join(names)}), axes (batch, channel, y, x).
Preprocessing (in `rdf.yaml`): each channel of each image is scaled so that its percentiles
{LOW_PERCENTILE:g} and {HIGH_PERCENTILE:g} map to 0 and 1, then clipped to [-{CLIP:g}, {CLIP:g}].
ImPartial itself scales a sparse channel (over 99.8% of pixels at one value) by its signal
pixels; here such a channel maps to zeros.

## Outputs
- `{OUTPUT_IDS[0]}`: per task ({tasks}), the probability that a pixel belongs to it, in [0, 1].
- `{OUTPUT_IDS[1]}`: per task, the binary entropy of that probability in bits (0 certain, 1 at p = 0.5).

## What stays with ImPartial
The objects (nuclei, cells, cytoplasm) are made from these maps by ImPartial: a threshold per task
({json.dumps(model.thresholds)}), splitting touching objects and a minimum size. The ImPartial model
file is attached (`{source_name}`): `impartial predict --model {source_name} ...` or the ImPartial
module in CellProfiler gives the objects.

## Validation
The package's test output is what this network gives on its test input (`bioimageio test`
reproduces it). `impartial predict --float32` with the attached model file (without `--flips`,
the averaging over flipped copies that this network does not do) gives the same foreground
probability on whole images of up to 512 x 512 pixels (ImPartial's tile size), up to float
rounding (without `--float32`, on a GPU or a CPU with native bfloat16, ImPartial computes the
network in bfloat16: within about 0.01-0.03); larger images ImPartial predicts in overlapping
tiles (as tools may), so values near tile seams can differ slightly.
Tools that pad an image by the output halo ({halo(model.net.network.depth)} pixels) before
predicting, as bioimageio.core does (mirroring the image), give other values within that
distance of the image's edge: ImPartial does not pad.
How accurate the maps are depends on the scribbles and images the model was trained on: check the
objects against a few images annotated by hand (`impartial evaluate`).

## Training
{summary.get("iterations", "?")} iterations on {summary.get("n_images", "?")} image(s) with
{summary.get("n_scribbled_pixels", "?")} scribbled pixels; training data fingerprint
`{model.fingerprint or "unknown"}`.

## Citation
{CITATION} https://doi.org/{CITATION_DOI}
"""


def _file(path: Path) -> Dict[str, str]:
    return {"source": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def description(model: ImPartialModel, files: Dict[str, Path], names: Sequence[str], name: str,
                authors: Sequence[str], license_id: str) -> Dict[str, Any]:
    """The model description (``rdf.yaml``) as a dict, for the files written beside it."""
    depth = model.net.network.depth
    step = model.net.multiple

    def space(axis: str) -> Dict[str, Any]:
        return {"type": "space", "id": axis, "size": {"min": min_size(model), "step": step}}

    def output(output_id: str, what: str) -> Dict[str, Any]:
        return {
            "id": output_id,
            "description": f"{what}; one channel per task ({', '.join(model.task_names)})",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(model.task_names)}]
            + [{"type": "space", "id": a, "size": {"tensor_id": INPUT_ID, "axis_id": a}, "halo": halo(depth)}
               for a in ("y", "x")],
            "test_tensor": _file(files[output_id]),
            "sample_tensor": _file(files[f"{output_id}_sample"]),
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }

    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": f"ImPartial {' + '.join(model.task_names)} segmentation: foreground probability and "
                       f"uncertainty maps from a U-Net trained on a few scribbles",
        "authors": [{"name": a} for a in authors],
        "cite": [{"text": CITATION, "doi": CITATION_DOI}],
        "license": license_id,
        "documentation": files["documentation"].name,
        "covers": [files["cover"].name],
        "tags": ["impartial", "segmentation", "2d", "pytorch", "fluorescence-light-microscopy",
                 *model.task_names],
        "attachments": [_file(files["model"])],
        "inputs": [{
            "id": INPUT_ID,
            "description": f"raw 2-D image, {model.n_channels} channel(s)",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(names)}, space("y"), space("x")],
            "test_tensor": _file(files[INPUT_ID]),
            "sample_tensor": _file(files[f"{INPUT_ID}_sample"]),
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": LOW_PERCENTILE,
                                                 "max_percentile": HIGH_PERCENTILE, "eps": EPS}},
                {"id": "clip", "kwargs": {"min": -CLIP, "max": CLIP}},
            ],
        }],
        "outputs": [output(OUTPUT_IDS[0], "foreground probability"),
                    output(OUTPUT_IDS[1], "binary entropy of the foreground probability, in bits")],
        "weights": {"torchscript": {**_file(files["weights"]), "pytorch_version": torch.__version__.split("+")[0]}},
        "config": {"impartial": {
            "version": __version__,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "thresholds": model.thresholds,
            "tasks": list(model.task_names),
            "training_data_fingerprint": model.fingerprint,
        }},
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars; strings are written as JSON strings (valid YAML)."""
    pad = " " * indent

    def scalar(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {scalar(x)}" for k, x in v.items()) + "}"
        if isinstance(v, bool) or v is None:
            return json.dumps(v)
        if isinstance(v, float):
            # "1e-06" is a string to YAML 1.1 readers (PyYAML): give the mantissa a point.
            mantissa, e, exponent = repr(v).partition("e")
            return mantissa + ("" if "." in mantissa else ".0") + e + exponent if e else mantissa
        if isinstance(v, int):
            return str(v)
        return json.dumps(str(v))

    def simple(v: Any) -> bool:
        return not isinstance(v, (dict, list, tuple)) or not v or all(not isinstance(x, (dict, list, tuple)) for x in
                                                                      (v.values() if isinstance(v, dict) else v))

    lines = []
    if isinstance(value, dict):
        for key, v in value.items():
            if isinstance(v, dict) and v and not simple(v) or isinstance(v, dict) and len(v) > 3:
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            elif isinstance(v, (list, tuple)) and not simple(v):
                lines.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {scalar(v)}")
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, dict) and v:
                block = to_yaml(v, indent + 2)
                lines.append(f"{pad}- {block[indent + 2:]}")
            else:
                lines.append(f"{pad}- {scalar(v)}")
    else:
        lines.append(pad + scalar(value))
    return "\n".join(lines)


def export_model(model_path: os.PathLike, out: os.PathLike, image: Optional[np.ndarray] = None,
                 name: Optional[str] = None, authors: Sequence[str] = (), license_id: str = "CC-BY-4.0",
                 overwrite: bool = False) -> Path:
    """Write the bioimage.io model package of the ImPartial model file ``model_path`` to ``out`` (a .zip).

    Parameters
    ----------
    model_path : an ImPartial model file (.safetensors).
    out : the package to write; written to a temporary name first, then moved into place.
    image : an image like those the model was trained on ((H, W) or (C, H, W)): its centred crop
        is the test input and the cover. Default: a synthetic image (see ``package_test_input``).
    name : the package's name (default from the tasks).
    authors : who made the model (default: "ImPartial user").
    license_id : SPDX licence of the weights.
    overwrite : replace an existing ``out``.

    Returns the path written.
    """
    model_path, out = Path(model_path), Path(out)
    if out.suffix.lower() != ".zip":
        raise ExportError(f"--out {out}: a bioimage.io model package is a .zip file")
    model = ImPartialModel.load(model_path)  # the input first: a bad model is named before the output
    raw = package_test_input(model, image)
    if out.exists() and not overwrite:
        raise ExportError(f"--out {out} already exists; use --overwrite to replace it")
    if not out.parent.is_dir() and str(out.parent):
        raise ExportError(f"--out {out}: the folder {out.parent} does not exist")
    preprocessed = spec_preprocessing(raw)
    scripted = trace(model, preprocessed)
    with torch.no_grad():
        probability, uncertainty = (t[0].numpy() for t in scripted(torch.from_numpy(preprocessed[None])))
    names = channel_names(model)
    with tempfile.TemporaryDirectory(prefix="impartial-export-") as tmp:
        folder = Path(tmp)
        # The attached model file keeps its name, as far as the spec's file names allow.
        attached = f"{_identifier(model_path.stem, 'impartial_model')}.safetensors"
        files = {"model": folder / attached, "weights": folder / "weights_torchscript.pt",
                 INPUT_ID: folder / "test_input.npy", OUTPUT_IDS[0]: folder / "test_output_foreground_probability.npy",
                 OUTPUT_IDS[1]: folder / "test_output_uncertainty.npy", "cover": folder / "cover.png",
                 "documentation": folder / "README.md", f"{INPUT_ID}_sample": folder / "sample_input.tif",
                 f"{OUTPUT_IDS[0]}_sample": folder / "sample_output_foreground_probability.tif",
                 f"{OUTPUT_IDS[1]}_sample": folder / "sample_output_uncertainty.tif"}
        shutil.copyfile(model_path, files["model"])
        scripted.save(str(files["weights"]))
        np.save(files[INPUT_ID], raw[None])
        np.save(files[OUTPUT_IDS[0]], probability[None].astype(np.float32))
        np.save(files[OUTPUT_IDS[1]], uncertainty[None].astype(np.float32))
        import imageio
        import tifffile

        # The sample tensors show a person the same images, as TIFFs that image viewers open.
        for key, array in ((INPUT_ID, raw), (OUTPUT_IDS[0], probability), (OUTPUT_IDS[1], uncertainty)):
            tifffile.imwrite(files[f"{key}_sample"], array[None].astype(np.float32))

        imageio.imwrite(files["cover"], _cover(raw, probability))
        files["documentation"].write_text(_documentation(model, names, attached), encoding="utf-8")
        rdf = description(model, files, names, name or f"ImPartial {' and '.join(model.task_names)}",
                          list(authors) or ["ImPartial user"], license_id)
        (folder / "rdf.yaml").write_text(to_yaml(rdf) + "\n", encoding="utf-8")
        partial = out.with_name(f".{out.name}.partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as package:
            package.write(folder / "rdf.yaml", "rdf.yaml")
            for path in files.values():
                package.write(path, path.name)
        os.replace(partial, out)
    return out
