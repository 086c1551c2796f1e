"""Does the self-supervised loss help on noisier images than MIBI's?

    python experiments/noisy_ssl.py [--counts 5] [--keep 1.0] [--weights 0.1 0] [--seeds 0 1 2]

Simulates a low-dose acquisition of the four MIBI training images: each pixel becomes a Poisson
count with mean ``counts`` x its intensity (intensities are in [0, 1]; at the default 5, a mean
nucleus pixel gives about 2 counts and a mean background pixel 0.17), drawn once with a fixed
generator so every run sees the same noise. Then trains default models on the n100 scribbles
with each reconstruction-loss weight (0 = no self-supervision) and scores them on the ground truth.
``--keep 0.25`` keeps a quarter of the strokes (as ``fewer_scribbles.py``): noisy and sparse, the
case the self-supervised loss is meant for.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from fewer_scribbles import compare_weights, keep_strokes  # noqa: E402
from impartial_core.config import TrainingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=float, default=5.0)
    parser.add_argument("--keep", type=float, default=1.0, help="share of the n100 strokes kept")
    parser.add_argument("--weights", type=float, nargs="+", default=[TrainingConfig().reconstruction_weight, 0.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    args = parser.parse_args()
    mibi = load_mibi()
    rng = np.random.default_rng(2021)
    noisy = [rng.poisson(image.astype(np.float64) * args.counts).astype(np.float32) for image in mibi.images]
    print(f"Poisson noise at {args.counts:g} counts per unit intensity: mean counts "
          f"{np.mean([n[t > 0].mean() for n, t in zip(noisy, mibi.truth)]):.2f} in nuclei, "
          f"{np.mean([n[t == 0].mean() for n, t in zip(noisy, mibi.truth)]):.2f} outside", flush=True)
    scribbles = mibi.scribbles["n100"]
    if args.keep < 1:
        strokes = np.random.default_rng(12345)
        scribbles = [keep_strokes(s, args.keep, strokes) for s in scribbles]
        print(f"kept {args.keep:.0%} of the n100 strokes: {sum(int((s > 0).sum()) for s in scribbles)} scribbled pixels")
    mibi = dataclasses.replace(mibi, images=noisy, scribbles={"n100": scribbles})
    compare_weights(mibi, "n100", [(f"reconstruction weight {w:g}", w) for w in args.weights], args.seeds,
                    args.time_budget_s)


if __name__ == "__main__":
    main()
