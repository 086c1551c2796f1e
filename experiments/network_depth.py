"""Does a deeper U-Net (more context per pixel) separate touching nuclei better?

    python experiments/network_depth.py [--depths 2 3] [--width 16] [--seeds 0 1 2]

Trains default 3-minute models on MIBI n100 with each U-Net depth (2 = the paper's and the
default) and scores them on the ground truth; a deeper network sees a wider neighbourhood (the
receptive field roughly doubles per level) at little extra cost, since its extra levels are small.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import impartial_mibi  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import NetworkConfig, TrainingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 2])
    parser.add_argument("--width", type=int, default=NetworkConfig().width)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    args = parser.parse_args()
    mibi = load_mibi()
    for depth in args.depths:
        name = f"depth {depth}, width {args.width}"
        rows = []
        for seed in args.seeds:
            s = impartial_mibi(mibi, "n100", TrainingConfig(seed=seed, time_budget_s=args.time_budget_s), network=NetworkConfig(1, args.width, depth),
                               log=lambda line: print(f"  {name}:{line}", flush=True))["summary"]
            rows.append([s["mdice"], s["miou"], s["f1_iou50"], s["iterations"]])
        m, sd = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(4)
        print(f"{name}: mDICE {m[0]:.3f} ± {sd[0]:.3f}, mIOU {m[1]:.3f} ± {sd[1]:.3f}, F1@0.5 {m[2]:.3f} ± {sd[2]:.3f} "
              f"({m[3]:.0f} iterations)", flush=True)


if __name__ == "__main__":
    main()
