"""Vectra whole cells from saved cell probabilities: nuclear-stain seeds against the cells-only split.

    python experiments/vectra_cells.py --seeds 0 --maps /tmp/vectra_maps   # trains, saves the maps
    python experiments/vectra_seeds.py /tmp/vectra_maps/vectra_cells_default_seed0.npz [--mp6843 DIR]

Scores the traced cells (benchmarks.accuracy.score_traced) under: the old distance split, the
valley split (no nuclear stain), cells grown from DAPI nuclei (``instances.segment`` with the
nuclear channel) and variants of it: nuclei from CellProfiler's IdentifyPrimaryObjects as seeds,
the parts of the cell mask no nucleus reaches kept as cells of their own; and what was tried
against the local-contrast seeds: the earlier global Otsu seeds, dropping seeds outside the cell
mask, the mask intersected with an Otsu mask of the image, other thresholds, a lower split depth,
placeholder seeds in parts of the mask a probability valley separates from every nucleus, and
CellProfiler's own cell mask (PanCK + DAPI above Li's threshold) instead of, or joined to, the
cell probability's. Per image it prints the median areas of traced cells, nuclei and cells, and
the traced cells by how their best predicted cell fails (too big, too small) and how many
nuclei lie in them. ``--mp6843 DIR`` scores the cell masks on the MP6843 folds too (their maps
saved in DIR on the first run: four default trainings, 3 minutes each).
"""
import sys
from pathlib import Path
from typing import Sequence, Tuple

import dataclasses

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_li, threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.accuracy import score_traced  # noqa: E402
from benchmarks.data import load_vectra  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.nuclear_stain import nuclear_contrast, nuclear_radius  # noqa: E402


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


def capped(seeds: np.ndarray, p: np.ndarray, t: float, radii: float, radius: float) -> np.ndarray:
    """Cells grown as ``grown`` does, no pixel farther than ``radii`` nuclear radii from a seed."""
    near = ndi.distance_transform_edt(seeds == 0) <= radii * radius
    return grown(seeds, p, (p > t) & near)


def contrast_nuclei(channel: np.ndarray, factor: float = 1.0, smooth_radii: float = 0.0, depth: float = 0.2) -> np.ndarray:
    """Local-contrast nuclei at ``factor`` times Otsu's threshold; with ``smooth_radii``, touching
    nuclei are cut at maxima ``depth`` deep of the contrast smoothed at that many nuclear radii."""
    contrast, radius = nuclear_contrast(channel)
    otsu = float(threshold_otsu(contrast))
    config = InstanceConfig()
    if not smooth_radii:
        return instances.nuclei_from_probability(contrast, factor * otsu, config)
    mask = contrast > factor * otsu
    smooth = ndi.gaussian_filter(contrast, smooth_radii * radius) / otsu
    return instances._clean_up(instances.split_at_valleys(smooth, mask, depth), config, config.min_size)


def sum_image_mask(image: np.ndarray) -> np.ndarray:
    """CellProfiler's cell mask in the benchmark: PanCK + DAPI (each scaled to [0, 1]) above Li's threshold."""
    def scaled(a):
        return (a - a.min()) / (np.ptp(a) or 1.0)

    both = scaled(scaled(image[0]) + scaled(image[1]))
    return both > threshold_li(both)


