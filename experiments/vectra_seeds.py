"""Vectra whole cells from saved cell probabilities: nuclear-stain seeds against the cells-only split.

    python experiments/vectra_cells.py --seeds 0 --maps /tmp/vectra_maps   # trains, saves the maps
    python experiments/vectra_seeds.py /tmp/vectra_maps/vectra_cells_default_seed0.npz

Scores the traced cells (benchmarks.accuracy.score_traced) under: the old distance split, the
valley split (no nuclear stain), cells grown from DAPI nuclei (``instances.segment`` with the
nuclear channel) and variants of it: nuclei from CellProfiler's IdentifyPrimaryObjects as seeds,
the parts of the cell mask no nucleus reaches kept as cells of their own, and a looser share of a
nucleus required inside the mask.
"""
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import relabel_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.accuracy import score_traced  # noqa: E402
from benchmarks.data import load_vectra  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402


def with_unseeded(cells: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
    """``cells`` plus the parts of the cell mask they do not cover, split at probability valleys."""
    rest = (p > t) & (cells == 0)
    extra = instances.split_at_valleys(p, rest, 0.05)
    extra = instances._remove_small(extra, 20)
    return np.where(rest & (extra > 0), relabel_sequential(extra)[0] + cells.max(), cells)


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
            for sigma in (1.0, 3.0):
                stain = instances.nuclei_from_channel(v.image[1], config, sigma=sigma)
                variants[f"DAPI seeds sigma {sigma}"] = instances.cells_from_seeds(stain, p, t, p, config)[1]
            found = instances.nuclei_from_channel(v.image[1], config, sigma=2.0)
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
