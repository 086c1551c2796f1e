"""The CUDA benchmarks, for when a GPU (e.g. an H100) is available; about 6 minutes.

    python -m benchmarks.gpu --out DIR      # exits 0 with a message when CUDA is not available

1. Checks: the patch sampler cuts the same batches on the GPU as on the CPU, and a bf16 GPU
   prediction agrees with the fp32 CPU one.
2. Training-step time at the paper's configuration (depth 2, 64 filters, batch 64 of 128², one
   channel) and at the default (16 filters, batch 8): bf16 autocast + channels_last (what
   training does on CUDA) and fp32, with the fraction of the measured bf16 / fp32 matmul peak.
3. Accuracy after GPU training: default settings (3 seeds) and shorter time budgets, MIBI n100,
   scored like ``benchmarks.accuracy``.
4. Prediction throughput and GPU / host peak memory for 512², 2048², 8192².
5. Both configurations' steps with ``TrainingConfig(compile_network=True)`` (compiles first), in
   torch.compile's default mode and with CUDA graphs ("reduce-overhead").

Each section's results are written as soon as it ends (gpu.md, gpu.json in ``--out``), so a run
cut short still leaves what it measured.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import speed, training_steps
from benchmarks.accuracy import GOALS, header_lines, impartial_mibi
from benchmarks.data import RESULTS, fmt, load_mibi, markdown_table, write_results

PAPER = ("paper (depth 2, 64 filters)", 64, 64)
DEFAULT = ("default (depth 2, 16 filters)", 16, 8)
SHORT_BUDGETS_S = (5.0, 10.0)
SEEDS = (0, 1, 2)
COMPILE_MODES = ("default", "reduce-overhead")


def check_sampler_and_prediction(mibi) -> Dict:
    """Same seed, same batches on CPU and GPU; bf16 GPU probabilities close to fp32 CPU ones."""
    import torch

    from impartial_core.config import NetworkConfig, tasks_for
    from impartial_core.model import ImPartialModel
    from impartial_core.network import ImPartialNet
    from impartial_core.normalization import normalize
    from impartial_core.sampling import PatchSampler, prepare_training_images

    data = prepare_training_images([normalize(im[None]) for im in mibi.images], mibi.scribbles["n100"],
                                   tasks_for("nuclei", 1), 0.1, np.random.default_rng(0))
    on_cpu = PatchSampler(data, 128, 0.6, 1, torch.device("cpu")).batch(64)
    on_gpu = PatchSampler(data, 128, 0.6, 1, torch.device("cuda")).batch(64)
    same_batches = all(torch.equal(a, b.cpu()) for a, b in zip(on_cpu, on_gpu))
    torch.manual_seed(0)
    model = ImPartialModel(ImPartialNet(NetworkConfig(1, 16, 2), tasks_for("nuclei", 1)).eval(), {"nuclei": 0.5})
    cpu = model.predict(mibi.images[0], device="cpu")["nuclei"].foreground_probability
    gpu = model.predict(mibi.images[0], device="cuda")["nuclei"].foreground_probability
    diff = np.abs(cpu - gpu)
    return {"same_batches": same_batches, "max_probability_difference": float(diff.max()),
            "mean_probability_difference": float(diff.mean())}


def synchronisations_per_iteration(mibi) -> float:
    """Host-device synchronisations per training iteration (torch's sync debug mode, iterations
    10-30): 1 is the intended one, reading back the previous iteration's losses."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training_steps.train_on_mibi(mibi, 16, 8, 40, lambda p: torch.cuda.set_sync_debug_mode("warn" if 10 <= p.iteration < 30 else 0),
                            device="cuda")
    torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught) / 20


def graph_replay_difference(mibi, iterations: int = 40) -> float:
    """Largest relative difference between the training losses of the CUDA-graph step and the eager
    one over the first iterations (default network, same seed): the replayed step must train alike."""
    totals = {}
    for graphs in (True, False):
        history = []
        training_steps.train_on_mibi(mibi, 16, 8, iterations, lambda p: history.append(p.losses["total"]), device="cuda",
                            cuda_graphs=graphs)
        totals[graphs] = np.array(history)
    return float(np.max(np.abs(totals[True] - totals[False]) / np.abs(totals[False])))


def profile_steps(mibi, width: int, batch: int, path) -> str:
    """torch.profiler over 10 training iterations: the kernels that take the device's time."""
    from torch.profiler import ProfilerActivity, profile

    profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])

    def hook(progress) -> None:
        if progress.iteration == 10:
            profiler.start()
        elif progress.iteration == 20:
            profiler.stop()

    training_steps.train_on_mibi(mibi, width, batch, 25, hook, device="cuda")
    table = profiler.key_averages().table(sort_by="self_cuda_time_total", row_limit=25)
    path.write_text(table)
    return table