def distance_peak_nuclei(channel: np.ndarray, radii: float = 1.0) -> np.ndarray:
    """Local-contrast nuclei split as IdentifyPrimaryObjects declumps by shape: one seed per local
    maximum of the (smoothed) distance transform, maxima at least ``radii`` nuclear radii apart."""
    contrast, radius = nuclear_contrast(channel)
    mask = contrast > threshold_otsu(contrast)
    blobs = ndi.label(mask)[0]
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask), 1.0)
    peaks = peak_local_max(distance, min_distance=max(1, int(round(radii * radius))), labels=blobs, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    split = watershed(-distance, markers, mask=mask)
    split = np.where((split == 0) & mask, blobs + split.max(), split)  # blobs without a peak stay whole
    return instances._clean_up(split, InstanceConfig(), InstanceConfig().min_size)


def ceiling(segmentations: Sequence[np.ndarray], traced: np.ndarray) -> Tuple[float, float]:
    """Per traced cell, the best Dice any predicted cell of any of ``segmentations`` reaches, as a
    mean over traced cells (a per-cell oracle); and the best mean of a single segmentation."""
    numbers = np.unique(traced)[1:]
    best = np.zeros((len(segmentations), numbers.size))
    for s, cells in enumerate(segmentations):
        area = np.bincount(cells.ravel())
        for j, number in enumerate(numbers):
            inside = traced == number
            found, shared = np.unique(cells[inside & (cells > 0)], return_counts=True)
            if found.size:
                best[s, j] = np.max(2 * shared / (inside.sum() + area[found]))
    return float(best.max(axis=0).mean()), float(best.mean(axis=1).max())


def failure_classes(cells: np.ndarray, seeds: np.ndarray, traced: np.ndarray) -> str:
    """Traced cells by how their best-overlapping predicted cell fails at IoU 0.5 (too big, too
    small, none), split by how many seeds (nuclei) lie in the traced cell."""
    counts = {}
    for number in np.unique(traced)[1:]:
        inside = traced == number
        n_seeds = min(len(np.unique(seeds[inside & (seeds > 0)])), 2)
        found, overlap = np.unique(cells[inside & (cells > 0)], return_counts=True)
        if found.size == 0:
            kind = "none"
        else:
            best = found[np.argmax(overlap)]
            area, shared = int((cells == best).sum()), int(overlap.max())
            iou = shared / (inside.sum() + area - shared)
            kind = "match" if iou >= 0.5 else ("too big" if area > inside.sum() else "too small")
        counts[(n_seeds, kind)] = counts.get((n_seeds, kind), 0) + 1
    return "; ".join(f"{label} seed(s): " + ", ".join(f"{kind} {counts.get((n, kind), 0)}"
                                                     for kind in ("match", "too big", "too small", "none"))
                     for n, label in ((0, "0"), (1, "1"), (2, "2+")))


def mp6843_masks(folder: Path) -> None:
    """Cells grown from the DAPI seeds within the cell probability's mask or CellProfiler's image
    mask, on each held-out MP6843 field (default 3-minute models, seed 0, saved in ``folder``)."""
    from benchmarks.accuracy import training_config
    from benchmarks.mp6843 import NUCLEAR_CHANNEL, folds, load_mp6843, train_fold
    from impartial_core.metrics import evaluate_image

    path = folder / "mp6843_maps.npz"
    fields = load_mp6843()
    if not path.exists():
        maps = {}
        for train, test in folds(fields):
            model = train_fold(train, 0, training_config(0, False))
            maps[f"p{test.id}"] = model.predict(test.image)["cells"].foreground_probability
            maps[f"t{test.id}"] = np.float64(model.thresholds["cells"])
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **maps)
    data = np.load(path)
    scores = {"cell probability's mask": [], "CellProfiler's image mask": [],
              "its mask, distance-maxima seeds 1 radius apart": [], "its mask, distance-maxima seeds 1.1 radii": []}
    for field in fields:
        p, t = data[f"p{field.id}"], float(data[f"t{field.id}"])
        channel = field.image[NUCLEAR_CHANNEL]
        stain = instances.nuclei_from_channel(channel, InstanceConfig())
        for name, seeds, mask in zip(scores, (stain, stain, distance_peak_nuclei(channel, 1.0), distance_peak_nuclei(channel, 1.1)),
                                     (p > t, sum_image_mask(field.image), p > t, p > t)):
            scores[name].append(evaluate_image(None, grown(seeds, p, mask), field.truth))
    print("MP6843, DAPI seeds grown within                  F1@0.5  mDICE  (mean over fields)")
    for name, results in scores.items():
        print(f"  {name:46} {np.mean([r['f1_iou50'] for r in results]):.3f}  {np.mean([r['mdice'] for r in results]):.3f}")


