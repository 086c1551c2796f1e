"""Does averaging the probability over flips at prediction time segment better?

    python experiments/flip_average.py [--seeds 0 1 2] [--save-maps DIR] [--time-budget-s S]

Trains default models on MIBI n100 (one per seed, 3 minutes each on 2 CPU cores), then scores the
nuclei of the four training images predicted plainly and averaged over the 4 flips
(``ImPartialModel.predict(flips=True)``, 4x the prediction time). ``--save-maps`` keeps each
model's plain probability maps and threshold for ``tune_markers.py``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--save-maps", default=None)
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s)
    args = parser.parse_args()
    mibi = load_mibi()
    scores = {False: [], True: []}
    for seed in args.seeds:
        model = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks_for("nuclei", 1),
                                     config=TrainingConfig(seed=seed, time_budget_s=args.time_budget_s))
        for flips in (False, True):
            start = time.perf_counter()
            maps = [model.predict(image, flips=flips) for image in mibi.images]
            seconds = time.perf_counter() - start
            per_image = [evaluate_image(m["nuclei"].foreground_probability, model.segment(m).nuclei, truth)
                         for m, truth in zip(maps, mibi.truth)]
            s = summarize(per_image)
            scores[flips].append([s["mdice"], s["miou"], s["f1_iou50"]])
            print(f"seed {seed} flips {flips!s:5}: mDICE {s['mdice']:.3f} mIOU {s['miou']:.3f} "
                  f"F1@0.5 {s['f1_iou50']:.3f} (prediction {seconds:.1f} s)", flush=True)
            if args.save_maps and not flips:
                folder = Path(args.save_maps)
                folder.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(folder / f"probs_seed{seed}.npz", *[m["nuclei"].foreground_probability for m in maps])
                (folder / f"probs_seed{seed}.json").write_text(json.dumps({"threshold": model.thresholds["nuclei"]}))
    for flips, rows in scores.items():
        m, sd = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(3)
        print(f"flips {flips!s:5} mean over {len(rows)} seeds: mDICE {m[0]:.3f} ± {sd[0]:.3f}, "
              f"mIOU {m[1]:.3f} ± {sd[1]:.3f}, F1@0.5 {m[2]:.3f} ± {sd[2]:.3f}")


if __name__ == "__main__":
    main()
