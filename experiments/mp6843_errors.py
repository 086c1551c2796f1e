"""Where the MP6843 cells go wrong: which predicted cells match no true cell, and why.

    python experiments/mp6843_errors.py MAPS/mp6843_maps.npz

Reads the held-out cell probabilities that ``vectra_seeds.py --mp6843 MAPS`` saves (default
3-minute models, seed 0), makes the default cells from them and the DAPI channel (as ``impartial
predict --nuclear-channel 1`` does), and sorts, per field:

- the predicted cells that match no true cell at IoU 0.5: mostly on background, or a piece of a
  true cell that holds other predicted cells (too many seeds in it), or a merge of true cells;
- the true cells that hold two or more seeds (nuclei found in DAPI), and whether those seeds
  touch (one nucleus cut in two) or not (two nuclei in one cell, as in a cell about to divide);
- the small seeds (under a quarter of the field's median seed area): alone in their true cell, an
  extra seed in a true cell, or on background, which says what a minimum seed size would cost;
- over all fields, the borders between touching predicted cells (at least 5 pixel pairs): whether
  the actin along the border (over the two cells' mean actin) or the cell probability there tells
  two cells of one true cell (which merging them would fix) from two true cells.
"""
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.mp6843 import NUCLEAR_CHANNEL, load_mp6843  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402


def unmatched_cells(cells: np.ndarray, truth: np.ndarray) -> dict:
    """Counts of the predicted cells matching no true cell at IoU 0.5, by kind."""
    kinds = {"background": 0, "piece of a true cell": 0, "merge of true cells": 0, "poor fit": 0}
    for label in range(1, cells.max() + 1):
        cell = cells == label
        owners, overlap = np.unique(truth[cell], return_counts=True)
        if owners[np.argmax(overlap)] == 0 and overlap.max() > cell.sum() / 2:
            kinds["background"] += 1
            continue
        inside = owners > 0
        owner = owners[inside][np.argmax(overlap[inside])]
        true_cell = truth == owner
        shared = int((cell & true_cell).sum())
        if shared / (cell.sum() + true_cell.sum() - shared) >= 0.5:
            continue
        if cell.sum() < true_cell.sum() and len(np.unique(cells[true_cell & (cells > 0)])) > 1:
            kinds["piece of a true cell"] += 1
        elif inside.sum() > 1 and cell.sum() > true_cell.sum():
            kinds["merge of true cells"] += 1
        else:
            kinds["poor fit"] += 1
    return kinds


def crowded_cells(seeds: np.ndarray, truth: np.ndarray):
    """(true cells holding 2+ seeds, of which with touching seeds)."""
    crowded = touching = 0
    for label in range(1, truth.max() + 1):
        inside = np.unique(seeds[truth == label])
        inside = inside[inside > 0]
        if len(inside) < 2:
            continue
        crowded += 1
        touching += any(np.isin(seeds[ndi.binary_dilation(seeds == a)], inside[inside != a]).any()
                        for a in inside)
    return crowded, touching


def small_seeds(seeds: np.ndarray, truth: np.ndarray) -> dict:
    """The seeds under a quarter of the median seed area: alone in their true cell, extra, or on background."""
    areas = np.bincount(seeds.ravel())[1:]
    kinds = {"alone in its cell": 0, "extra seed in a cell": 0, "on background": 0}
    for label in np.nonzero((areas > 0) & (areas < 0.25 * np.median(areas[areas > 0])))[0] + 1:
        owners, overlap = np.unique(truth[seeds == label], return_counts=True)
        owner = owners[np.argmax(overlap)]
        if owner == 0:
            kinds["on background"] += 1
        elif len(np.unique(seeds[(truth == owner) & (seeds > 0)])) > 1:
            kinds["extra seed in a cell"] += 1
        else:
            kinds["alone in its cell"] += 1
    return kinds


def border_lengths(labels: np.ndarray) -> dict:
    """(smaller label, larger label) -> number of 4-neighbour pixel pairs where the two touch."""
    lengths = {}
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touching = (a > 0) & (b > 0) & (a != b)
        for x, y in zip(a[touching], b[touching]):
            key = (min(x, y), max(x, y))
            lengths[key] = lengths.get(key, 0) + 1
    return lengths


def borders(cells: np.ndarray, truth: np.ndarray, actin: np.ndarray, probability: np.ndarray) -> list:
    """Per border between touching predicted cells: (one true cell?, actin ratio, mean probability)."""
    lengths = border_lengths(cells)
    owners = {}
    for label in range(1, cells.max() + 1):
        found, overlap = np.unique(truth[cells == label], return_counts=True)
        owners[label] = found[np.argmax(overlap)] if found.size else 0
    rows = []
    for (x, y), length in lengths.items():
        if length < 5:
            continue
        one, other = cells == x, cells == y
        border = (ndi.binary_dilation(one) & other) | (ndi.binary_dilation(other) & one)
        ratio = actin[border].mean() / ((actin[one].mean() + actin[other].mean()) / 2)
        rows.append((owners[x] == owners[y] != 0, ratio, probability[border].mean()))
    return rows


def main() -> None:
    maps = np.load(sys.argv[1])
    totals, border_rows = {}, []
    for field in load_mp6843():
        probability, threshold = maps[f"p{field.id}"], float(maps[f"t{field.id}"])
        objects = instances.segment({"cells": probability}, {"cells": threshold}, image=field.image,
                                    nuclear_channel=NUCLEAR_CHANNEL)
        score = evaluate_image(None, objects.cells, field.truth)
        border_rows += borders(objects.cells, field.truth, normalize(field.image[:1])[0], probability)
        rows = {"unmatched": unmatched_cells(objects.cells, field.truth),
                "small seeds": small_seeds(objects.nuclei, field.truth)}
        crowded, touching = crowded_cells(objects.nuclei, field.truth)
        print(f"{field.id}: F1@0.5 {score['f1_iou50']:.3f}, {score['n_pred']} cells for {score['n_true']}; "
              f"true cells with 2+ seeds {crowded} ({touching} with touching seeds)")
        for name, kinds in rows.items():
            print(f"    {name}: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
        for key, value in [("cells", score["n_pred"]), ("true", score["n_true"]), ("crowded", crowded),
                           ("touching", touching)] + [(f"{n}: {k}", v) for n, r in rows.items() for k, v in r.items()]:
            totals[key] = totals.get(key, 0) + value
    print("all fields: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    same = np.array([r[0] for r in border_rows])
    print(f"borders between touching cells: {len(same)}, {int(same.sum())} of them inside one true cell")
    for at in (0.8, 0.9, 1.0, 1.2):
        merged = np.array([r[1] > at for r in border_rows])
        print(f"    actin on the border > {at} x the cells': {int((merged & same).sum())} inside one true cell, "
              f"{int((merged & ~same).sum())} between two")
    for at in (0.7, 0.8, 0.9):
        merged = np.array([r[1] > 0.9 and r[2] > at for r in border_rows])
        print(f"    actin > 0.9 x and probability > {at}: {int((merged & same).sum())} inside one true cell, "
              f"{int((merged & ~same).sum())} between two")


if __name__ == "__main__":
    main()
