"""The benchmark data: MIBI dsDNA nuclei and Vectra 2-channel whole cells (see examples/data/README.md).

:func:`data_dir` is the one place that finds the data: ``--data``, then ``$IMPARTIAL_DATA``, then
the project's shared data next to the clone (``../shared/data``), then the copy bundled under
``examples/data`` (identical for MIBI and Vectra, so a fresh clone runs on its own).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# Smoke runs (--quick) write here unless told otherwise, so they never replace the measured tables.
QUICK_RESULTS = ROOT / "out" / "benchmarks-quick"
MIBI_IDS = (0, 3, 5, 7)
VECTRA_IDS = (1, 2)


BUNDLED_DATA = ROOT / "examples" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_dir(override: Optional[str] = None, needs: str = "mibi_dsdna/image0.tif") -> Path:
    """The first data folder that holds ``needs``.

    Parameters
    ----------
    override : str, optional
        A folder given on the command line (``--data``); when given, it must hold ``needs``.
    needs : str
        A file, relative to the data folder, that the caller reads (e.g.
        ``"vectra_2ch/image1_cells.roi.zip"``); folders without it are passed over.

    Returns
    -------
    Path
        ``override``, else ``$IMPARTIAL_DATA``, else ``<repo>/../shared/data``, else
        ``<repo>/examples/data``: the first of these holding ``needs``.

    Raises
    ------
    FileNotFoundError
        No candidate holds ``needs``; the message lists where it looked.
    """
    if override:
        if not (Path(override) / needs).exists():
            raise FileNotFoundError(f"--data {override}: no {needs} there")
        return Path(override)
    candidates = [os.environ.get("IMPARTIAL_DATA"), SHARED_DATA, BUNDLED_DATA]
    for candidate in candidates:
        if candidate and (Path(candidate) / needs).exists():
            return Path(candidate)
    looked = ", ".join(str(c) for c in candidates if c)
    raise FileNotFoundError(f"{needs} not found in {looked}: pass --data DIR or set IMPARTIAL_DATA")


@dataclass
class MibiSet:
    ids: tuple
    images: List[np.ndarray]          # (H, W) float32 in [0, 1]
    truth: List[np.ndarray]           # instance labels
    scribbles: Dict[str, List[np.ndarray]]  # "n100" / "n200" -> uint8 scribbles (1 bg, 2 nucleus)


def load_mibi(directory: Optional[str] = None) -> MibiSet:
    d = data_dir(directory) / "mibi_dsdna"
    images = [tifffile.imread(d / f"image{i}.tif").astype(np.float32) for i in MIBI_IDS]
    truth = [tifffile.imread(d / f"image{i}_nuclei_labels.tif").astype(np.int32) for i in MIBI_IDS]
    scribbles = {b: [tifffile.imread(d / f"image{i}_scribbles_{b}.tif").astype(np.uint8) for i in MIBI_IDS]
                 for b in ("n100", "n200")}
    return MibiSet(MIBI_IDS, images, truth, scribbles)


@dataclass
class VectraImage:
    id: int
    image: np.ndarray        # (2, H, W) float32 raw: channel 0 PanCK, channel 1 DAPI
    traced: np.ndarray       # instance labels of the traced cells (partial annotation)
    n_rois: int
    scribbles: np.ndarray    # cell-task scribbles made from the traces (3 inside, 1 ring outside where dark)


def load_vectra(directory: Optional[str] = None) -> List[VectraImage]:
    from impartial_core.scribbles.imagej_rois import rasterize_rois, read_imagej_rois
    from impartial_core.scribbles.objects import scribbles_from_instances

    d = data_dir(directory, needs="vectra_2ch/image1_cells.roi.zip") / "vectra_2ch"
    out = []
    for i in VECTRA_IDS:
        image = tifffile.imread(d / f"image{i}.tif").astype(np.float32)
        rois = read_imagej_rois(d / f"image{i}_cells.roi.zip")
        traced = rasterize_rois(rois, image.shape[1:])
        out.append(VectraImage(i, image, traced, len(rois), scribbles_from_instances(traced, task="cells", image=image)))
    return out


def machine_description() -> str:
    """CPU model and vector instructions, logical cores, torch threads, GPU if any: for the header of
    every results file. Machines of one kind differ: two "AMD EPYC" CPUs, one with AVX-512 BF16
    (the network in bfloat16) and one with AVX2 only (float32), gave 2.3 s and 4.4 s for the same
    nuclear-stain step."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fd:
            for line in fd:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [cpu, f"{os.cpu_count()} logical cores"]
    try:
        import torch

        from impartial_core.devices import bfloat16_native

        capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
        bfloat16 = "native bfloat16" if bfloat16_native(torch.device("cpu")) else "no native bfloat16"
        parts[0] = f"{cpu} ({', '.join(filter(None, [capability, bfloat16]))})"
        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    try:
        load = os.getloadavg()
        parts.append(f"load average {load[0]:.1f}")
    except OSError:
        pass
    return "; ".join(parts)


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fmt(mean: float, std: Optional[float] = None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    if std is None or np.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_folder(out: Optional[str], quick: bool) -> str:
    """Where a benchmark writes: ``--out`` when given, else the measured tables' folder, or a
    scratch folder for a ``--quick`` smoke run."""
    return out if out is not None else str(QUICK_RESULTS if quick else RESULTS)


def write_results(out: str, stem: str, text: str, results: dict, default=str) -> Path:
    """Write ``<stem>.md`` (the tables) and ``<stem>.json`` (the raw numbers) into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(text + "\n")
    (folder / f"{stem}.json").write_text(json.dumps(results, indent=1, default=default))
    return folder / f"{stem}.md"
