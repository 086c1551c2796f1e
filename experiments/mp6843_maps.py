"""Cell probability maps of the MP6843 held-out fields, saved for trying instance steps on them.

    python experiments/mp6843_maps.py --budget 60 --seed 0 --out /tmp/mp [--augment]

Trains the cells task leave-one-field-out (benchmarks.mp6843: three fields, ~100 simulated cell
scribbles) for ``--budget`` seconds and saves, per held-out field, the cell probability and the
learnt threshold to ``OUT/maps_<tag>_seed<N>.npz``, then scores the default instance step.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.mp6843 import folds, load_mp6843, train_fold  # noqa: E402
from impartial_core.config import TrainingConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/mp")
    parser.add_argument("--tag", default="default")
    parser.add_argument("--fields", nargs="*", default=None, help="held-out fields to run (default all)")
    parser.add_argument("--set", nargs="*", default=[], help="TrainingConfig overrides key=value (numbers)")
    args = parser.parse_args()
    overrides = {k: int(v) if v.lstrip("-").isdigit() else float(v) for k, v in (s.split("=") for s in args.set)}
    config = TrainingConfig(seed=args.seed, time_budget_s=args.budget, **overrides)
    fields = load_mp6843()
    saved = {}
    for train, test in folds(fields):
        if args.fields and test.id not in args.fields:
            continue
        start = time.perf_counter()
        model = train_fold(train, args.seed, config)
        maps = model.predict(test.image)
        saved[f"p_{test.id}"] = maps["cells"].foreground_probability
        saved[f"t_{test.id}"] = np.float64(model.thresholds["cells"])
        print(f"{test.id}: {model.training_summary['iterations']} it, {time.perf_counter() - start:.0f} s, "
              f"threshold {model.thresholds['cells']:.2f}", flush=True)
        # saved after every fold, so a long run can be looked at before it ends
        Path(args.out).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(args.out) / f"maps_{args.tag}_seed{args.seed}.npz", **saved)


if __name__ == "__main__":
    main()