@dataclass(frozen=True)
class StepVariant:
    """One way of running the training step on CUDA."""

    bf16: bool = True              # bf16 autocast (what training does on CUDA) or fp32
    autotune: bool = False         # cudnn.benchmark: pick the fastest convolution algorithms first
    compiled: bool = False         # TrainingConfig(compile_network=True)
    compile_mode: str = "reduce-overhead"  # torch.compile's mode; training.compile_mode's on CUDA replays CUDA graphs
    cuda_graphs: bool = True       # TrainingConfig.cuda_graphs: the uncompiled step replayed as one CUDA graph
    read_late: bool = True         # losses read one iteration late (training.readback_lag), as training does

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.bf16 else "fp32", "channels_last"]
        parts += ["cudnn.benchmark"] * self.autotune
        if self.compiled:
            parts.append("torch.compile" + ("" if self.compile_mode == "default" else f" ({self.compile_mode})"))
        else:
            parts.append("CUDA graph" if self.cuda_graphs else "no CUDA graph")
        return ", ".join(parts + ([] if self.read_late else ["losses read every step"]))


def step_rows(mibi, peaks: Dict[str, float], name: str, configs, log=print) -> List[Dict]:
    """Time real training iterations on CUDA for each (label, width, batch, StepVariant)."""
    import torch

    import impartial_core.training as training

    rows = []
    lag, mode = training.readback_lag, training.compile_mode
    for config, width, batch, variant in configs:
        training.readback_lag = lag if variant.read_late else (lambda device: 0)
        training.compile_mode = lambda device: variant.compile_mode
        try:
            with torch.backends.cudnn.flags(enabled=True, benchmark=variant.autotune):
                timing = training_steps.time_training_steps(width, batch, 30, warmup=10, device="cuda", mixed_precision=variant.bf16,
                                                   mibi=mibi, compile_network=variant.compiled,
                                                   cuda_graphs=variant.cuda_graphs)
        finally:
            training.readback_lag, training.compile_mode = lag, mode
        flops = training_steps.step_flops(width, batch)
        peak = peaks["bf16" if variant.bf16 else "fp32"]
        rows.append(dict(config=config, device=name, dtype=variant.describe(), timed_batch=batch, batch=batch,
                         s_per_step=timing["s_per_step"], measured_s_per_step=timing["s_per_step"],
                         first_step_s=timing["first_step_s"], mean_loss=timing["mean_loss"], flops_per_step=flops,
                         patches_per_s=batch / timing["s_per_step"], tflops=flops / timing["s_per_step"] / 1e12,
                         peak_tflops=peak / 1e12, fraction_of_peak=flops / timing["s_per_step"] / peak, scaled=False,
                         gpu_peak_gb=torch.cuda.max_memory_allocated() / 1024 ** 3))
        torch.cuda.reset_peak_memory_stats()
        log(f"  {config}, {rows[-1]['dtype']}: {timing['s_per_step'] * 1000:.1f} ms/step "
            f"({rows[-1]['fraction_of_peak']:.1%} of peak; first step {timing['first_step_s']:.1f} s; "
            f"mean loss of the timed steps {timing['mean_loss']:.4f})")
    return rows


def accuracy_points(mibi, log=print) -> List[Dict]:
    """Default settings on the GPU (several seeds), then shorter time budgets (seed 0)."""
    from impartial_core.config import TrainingConfig

    runs = [("default settings", TrainingConfig(seed=s, device="cuda")) for s in SEEDS]
    runs += [(f"time budget {b:.0f} s", TrainingConfig(seed=0, time_budget_s=b, max_iterations=10 ** 6, device="cuda"))
             for b in SHORT_BUDGETS_S]
    points = []
    for label, config in runs:
        result = impartial_mibi(mibi, "n100", config, log=log)
        points.append(dict(run=label, seed=config.seed, budget_s=config.time_budget_s, stopped_because=result["stopped_because"],
                           **{k: result["summary"][k] for k in ("train_s", "iterations", "pixel_f1", "auc", "mdice", "miou",
                                                                 "f1_iou50", "ap_iou50")}))
    return points


