"""Markers from the scribbles' centre lines: can the nucleus strokes themselves teach where one
nucleus's middle is, and so split touching nuclei?

    python experiments/scribble_centres.py MAPS/probs_seed0.npz ... [--steps 600]

A nucleus scribble is a line through the middle of a nucleus (the paper's simulation draws the
skeleton of the filled nucleus). Of the n100 scribbles' 102 nuclei, 87 touch another (within
2 px), so the strokes show, for touching nuclei too, where each one's middle runs.
``pseudo_centres.py`` learnt a centre-ness from the model's own isolated objects and could not
find seams; this learns from the strokes. Per saved map (``flip_average.py --save-maps``, models
trained on the n100 scribbles of all four images, as ``tune_markers.py`` reads them): a U-Net
(``pixel_net``: width 16, depth 3) on the image and the nucleus probability learns centre line
(nucleus strokes, widened by 1 px) against not centre line (mask pixels 3-8 px from a nucleus
stroke; background strokes). Its smoothed output above a level, inside the mask, gives one
marker per connected piece (or its h-maxima, one per peak); the mask is flooded from the markers
over its distance transform (as the default instance step floods its h-maxima), objects without
a marker kept whole. No ground truth is used until scoring, which is over all 889 nuclei (102 of
which were scribbled) and, apart, the share of the nuclei no stroke touches that are
matched at IoU 0.5.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pixel_net  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.instances import _remove_small, nuclei_from_probability  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.scribbles import BACKGROUND, NUCLEUS  # noqa: E402

LEVELS = (0.3, 0.5, 0.7, 0.85)
HEIGHTS = (0.05, 0.1, 0.2, 0.3)


def targets(scribbles: np.ndarray, probability: np.ndarray, threshold: float):
    """Centre line (the nucleus strokes widened by 1 px) and not centre line, as boolean masks."""
    strokes = scribbles == NUCLEUS
    line = ndi.binary_dilation(strokes)
    distance = ndi.distance_transform_edt(~strokes)
    not_line = ((distance >= 3) & (distance <= 8) & (probability > threshold)) | (scribbles == BACKGROUND)
    return line, not_line


def split_at(probability: np.ndarray, threshold: float, centre: np.ndarray, level: float, h: float = 0.0) -> np.ndarray:
    """The mask flooded over its distance transform from the pieces of the centre line above
    ``level`` or, with ``h``, from the h-maxima of the centre line smoothed over 2 px."""
    mask = probability > threshold
    if h:
        peaks = h_maxima(np.where(mask, ndi.gaussian_filter(centre, 2.0), 0).astype(np.float32), h)
        markers = ndi.label(peaks & mask, structure=np.ones((3, 3)))[0]
    else:
        markers = ndi.label((ndi.gaussian_filter(centre, 1.0) > level) & mask, structure=np.ones((3, 3)))[0]
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask), 1.0)
    labels = watershed(-distance, markers, mask=mask)
    orphan = mask & (labels == 0)
    if orphan.any():
        extra = ndi.label(orphan)[0]
        labels = np.where(orphan, extra + labels.max(), labels)
    return relabel_sequential(_remove_small(labels, 20))[0]


def unscribbled(truth: np.ndarray, scribbles: np.ndarray) -> np.ndarray:
    """The ground truth without the nuclei a nucleus stroke touches."""
    touched = np.unique(truth[scribbles == NUCLEUS])
    return np.where(np.isin(truth, touched[touched > 0]), 0, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("maps", nargs="+", help="probs_seed{N}.npz files written by flip_average.py --save-maps")
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    torch.set_num_threads(2)
    mibi = load_mibi()
    scribbles = mibi.scribbles["n100"]
    rest = [unscribbled(t, s) for t, s in zip(mibi.truth, scribbles)]
    for seed, path in enumerate(args.maps):
        maps = list(np.load(path).values())
        threshold = json.loads(Path(path).with_suffix(".json").read_text())["threshold"]
        xs = [np.stack([normalize(im[None])[0], p]).astype(np.float32) for im, p in zip(mibi.images, maps)]
        known = [targets(s, p, threshold) for s, p in zip(scribbles, maps)]
        net = pixel_net.train(xs, [k[0] for k in known], [k[1] for k in known], args.steps, seed)
        centres = [pixel_net.probability(net, x) for x in xs]
        variants = {"default": [nuclei_from_probability(p, threshold) for p in maps]}
        for level in LEVELS:
            variants[f"centre line > {level}"] = [split_at(p, threshold, c, level) for p, c in zip(maps, centres)]
        for h in HEIGHTS:
            variants[f"centre maxima h {h}"] = [split_at(p, threshold, c, 0, h) for p, c in zip(maps, centres)]
        for name, labels in variants.items():
            every = summarize([evaluate_image(None, la, t) for la, t in zip(labels, mibi.truth)])
            kept = [evaluate_image(None, la, t) for la, t in zip(labels, rest)]
            recall = sum(k["tp_iou50"] for k in kept) / sum(k["n_true"] for k in kept)
            print(f"{Path(path).name} {name:18s} mDICE {every['mdice']:.3f} F1@0.5 {every['f1_iou50']:.3f} "
                  f"objects {sum(int(la.max()) for la in labels)}; unscribbled nuclei matched {recall:.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
