"""Training and instance settings compared at the CPU default's iteration count, on a GPU.

    python experiments/gpu_sweep.py [--seeds 3] [--iterations 600] [--out DIR]

A 3-minute CPU training runs about 600 iterations of batch 8; on a GPU the same 600 iterations
take seconds, so settings can be compared over several seeds where the CPU would need hours.
Each trained model is scored (MIBI n100, the accuracy benchmark's metrics) under a few instance
settings too. Prints one line per (training variant, instance variant): mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402

TRAINING_VARIANTS = {
    "default": ({}, {}, {}),
    "width 32": ({"width": 32}, {}, {}),
    "learning rate 1e-3": ({}, {"learning_rate": 1e-3}, {}),
    "scribble bias 0.9": ({}, {"scribble_bias": 0.9}, {}),
    "reconstruction weight 0.3": ({}, {"reconstruction_weight": 0.3, "foreground_weight": 0.35, "background_weight": 0.35}, {}),
    "3+3 components": ({}, {}, {"n_foreground_components": 3, "n_background_components": 3}),
    "patches 64², batch 32": ({}, {"patch_size": 64, "batch_size": 32}, {}),
}
INSTANCE_VARIANTS = {
    "auto threshold, h 1": {},
    "auto threshold, h 2": {"split_h": 2.0},
    "auto threshold, h 0.5": {"split_h": 0.5},
    "auto + 0.1": {"threshold_offset": 0.1},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--variants", nargs="*", default=list(TRAINING_VARIANTS))
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    mibi = load_mibi()
    results = []
    for name in args.variants:
        network_kw, training_kw, task_kw = TRAINING_VARIANTS[name]
        tasks = tuple(dataclasses.replace(t, **task_kw) for t in tasks_for("nuclei", 1))
        scores = {k: [] for k in INSTANCE_VARIANTS}
        times = []
        for seed in range(args.seeds):
            config = TrainingConfig(seed=seed, max_iterations=args.iterations, time_budget_s=1e9, device=args.device,
                                    **training_kw)
            start = time.perf_counter()
            model = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks, NetworkConfig(1, **network_kw),
                                         config)
            times.append(time.perf_counter() - start)
            maps = [model.predict(image, device=args.device) for image in mibi.images]
            for instance_name, kw in INSTANCE_VARIANTS.items():
                kw = dict(kw)
                offset = kw.pop("threshold_offset", 0.0)
                instance = InstanceConfig(threshold=model.thresholds["nuclei"] + offset if offset else None, **kw)
                per_image = [evaluate_image(m["nuclei"].foreground_probability, model.segment(m, instance).nuclei, truth)
                             for m, truth in zip(maps, mibi.truth)]
                scores[instance_name].append(summarize(per_image))
        for instance_name, runs in scores.items():
            row = {"training": name, "instances": instance_name, "seconds": float(np.mean(times))}
            for key in ("mdice", "miou", "f1_iou50"):
                values = [r[key] for r in runs]
                row[key] = (float(np.mean(values)), float(np.std(values)))
            results.append(row)
            print(f"{name:28s} {instance_name:22s} " + "  ".join(
                f"{k} {row[k][0]:.3f}±{row[k][1]:.3f}" for k in ("mdice", "miou", "f1_iou50"))
                  + f"  ({row['seconds']:.0f} s/training)", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_sweep.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
