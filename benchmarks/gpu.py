"""The CUDA benchmarks, for when a GPU (e.g. an H100) is available; under 10 minutes.

    python -m benchmarks.gpu            # exits 0 with a message when CUDA is not available

1. Training-step time at the paper's configuration (depth 2, 64 filters, batch 64 of 128², one
   channel) and at the default (16 filters, batch 8): bf16 autocast + channels_last (what
   training does on CUDA) and fp32, with the fraction of the measured bf16 / fp32 matmul peak.
2. Time to accuracy on the GPU: default settings with growing time budgets until the accuracy
   goal (MIBI n100 mDICE >= 0.72 and mIOU >= 0.60) is reached.
3. Prediction throughput and GPU / host peak memory for 512², 2048², 8192².

Writes benchmarks/results/gpu.md and gpu.json, and time_to_accuracy_gpu.png.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from benchmarks import speed
from benchmarks.accuracy import GOALS, header_lines, impartial_mibi
from benchmarks.data import RESULTS, load_mibi, write_results

TTA_BUDGETS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description="CUDA benchmarks (skipped without CUDA)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--max-tta-s", type=float, default=300.0, help="stop the time-to-accuracy search after this much training")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.gpu: CUDA is not available here; nothing to run (the CPU numbers come from benchmarks.speed).")
        return 0
    from impartial_core.config import NetworkConfig, TrainingConfig

    start = time.perf_counter()
    name = torch.cuda.get_device_name(0)
    mibi = load_mibi(args.data)
    sections = ["## GPU", header_lines("python -m benchmarks.gpu " + " ".join(argv if argv is not None else sys.argv[1:]))]
    results = {"device": name}

    # 1. training steps
    peaks = {"bf16": speed.measure_peak_flops("cuda", "bfloat16"), "fp32": speed.measure_peak_flops("cuda", "float32")}
    rows = []
    for config, width, batch in (("paper (depth 2, 64 filters)", 64, 64), ("default (depth 2, 16 filters)", 16, 8)):
        flops = speed.step_flops(width, batch)
        for mp in (True, False):
            timing = speed.time_training_steps(width, batch, 30, warmup=10, device="cuda", mixed_precision=mp, mibi=mibi)
            peak = peaks["bf16" if mp else "fp32"]
            rows.append(dict(config=config, device=name, dtype="bf16 autocast, channels_last" if mp else "fp32, channels_last",
                             timed_batch=batch, batch=batch, s_per_step=timing["s_per_step"],
                             measured_s_per_step=timing["s_per_step"], flops_per_step=flops,
                             patches_per_s=batch / timing["s_per_step"], tflops=flops / timing["s_per_step"] / 1e12,
                             peak_tflops=peak / 1e12, fraction_of_peak=flops / timing["s_per_step"] / peak, scaled=False))
            print(f"  {config} {rows[-1]['dtype']}: {timing['s_per_step'] * 1000:.1f} ms/step "
                  f"({rows[-1]['fraction_of_peak']:.1%} of peak)")
    results["steps"] = {"rows": rows, "peaks": peaks}
    sections.append(speed.steps_table({"rows": rows}, peak_note=(
        f"Peak: measured 8192² matmul throughput on this GPU (bf16 {peaks['bf16'] / 1e12:.0f}, fp32 "
        f"{peaks['fp32'] / 1e12:.0f} TFLOP/s; fp32 matmuls may use TF32 if enabled).")))

    # 2. time to accuracy, growing budgets until the goal
    points, spent = [], 0.0
    for budget in TTA_BUDGETS:
        if spent + budget > args.max_tta_s:
            break
        config = TrainingConfig(seed=0, time_budget_s=budget, max_iterations=10 ** 6, device="cuda")
        summary = impartial_mibi(mibi, "n100", config)["summary"]
        spent += summary["train_s"]
        points.append(dict(device="cuda", budget_s=budget, train_s=summary["train_s"], iterations=summary.get("iterations"),
                           **{k: summary[k] for k in ("pixel_f1", "auc", "mdice", "miou", "f1_iou50", "ap_iou50")}))
        if summary["mdice"] >= GOALS["mdice"] and summary["miou"] >= GOALS["miou"]:
            break
    results["tta"] = {"points": points}
    speed.plot_tta(points, Path(args.out) / "time_to_accuracy_gpu.png")
    reached = [p for p in points if p["mdice"] >= GOALS["mdice"] and p["miou"] >= GOALS["miou"]]
    sections.append(speed.tta_table({"points": points}).replace("time_to_accuracy.png", "time_to_accuracy_gpu.png")
                    + (f"\n\nGoal (mDICE >= {GOALS['mdice']}, mIOU >= {GOALS['miou']}) reached after "
                       f"{reached[0]['train_s']:.0f} s of training." if reached else "\n\nGoal not reached within these budgets."))

    # 3. prediction
    pred_args = argparse.Namespace(sizes=[512, 2048, 8192], width=NetworkConfig().width, quick=False)
    rows = speed.run_predict(pred_args, devices=["cuda"])["rows"]
    results["predict"] = {"rows": rows, "width": pred_args.width}
    sections.append(speed.predict_table(results["predict"]))

    results["elapsed_s"] = time.perf_counter() - start
    text = "\n\n".join(sections)
    print("\n" + text)
    out = write_results(args.out, "gpu", text, results).parent
    print(f"\nwrote {out / 'gpu.md'} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
