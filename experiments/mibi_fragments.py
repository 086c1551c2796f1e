"""Where the MIBI nuclei go wrong on held-out images, merges and fragments, and a split at the probability's valleys.

    python experiments/mibi_fragments.py --maps DIR [--seeds 0 1] [--training-images n100 n200]

Trains, per seed, the four leave-one-image-out default models (MIBI n100 scribbles of three
images, 3 minutes each on 2 CPU cores) and keeps each held-out image's nucleus probability and the
model's threshold in ``DIR/mibi_folds_seed{N}.npz`` (reused when there). On the nuclei of each
held-out image split by the mask's shape (h-maxima of its smoothed distance transform, depth
1 px; the default before ``split_regimes.py``, and still on smooth maps) it then counts:

- the true nuclei matched at IoU 0.5, merged with a neighbour, or split;
- the predicted nuclei that match nothing: mostly on background, a merge of true nuclei, or a
  fragment of one true nucleus, touching another predicted object of that nucleus or alone;
  and F1@0.5 with the fragments removed (what an oracle merging them could gain at most);
- whether the borders between touching predicted nuclei tell a fragment from a neighbour: a
  random forest on border features (the smaller and larger area, border length, the distance
  transform's and the probability's saddle on the border, the image on the border), trained on
  the truth-labelled borders of the other three images, merges the held-out image's borders it
  calls one nucleus (an upper bound for what strokes across fragments could teach);
- the probability smoothed (Gaussian, 1 px) before that split, at depth 1 and 0.75, per image;
  and those nuclei with only the ones joined that one smoothed object holds, where it stays under
  1.5 or 2 times their median area;
- the split at the valleys of the probability smoothed over 0.4 or 0.5 nuclear radii, at depths
  0.02-0.05 (``instances.split_at_valleys``; not the default alone: it merges nuclei after short
  trainings, see experiments/README.md).

``--training-images n100 n200`` also trains one default model per seed and budget on all four
images and compares the distance split with the valley split on those images (the
accuracy benchmark's setting).
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import MIBI_IDS, load_mibi  # noqa: E402
from benchmarks.interactive import make_fold  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.nuclear_stain import nuclear_radius  # noqa: E402
from mp6843_errors import border_lengths  # noqa: E402


def cleaned(pieces: np.ndarray) -> np.ndarray:
    """Split nuclei as the default instance step finishes them: holes filled, small objects dropped."""
    config = InstanceConfig()
    return instances._clean_up(pieces, config, config.min_size)


def distance_split(probability: np.ndarray, threshold: float, h: float = 1.0) -> np.ndarray:
    """Nuclei of the mask split at the h-maxima of its smoothed distance transform (depth ``h``),
    holes filled, small objects dropped (``instances.nuclei_from_probability`` on a smooth map)."""
    return cleaned(instances.split_touching(probability > threshold, h))


def valley_split(probability: np.ndarray, threshold: float, radii: float, depth: float) -> np.ndarray:
    """Nuclei split at the valleys of the probability smoothed over ``radii`` nuclear radii."""
    sigma = radii * nuclear_radius(probability)
    return cleaned(instances.split_at_valleys(probability, probability > threshold, depth, sigma))


def default_model(images, scribbles, seed: int, iterations: Optional[int] = None) -> ImPartialModel:
    """A nucleus model of the default settings (3 minutes on the CPU) from ``seed``, or one trained
    ``iterations`` steps."""
    training = (TrainingConfig(time_budget_s=180, device="cpu", seed=seed) if iterations is None else
                TrainingConfig(max_iterations=iterations, time_budget_s=600, device="cpu", seed=seed))
    return ImPartialModel.train(images, scribbles, tasks_for("nuclei", 1), NetworkConfig(1), training)


def fold_maps(folder: Path, seed: int, iterations: Optional[int] = None) -> dict:
    """Per held-out image id: (image, truth, probability, threshold) from the default fold model
    (``DIR/mibi_folds_seed{N}.npz``), or one trained ``iterations`` steps
    (``DIR/mibi_folds_{iterations}it_seed{N}.npz``)."""
    path = folder / (f"mibi_folds_seed{seed}.npz" if iterations is None else f"mibi_folds_{iterations}it_seed{seed}.npz")
    if not path.exists():
        mibi, saved = load_mibi(), {}
        for held in MIBI_IDS:
            fold = make_fold(mibi, held)
            model = default_model(fold.images, fold.scribbles, seed, iterations)
            saved.update({f"x{held}": fold.test_image, f"y{held}": fold.test_truth,
                          f"p{held}": model.predict(fold.test_image, device="cpu")["nuclei"].foreground_probability,
                          f"t{held}": np.float64(model.threshold("nuclei"))})
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **saved)
    data = np.load(path)
    return {held: (data[f"x{held}"], data[f"y{held}"], data[f"p{held}"], float(data[f"t{held}"])) for held in MIBI_IDS}


def training_maps(folder: Path, seed: int, budget: str) -> list:
    """(truth, probability, threshold) of the four MIBI images from one default model trained on all
    four with the ``budget`` scribbles (the accuracy benchmark's setting), saved in
    ``folder/mibi_all_{budget}_seed{N}.npz``."""
    path = folder / f"mibi_all_{budget}_seed{seed}.npz"
    mibi = load_mibi()
    if not path.exists():
        model = default_model(mibi.images, mibi.scribbles[budget], seed)
        maps = [model.predict(image, device="cpu")["nuclei"].foreground_probability for image in mibi.images]
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, *maps, threshold=np.float64(model.threshold("nuclei")))
    data = np.load(path)
    return [(truth, data[f"arr_{i}"], float(data["threshold"])) for i, truth in enumerate(mibi.truth)]


def compare_on_training_images(folder: Path, seeds, budget: str) -> None:
    """The distance split against the valley split, on the images the models trained on."""
    print(f"models trained on all four images ({budget}), scored on them (F1@0.5 / mDICE over the images, per seed)")
    maps = [training_maps(folder, seed, budget) for seed in seeds]
    for name, split in (("distance split", distance_split),
                        ("valleys of the probability over 0.4 radii, depth 0.05",
                         lambda p, t: valley_split(p, t, 0.4, 0.05))):
        scores = [summarize([evaluate_image(None, split(p, t), truth) for truth, p, t in seed_maps])
                  for seed_maps in maps]
        print(f"    {name:62} " + "  ".join(f"{s['f1_iou50']:.3f} / {s['mdice']:.3f}" for s in scores)
              + f"  mean {np.mean([s['f1_iou50'] for s in scores]):.3f} / {np.mean([s['mdice'] for s in scores]):.3f}")


def overlaps(nuclei: np.ndarray, truth: np.ndarray):
    """(pixels shared by each (true, predicted) pair, true areas, predicted areas)."""
    both = (truth > 0) & (nuclei > 0)
    pairs, counts = np.unique(np.stack([truth[both], nuclei[both]]), axis=1, return_counts=True)
    return dict(zip(map(tuple, pairs.T), counts)), np.bincount(truth.ravel()), np.bincount(nuclei.ravel())


def error_kinds(nuclei: np.ndarray, truth: np.ndarray) -> dict:
    """Counts of true nuclei matched / merged / split / missed, and of unmatched predicted nuclei
    by kind; ``fragments`` is the set of predicted labels that are fragments of one true nucleus."""
    shared, true_area, area = overlaps(nuclei, truth)
    iou = {(a, b): c / (true_area[a] + area[b] - c) for (a, b), c in shared.items()}
    kinds = {k: 0 for k in ("matched", "merged", "split", "missed", "background", "merge of true nuclei",
                             "fragment touching another of its nucleus", "fragment alone")}
    for a in np.flatnonzero(true_area[1:]) + 1:
        mine = {b: c for (t, b), c in shared.items() if t == a}
        if not mine:
            kinds["missed"] += 1
            continue
        b = max(mine, key=mine.get)
        if iou[(a, b)] >= 0.5:
            kinds["matched"] += 1
        elif any(t != a and c > 0.3 * true_area[t] for (t, bb), c in shared.items() if bb == b) and area[b] > true_area[a]:
            kinds["merged"] += 1
        else:
            kinds["split"] += 1
    fragments = set()
    for b in np.flatnonzero(area[1:]) + 1:
        held = {t: c for (t, bb), c in shared.items() if bb == b}
        if any(iou[(t, b)] >= 0.5 for t in held):
            continue
        if area[b] - sum(held.values()) > area[b] / 2:
            kinds["background"] += 1
        elif sum(c > 0.3 * true_area[t] for t, c in held.items()) >= 2:
            kinds["merge of true nuclei"] += 1
        else:
            owner = max(held, key=held.get)
            piece = nuclei == b
            ring = ndi.binary_dilation(piece, iterations=2) & ~piece & (truth == owner)
            touching = bool(np.setdiff1d(np.unique(nuclei[ring]), [0, b]).size)
            kinds["fragment touching another of its nucleus" if touching else "fragment alone"] += 1
            fragments.add(b)
    return kinds, fragments


def border_features(nuclei: np.ndarray, probability: np.ndarray, image: np.ndarray, truth: np.ndarray):
    """Per border between touching predicted nuclei (4-neighbour pixel pairs): the pair, its
    features, and whether the two lie mostly in one true nucleus."""
    lengths = border_lengths(nuclei)
    index = np.arange(nuclei.max() + 1)
    area, distance = np.bincount(nuclei.ravel()), ndi.distance_transform_edt(nuclei > 0)
    peak, mean_p, mean_i = (ndi.maximum(distance, nuclei, index), ndi.mean(probability, nuclei, index),
                            ndi.mean(image, nuclei, index))
    owner = [0] + [np.bincount(truth[nuclei == label]).argmax() for label in index[1:]]
    pairs, rows, same = [], [], []
    for (x, y), length in lengths.items():
        one, other = nuclei == x, nuclei == y
        border = (ndi.binary_dilation(one) & other) | (ndi.binary_dilation(other) & one)
        pairs.append((x, y))
        rows.append([np.log(min(area[x], area[y])), np.log(max(area[x], area[y])), np.log(length),
                     distance[border].max() / min(peak[x], peak[y]), probability[border].mean() / min(mean_p[x], mean_p[y]),
                     image[border].mean() / max(min(mean_i[x], mean_i[y]), 1e-6)])
        same.append(owner[x] == owner[y] != 0)
    return pairs, np.array(rows), np.array(same)


def merged(nuclei: np.ndarray, pairs) -> np.ndarray:
    """``nuclei`` with each listed pair of labels joined (transitively)."""
    parent = np.arange(nuclei.max() + 1)

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in pairs:
        parent[root(a)] = root(b)
    return relabel_sequential(np.array([root(a) for a in parent])[nuclei])[0]


def joined_where_small(nuclei: np.ndarray, smooth: np.ndarray, factor: float) -> np.ndarray:
    """``nuclei`` with the objects each ``smooth`` object mostly holds joined, where that smooth object
    is at most ``factor`` times the median area of ``nuclei``."""
    areas = np.bincount(nuclei.ravel())[1:]
    limit, smooth_area = factor * np.median(areas[areas > 0]), np.bincount(smooth.ravel())
    join = []
    for label in np.flatnonzero(smooth_area[1:] <= limit) + 1:
        held = [b for b in np.setdiff1d(np.unique(nuclei[smooth == label]), [0])
                if (smooth[nuclei == b] == label).mean() > 0.5]
        join += [(held[0], b) for b in held[1:]]
    return merged(nuclei, join)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--training-images", nargs="*", default=[], choices=["n100", "n200"],
                        help="also compare the two splits on models trained on all four images with these "
                             "scribbles, scored on them")
    args = parser.parse_args()
    from sklearn.ensemble import RandomForestClassifier

    for seed in args.seeds:
        folds = fold_maps(args.maps, seed)
        print(f"seed {seed}, held-out image: F1@0.5 per image, then the mean")
        default = {held: distance_split(p, t) for held, (_, _, p, t) in folds.items()}
        valleys = [(radii, depth) for radii in (0.4, 0.5) for depth in (0.02, 0.03, 0.05)]
        rows = {name: [] for name in (
            "distance split", "fragments removed (oracle)", "borders merged by a forest trained on the other images' truth",
            "probability smoothed 1 px, split depth 1", "probability smoothed 1 px, split depth 0.75",
            "distance split, joined where smoothed is under 1.5 x median",
            "distance split, joined where smoothed is under 2 x median")
            + tuple(f"valleys of the probability over {r:g} radii, depth {d:g}" for r, d in valleys)}
        totals = {}
        borders = {held: border_features(default[held], p, x.reshape(p.shape), y) for held, (x, y, p, _) in folds.items()}
        for held, (_, truth, p, t) in folds.items():
            kinds, fragments = error_kinds(default[held], truth)
            for key, value in kinds.items():
                totals[key] = totals.get(key, 0) + value
            rows["distance split"].append(evaluate_image(None, default[held], truth))
            rows["fragments removed (oracle)"].append(
                evaluate_image(None, np.where(np.isin(default[held], list(fragments)), 0, default[held]), truth))
            train = [borders[other] for other in folds if other != held]
            forest = RandomForestClassifier(200, min_samples_leaf=3, random_state=0, class_weight="balanced").fit(
                np.concatenate([b[1] for b in train]), np.concatenate([b[2] for b in train]))
            pairs, features, _ = borders[held]
            join = [pair for pair, q in zip(pairs, forest.predict_proba(features)[:, 1]) if q > 0.7]
            rows["borders merged by a forest trained on the other images' truth"].append(
                evaluate_image(None, merged(default[held], join), truth))
            for sigma, h in ((1.0, 1.0), (1.0, 0.75)):
                smooth = distance_split(ndi.gaussian_filter(p, sigma), t, h)
                rows[f"probability smoothed {sigma:g} px, split depth {h:g}"].append(
                    evaluate_image(None, smooth, truth))
                if h == 1.0:
                    for factor in (1.5, 2.0):
                        rows[f"distance split, joined where smoothed is under {factor:g} x median"].append(
                            evaluate_image(None, joined_where_small(default[held], smooth, factor), truth))
            for radii, depth in valleys:
                rows[f"valleys of the probability over {radii:g} radii, depth {depth:g}"].append(
                    evaluate_image(None, valley_split(p, t, radii, depth), truth))
        print("    " + ", ".join(f"{k} {v}" for k, v in totals.items()))
        same = np.concatenate([b[2] for b in borders.values()])
        print(f"    borders between touching nuclei: {len(same)}, {int(same.sum())} inside one true nucleus")
        for name, scores in rows.items():
            f1 = [s["f1_iou50"] for s in scores]
            print(f"    {name:62} F1@0.5 " + " ".join(f"{v:.3f}" for v in f1) + f"  mean {np.mean(f1):.3f}, "
                  f"mDICE {np.mean([s['mdice'] for s in scores]):.3f}", flush=True)
    for budget in args.training_images:
        compare_on_training_images(args.maps, args.seeds, budget)


if __name__ == "__main__":
    main()
