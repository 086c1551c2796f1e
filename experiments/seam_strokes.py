"""Can split strokes teach a detector of seams between touching nuclei that works on other images?

    python experiments/seam_strokes.py [--models DIR] [--folds 0 3 5 7]

Split strokes cut objects only on the image they are drawn on: the scribble loss leaves them out.
For them to help images without strokes, something must learn from them what a seam between
touching nuclei looks like. This asks whether the pixels can tell at all, before any change to
the network: a random forest (100 trees, balanced classes) on the random-forest baseline's
multiscale features of the image (``benchmarks.baselines.pixel_features``) plus the model's
nucleus probability (raw, smoothed at 1 and 2 px), the distance to the mask's edge and its
smoothing, learns seam (split-stroke pixels) against not seam (nucleus strokes, and the other
mask pixels of the boxes the strokes were drawn in, more than 2 px from a stroke).

Per MIBI fold (leave one image out; the base model of ``benchmarks.interactive``: n100
scribbles, 180 s, seed 0, trained into ``--models`` on the first run), two sets of split strokes on
the three training images: those of 20 guided boxes (``suggest_for_model`` places, annotated as
``benchmarks.interactive`` does), and every merge of the base model's nuclei (the most split
strokes could ever give). On the held-out image: the forest's mean seam probability on the true
seams (where the base model merges true nuclei) against the other mask pixels, and F1@0.5 /
mDICE when the mask is cut where the seam probability exceeds 0.2, 0.3 or 0.5 (cut pixels go
back to the nearest object after splitting).
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.baselines import pixel_features  # noqa: E402
from benchmarks.data import MIBI_IDS, load_mibi  # noqa: E402
from benchmarks.interactive import make_fold  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig, NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.scribbles import NUCLEUS, SPLIT  # noqa: E402
from impartial_core.scribbles.simulation import annotate_box  # noqa: E402
from impartial_core.suggestions import suggest_for_model  # noqa: E402

BOX = 32
THRESHOLDS = (0.2, 0.3, 0.5)


def features(image: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W, F): the image's multiscale features, the probability and the distance to the mask edge."""
    distance = ndi.distance_transform_edt(probability > threshold)
    extra = [probability, ndi.gaussian_filter(probability, 1), ndi.gaussian_filter(probability, 2), distance,
             ndi.gaussian_filter(distance, 1)]
    return np.concatenate([pixel_features(image), np.stack(extra, -1).astype(np.float32)], -1)


