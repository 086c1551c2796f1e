"""Does the self-supervised loss help on noisier images than MIBI's?

    python experiments/noisy_ssl.py [--counts 5] [--weights 0.1 0] [--seeds 0 1 2]

Simulates a low-dose acquisition of the four MIBI training images: each pixel becomes a Poisson
count with mean ``counts`` x its intensity (intensities are in [0, 1]; at the default 5, a mean
nucleus pixel gives about 2 counts and a mean background pixel 0.17), drawn once with a fixed
generator so every run sees the same noise. Then trains default models on the n100 scribbles
with each reconstruction-loss weight (0 = no self-supervision) and scores them on the ground truth.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import impartial_mibi  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import TrainingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=float, default=5.0)
    parser.add_argument("--weights", type=float, nargs="+", default=[TrainingConfig().reconstruction_weight, 0.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    mibi = load_mibi()
    rng = np.random.default_rng(2021)
    noisy = [rng.poisson(image.astype(np.float64) * args.counts).astype(np.float32) for image in mibi.images]
    print(f"Poisson noise at {args.counts:g} counts per unit intensity: mean counts "
          f"{np.mean([n[t > 0].mean() for n, t in zip(noisy, mibi.truth)]):.2f} in nuclei, "
          f"{np.mean([n[t == 0].mean() for n, t in zip(noisy, mibi.truth)]):.2f} outside", flush=True)
    mibi = dataclasses.replace(mibi, images=noisy)
    for weight in args.weights:
        name = f"reconstruction weight {weight:g}"
        rows = []
        for seed in args.seeds:
            config = TrainingConfig(seed=seed, reconstruction_weight=weight)
            s = impartial_mibi(mibi, "n100", config, log=lambda line: print(f"  {name}:{line}", flush=True))["summary"]
            rows.append([s["mdice"], s["miou"], s["f1_iou50"]])
        m, sd = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(3)
        print(f"{name}: mDICE {m[0]:.3f} ± {sd[0]:.3f}, mIOU {m[1]:.3f} ± {sd[1]:.3f}, F1@0.5 {m[2]:.3f} ± {sd[2]:.3f}", flush=True)


if __name__ == "__main__":
    main()
