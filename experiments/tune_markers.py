"""Other markers for splitting touching nuclei, on saved probability maps of several models.

    python experiments/tune_markers.py probs_seed0.npz probs_seed1.npz ...

Each .npz holds one model's nuclei probability maps of MIBI images 0, 3, 5, 7; a .json beside it
with a "threshold" key gives that model's threshold (default 0.35). Markers are the h-maxima of
the smoothed distance transform of a *marker mask* (probability > t_marker, which may be higher
than the object threshold, so that faint gaps between nuclei cut it); the watershed then floods
a landscape (the distance of the object mask, the probability, or the marker distance) inside
the object mask. Prints mDICE / mIOU / F1@0.5 averaged over the models, and how many ground-truth
nuclei are merged into a neighbour's object or split.
"""
import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.instances import _fill_holes_per_object, _remove_small  # noqa: E402
from impartial_core.metrics import _overlaps, evaluate_image, summarize  # noqa: E402


def merged_and_split(pred: np.ndarray, truth: np.ndarray):
    """Unmatched (IoU <= 0.5) true nuclei whose best object spills >25% into another true nucleus
    (merged), or that two objects each cover >20% of (split)."""
    _, _, at, ap, rows, cols, shared = _overlaps(pred, truth)
    inter = np.zeros((at.size, ap.size))
    inter[rows, cols] = shared
    iou = inter / np.maximum(at[:, None] + ap[None] - inter, 1)
    of_true, of_pred = inter / np.maximum(at[:, None], 1), inter / np.maximum(ap[None], 1)
    merged = split = 0
    for t in np.flatnonzero(~(iou > 0.5).any(1)):
        if of_true[t].sum() < 0.3:
            continue
        best = of_true[t].argmax()
        spill = np.delete(of_pred[:, best], t)
        if spill.size and spill.max() > 0.25:
            merged += 1
        elif (of_true[t] > 0.2).sum() >= 2:
            split += 1
    return merged, split


def segment(p, threshold, t_marker, h, landscape):
    mask = p > threshold
    marker_mask = p > max(t_marker, threshold)
    marker_distance = ndi.gaussian_filter(ndi.distance_transform_edt(marker_mask).astype(np.float32), 1.0)
    markers = ndi.label(h_maxima(marker_distance, h).astype(bool) & marker_mask)[0]
    flood = {"distance": lambda: -ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0),
             "probability": lambda: -p,
             "marker distance": lambda: -marker_distance}[landscape]()
    labels = watershed(flood, markers, mask=mask)
    orphans = ndi.label(mask & (labels == 0))[0]
    labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    return relabel_sequential(_remove_small(_fill_holes_per_object(labels), 20))[0]


def main(paths):
    truth = load_mibi().truth
    models = []
    for path in paths:
        meta = Path(path).with_suffix(".json")
        threshold = json.loads(meta.read_text())["threshold"] if meta.exists() else 0.35
        models.append((list(np.load(path).values()), threshold))
    for t_marker, h, landscape in itertools.product([0.0, 0.5, 0.65, 0.8], [0.5, 1.0, 1.5],
                                                    ["distance", "probability", "marker distance"]):
        if t_marker == 0.0 and landscape == "marker distance":
            continue  # the same as "distance"
        rows = []
        for maps, threshold in models:
            labels = [segment(p, threshold, t_marker, h, landscape) for p in maps]
            s = summarize([evaluate_image(p, lab, t) for p, lab, t in zip(maps, labels, truth)])
            errors = np.sum([merged_and_split(lab, t) for lab, t in zip(labels, truth)], axis=0)
            rows.append([s["mdice"], s["miou"], s["f1_iou50"], *errors])
        m = np.mean(rows, axis=0)
        print(f"marker mask p>{t_marker:<4} h {h:<3} flood {landscape:15s} mDICE {m[0]:.3f} mIOU {m[1]:.3f} "
              f"F1@0.5 {m[2]:.3f} (±{np.std([r[2] for r in rows], ddof=1) if len(rows) > 1 else 0:.3f}) "
              f"merged {m[3]:.0f} split {m[4]:.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="+", help="probs_seed{N}.npz files written by flip_average.py --save-maps")
    main(parser.parse_args().maps)
