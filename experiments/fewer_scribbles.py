"""Does the self-supervised loss help when scribbles are scarcer than the paper's n100?

    python experiments/fewer_scribbles.py [--keep 0.25] [--seeds 0 1 2] [--haze] [--iterations N]

Keeps a random share of the n100 scribble strokes (connected components of each class, drawn
with a fixed generator, so every run sees the same strokes), then trains default models with and
without the reconstruction loss (``reconstruction_weight=0``), or with ``--haze`` without and with
the haze augmentation, and scores them on MIBI's ground truth. ``--iterations N`` trains N
iterations (early stopping aside) instead of the time budget, so the load does not matter.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import impartial_mibi  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import TrainingConfig  # noqa: E402


def keep_strokes(scribbles: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The scribbles with only a random ``share`` of each class's strokes (at least one per class)."""
    kept = np.zeros_like(scribbles)
    for value in np.unique(scribbles[scribbles > 0]):
        strokes, n = ndi.label(scribbles == value, structure=np.ones((3, 3)))
        chosen = np.flatnonzero(rng.random(n) < share) + 1
        if chosen.size == 0:
            chosen = np.array([rng.integers(1, n + 1)])
        kept[np.isin(strokes, chosen)] = value
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=float, default=0.25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    parser.add_argument("--haze", action="store_true", help="compare the haze augmentation instead of the reconstruction loss")
    parser.add_argument("--iterations", type=int, default=None, help="a fixed number of iterations instead of the time budget")
    args = parser.parse_args()
    mibi = load_mibi()
    rng = np.random.default_rng(12345)
    scribbles = [keep_strokes(s, args.keep, rng) for s in mibi.scribbles["n100"]]
    counts = [int(ndi.label(s == 2, structure=np.ones((3, 3)))[1]) for s in scribbles]
    print(f"kept {args.keep:.0%} of the n100 strokes: {sum(counts)} nucleus strokes, "
          f"{sum(int((s > 0).sum()) for s in scribbles)} scribbled pixels", flush=True)
    fewer = dataclasses.replace(mibi, scribbles={"fewer": scribbles})
    if args.haze:
        named = [("without the haze", dict(haze=0.0)), ("with the haze", dict(haze=TrainingConfig().haze))]
    else:
        named = [("with self-supervised loss", dict(reconstruction_weight=TrainingConfig().reconstruction_weight)),
                 ("without", dict(reconstruction_weight=0.0))]
    limits = (dict(time_budget_s=args.time_budget_s) if args.iterations is None
              else dict(max_iterations=args.iterations, time_budget_s=float("inf"), device="cpu"))
    compare(fewer, "fewer", [(name, {**settings, **limits}) for name, settings in named], args.seeds)


def compare_weights(mibi, budget: str, named_weights, seeds, time_budget_s: float) -> None:
    """Train default models with each (name, reconstruction weight) and seed; print mean ± std."""
    compare(mibi, budget, [(name, dict(reconstruction_weight=weight, time_budget_s=time_budget_s)) for name, weight in named_weights],
            seeds)


def compare(mibi, budget: str, named_settings, seeds) -> None:
    """Train models with each (name, TrainingConfig settings) and seed; print mean ± std."""
    for name, settings in named_settings:
        rows = []
        for seed in seeds:
            config = TrainingConfig(seed=seed, **settings)
            s = impartial_mibi(mibi, budget, config, log=lambda line: print(f"  {name}:{line}", flush=True))["summary"]
            rows.append([s["mdice"], s["miou"], s["f1_iou50"]])
        m, sd = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(3)
        print(f"{name}: mDICE {m[0]:.3f} ± {sd[0]:.3f}, mIOU {m[1]:.3f} ± {sd[1]:.3f}, F1@0.5 {m[2]:.3f} ± {sd[2]:.3f}", flush=True)


if __name__ == "__main__":
    main()