def ceiling_candidates(v, p: np.ndarray, t: float, cp_nuclei: np.ndarray, cp_cells: np.ndarray) -> list:
    """The segmentations a ceiling is taken over: local-contrast nuclei at 0.6-1.4 x Otsu's
    threshold and split depths 0.25-2, each as nuclei and as cells grown over ``p``; and
    CellProfiler's nuclei and cells."""
    contrast, _ = nuclear_contrast(v.image[1])
    otsu = float(threshold_otsu(contrast))
    out = [cp_nuclei, cp_cells]
    for factor in (0.6, 0.8, 1.0, 1.2, 1.4):
        for depth in (0.25, 0.5, 1.0, 2.0):
            nuclei = instances.nuclei_from_probability(contrast, factor * otsu, InstanceConfig(split_h=depth))
            out += [nuclei, grown(nuclei, p, p > t)]
    return out


def main() -> None:
    arguments = sys.argv[1:]
    if "--mp6843" in arguments:
        at = arguments.index("--mp6843")
        mp6843_masks(Path(arguments[at + 1]))
        arguments = arguments[:at] + arguments[at + 2:]
    vectra = {v.id: v for v in load_vectra()}
    rows = {}
    for path in arguments:
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
            radius = nuclear_radius(normalize(v.image[1][None])[0])
            panck = np.clip(ndi.gaussian_filter(normalize(v.image[0][None])[0], 1.0), 0, 1)
            variants.update({
                "local-contrast seeds, cells capped at 2 radii": capped(stain, p, t, 2, radius),
                "local-contrast seeds, cells capped at 4 radii": capped(stain, p, t, 4, radius),
                "local-contrast seeds, propagated over PanCK": instances.cells_from_seeds(stain, p, t, panck, config, 0.05)[1],
                "local-contrast seeds, over (p + PanCK) / 2": instances.cells_from_seeds(stain, p, t, (p + panck) / 2, config, 0.05)[1],
                "local-contrast seeds, regularisation 0.01": instances.cells_from_seeds(stain, p, t, p, config, 0.01)[1],
                "local-contrast seeds, regularisation 0.2": instances.cells_from_seeds(stain, p, t, p, config, 0.2)[1],
                "seeds at 1.25 x Otsu": grown(contrast_nuclei(v.image[1], 1.25), p, p > t),
                "seeds cut at smoothed-contrast maxima": grown(contrast_nuclei(v.image[1], smooth_radii=0.25), p, p > t),
                "seeds cut at distance maxima 1 radius apart": grown(distance_peak_nuclei(v.image[1], 1.0), p, p > t),
                "seeds cut at distance maxima 1.1 radii apart": grown(distance_peak_nuclei(v.image[1], 1.1), p, p > t),
            })
            image_cells = sum_image_mask(v.image)
            variants.update({
                "local-contrast seeds, CellProfiler's image mask": grown(stain, p, image_cells),
                "local-contrast seeds, mask | CellProfiler's": grown(stain, p, (p > t) | image_cells),
            })
            found = stain
            print(f"image {test_id}: {found.max()} DAPI nuclei, {cp_nuclei.max()} CP nuclei, {len(np.unique(v.traced)) - 1} traced; "
                  f"traced cells holding a DAPI nucleus: "
                  f"{np.mean([np.any(found[v.traced == i] > 0) for i in np.unique(v.traced)[1:]]):.2f}")
            median = lambda labels: float(np.median(np.bincount(labels.ravel())[1:]))  # noqa: E731
            print(f"  median areas (px): traced cells {median(v.traced):.0f}, DAPI nuclei {median(stain):.0f}, "
                  f"CP nuclei {median(cp_nuclei):.0f}, ImPartial cells {median(seeded.cells):.0f}, CP cells {median(cp_cells):.0f}")
            print(f"  ImPartial, traced cells by failure and nuclei in them: {failure_classes(seeded.cells, stain, v.traced)}")
            print(f"  CellProfiler: {failure_classes(cp_cells, cp_nuclei, v.traced)}")
            candidates = ceiling_candidates(v, p, t, cp_nuclei, cp_cells)
            oracle, single = ceiling(candidates, v.traced)
            print(f"  ceiling: per traced cell the best of {len(candidates)} segmentations {oracle:.3f}; the best single one {single:.3f}")
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
