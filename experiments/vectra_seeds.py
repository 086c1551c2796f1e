"""Vectra whole cells from saved cell probabilities: nuclear-stain seeds against the cells-only split.

    python experiments/vectra_cells.py --seeds 0 --maps /tmp/vectra_maps   # trains, saves the maps
    python experiments/vectra_seeds.py /tmp/vectra_maps/vectra_cells_default_seed0.npz

Scores the traced cells (benchmarks.accuracy.score_traced) under: the old distance split, the
valley split (no nuclear stain), cells grown from DAPI nuclei (``instances.segment`` with the
nuclear channel) and variants of it: nuclei from CellProfiler's IdentifyPrimaryObjects as seeds,
the parts of the cell mask no nucleus reaches kept as cells of their own; and what was tried
against the local-contrast seeds: the earlier global Otsu seeds, dropping seeds outside the cell
mask, the mask intersected with an Otsu mask of the image, other thresholds, a lower split depth,
and placeholder seeds in parts of the mask a probability valley separates from every nucleus.
"""
import sys
from pathlib import Path

import dataclasses

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import relabel_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.accuracy import score_traced  # noqa: E402
from benchmarks.data import load_vectra  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402


def with_unseeded(cells: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
    """``cells`` plus the parts of the cell mask they do not cover, split at probability valleys."""
    rest = (p > t) & (cells == 0)
    extra = instances.split_at_valleys(p, rest, 0.05)
    extra = instances._remove_small(extra, 20)
    return np.where(rest & (extra > 0), relabel_sequential(extra)[0] + cells.max(), cells)


def global_otsu_nuclei(channel: np.ndarray, config: InstanceConfig) -> np.ndarray:
    """The earlier seeds: the smoothed, normalised stain at one global Otsu threshold."""
    smooth = gaussian(normalize(channel[None])[0], sigma=1.0)
    return instances.nuclei_from_probability(smooth, float(threshold_otsu(smooth)), config)


def grown(seeds: np.ndarray, p: np.ndarray, mask: np.ndarray, keep_outside: bool = True) -> np.ndarray:
    """Cells propagated from ``seeds`` over ``p`` within ``mask``; without ``keep_outside``, seeds
    with under half their pixels in the mask seed nothing (the earlier rule)."""
    if not keep_outside:
        area = np.bincount(seeds.ravel())
        inside = np.bincount(seeds[mask].ravel(), minlength=area.size)
        seeds = relabel_sequential(np.where((inside >= 0.5 * np.maximum(area, 1))[seeds] & (seeds > 0), seeds, 0))[0]
    cells = instances.propagate(seeds, mask, p, instances.PROPAGATION_REGULARIZATION)
    cells[seeds > 0] = seeds[seeds > 0]
    return instances._remove_small(instances._fill_holes_per_object(cells), 20)


def with_placeholders(seeds: np.ndarray, p: np.ndarray, t: float, depth: float = 0.2, core: float = 3.0) -> np.ndarray:
    """Cells grown with placeholder seeds in the valley-split parts of the mask holding no nucleus
    (their cores, ``core`` px from their edge), which are dropped after growing."""
    mask = p > t
    parts = instances.split_at_valleys(p, mask, depth)
    free = mask & ~np.isin(parts, np.unique(parts[seeds > 0])) & (parts > 0)
    placeholders = ndi.label(free & (ndi.distance_transform_edt(free) > core))[0]
    n = int(seeds.max())
    cells = grown(np.where(placeholders > 0, placeholders + n, seeds), p, mask)
    cells[cells > n] = 0
    return cells


def image_mask(image: np.ndarray) -> np.ndarray:
    """Otsu mask of the brightest normalised channel, per pixel."""
    brightest = ndi.gaussian_filter(normalize(image).max(axis=0), 1.0)
    return brightest > threshold_otsu(brightest)


def main() -> None:
    vectra = {v.id: v for v in load_vectra()}
    rows = {}
    for path in sys.argv[1:]:
        data = np.load(path)
        for key in (k for k in data.files if k.startswith("p")):
            test_id = int(key[1:])
            v, p, t = vectra[test_id], data[key], float(data["t" + key[1:]])
            cp_nuclei, cp_cells = baselines.identify_cells(v.image)
            config = InstanceConfig()
            seeded = instances.segment({"cells": p}, {"cells": t}, image=v.image, nuclear_channel=1)
            variants = {
                "distance split (before)": instances._clean_up(instances.split_touching(p > t), config, 20),
                "valley split 0.05 (no nuclear channel)": instances.cells_from_probability(p, t),
                "DAPI seeds, propagation (nuclear channel 1)": seeded.cells,
                "DAPI seeds + unseeded mask parts": with_unseeded(seeded.cells, p, t),
                "CP nuclei seeds, propagation": instances.cells_from_seeds(cp_nuclei, p, t, p, config)[1],
                "CP nuclei seeds + unseeded": with_unseeded(instances.cells_from_seeds(cp_nuclei, p, t, p, config)[1], p, t),
                "CellProfiler IPO+ISO": cp_cells,
            }
            stain = instances.nuclei_from_channel(v.image[1], config)
            otsu = global_otsu_nuclei(v.image[1], config)
            variants.update({
                "global Otsu seeds, dropped outside the mask (before)": grown(otsu, p, p > t, keep_outside=False),
                "global Otsu seeds, every seed a cell": grown(otsu, p, p > t),
                "local-contrast seeds, dropped outside the mask": grown(stain, p, p > t, keep_outside=False),
                "local-contrast seeds, mask & image Otsu mask": grown(stain, p, (p > t) & image_mask(v.image)),
                "local-contrast seeds, split depth h 0.5": grown(instances.nuclei_from_channel(
                    v.image[1], dataclasses.replace(config, split_h=0.5)), p, p > t),
                "local-contrast seeds + placeholder seeds": with_placeholders(stain, p, t),
                "CP nuclei seeds, every seed a cell": grown(cp_nuclei, p, p > t),
            })
            for threshold in (0.3, 0.5, 0.7):
                variants[f"local-contrast seeds, threshold {threshold}"] = grown(stain, p, p > threshold)
            found = stain
            print(f"image {test_id}: {found.max()} DAPI nuclei, {cp_nuclei.max()} CP nuclei, {len(np.unique(v.traced)) - 1} traced; "
                  f"traced cells holding a DAPI nucleus: "
                  f"{np.mean([np.any(found[v.traced == i] > 0) for i in np.unique(v.traced)[1:]]):.2f}")
            for name, cells in variants.items():
                score = score_traced(cells, v.traced)
                score["covered"] = float((cells[v.traced > 0] > 0).mean())
                rows.setdefault(name, []).append(score)
    print(f"{'cells':46} {'mDICE':>6} {'recall@0.5':>10} {'covered':>7}  (mean over test images)")
    for name, scores in rows.items():
        m = {k: np.mean([s[k] for s in scores]) for k in ("mdice", "recall_iou50", "covered")}
        print(f"{name:46} {m['mdice']:6.3f} {m['recall_iou50']:10.3f} {m['covered']:7.2f}  "
              + " ".join(f"{s['mdice']:.3f}" for s in scores))


if __name__ == "__main__":
    main()
