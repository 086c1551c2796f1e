"""How far is the instance step from the best the probability maps allow? Oracle splits of saved maps.

    python experiments/oracle_split.py probs_seed0.npz probs_seed1.npz ...

Same inputs as ``tune_markers.py`` (maps of MIBI images 0, 3, 5, 7, a .json beside each with the
model's threshold). Each model's object mask (probability > threshold) is cut into nuclei four ways:

- default: ``instances.nuclei_from_probability``, what the module does;
- true markers: one marker per true nucleus (its centroid, where the mask covers it), flooding the
  smoothed distance of the mask (as the default) or the probability;
- true cuts: each mask pixel takes the nearest true nucleus, i.e. the mask as predicted, cut
  exactly where the ground truth is cut.

The gap between default and true markers is what better markers could gain, between true markers
and true cuts what better cut lines could, and true cuts' shortfall from 1 is the mask's own.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.instances import _remove_small, nuclei_from_probability  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402

MIN_SIZE = 20


def true_markers(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each true nucleus' centroid pixel, numbered as the nucleus, where the mask covers it."""
    centroids = np.rint(ndi.center_of_mass(truth > 0, truth, np.arange(1, truth.max() + 1))).astype(int)
    markers = np.zeros(truth.shape, np.int32)
    numbers = np.arange(1, len(centroids) + 1)
    inside = mask[centroids[:, 0], centroids[:, 1]]
    markers[centroids[inside, 0], centroids[inside, 1]] = numbers[inside]
    return markers


def cut(mask: np.ndarray, probability: np.ndarray, truth: np.ndarray, how: str) -> np.ndarray:
    if how == "true cuts":
        # the nearest true nucleus of every pixel, kept inside the predicted mask
        nearest = ndi.distance_transform_edt(truth == 0, return_distances=False, return_indices=True)
        labels = np.where(mask, truth[tuple(nearest)], 0)
    else:
        distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0)
        landscape = -distance if how == "true markers, flood distance" else -probability
        labels = watershed(landscape, true_markers(truth, mask), mask=mask)
    return relabel_sequential(_remove_small(labels, MIN_SIZE))[0]


def main(paths):
    truth = load_mibi().truth
    ways = ["default", "true markers, flood distance", "true markers, flood probability", "true cuts"]
    scores = {way: [] for way in ways}
    for path in paths:
        meta = Path(path).with_suffix(".json")
        threshold = json.loads(meta.read_text())["threshold"] if meta.exists() else 0.35
        maps = list(np.load(path).values())
        for way in ways:
            if way == "default":
                labels = [nuclei_from_probability(p, threshold) for p in maps]
            else:
                labels = [cut(p > threshold, p, t, way) for p, t in zip(maps, truth)]
            s = summarize([evaluate_image(p, lab, t) for p, lab, t in zip(maps, labels, truth)])
            scores[way].append([s["mdice"], s["miou"], s["f1_iou50"]])
    print(f"{len(paths)} models, MIBI n100, mean ± std over models")
    for way in ways:
        m, sd = np.mean(scores[way], 0), np.std(scores[way], 0, ddof=1) if len(paths) > 1 else np.zeros(3)
        print(f"{way:32s} mDICE {m[0]:.3f} ± {sd[0]:.3f}  mIOU {m[1]:.3f} ± {sd[1]:.3f}  "
              f"F1@0.5 {m[2]:.3f} ± {sd[2]:.3f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="+", help="probs_seed{N}.npz files written by flip_average.py --save-maps")
    main(parser.parse_args().maps)
