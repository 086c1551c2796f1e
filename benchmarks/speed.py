"""Speed benchmark: training-step throughput, prediction throughput and memory, time to accuracy,
and the whole CellProfiler pipeline against IdentifyPrimaryObjects.

    python -m benchmarks.speed            # full (~15 min on 2 cores)
    python -m benchmarks.speed --quick    # smoke version (~3 min)
    python -m benchmarks.speed --parts steps predict

Writes benchmarks/results/speed.md, speed.json and time_to_accuracy.png (``--out`` elsewhere).
Timings on a shared machine are noisy: every part prints what it ran so it can be re-run alone.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.data import ROOT, fmt, load_mibi, load_vectra, markdown_table, results_folder, write_results
from benchmarks.training_steps import cpu_precisions, run_steps, steps_table

PARTS = ("steps", "predict", "instances", "tta", "pipeline")


# ----------------------------------------------------------------------------------------------
# (a) training steps: benchmarks.training_steps
# (b) prediction throughput and peak memory (one subprocess per size)
# ----------------------------------------------------------------------------------------------
def peak_rss_kb() -> int:
    """Peak resident set of this process in kB: VmHWM from /proc (Linux), else ru_maxrss.

    ru_maxrss alone misleads in a subprocess: Linux keeps the parent's high-water mark across
    fork + exec, so a child of a big benchmark process would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fd:
            for line in fd:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = peak_rss_kb()
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def tiled(array: np.ndarray, size: int) -> np.ndarray:
    """A (size, size) image made of copies of a 2-D ``array``, for timings on large images."""
    return np.tile(array, (size // array.shape[0] + 1, size // array.shape[1] + 1))[:size, :size].copy()


def _predict_worker(size: int, repeats: int, width: int, device: str, mixed_precision: bool) -> None:
    """Runs in a fresh process: times ``ImPartialModel.predict`` and reports the peak resident set."""
    import torch

    from impartial_core.config import NetworkConfig, tasks_for
    from impartial_core.model import ImPartialModel
    from impartial_core.network import ImPartialNet

    torch.manual_seed(0)
    model = ImPartialModel(ImPartialNet(NetworkConfig(1, width, 2), tasks_for("nuclei", 1)).eval(), {"nuclei": 0.5})
    image = tiled(load_mibi().images[0], size)
    baseline = peak_rss_kb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        maps = model.predict(image, device=device, mixed_precision=mixed_precision)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del maps
    peak = peak_rss_kb()
    gpu_peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    print(json.dumps({"size": size, "times": times, "baseline_rss_kb": baseline, "peak_rss_kb": peak,
                      "gpu_peak_bytes": gpu_peak, "threads": torch.get_num_threads()}))


def run_predict(args, log=print, devices: Optional[Sequence[str]] = None) -> Dict:
    import torch

    devices = devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    # The CPU in each precision it predicts in (the default last); a GPU always in bfloat16.
    runs = [(device, precision, mixed) for device in devices
            for precision, mixed in (cpu_precisions() if device == "cpu" else [("bf16", True)])]
    rows = []
    for device, precision, mixed in runs:
        for size in args.sizes:
            repeats = 1 if args.quick or size > 2048 else 3
            command = [sys.executable, "-m", "benchmarks.speed", "--_predict-worker", str(size), str(repeats),
                       str(args.width), device, str(int(mixed))]
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
            if result.returncode != 0:
                log(f"  prediction {size}² on {device} failed:\n{result.stderr[-2000:]}")
                rows.append({"size": size, "device": device, "precision": precision, "error": result.stderr[-500:]})
                continue
            data = json.loads(result.stdout.strip().splitlines()[-1])
            best = min(data["times"])
            row = dict(size=size, device=device, precision=precision, seconds=best, median_s=float(np.median(data["times"])),
                       megapixels_per_s=size * size / 1e6 / best, peak_rss_gb=data["peak_rss_kb"] / 1024 ** 2,
                       baseline_rss_gb=data["baseline_rss_kb"] / 1024 ** 2, gpu_peak_gb=data["gpu_peak_bytes"] / 1024 ** 3,
                       repeats=repeats, threads=data["threads"])
            log(f"  predict {size}² on {device} ({precision}): {best:.2f} s, {row['megapixels_per_s']:.2f} MP/s, "
                f"peak RSS {row['peak_rss_gb']:.2f} GB")
            rows.append(row)
    return {"rows": rows, "width": args.width}


def predict_table(data: Dict) -> str:
    header = ["image", "device", "precision", "seconds", "MP / s", "peak resident memory", "of which before predicting",
              "GPU peak"]
    rows = []
    for r in data["rows"]:
        # Results saved before the precision column predicted in float32 on a CPU, in bfloat16 on a GPU.
        precision = r.get("precision", "fp32" if r["device"] == "cpu" else "bf16")
        if "error" in r:
            rows.append([f"{r['size']}²", r["device"], precision, "failed", "", "", "", ""])
            continue
        rows.append([f"{r['size']}²", r["device"], precision,
                     f"{r['seconds']:.2f}" + (f" (best of {r['repeats']})" if r["repeats"] > 1 else ""),
                     f"{r['megapixels_per_s']:.2f}", f"{r['peak_rss_gb']:.2f} GB", f"{r['baseline_rss_gb']:.2f} GB",
                     f"{r['gpu_peak_gb']:.2f} GB" if r["device"] != "cpu" else "–"])
    goals = []
    for r in data["rows"]:
        what = f" ({r.get('precision', 'fp32')})"
        if r.get("device") == "cpu" and r.get("size") == 2048 and "seconds" in r:
            goals.append(f"2048² under 10 s{what}: {r['seconds']:.1f} s **{'pass' if r['seconds'] < 10 else 'FAIL'}**")
        if r.get("device") == "cpu" and r.get("size") == 8192 and "peak_rss_gb" in r:
            goals.append(f"8192² peak memory under 3 GB{what}: {r['peak_rss_gb']:.2f} GB "
                         f"**{'pass' if r['peak_rss_gb'] < 3 else 'FAIL'}**")
    return ("### Prediction throughput and peak memory\n\n" + markdown_table(header, rows)
            + f"\n\n`ImPartialModel.predict` (normalisation, tiled prediction with blending, probability + uncertainty maps) "
              f"of a single-channel float32 image (MIBI image 0 tiled), default-width model (width {data['width']}, untrained: "
              "speed does not depend on the weights), each size in a fresh process; peak resident memory = high-water mark of that "
              "process (VmHWM; Python, torch, the image and the output maps included). Instances (`segment`) are not included. "
              "bf16: the network in bfloat16 autocast (the probability computed from its logits in float32), the default on a "
              "GPU and on a CPU with native bfloat16 (AVX-512 BF16)."
            + ("\n\nGoals: " + "; ".join(goals) if goals else ""))


def two_by_two(images: Sequence[np.ndarray]) -> np.ndarray:
    """The four MIBI images (or their maps) as one 2 x 2 mosaic."""
    return np.block([[images[0], images[1]], [images[2], images[3]]])


def _best_of(repeats: int, work) -> Tuple[List[float], int]:
    """Seconds of ``work()`` (which returns a count) over ``repeats`` runs, and its count."""
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = int(work())
        times.append(time.perf_counter() - start)
    return times, count


def _cells_worker(inputs: str, size: int) -> None:
    """Nuclei, cells and cytoplasm of the saved 2048² cells inputs tiled to ``size``, in a process of
    its own so that its peak resident memory is the step's; prints one JSON line."""
    from impartial_core.instances import segment

    from benchmarks.accuracy import VECTRA_NUCLEAR_CHANNEL

    saved = np.load(inputs)
    image = np.stack([tiled(channel, size) for channel in saved["image"]])
    cells_map = {"cells": tiled(saved["cells"], size)}
    thresholds = {"cells": float(saved["threshold"])}
    del saved
    baseline = peak_rss_kb()
    start = time.perf_counter()
    cells = segment(cells_map, thresholds, image=image, nuclear_channel=VECTRA_NUCLEAR_CHANNEL).cells.max()
    print(json.dumps({"size": size, "seconds": time.perf_counter() - start, "cells": int(cells),
                      "baseline_rss_kb": baseline, "peak_rss_kb": peak_rss_kb()}))


def _large_cells(image: np.ndarray, cells_map: Dict, threshold: float, size: int, log=print) -> Dict:
    """:func:`_cells_worker` on these inputs, in a subprocess."""
    with tempfile.TemporaryDirectory() as folder:
        inputs = str(Path(folder) / "cells_inputs.npz")
        np.savez(inputs, image=image, cells=cells_map["cells"], threshold=threshold)
        result = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--_cells-worker", inputs, str(size)],
                                cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        log(f"  cells of a {size}² two-channel image failed:\n{result.stderr[-2000:]}")
        return {"size": size, "error": result.stderr[-500:]}
    data = json.loads(result.stdout.strip().splitlines()[-1])
    log(f"  cells of a {size}² two-channel image: {data['seconds']:.1f} s, {data['cells']} cells, "
        f"peak RSS {data['peak_rss_kb'] / 1024 ** 2:.2f} GB")
    return data


def run_instances(args, log=print) -> Dict:
    """Seconds of the instance step (``impartial_core.instances.segment``: threshold, split touching
    nuclei, fill holes, drop small objects) on 2048² nuclei probability maps: the four MIBI maps of
    a model, tiled, so that the map holds real touching nuclei. Two models, as the split depends on
    the map (``instances.smoothness``): one trained briefly, whose map is smooth (split at the
    mask's necks), one for the module's default 3 minutes, whose map is confident (its valleys read
    too). Then the nuclei of a 2048² nuclear stain (``instances.nuclei_from_channel``), and the
    nuclei, cells and cytoplasm of a 2048² two-channel image from a cells-only model given its
    nuclear channel (the Vectra images and a model trained on their traces)."""
    from impartial_core.config import TrainingConfig, tasks_for
    from impartial_core.instances import nuclei_from_channel, segment, smoothness
    from impartial_core.model import ImPartialModel

    from benchmarks.accuracy import VECTRA_NUCLEAR_CHANNEL

    mibi = load_mibi(args.data)
    size = 2048
    repeats = 1 if args.quick else 3
    maps = []
    for budget in ([10.0] if args.quick else [30.0, TrainingConfig().time_budget_s]):
        model = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks_for("nuclei", 1),
                                     config=TrainingConfig(time_budget_s=budget))
        probability = tiled(two_by_two([model.predict(image)["nuclei"].foreground_probability
                                        for image in mibi.images]), size)
        times, count = _best_of(repeats, lambda: segment({"nuclei": probability}, model.thresholds).nuclei.max())
        maps.append({"training_budget_s": budget, "threshold": model.thresholds["nuclei"],
                     "smoothness": smoothness(probability), "seconds": min(times), "times": times, "nuclei": count})
        log(f"  instances of a {size}² map ({budget:.0f}-s model, smoothness {maps[-1]['smoothness']:.2f}): "
            f"{min(times):.2f} s, {count} nuclei")
    stain = tiled(two_by_two(mibi.images), size)
    stain_times, stain_count = _best_of(repeats, lambda: nuclei_from_channel(stain).max())
    log(f"  nuclei of a {size}² nuclear stain: {min(stain_times):.2f} s, {stain_count} nuclei")
    vectra = load_vectra(args.data)
    cells_budget = 10.0 if args.quick else 30.0
    cells_model = ImPartialModel.train([v.image for v in vectra], [v.scribbles for v in vectra], tasks_for("cells", 2),
                                       config=TrainingConfig(time_budget_s=cells_budget))
    image = np.stack([tiled(two_by_two([vectra[i % len(vectra)].image[c] for i in range(4)]), size) for c in range(2)])
    cells_map = {"cells": cells_model.predict(image)["cells"].foreground_probability}
    cells_times, cells_count = _best_of(repeats, lambda: segment(
        cells_map, cells_model.thresholds, image=image, nuclear_channel=VECTRA_NUCLEAR_CHANNEL).cells.max())
    log(f"  cells of a {size}² two-channel image: {min(cells_times):.2f} s, {cells_count} cells")
    large = [] if args.quick else [_large_cells(image, cells_map, cells_model.thresholds["cells"], 8192, log)]
    return {"size": size, "maps": maps, "large_cells": large, "stain_seconds": min(stain_times), "stain_times": stain_times,
            "stain_nuclei": stain_count, "cells_training_budget_s": cells_budget, "cells_threshold": cells_model.thresholds["cells"],
            "cells_seconds": min(cells_times), "cells_times": cells_times, "cells": cells_count}


def instances_table(data: Dict) -> str:
    from impartial_core.instances import CONFIDENT_MAP

    def seconds(best, times):
        return f"{best:.2f}" + (f" (best of {len(times)})" if len(times) > 1 else "")

    rows = [[f"nuclei probability map, {data['size']}², {m['training_budget_s']:.0f}-s model",
             f"{m['smoothness']:.2f}", "valleys or necks" if m["smoothness"] < CONFIDENT_MAP else "necks",
             f"{m['threshold']:.2f}", seconds(m["seconds"], m["times"]), str(m["nuclei"])] for m in data["maps"]]
    rows.append([f"nuclear stain, {data['size']}²", "–", "necks", "Otsu", seconds(data["stain_seconds"], data["stain_times"]),
                 str(data["stain_nuclei"])])
    if "cells_seconds" in data:
        rows.append([f"cells: nuclear stain + cell probability map, {data['size']}², {data['cells_training_budget_s']:.0f}-s "
                     "cells model", "–", "nuclei at necks, cells by propagation", f"{data['cells_threshold']:.2f}",
                     seconds(data["cells_seconds"], data["cells_times"]), f"{data['cells']} cells"])
    for large in data.get("large_cells", []):
        rows.append([f"the same, tiled to {large['size']}² (a process of its own)", "–", "as above", "",
                     "failed" if "error" in large else f"{large['seconds']:.1f}",
                     "" if "error" in large else f"{large['cells']} cells; peak resident memory "
                     f"{large['peak_rss_kb'] / 1024 ** 2:.2f} GB, {large['baseline_rss_kb'] / 1024 ** 2:.2f} GB before the step"])
    return ("### Instance step\n\n"
            + markdown_table(["input", "smoothness", "split", "threshold", "seconds", "nuclei"], rows)
            + "\n\n`impartial_core.instances.segment` (nuclei task: threshold, split touching nuclei, fill holes, drop "
              "objects under 20 pixels) of the four MIBI nuclei probability maps of a model trained for the time shown "
              "(MIBI n100), tiled to the size shown. The split depends on the map's smoothness (the share of its pixels "
              f"above 0.1 that stay under 0.9): under {CONFIDENT_MAP}, the default 3-minute training's confident maps, "
              "nuclei are cut at the probability's valleys and the mask's necks; above, at the necks only. "
              "`instances.nuclei_from_channel` (the seeds of cells when only the cell task was trained: background "
              "subtraction, local contrast, Otsu, split at the necks) of the four MIBI images tiled the same way. Cells: "
              "`instances.segment` of a cells-only model (trained on the two Vectra images' traces for the time shown) "
              "with the nuclear channel given, on the Vectra images (PanCK, DAPI) tiled the same way: the nuclei found "
              "in DAPI, cells grown from them over the cell probability by propagation, cytoplasm. One CPU "
              "thread (scipy/scikit-image).")


# ----------------------------------------------------------------------------------------------
# (c) time to accuracy
# ----------------------------------------------------------------------------------------------
def run_tta(args, log=print, reuse: Optional[Dict[float, Dict]] = None) -> Dict:
    """Separate trainings with time budgets (TrainingConfig(time_budget_s=B, max_iterations=10**6)),
    each scored on MIBI n100 like the accuracy benchmark."""
    import torch

    from benchmarks.accuracy import impartial_mibi

    from impartial_core.config import TrainingConfig

    mibi = load_mibi(args.data)
    points = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for budget in args.tta_budgets:
            if device == "cpu" and reuse and budget in reuse:
                summary = reuse[budget]
                log(f"  budget {budget:.0f} s: reused from the accuracy run")
            else:
                config = TrainingConfig(seed=0, time_budget_s=float(budget), max_iterations=10 ** 6, device=device)
                summary = impartial_mibi(mibi, "n100", config, log=lambda m: log("  budget %.0f s:%s" % (budget, m[11:])))["summary"]
            points.append(dict(device=device, budget_s=budget, train_s=summary["train_s"], iterations=summary.get("iterations"),
                               **{k: summary[k] for k in ("pixel_f1", "auc", "mdice", "miou", "f1_iou50", "ap_iou50")}))
    plot_tta(points, Path(args.out) / "time_to_accuracy.png", args.baseline_f1)
    return {"points": points}


def plot_tta(points: List[Dict], path: Path, baseline_f1: Optional[Dict[str, float]] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"mdice": ("mDICE", "o-"), "miou": ("mIOU", "s-"), "f1_iou50": ("F1@IoU0.5", "^-"), "pixel_f1": ("pixel F1", "d--")}
    for device in sorted({p["device"] for p in points}):
        pts = sorted((p for p in points if p["device"] == device), key=lambda p: p["train_s"])
        for key, (label, style) in styles.items():
            ax.plot([p["train_s"] for p in pts], [p[key] for p in pts], style, label=f"{label} ({device})")
    ax.axvline(300, color="black", ls=":", lw=0.8)
    ax.set_xlim(left=0)
    ax.axhline(0.72, color="grey", ls=":", lw=1)
    ax.text(ax.get_xlim()[0], 0.722, " goal mDICE 0.72", color="grey", fontsize=8, va="bottom")
    ax.axhline(0.60, color="grey", ls=":", lw=1)
    ax.text(ax.get_xlim()[0], 0.602, " goal mIOU 0.60", color="grey", fontsize=8, va="bottom")
    for name, value in (baseline_f1 or {}).items():
        ax.axhline(value, color="red", ls="--", lw=0.8)
        ax.text(ax.get_xlim()[1], value, f"{name} F1@IoU0.5 ", color="red", fontsize=8, ha="right", va="bottom")
    ax.set_xlabel("training time (s), default settings, separate run per time budget")
    ax.set_ylabel("score on MIBI n100 (4 training images)")
    ax.set_title("ImPartial time to accuracy")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tta_table(data: Dict) -> str:
    header = ["device", "time budget (s)", "trained (s)", "iterations", "pixel F1", "AUC", "mDICE", "mIOU", "F1@IoU0.5", "AP@IoU0.5"]
    rows = [[p["device"], f"{p['budget_s']:.0f}", f"{p['train_s']:.0f}", str(p["iterations"])]
            + [fmt(p[k]) for k in ("pixel_f1", "auc", "mdice", "miou", "f1_iou50", "ap_iou50")] for p in data["points"]]
    return ("### Time to accuracy (MIBI n100, default settings, seed 0)\n\n" + markdown_table(header, rows)
            + "\n\nOne training per time budget (`TrainingConfig(time_budget_s=B, max_iterations=10**6)`; training may stop "
              "earlier when the validation loss stops improving). Curve: `time_to_accuracy.png`.")


# ----------------------------------------------------------------------------------------------
# (d) whole CellProfiler pipeline
# ----------------------------------------------------------------------------------------------
def _build_pipelines_worker(folder: str, model_path: str) -> None:
    """Runs in a fresh process (the plugin folder must be set before CellProfiler fills its module
    table): writes impartial.cppipe and identifyprimaryobjects.cppipe into ``folder``."""
    from impartial_cellprofiler.pipelines import (
        absolute_folder, add_module, find_module, set_values, start_headless, write_pipeline,
    )

    start_headless(ROOT / "plugins")
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.utilities.core.modules import instantiate_module

    from benchmarks import baselines

    def pipeline_with(segmenter):
        pipeline = Pipeline()
        pipeline.init_modules()
        set_values(find_module(pipeline, "NamesAndTypes"), assignment_method="All images", single_image_provider="DNA")
        segmenter.set_module_num(len(pipeline.modules()) + 1)
        pipeline.add_module(segmenter)
        add_module(pipeline, "ExportToSpreadsheet", wants_overwrite_without_warning=True)
        return pipeline

    impartial = instantiate_module("ImPartial")
    impartial.channels[0].image_name.value = "DNA"
    impartial.segment_choice.value = "Nuclei"
    impartial.nuclei_name.value = "Nuclei"
    impartial.model_mode.value = "Use a saved model"
    impartial.model_directory.value = absolute_folder(Path(model_path).parent)
    impartial.model_file_name.value = Path(model_path).name
    ipo = baselines._ipo_module(baselines._cellprofiler(), baselines.MIBI_IPO_SETTINGS, "DNA", "Nuclei")
    for name, segmenter in (("impartial", impartial), ("identifyprimaryobjects", ipo)):
        write_pipeline(pipeline_with(segmenter), Path(folder) / f"{name}.cppipe")


def saved_model(work: Path, model) -> Path:
    """Save ``model`` as ``work/model/impartial_model.safetensors``, the path returned."""
    model_path = work / "model" / "impartial_model.safetensors"
    model_path.parent.mkdir()
    model.save(model_path)
    return model_path


def saved_model_and_pipelines(work: Path, mibi, config) -> Path:
    """Train a nuclei model on MIBI n100 with ``config``, save it as
    ``work/model/impartial_model.safetensors`` and write ``impartial.cppipe`` and
    ``identifyprimaryobjects.cppipe`` (applying it, and CellProfiler's module) into ``work``."""
    from impartial_core.config import tasks_for
    from impartial_core.model import ImPartialModel

    model_path = saved_model(work, ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks_for("nuclei", 1),
                                                        config=config))
    subprocess.run([sys.executable, "-m", "benchmarks.speed", "--_build-pipelines", str(work), str(model_path)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return model_path


def headless_command(pipeline: Path, images: Path, out: Path) -> List[str]:
    """``cellprofiler -c -r`` on ``pipeline`` as the benchmarks run it: CellProfiler 5's TIFF reader,
    the project's plugins, each module's time logged (``-L 20``, read with ``_LOG_LINE``)."""
    cellprofiler = shutil.which("cellprofiler", path=str(Path(sys.executable).parent)) or "cellprofiler"
    return [cellprofiler, "-c", "-r", "-p", str(pipeline), "-i", str(images), "-o", str(out),
            "-e", "imageio_reader", "--plugins-directory", str(ROOT / "plugins"), "-L", "20"]


_LOG_LINE = re.compile(r"Image # (\d+), module (\S+) # (\d+): CPU_time = ([\d.]+) secs, Wall_time = ([\d.]+) secs")


def run_pipeline(args, log=print) -> Dict:
    """Headless ``cellprofiler -c -r`` on the same image sets with each pipeline, in the same run."""
    import tifffile

    from impartial_core.config import TrainingConfig

    work = Path(tempfile.mkdtemp(prefix="impartial_bench_"))
    try:
        mibi = load_mibi(args.data)
        budget = 10.0 if args.quick else 30.0
        saved_model_and_pipelines(work, mibi, TrainingConfig(time_budget_s=budget))
        images = work / "images"
        images.mkdir()
        size, n_sets = (min(args.pipeline_size, 1024) if args.quick else args.pipeline_size), (2 if args.quick else 4)
        for i, im in enumerate(mibi.images[:n_sets]):
            reps = size // im.shape[0] + 1
            tifffile.imwrite(images / f"mibi{i}.tif", np.tile(im, (reps, reps))[:size, :size].astype(np.float32))
        rows = []
        for name in ("identifyprimaryobjects", "impartial"):
            out = work / f"out_{name}"
            command = headless_command(work / f"{name}.cppipe", images, out)
            start = time.perf_counter()
            result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=3600)
            wall = time.perf_counter() - start
            text = result.stdout + result.stderr
            per_set: Dict[int, float] = {}
            per_module: Dict[str, List[float]] = {}
            for image, module, number, cpu, module_wall in _LOG_LINE.findall(text):
                per_set[int(image)] = per_set.get(int(image), 0.0) + float(module_wall)
                per_module.setdefault(f"{int(number):02d} {module}", []).append(float(module_wall))
            if result.returncode != 0 or not per_set:
                log(f"  cellprofiler with {name} failed (rc {result.returncode}):\n{text[-3000:]}")
                rows.append({"pipeline": name, "error": text[-1000:]})
                continue
            sets = [per_set[k] for k in sorted(per_set)]
            row = dict(pipeline=name, n_sets=len(sets), wall_s=wall, first_set_s=sets[0],
                       later_sets_s=float(np.mean(sets[1:])) if len(sets) > 1 else float("nan"),
                       per_module_s={k: float(np.mean(v)) for k, v in per_module.items()}, size=size)
            log(f"  {name}: {wall:.1f} s in all for {len(sets)} image sets of {size}²; first set {sets[0]:.2f} s, "
                f"later sets {row['later_sets_s']:.2f} s each")
            rows.append(row)
        return {"rows": rows, "model_training_s": budget, "size": size}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pipeline_table(data: Dict) -> str:
    header = ["pipeline", "image sets", "s / image set (after the first)", "first image set (s)",
              "segmentation module s / set", "whole run incl. start-up (s)"]
    rows = []
    for r in data["rows"]:
        if "error" in r:
            rows.append([r["pipeline"], "failed", "", "", "", ""])
            continue
        segment = [v for k, v in r["per_module_s"].items() if k.split(" ", 1)[1] in ("ImPartial", "IdentifyPrimaryObjects")]
        rows.append(["ImPartial (saved model)" if r["pipeline"] == "impartial" else "IdentifyPrimaryObjects",
                     str(r["n_sets"]), f"{r['later_sets_s']:.2f}", f"{r['first_set_s']:.2f}",
                     f"{segment[0]:.2f}" if segment else "–", f"{r['wall_s']:.1f}"])
    return (f"### Whole CellProfiler pipeline (headless, {data['size']}² single-channel image sets)\n\n"
            + markdown_table(header, rows)
            + "\n\nPipelines: Images, Metadata, NamesAndTypes, Groups, then ImPartial (\"Use a saved model\", nuclei) or "
              "IdentifyPrimaryObjects (the accuracy benchmark's settings), then ExportToSpreadsheet (object counts); run with `cellprofiler -c -r -e imageio_reader -L 20` one after the other in the "
              "same benchmark run. Seconds per image set = sum of the modules' wall times that CellProfiler logs; the "
              "first set includes loading the model. The model was trained for "
              f"{data['model_training_s']:.0f} s on MIBI n100 for this (its accuracy is irrelevant here; speed is not).")


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="ImPartial speed benchmarks")
    parser.add_argument("--quick", action="store_true", help="smoke version: fewer steps, sizes up to 2048, short budgets")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="prediction sizes (default 512 2048 8192)")
    parser.add_argument("--tta-budgets", nargs="+", type=float, default=None,
                        help="time budgets (s) for the time-to-accuracy curve (default 30 60 120 180 300)")
    parser.add_argument("--width", type=int, default=None, help="network width for prediction (default: NetworkConfig default)")
    parser.add_argument("--pipeline-size", type=int, default=2048, help="image side of the pipeline image sets")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results; with --quick out/benchmarks-quick")
    parser.add_argument("--_predict-worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--_build-pipelines", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_cells-worker", nargs=2, help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[Sequence[str]] = None, log=print, reuse_tta: Optional[Dict[float, Dict]] = None,
         baseline_f1: Optional[Dict[str, float]] = None) -> Dict:
    from impartial_core.config import NetworkConfig

    from benchmarks.accuracy import header_lines

    args = build_parser().parse_args(argv)
    args.out = results_folder(args.out, args.quick)
    if args._predict_worker:
        size, repeats, width, device, mixed = args._predict_worker
        _predict_worker(int(size), int(repeats), int(width), device, bool(int(mixed)))
        return {}
    if args._build_pipelines:
        _build_pipelines_worker(*args._build_pipelines)
        return {}
    if args._cells_worker:
        _cells_worker(args._cells_worker[0], int(args._cells_worker[1]))
        return {}
    args.sizes = args.sizes or ([512, 2048] if args.quick else [512, 2048, 8192])
    args.tta_budgets = args.tta_budgets or ([10.0, 20.0] if args.quick else [30.0, 60.0, 120.0, 180.0, 300.0])
    args.width = args.width or NetworkConfig().width
    args.baseline_f1 = baseline_f1
    command = "python -m benchmarks.speed " + " ".join(argv if argv is not None else sys.argv[1:])
    results: Dict = {"command": command, "quick": args.quick}
    sections = ["## Speed", header_lines(command)]
    start = time.perf_counter()
    runners = {"steps": (lambda: run_steps(args, log), steps_table),
               "predict": (lambda: run_predict(args, log), predict_table),
               "instances": (lambda: run_instances(args, log), instances_table),
               "tta": (lambda: run_tta(args, log, reuse_tta), tta_table),
               "pipeline": (lambda: run_pipeline(args, log), pipeline_table)}
    for part in PARTS:
        if part not in args.parts:
            continue
        log(f"speed: {part} ...")
        results[part] = runners[part][0]()
        sections.append(runners[part][1](results[part]))
    results["elapsed_s"] = time.perf_counter() - start
    text = "\n\n".join(sections)
    log("\n" + text)
    out = write_results(args.out, "speed", text, results).parent
    log(f"\nwrote {out / 'speed.md'} and speed.json ({results['elapsed_s']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
