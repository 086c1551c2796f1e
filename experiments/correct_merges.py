"""One round of the human-in-the-loop cycle: scribble background between merged nuclei, fine-tune.

    python experiments/correct_merges.py [--seeds 0 1 2] [--strokes 30] [--fine-tune-s 60] [--gap-only]

Simulates a user who looks at the default model's nuclei on MIBI images 0 and 3, finds objects
that merge touching nuclei, and draws a background stroke along the gap between them (here: the
2-px line where the ground-truth nuclei, grown by 2 px, meet, inside the merged object; with
``--gap-only``, only the pixels of that line outside every true nucleus), at most ``--strokes``
of them. The model is then fine-tuned for ``--fine-tune-s`` seconds with the n100
scribbles plus these strokes, and, as a control, for as long with the n100 scribbles alone.
Images 5 and 7 get no strokes: their scores tell whether the correction generalises.
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.scribbles import BACKGROUND  # noqa: E402

CORRECTED = (0, 1)   # indices into the MIBI list: images 0 and 3
UNTOUCHED = (2, 3)   # images 5 and 7


def gap_lines(nuclei: np.ndarray, truth: np.ndarray, limit: int, gap_only: bool = False) -> tuple:
    """Background strokes between the true nuclei that one predicted nucleus merges.

    A predicted object merges true nuclei when it holds at least half of each of two or more.
    The stroke is where the true nuclei, each grown by 2 px, meet: 2 px wide, inside the object.
    """
    grown = expand_labels(truth, 2)
    other = np.where(grown > 0, grown, grown.max() + 1)
    meets = (ndi.maximum_filter(grown, 3) != ndi.minimum_filter(other, 3)) & (grown > 0)
    if gap_only:
        meets &= truth == 0
    truth_sizes = np.bincount(truth.ravel())
    strokes = np.zeros(truth.shape, bool)
    merges = []
    for index, box in enumerate(ndi.find_objects(nuclei), start=1):
        if box is None:
            continue
        inside = nuclei[box] == index
        ids, counts = np.unique(truth[box][inside], return_counts=True)
        held = ids[(ids > 0) & (counts >= 0.5 * truth_sizes[ids])]
        if len(held) >= 2:
            merges.append((int(inside.sum()), index, box))
    for _, index, box in sorted(merges, reverse=True)[:limit]:
        strokes[box] |= (nuclei[box] == index) & meets[box]
    return strokes, min(len(merges), limit), len(merges)


def score(model, mibi, indices) -> dict:
    per_image = []
    for i in indices:
        maps = model.predict(mibi.images[i])
        per_image.append(evaluate_image(maps["nuclei"].foreground_probability, model.segment(maps).nuclei, mibi.truth[i]))
    return summarize(per_image)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    parser.add_argument("--strokes", type=int, default=30, help="at most this many strokes over the corrected images")
    parser.add_argument("--fine-tune-s", type=float, default=60.0)
    parser.add_argument("--gap-only", action="store_true", help="strokes only on pixels outside every true nucleus")
    args = parser.parse_args()
    mibi = load_mibi()
    tasks = tasks_for("nuclei", 1)
    table = {}
    for seed in args.seeds:
        config = TrainingConfig(seed=seed, time_budget_s=args.time_budget_s)
        model = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks, config=config)
        added = [s.copy() for s in mibi.scribbles["n100"]]
        drawn = total = 0
        per_image_limit = args.strokes // len(CORRECTED)
        for i in CORRECTED:
            nuclei = model.segment(model.predict(mibi.images[i])).nuclei
            strokes, n, found = gap_lines(nuclei, mibi.truth[i], per_image_limit, args.gap_only)
            added[i][strokes & (added[i] == 0)] = BACKGROUND
            drawn, total = drawn + n, total + found
        fine = dataclasses.replace(TrainingConfig(seed=seed), time_budget_s=args.fine_tune_s)
        corrected = ImPartialModel.train(mibi.images, added, tasks, config=fine, start_from=model)
        control = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks, config=fine, start_from=model)
        extra = sum(int((a != s).sum()) for a, s in zip(added, mibi.scribbles["n100"]))
        print(f"seed {seed}: {drawn} strokes ({extra} pixels) on {total} merged objects in images 0 and 3", flush=True)
        for name, m in (("default model", model), ("fine-tuned, n100 only", control), ("fine-tuned, n100 + strokes", corrected)):
            for part, indices in (("all four", range(4)), ("images 0, 3 (strokes)", CORRECTED), ("images 5, 7 (none)", UNTOUCHED)):
                s = score(m, mibi, indices)
                table.setdefault((name, part), []).append([s["mdice"], s["miou"], s["f1_iou50"]])
                print(f"  {name:28} {part:22} mDICE {s['mdice']:.3f} mIOU {s['miou']:.3f} F1@0.5 {s['f1_iou50']:.3f}", flush=True)
    print(f"\nmean ± std over {len(args.seeds)} seeds")
    for (name, part), rows in table.items():
        m, sd = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(3)
        print(f"{name:28} {part:22} mDICE {m[0]:.3f} ± {sd[0]:.3f}  mIOU {m[1]:.3f} ± {sd[1]:.3f}  F1@0.5 {m[2]:.3f} ± {sd[2]:.3f}")


if __name__ == "__main__":
    main()