def every_merge(truth: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """The split strokes of one box over the whole image: a stroke across every merge."""
    height, width = truth.shape
    return annotate_box(truth, height // 2, width // 2, box=max(height, width) + 2, ring=0, predicted=nuclei) == SPLIT


def cut(probability: np.ndarray, threshold: float, seam: np.ndarray, at: float) -> np.ndarray:
    """Nuclei of the mask less its seam pixels, the seam pixels then given to the nearest nucleus."""
    config = InstanceConfig()
    mask = probability > threshold
    labels = instances._clean_up(instances._objects_in(mask & ~(seam > at), config), config, config.min_size)
    if labels.max():
        _, (rows, cols) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        back = mask & (labels == 0) & (seam > at)
        labels[back] = labels[rows[back], cols[back]]
    return labels


def report(maps: "FoldMaps", seam_p: np.ndarray, cuts, note: str = "") -> str:
    """The mean seam probability on the held-out image's true seams and on its other mask pixels,
    then one line per cut: F1@0.5, mDICE and the nuclei found before -> after cutting where
    ``seam_p`` exceeds it. ``note`` ends the first line."""
    before, others = maps.before, (maps.test_p > maps.threshold) & ~maps.true_seams
    lines = [f"seam probability {seam_p[maps.true_seams].mean():.3f} on the {int(maps.true_seams.sum())} true seam "
             f"px, {seam_p[others].mean():.3f} on other mask px{note}"]
    for at in cuts:
        after = evaluate_image(None, cut(maps.test_p, maps.threshold, seam_p, at), maps.fold.test_truth)
        lines.append(f"    cut above {at}: F1@0.5 {before['f1_iou50']:.3f} -> {after['f1_iou50']:.3f}, mDICE "
                     f"{before['mdice']:.3f} -> {after['mdice']:.3f}, {before['n_pred']} -> {after['n_pred']} nuclei "
                     f"(true {after['n_true']})")
    return "\n".join(lines)


def base_model(mibi, held_out: int, folder: Path) -> ImPartialModel:
    path = folder / f"base_{held_out}.safetensors"
    if not path.exists():
        fold = make_fold(mibi, held_out)
        model = ImPartialModel.train(fold.images, fold.scribbles, tasks_for("nuclei", 1), NetworkConfig(1),
                                     TrainingConfig(time_budget_s=180, device="cpu", seed=0))
        folder.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return ImPartialModel.load(path)


def guided_boxes(model: ImPartialModel, fold, nuclei):
    """The strokes a simulated annotator draws in the 20 boxes ``suggest_for_model`` places on the
    training images (one image each), and the boxes as masks."""
    guided = [np.zeros(image.shape, np.uint8) for image in fold.images]
    boxed = [np.zeros(image.shape, bool) for image in fold.images]
    for place in suggest_for_model(model, fold.images, 20, scribbles=fold.scribbles, window=BOX, device="cpu"):
        strokes = annotate_box(fold.truth[place.image], place.row, place.col, box=BOX, ring=4,
                               predicted=nuclei[place.image])
        guided[place.image] = np.where(guided[place.image] == 0, strokes, guided[place.image])
        boxed[place.image][max(place.row - BOX // 2, 0):place.row + BOX // 2,
                           max(place.col - BOX // 2, 0):place.col + BOX // 2] = True
    return guided, boxed


@dataclass
class FoldMaps:
    """A fold's base model and what it gives: nuclei and probabilities of the training images, the
    held-out image's probability, its true seams (where the model merges true nuclei) and scores."""
    fold: object
    model: ImPartialModel
    threshold: float
    nuclei: list
    probability: list
    test_p: np.ndarray
    true_seams: np.ndarray
    before: dict


def fold_maps(mibi, held_out: int, folder: Path) -> FoldMaps:
    fold = make_fold(mibi, held_out)
    model = base_model(mibi, held_out, folder)
    maps = [model.predict(image, device="cpu") for image in fold.images]
    test_maps = model.predict(fold.test_image, device="cpu")
    test_nuclei = model.segment(test_maps).nuclei
    return FoldMaps(fold, model, model.threshold("nuclei"), [model.segment(m).nuclei for m in maps],
                    [m["nuclei"].foreground_probability for m in maps], test_maps["nuclei"].foreground_probability,
                    every_merge(fold.test_truth, test_nuclei), evaluate_image(None, test_nuclei, fold.test_truth))


def run_fold(mibi, held_out: int, folder: Path) -> None:
    maps = fold_maps(mibi, held_out, folder)
    fold, threshold, nuclei, probability = maps.fold, maps.threshold, maps.nuclei, maps.probability
    train_features = [features(image, p, threshold) for image, p in zip(fold.images, probability)]
    test_features = features(fold.test_image, maps.test_p, threshold)

    guided, boxed = guided_boxes(maps.model, fold, nuclei)
    sets = {"20 guided boxes": ([g == SPLIT for g in guided], [g == NUCLEUS for g in guided], boxed),
            "every merge": ([every_merge(t, n) for t, n in zip(fold.truth, nuclei)],
                            [np.zeros(b.shape, bool) for b in boxed], [np.ones(b.shape, bool) for b in boxed])}
    from sklearn.ensemble import RandomForestClassifier

    for name, (seams, skeletons, regions) in sets.items():
        xs, ys = [], []
        for feats, seam, skeleton, region, scribbles, p in zip(train_features, seams, skeletons, regions,
                                                                fold.scribbles, probability):
            away = ndi.distance_transform_edt(~seam) > 2
            other = (((scribbles == NUCLEUS) | skeleton) & ~seam) | (region & (p > threshold) & away)
            xs += [feats[seam], feats[other]]
            ys += [np.ones(int(seam.sum())), np.zeros(int(other.sum()))]
        forest = RandomForestClassifier(100, n_jobs=2, random_state=0, class_weight="balanced").fit(
            np.concatenate(xs), np.concatenate(ys))
        seam_p = forest.predict_proba(test_features.reshape(-1, test_features.shape[-1]))[:, 1].reshape(
            maps.test_p.shape)
        print(f"held-out {held_out}, {name} ({int(sum(s.sum() for s in seams))} stroke px): "
              + report(maps, seam_p, THRESHOLDS), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[1] / "out" / "seam_models")
    parser.add_argument("--folds", type=int, nargs="+", default=list(MIBI_IDS), choices=MIBI_IDS)
    args = parser.parse_args()
    mibi = load_mibi()
    for held_out in args.folds:
        run_fold(mibi, held_out, args.models)


if __name__ == "__main__":
    main()
