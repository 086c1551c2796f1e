"""Ways of cutting MP6843 cells from saved cell probabilities (experiments/mp6843_maps.py).

    python experiments/mp6843_instances.py /tmp/mp/maps_default60_seed0.npz [...]

Scores each held-out field's cells (F1@0.5, mDICE, cells found) under several instance steps: the
distance split of the cell mask, seeds from the DAPI channel or CellProfiler's nuclei grown by a
watershed of the probability or by CellProfiler's propagation over the probability, the actin
channel or both, and the nuclei seeds' settings.
"""
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.mp6843 import load_mp6843  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402


def grow(seeds, probability, threshold, landscape, how, keep_unseeded, regularization=0.05):
    mask = probability > threshold
    kept = np.unique(seeds[mask])
    seeds = np.where(np.isin(seeds, kept[kept > 0]), seeds, 0)
    seeds = relabel_sequential(seeds)[0]
    if how == "watershed":
        cells = watershed(-landscape, seeds, mask=mask | (seeds > 0))
    else:
        cells = instances.propagate(seeds, mask, landscape, regularization)
    if keep_unseeded:
        rest = mask & (cells == 0)
        extra = ndi.label(rest)[0]
        cells = np.where(rest, extra + cells.max(), cells) * (mask | (cells > 0))
    cells = instances._fill_holes_per_object(cells)
    cells = instances._remove_small(cells, 50)
    return relabel_sequential(cells)[0]


def main() -> None:
    fields = {f.id: f for f in load_mp6843()}
    cp = {i: baselines.identify_cells(f.image, baselines.MP6843_IPO_SETTINGS, baselines.MP6843_ISO_SETTINGS, 1, 0)
          for i, f in fields.items()}
    rows = {}
    for path in sys.argv[1:]:
        data = np.load(path)
        for fid, field in fields.items():
            if f"p_{fid}" not in data.files:
                continue
            p, t = data[f"p_{fid}"], float(data[f"t_{fid}"])
            norm = normalize(field.image)
            actin = np.clip(norm[0], 0, 1)
            variants = {"distance split (today)": instances._clean_up(instances.split_touching(p > t), InstanceConfig(), 20),
                        "no split": instances._clean_up(ndi.label(p > t)[0], InstanceConfig(), 20)}
            for h in (0.05, 0.1, 0.2, 0.3):
                variants[f"no stain: valley split depth {h}"] = instances._clean_up(
                    instances.split_at_valleys(p, p > t, h), InstanceConfig(), 20)
            stains = {f"dapi s{sg} h{h}": instances.nuclei_from_channel(field.image[1], InstanceConfig(split_h=h), sigma=sg)
                      for sg, h in ((1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (3.0, 2.0))}
            stains["CP nuclei"] = cp[fid][0]
            for sname, seeds in stains.items():
                variants[f"{sname} | watershed P"] = grow(seeds, p, t, p, "watershed", False)
                for lname, land in (("P", p), ("actin", actin), ("mix", 0.5 * (p + actin))):
                    for reg in (0.01, 0.05, 0.2):
                        variants[f"{sname} | propagate {lname} reg {reg}"] = grow(seeds, p, t, land, "propagate", False, reg)
                variants[f"{sname} | propagate mix +unseeded"] = grow(seeds, p, t, 0.5 * (p + actin), "propagate", True)
            variants["segment(image, nuclear_channel=1)"] = instances.segment(
                {"cells": p}, {"cells": t}, image=field.image, nuclear_channel=1).cells
            variants["CellProfiler IPO+ISO"] = cp[fid][1]
            for name, cells in variants.items():
                rows.setdefault(name, []).append(evaluate_image(None, cells, field.truth))
    print(f"{'instance step':52} {'F1@0.5':>7} {'mDICE':>6} {'pred/true':>10}")
    for name, results in rows.items():
        s = summarize(results)
        print(f"{name:52} {s['f1_iou50']:7.3f} {s['mdice']:6.3f} {s['n_pred']:5d}/{s['n_true']}")


if __name__ == "__main__":
    main()
