"""Can the nucleus strokes pick the rule that cuts touching nuclei, image set by image set?

    python experiments/calibrated_nuclei_split.py --maps DIR [--seeds 0 1]

The MIBI counterpart of ``calibrated_split.py``: per leave-one-image-out fold, a default model on
the n100 scribbles of three images (3 minutes; its maps of all four images saved in DIR), then
each of a few splitting rules is scored against the strokes of the training images (a scribbled
nucleus kept whole and alone, ``calibrated_split.stroke_agreement``) and against the held-out
image's truth (F1@0.5, mDICE). The rule the strokes pick is scored held out against the default.
"""
import argparse
import sys
from pathlib import Path
from typing import Callable, Dict

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from calibrated_split import stroke_agreement  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.blob_splitting import split_at_valleys, split_touching  # noqa: E402
from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.nuclear_stain import nuclear_radius  # noqa: E402


def valleys(depth: float, radii: float) -> Callable:
    return lambda p, mask: split_at_valleys(p, mask, depth, radii * nuclear_radius(p))


RULES: Dict[str, Callable] = {
    "default": None,
    "necks h 0.5": lambda p, mask: split_touching(mask, 0.5),
    "necks h 1": lambda p, mask: split_touching(mask, 1.0),
    "necks h 2": lambda p, mask: split_touching(mask, 2.0),
    "valleys 0.03": valleys(0.03, 0.4),
    "valleys 0.05": valleys(0.05, 0.4),
    "valleys 0.1": valleys(0.1, 0.4),
    "valleys 0.05, 0.3 radii": valleys(0.05, 0.3),
    "valleys or necks h 1": lambda p, mask: instances.split_at_valleys_or_necks(p, mask, 1.0),
    "valleys or necks h 3": lambda p, mask: instances.split_at_valleys_or_necks(p, mask, 3.0),
}


def nuclei(rule: str, probability: np.ndarray, threshold: float) -> np.ndarray:
    config = InstanceConfig()
    if RULES[rule] is None:
        return instances.nuclei_from_probability(probability, threshold, config)
    return instances._clean_up(RULES[rule](probability, probability > threshold), config, config.min_size)


def fold_maps(folder: Path, seed: int, time_budget_s: float) -> dict:
    """Per held-out image index: the maps of all four images from the model trained on the other
    three, and its threshold; trained on the first call."""
    path = folder / f"calibrated_nuclei_seed{seed}_{time_budget_s:g}s.npz"
    mibi = load_mibi()
    if not path.exists():
        saved = {}
        for test in range(len(mibi.ids)):
            train = [i for i in range(len(mibi.ids)) if i != test]
            model = ImPartialModel.train([mibi.images[i] for i in train], [mibi.scribbles["n100"][i] for i in train],
                                         tasks_for("nuclei", 1), NetworkConfig(1),
                                         TrainingConfig(time_budget_s=time_budget_s, seed=seed))
            for i in range(len(mibi.ids)):
                saved[f"p{test}_{i}"] = model.predict(mibi.images[i])["nuclei"].foreground_probability
            saved[f"t{test}"] = np.float64(model.thresholds["nuclei"])
            print(f"seed {seed}: trained without image {mibi.ids[test]}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **saved)
    data = np.load(path)
    return {test: ({i: data[f"p{test}_{i}"] for i in range(len(mibi.ids))}, float(data[f"t{test}"]))
            for test in range(len(mibi.ids))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maps", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s)
    args = parser.parse_args()
    mibi = load_mibi()
    rows: Dict[str, list] = {}
    for seed in args.seeds:
        for test, (maps, threshold) in fold_maps(Path(args.maps), seed, args.time_budget_s).items():
            agreement, held_out = {}, {}
            for rule in RULES:
                counts = [stroke_agreement(nuclei(rule, maps[i], threshold), mibi.scribbles["n100"][i])
                          for i in maps if i != test]
                agreement[rule] = sum(c[0] for c in counts) / max(sum(c[1] for c in counts), 1)
                scores = evaluate_image(None, nuclei(rule, maps[test], threshold), mibi.truth[test])
                held_out[rule] = (scores["f1_iou50"], scores["mdice"])
                rows.setdefault(rule, []).append(held_out[rule])
            best = max(agreement.values())
            picked = "default" if agreement["default"] == best else next(r for r in RULES if agreement[r] == best)
            rows.setdefault("picked by the strokes", []).append(held_out[picked])
            print(f"seed {seed}, held-out image {mibi.ids[test]}: picked {picked!r}", flush=True)
            for rule in RULES:
                print(f"    {rule:28} strokes {agreement[rule]:.3f}  held out F1@0.5 {held_out[rule][0]:.3f} "
                      f"mDICE {held_out[rule][1]:.3f}", flush=True)
    print("held out, mean over images and seeds    F1@0.5  mDICE")
    for rule, values in rows.items():
        print(f"  {rule:36} {np.mean([v[0] for v in values]):.3f}  {np.mean([v[1] for v in values]):.3f}")


if __name__ == "__main__":
    main()
