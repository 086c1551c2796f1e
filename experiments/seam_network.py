"""Can a network learn from split strokes where touching nuclei meet, on images without strokes?

    python experiments/seam_network.py [--models DIR] [--folds 5 0] [--steps 600] [--sets every guided]

``seam_strokes.py`` found that a random forest on pixel features cannot tell a seam between
touching MIBI nuclei from the rest of a nucleus. A convolutional network sees more: the shape of
the mask around a pixel (the notches where two nuclei meet) as well as its intensity. This trains
one, per MIBI fold (leave one image out, the base models of ``seam_strokes.py``), on the three
training images: a U-Net (width 16, depth 3) on the image, the base model's nucleus probability
and the distance to the mask's edge learns seam (split-stroke pixels) against not seam (nucleus
strokes; the mask pixels more than 2 px from a split stroke inside the boxes drawn in; background
strokes), by class-balanced binary cross-entropy on 128 x 128 patches with flips and rotations.
Two sets of split strokes, as in ``seam_strokes.py``: every merge of the base model's nuclei on
the training images (the most split strokes could give) and those of 20 guided boxes.

On the held-out image: the mean seam probability on the true seams (where the base model merges
true nuclei) against the other mask pixels with the AUC of that ranking, and F1@0.5 / mDICE when
the mask is cut where the seam probability exceeds 0.5-0.95 (``seam_strokes.cut``).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks.data import MIBI_IDS, load_mibi  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.scribbles import BACKGROUND, NUCLEUS, SPLIT  # noqa: E402
import pixel_net  # noqa: E402
from seam_strokes import every_merge, fold_maps, guided_boxes, report  # noqa: E402

CUTS = (0.5, 0.7, 0.8, 0.9, 0.95)


def inputs(image: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """(3, H, W): the normalised image, the probability, the distance to the mask's edge / 10."""
    distance = ndi.distance_transform_edt(probability > threshold) / 10.0
    return np.stack([normalize(image[None])[0], probability, distance]).astype(np.float32)


def known(seam: np.ndarray, region: np.ndarray, scribbles: np.ndarray, probability: np.ndarray, threshold: float):
    """Seam (the split strokes) and not seam (nucleus and background strokes, the mask pixels of
    ``region``), both more than 2 px from a split stroke."""
    away = ndi.distance_transform_edt(~seam) > 2
    other = ((scribbles == NUCLEUS) | (scribbles == BACKGROUND) | (region & (probability > threshold))) & away
    return seam, other


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The chance that a seam pixel scores above another mask pixel."""
    values = np.concatenate([positive, negative])
    rank = np.empty(len(values))
    rank[np.argsort(values, kind="mergesort")] = np.arange(1, len(values) + 1)
    return float((rank[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def run_fold(mibi, held_out: int, folder: Path, steps: int, sets) -> None:
    maps = fold_maps(mibi, held_out, folder)
    fold, threshold, nuclei, probability = maps.fold, maps.threshold, maps.nuclei, maps.probability
    xs = [inputs(image, p, threshold) for image, p in zip(fold.images, probability)]
    test_x = inputs(fold.test_image, maps.test_p, threshold)
    choices = {}
    if "every" in sets:
        choices["every merge"] = ([every_merge(t, n) for t, n in zip(fold.truth, nuclei)], fold.scribbles,
                                  [np.ones(p.shape, bool) for p in probability])
    if "guided" in sets:
        strokes, boxed = guided_boxes(maps.model, fold, nuclei)
        choices["20 guided boxes"] = ([g == SPLIT for g in strokes],
                                      [np.where(g == NUCLEUS, NUCLEUS, f) for g, f in zip(strokes, fold.scribbles)], boxed)
    others = (maps.test_p > threshold) & ~maps.true_seams
    for name, (seams, scribbles, regions) in choices.items():
        labels = [known(s, r, f, p, threshold) for s, r, f, p in zip(seams, regions, scribbles, probability)]
        net = pixel_net.train(xs, [k[0] for k in labels], [k[1] for k in labels], steps)
        seam_p = pixel_net.probability(net, test_x)
        print(f"held-out {held_out}, {name} ({int(sum(s.sum() for s in seams))} stroke px): "
              + report(maps, seam_p, CUTS, note=f", AUC {auc(seam_p[maps.true_seams], seam_p[others]):.3f}"),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[1] / "out" / "seam_models")
    parser.add_argument("--folds", type=int, nargs="+", default=[5, 0], choices=MIBI_IDS)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--sets", nargs="+", default=["every", "guided"], choices=["every", "guided"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    mibi = load_mibi()
    for held_out in args.folds:
        run_fold(mibi, held_out, args.models, args.steps, args.sets)


if __name__ == "__main__":
    main()
