"""The training-step part of the speed benchmark (``python -m benchmarks.speed --parts steps``):
seconds per real training iteration on the MIBI images, in each precision the CPU trains in, with
the fraction of a measured matmul peak. ``benchmarks.gpu`` times its steps with the same functions.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from benchmarks.data import load_mibi, markdown_table

PAPER_BATCH_S_GPU = 1.11   # the paper: one batch of 64 patches of 128^2 in 1.11 s (TensorFlow, GPU)


#: torch's names of the precisions the step timings report.
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def measure_peak_flops(device: str = "cpu", dtype: str = "float32", seconds: float = 2.0) -> float:
    """Achievable peak FLOP/s of this device: a large square matmul, repeated for ``seconds``.

    A measured (sgemm / bf16 gemm) peak, not the data-sheet number: fractions of it are fractions
    of what this machine can actually do under the current load.
    """
    import torch

    n = 2048 if device == "cpu" else 8192
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.matmul(a, b)
    sync()
    count, start = 0, time.perf_counter()
    while True:
        torch.matmul(a, b)
        count += 1
        if count % 4 == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed > seconds:
                break
    return 2.0 * n ** 3 * count / elapsed


def step_flops(width: int, batch: int, patch: int = 128, n_channels: int = 1) -> float:
    """FLOPs of one training step's forward + backward (convolutions and matmuls), counted by
    torch.utils.flop_counter.FlopCounterMode on the real network, on the meta device (shapes only,
    nothing computed). The optimizer step and the element-wise work are not counted: a small share."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from impartial_core.config import NetworkConfig, tasks_for
    from impartial_core.network import ImPartialNet

    net = ImPartialNet(NetworkConfig(n_channels, width, 2), tasks_for("nuclei", n_channels)).to("meta")
    x = torch.randn(batch, n_channels, patch, patch, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = net(x)["nuclei"]
        loss = out.component_probability.mean() + out.component_means.mean()
        loss.backward()
    return float(counter.get_total_flops())


def train_on_mibi(mibi, width: int, batch: int, iterations: int, progress, patch: int = 128, **overrides) -> None:
    """Train on the MIBI n100 images for exactly ``iterations`` steps (no validation, early stop or
    time limit), calling ``progress`` after each: the harness of step timings and GPU profiles.
    ``overrides`` are further ``TrainingConfig`` fields (device, mixed_precision, ...)."""
    from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
    from impartial_core.normalization import normalize
    from impartial_core.training import train

    config = TrainingConfig(batch_size=batch, patch_size=patch, max_iterations=iterations, eval_every=10 ** 6,
                            time_budget_s=1e9, patience=10 ** 6, **overrides)
    train([normalize(im[None]) for im in mibi.images], mibi.scribbles["n100"], tasks_for("nuclei", 1),
          NetworkConfig(1, width, 2), config, progress=progress)


def time_training_steps(width: int, batch: int, steps: int, warmup: int = 2, device: str = "cpu",
                        mixed_precision: bool = True, patch: int = 128, mibi=None, **overrides) -> Dict:
    """Seconds per real training iteration (patch sampling, blind-spot masking, forward, both losses,
    backward, Adam) of ``impartial_core.training.train`` on the MIBI images, after ``warmup`` steps
    (the median of the timed steps; ``first_step_s`` holds the first, compiling, step).
    ``overrides`` are further ``TrainingConfig`` fields (compile_network, cuda_graphs)."""
    elapsed: Dict[int, float] = {}
    total_loss: Dict[int, float] = {}

    def record(p) -> None:
        elapsed[p.iteration], total_loss[p.iteration] = p.elapsed_s, p.losses["total"]

    train_on_mibi(mibi or load_mibi(), width, batch, warmup + steps + 1, record, patch=patch, device=device,
                  mixed_precision=mixed_precision, **overrides)
    per_step = [elapsed[i] - elapsed[i - 1] for i in range(warmup + 1, warmup + steps + 1)]
    # The timed steps' mean loss: variants of one step (precision, compilation) must train alike.
    mean_loss = float(np.mean([total_loss[i] for i in range(warmup + 1, warmup + steps + 1)]))
    return {"width": width, "batch": batch, "patch": patch, "steps_timed": steps, "s_per_step": float(np.median(per_step)),
            "step_times": per_step, "first_step_s": elapsed[1], "device": device, "mixed_precision": mixed_precision,
            "mean_loss": mean_loss}


def cpu_precisions() -> List[Tuple[str, bool]]:
    """(name, mixed_precision) of the precisions the CPU trains and predicts in: float32, and
    bfloat16 where the CPU computes it natively (``devices.bfloat16_native``, the default there)."""
    import torch

    from impartial_core.devices import bfloat16_native

    return [("fp32", False)] + ([("bf16", True)] if bfloat16_native(torch.device("cpu")) else [])


def run_steps(args, log=print) -> Dict:
    import torch

    from impartial_core.config import NetworkConfig, TrainingConfig

    mibi = load_mibi(args.data)
    steps = 2 if args.quick else 5
    rows = []
    precisions = cpu_precisions()
    seconds = 1.0 if args.quick else 3.0
    # Each precision's peak is measured before and after the step timings and the higher kept: on
    # a shared machine a single measurement can fall in a busy moment and inflate the fractions.
    peaks = {name: [measure_peak_flops("cpu", DTYPES[name], seconds)] for name, _ in precisions}
    log("  CPU matmul peak (measured): " + ", ".join(f"{n} {p[0] / 1e9:.1f} GFLOP/s" for n, p in peaks.items())
        + f"; {torch.get_num_threads()} torch threads")
    width, batch = NetworkConfig().width, TrainingConfig().batch_size
    configs = [("paper (depth 2, 64 filters)", 64, 8, 64), (f"default (depth 2, {width} filters)", width, batch, batch)]
    timings = []
    for name, width, batch, report_batch in configs:
        for precision, mixed in precisions:
            timing = time_training_steps(width, batch, steps, warmup=1 if args.quick else 2, device="cpu", mibi=mibi,
                                         mixed_precision=mixed)
            timings.append((name, precision, width, batch, report_batch, timing))
            log(f"  {name}, {precision}, batch {batch}: {timing['s_per_step']:.3f} s/step (median of {steps}; "
                f"steps {', '.join(f'{t:.2f}' for t in timing['step_times'])})")
    for name, _ in precisions:
        peaks[name].append(measure_peak_flops("cpu", DTYPES[name], seconds))
    peak = {name: max(p) for name, p in peaks.items()}
    log("  CPU matmul peak measured again: " + ", ".join(f"{n} {p[1] / 1e9:.1f}" for n, p in peaks.items()) + " GFLOP/s")
    for name, precision, width, batch, report_batch, timing in timings:
        flops = step_flops(width, batch)
        scale = report_batch / batch
        rows.append(dict(config=name, device="cpu", dtype=precision, timed_batch=batch, batch=report_batch,
                         s_per_step=timing["s_per_step"] * scale, measured_s_per_step=timing["s_per_step"],
                         step_times=timing["step_times"], flops_per_step=flops * scale,
                         patches_per_s=batch / timing["s_per_step"], tflops=flops / timing["s_per_step"] / 1e12,
                         peak_tflops=peak[precision] / 1e12, fraction_of_peak=flops / timing["s_per_step"] / peak[precision],
                         scaled=scale != 1))
    return {"rows": rows, "cpu_peak_flops": peak, "cpu_peaks": peaks}


def steps_table(data: Dict, peak_note: Optional[str] = None) -> str:
    header = ["configuration", "device", "precision", "batch of 128²", "s / step", "patches / s", "GFLOP / step",
              "achieved TFLOP/s", "fraction of peak"]
    rows = []
    for r in data["rows"]:
        batch = f"{r['batch']}" + (f" (timed at {r['timed_batch']}, ×{r['batch'] // r['timed_batch']})" if r["scaled"] else "")
        rows.append([r["config"], r["device"], r["dtype"], batch, f"{r['s_per_step']:.3f}", f"{r['patches_per_s']:.1f}",
                     f"{r['flops_per_step'] / 1e9:.1f}", f"{r['tflops']:.3f}", f"{r['fraction_of_peak']:.1%}"])
    peak_note = peak_note or (
        "Peak: measured throughput of a 2048² matmul of each precision in the same run, before and after the steps, the "
        "higher kept (" + ", ".join(f"{n} {p / 1e9:.1f} GFLOP/s" for n, p in data["cpu_peak_flops"].items())
        + " on CPU), not the data-sheet figure; on a busy machine both can be low, so a fraction can even exceed 100%. "
        "bf16: the network in bfloat16 autocast, the default on a CPU with native bfloat16 (AVX-512 BF16).")
    return ("### Training-step throughput\n\n" + markdown_table(header, rows)
            + "\n\nA step is one real training iteration of `impartial_core.training.train` (patch sampling, blind-spot "
              "masking, forward, both losses, backward, Adam) on MIBI n100, median over the timed steps after warm-up. Rows "
              "marked ×N were timed at a smaller batch and scaled linearly (the paper's batch of 64 is too slow to time on "
              "2 cores). FLOPs: forward + backward counted by torch.utils.flop_counter (optimizer and element-wise work "
              f"not counted). {peak_note} Paper: {PAPER_BATCH_S_GPU} s per batch of 64 (TensorFlow, GPU).")