def accuracy_table(points: List[Dict]) -> str:
    header = ["run", "seed", "trained (s)", "iterations", "stopped because", "pixel F1", "AUC", "mDICE", "mIOU", "F1@IoU0.5"]
    rows = [[p["run"], str(p["seed"]), f"{p['train_s']:.1f}", str(p["iterations"]), p["stopped_because"]]
            + [fmt(p[k]) for k in ("pixel_f1", "auc", "mdice", "miou", "f1_iou50")] for p in points]
    default = [p for p in points if p["run"] == "default settings"]
    summary = ", ".join(f"{label} {fmt(float(np.mean([p[k] for p in default])), float(np.std([p[k] for p in default])))}"
                        for label, k in (("mDICE", "mdice"), ("mIOU", "miou"), ("F1@IoU0.5", "f1_iou50")))
    worst_s = max(p["train_s"] for p in default)
    met = all(p["mdice"] >= GOALS["mdice"] and p["miou"] >= GOALS["miou"] for p in default)
    return ("### Accuracy after GPU training (MIBI n100, 4 training images)\n\n" + markdown_table(header, rows)
            + f"\n\nDefault settings, {len(default)} seeds: {summary}; longest training {worst_s:.1f} s. Goal "
              f"(mDICE >= {GOALS['mdice']}, mIOU >= {GOALS['miou']} within 15 s): "
              f"{'met' if met and worst_s <= 15 else 'not met'}. Trained (s) includes choosing the threshold.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description="CUDA benchmarks (skipped without CUDA)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "predict", "compile"],
                        help="sections to leave out")
    parser.add_argument("--profile", action="store_true", help="also write profile_paper_step.txt (torch.profiler)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.gpu: CUDA is not available here; nothing to run (the CPU numbers come from benchmarks.speed).")
        return 0
    from impartial_core.config import NetworkConfig

    start = time.perf_counter()
    name = torch.cuda.get_device_name(0)
    mibi = load_mibi(args.data)
    header = ["## GPU", header_lines("python -m benchmarks.gpu " + " ".join(argv if argv is not None else sys.argv[1:]))]
    results: Dict = {"device": name, "torch": torch.__version__}
    sections: Dict[str, str] = {}

    def save(section: str, text: str) -> None:
        sections[section] = text
        print("\n" + text, flush=True)
        results["elapsed_s"] = time.perf_counter() - start
        write_results(args.out, "gpu", "\n\n".join(header + list(sections.values())), results)

    checks = check_sampler_and_prediction(mibi)
    try:
        checks["synchronisations_per_iteration"] = synchronisations_per_iteration(mibi)
    except Exception as error:   # a diagnostic: its failure must not cost the measurements
        print(f"sync count failed: {error!r}")
        checks["synchronisations_per_iteration"] = float("nan")
    checks["graph_replay_difference"] = graph_replay_difference(mibi)
    results["checks"] = checks
    save("checks", "### Checks\n\n" + markdown_table(["check", "result"], [
        ["patch batches, same seed, GPU = CPU", "equal" if checks["same_batches"] else "DIFFERENT"],
        ["foreground probability, bf16 GPU vs fp32 CPU (max / mean abs difference)",
         f"{checks['max_probability_difference']:.4f} / {checks['mean_probability_difference']:.5f}"],
        ["training losses, CUDA-graph step vs eager step, first 40 iterations (largest relative difference)",
         f"{checks['graph_replay_difference']:.2g}"],
        ["host-device synchronisations per training iteration (1 intended: the late loss read-back)",
         f"{checks['synchronisations_per_iteration']:.2f}"]]))

    # fp32 convolutions run on TF32 tensor cores (cuDNN's default), so their peak is TF32's.
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    peaks = {"bf16": training_steps.measure_peak_flops("cuda", "bfloat16"), "fp32": training_steps.measure_peak_flops("cuda", "float32")}
    torch.backends.cuda.matmul.allow_tf32 = tf32
    peak_note = (f"Peak: measured 8192² matmul throughput on this GPU (bf16 {peaks['bf16'] / 1e12:.0f}, fp32 with TF32 "
                 f"{peaks['fp32'] / 1e12:.0f} TFLOP/s; cuDNN runs fp32 convolutions on TF32 tensor cores by default).")
    variants = (StepVariant(), StepVariant(cuda_graphs=False), StepVariant(read_late=False), StepVariant(autotune=True),
                StepVariant(bf16=False))
    rows = step_rows(mibi, peaks, name, [(*config, v) for config in (PAPER, DEFAULT) for v in variants])
    results["steps"] = {"rows": rows, "peaks": peaks}
    save("steps", training_steps.steps_table({"rows": rows}, peak_note=peak_note))

    if args.profile:
        try:
            print(profile_steps(mibi, PAPER[1], PAPER[2], Path(args.out) / "profile_paper_step.txt"), flush=True)
        except Exception as error:
            print(f"profiling failed: {error!r}")

    if "accuracy" not in args.skip:
        results["accuracy"] = accuracy_points(mibi)
        save("accuracy", accuracy_table(results["accuracy"]))

    if "predict" not in args.skip:
        predict_args = argparse.Namespace(sizes=[512, 2048, 8192], width=NetworkConfig().width, quick=False)
        results["predict"] = speed.run_predict(predict_args, devices=["cuda"])
        save("predict", speed.predict_table(results["predict"]))

    if "compile" not in args.skip:
        try:
            compiled = [StepVariant(compiled=True, compile_mode=m) for m in COMPILE_MODES]
            rows += step_rows(mibi, peaks, name, [(*config, v) for config in (PAPER, DEFAULT) for v in compiled])
            note = ("The torch.compile rows' first steps (compiling) took "
                    + ", ".join(f"{r['first_step_s']:.0f} s" for r in rows if "torch.compile" in r["dtype"]) + ".")
        except Exception as error:   # a compiler failure must not cost the sections above
            note = f"torch.compile failed: {type(error).__name__}: {str(error)[:300]}"
        results["steps"]["rows"] = rows
        results["steps"]["compile_note"] = note
        save("steps", training_steps.steps_table({"rows": rows}, peak_note=peak_note) + "\n\n" + note)
    print(f"\nwrote {args.out}/gpu.md ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
