"""Whether the valley split's gain on held-out MIBI nuclei holds after short trainings, and where it merges.

    python experiments/split_regimes.py --maps DIR [--seeds 0 1]

The valley split (``instances.split_at_valleys`` over 0.4 nuclear radii, depth 0.05) beat the
distance split (the default then) on held-out images after 3-minute trainings but merged nuclei
in two tests whose models train for 100-150 iterations on crops (``mibi_fragments.py``). Here
the same leave-one-image-out folds (n100 scribbles of three MIBI images, the fourth scored) are
also trained for 150 and 400 iterations (``DIR/mibi_folds_{N}it_seed{S}.npz``; the 3-minute maps
are ``mibi_fragments.py``'s, reused from DIR or trained), and the module test's setting is
rebuilt in the core: two 128 x 128 crops of image 0 with its n200 scribbles, width 8, patch 64,
batch 4, 100 iterations, seeds 0-2, scored on those crops. On each: the distance split, the
valley split at two depths and at a narrower smoothing, two rules that split where either the
valleys or the mask's shape say so (``instances.split_at_valleys_or_necks``, necks 1 or 2 px
deep), the valley split only on maps whose smoothness is under 0.5, and the default that came of
it (``instances.nuclei_from_probability``: the valleys or necks 2 px deep on such maps, the
distance split on the others; the gate was chosen after seeing the smoothness of these maps and
not tuned further); and, per map, the nuclear radius that sets the valley split's smoothing and
``instances.smoothness``, the share of the pixels above 0.1 that stay under 0.9. Last, the same
rules on ``mibi_fragments.py``'s models trained on all four images with the n100 and n200
scribbles and scored on them (the accuracy benchmark's setting), and the time of the default and
of the distance split on those maps tiled to 2048².
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import MIBI_IDS, data_dir  # noqa: E402
from benchmarks.speed import two_by_two, tiled  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.nuclear_stain import nuclear_radius  # noqa: E402
from mibi_fragments import cleaned, distance_split, fold_maps, training_maps, valley_split  # noqa: E402

CROPS = [(slice(0, 128), slice(0, 128)), (slice(128, 256), slice(128, 256))]


def valleys_or_shape(probability: np.ndarray, threshold: float, h: float) -> np.ndarray:
    """Nuclei cut wherever the valley split (0.4 radii, depth 0.05) or the distance split (``h``)
    cuts (``instances.split_at_valleys_or_necks``)."""
    return cleaned(instances.split_at_valleys_or_necks(probability, probability > threshold, h))


def where_confident(split):
    """``split`` on a map whose ``instances.smoothness`` is under 0.5, the distance split on the others."""
    return lambda p, t: split(p, t) if instances.smoothness(p) < 0.5 else distance_split(p, t)


RULES = {
    "distance split (the default before)": distance_split,
    "valleys over 0.4 radii, depth 0.05": lambda p, t: valley_split(p, t, 0.4, 0.05),
    "valleys over 0.4 radii, depth 0.03": lambda p, t: valley_split(p, t, 0.4, 0.03),
    "valleys over 0.3 radii, depth 0.03": lambda p, t: valley_split(p, t, 0.3, 0.03),
    "valleys (0.05) or shape (h 2)": lambda p, t: valleys_or_shape(p, t, 2.0),
    "valleys (0.05) or shape (h 1)": lambda p, t: valleys_or_shape(p, t, 1.0),
    "valleys where smoothness < 0.5": where_confident(lambda p, t: valley_split(p, t, 0.4, 0.05)),
    "default now: valleys or shape (h 2) there": lambda p, t: instances.nuclei_from_probability(p, t),
}


def crop_maps(seed: int) -> list:
    """(truth, probability, threshold) of the module test's two crops after its brief training."""
    folder = data_dir() / "mibi_dsdna"
    image, scribbles, truth = (tifffile.imread(str(folder / name)) for name in
                               ("image0.tif", "image0_scribbles_n200.tif", "image0_nuclei_labels.tif"))
    images = [image[c].astype(np.float32) for c in CROPS]
    model = ImPartialModel.train(images, [scribbles[c].astype(np.uint8) for c in CROPS], tasks_for("nuclei", 1),
                                 NetworkConfig(1, width=8),
                                 TrainingConfig(max_iterations=100, time_budget_s=60, patch_size=64, batch_size=4,
                                                device="cpu", seed=seed))
    return [(truth[c].astype(np.int32), model.predict(x, device="cpu")["nuclei"].foreground_probability,
             model.threshold("nuclei")) for c, x in zip(CROPS, images)]


def report(title: str, maps: list) -> None:
    """Per rule: F1@0.5 per map, the mean, mDICE and the number of nuclei (truth in brackets)."""
    print(f"{title}: radius " + " ".join(f"{nuclear_radius(p):.1f}" for _, p, _ in maps)
          + ", smoothness " + " ".join(f"{instances.smoothness(p):.2f}" for _, p, _ in maps))
    n_true = sum(len(np.unique(y)) - 1 for y, _, _ in maps)
    for name, rule in RULES.items():
        labels = [rule(p, t) for _, p, t in maps]
        scores = [evaluate_image(None, lab, y) for lab, (y, _, _) in zip(labels, maps)]
        f1 = [s["f1_iou50"] for s in scores]
        print(f"    {name:41} F1@0.5 " + " ".join(f"{v:.3f}" for v in f1) + f"  mean {np.mean(f1):.3f}, "
              f"mDICE {np.mean([s['mdice'] for s in scores]):.3f}, nuclei "
              + " ".join(str(int(lab.max())) for lab in labels) + f" ({n_true})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    for seed in args.seeds:
        for iterations in (150, 400):
            report(f"seed {seed}, {iterations} iterations, held-out images {MIBI_IDS}",
                   [(y, p, t) for _, y, p, t in fold_maps(args.maps, seed, iterations).values()])
        report(f"seed {seed}, 3 minutes, held-out images {MIBI_IDS}",
               [(y, p, t) for _, y, p, t in fold_maps(args.maps, seed).values()])
    for seed in (0, 1, 2):
        report(f"module test's crops of image 0, seed {seed}", crop_maps(seed))
    for budget in ("n100", "n200"):
        for seed in args.seeds:
            report(f"seed {seed}, 3 minutes on all four images ({budget}), scored on them",
                   training_maps(args.maps, seed, budget))
    time_on_a_large_map(training_maps(args.maps, args.seeds[0], "n100"))


def time_on_a_large_map(maps: list) -> None:
    """Seconds of the default and of the distance split on four confident maps tiled to 2048²
    (as ``benchmarks.speed --parts instances`` tiles its 30-s model's smoother maps), best of 3."""
    probability = tiled(two_by_two([p for _, p, _ in maps]), 2048)
    threshold = maps[0][2]
    for name, split in (("default", instances.nuclei_from_probability), ("distance split", distance_split)):
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            count = int(split(probability, threshold).max())
            seconds.append(time.perf_counter() - start)
        print(f"{name} on the seed's n100 maps tiled to 2048² (smoothness {instances.smoothness(probability):.2f}): "
              f"{min(seconds):.2f} s, {count} nuclei")


if __name__ == "__main__":
    main()
