"""What twice the scribbles buy on a MIBI image the strokes were not drawn on.

    python experiments/more_strokes_held_out.py [--seeds 0] [--time-budget-s 180]

The scribble loop's aim (F1@0.5 0.78 on a held-out image after the n100 scribbles plus one round
of 20 boxes) asks more strokes on the training images to carry to an image without any. This
measures how much strokes of the kind the paper draws carry: per seed and held-out image,
one default model trained on the n100 scribbles of the other three images and one on their n200
scribbles (the paper's second budget: about twice the scribbled nuclei, drawn independently of
n100's), both scored on the held-out image (F1@0.5, mDICE; the instance step's defaults). The
scribbled nuclei are counted as the 8-connected pieces of the nucleus strokes.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.scribbles import NUCLEUS  # noqa: E402


def scribbled_nuclei(scribbles) -> int:
    """The nucleus strokes' 8-connected pieces over a list of scribble images."""
    return sum(ndi.label(s == NUCLEUS, structure=np.ones((3, 3)))[1] for s in scribbles)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s)
    args = parser.parse_args(argv)
    mibi = load_mibi()
    rows = {"n100": [], "n200": []}
    for seed in args.seeds:
        for test, held_out in enumerate(mibi.ids):
            train = [i for i in range(len(mibi.ids)) if i != test]
            line = [f"seed {seed}, held-out image {held_out}:"]
            for budget in ("n100", "n200"):
                scribbles = [mibi.scribbles[budget][i] for i in train]
                model = ImPartialModel.train([mibi.images[i] for i in train], scribbles, tasks_for("nuclei", 1),
                                             NetworkConfig(1), TrainingConfig(time_budget_s=args.time_budget_s, seed=seed))
                maps = model.predict(mibi.images[test])
                nuclei = model.segment(maps).nuclei
                scores = evaluate_image(maps["nuclei"].foreground_probability, nuclei, mibi.truth[test])
                rows[budget].append((scores["f1_iou50"], scores["mdice"]))
                line.append(f"{budget} ({scribbled_nuclei(scribbles)} scribbled nuclei) F1@0.5 {scores['f1_iou50']:.3f} "
                            f"mDICE {scores['mdice']:.3f}")
            print("  ".join(line), flush=True)
    for budget, values in rows.items():
        f1, mdice = np.array(values).T
        print(f"{budget}: mean over {len(values)} held-out runs F1@0.5 {f1.mean():.3f} ± {f1.std(ddof=1) if len(f1) > 1 else 0:.3f}, "
              f"mDICE {mdice.mean():.3f}")
    gain = np.array(rows["n200"])[:, 0] - np.array(rows["n100"])[:, 0]
    print(f"n200 - n100, paired: F1@0.5 {gain.mean():+.3f} ± {gain.std(ddof=1) if len(gain) > 1 else 0:.3f} "
          f"(per run: {' '.join(f'{g:+.3f}' for g in gain)})")


if __name__ == "__main__":
    main()
