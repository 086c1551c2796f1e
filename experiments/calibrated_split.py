"""Can the training strokes pick how deep a split the nuclear stain's seeds get?

    python experiments/calibrated_split.py --maps DIR [--seeds 0 1]

Cells-only models with a nuclear channel seed their cells with nuclei found in the stain, touching
nuclei cut at necks ``split_h`` px deep (``InstanceConfig.split_h``, 1 by default). The Vectra
traced cells score better at 0.5, the MP6843 cells worse (``vectra_seeds.py``): which depth fits
is a property of the data. The strokes a user drew on the training images say which: a scribbled
cell whose strokes fall into two grown cells was cut, two scribbled cells in one grown cell were
merged. This script trains the default fold models (Vectra: two folds, MP6843: four; 3 minutes
each, saved in DIR with the maps of every image, training and held out), then for each fold picks
the depth whose cells agree best with the strokes of its training images and scores the held-out
image with it, against every fixed depth. No ground truth is used until scoring.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import VECTRA_NUCLEAR_CHANNEL, score_traced, training_config  # noqa: E402
from benchmarks.data import load_vectra  # noqa: E402
from benchmarks.mp6843 import NUCLEAR_CHANNEL, folds, load_mp6843, simulate_cell_scribbles, SCRIBBLED_CELLS  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.scribbles import CYTOPLASM, NUCLEUS  # noqa: E402

DEPTHS = (0.5, 0.75, 1.0, 1.5, 2.0)
DEFAULT_DEPTH = InstanceConfig().split_h
WHOLE = 0.8


def fold_maps(folder: Path, seed: int, time_budget_s: float) -> Dict[str, dict]:
    """Per fold name: the cell probability of every image (training and held out), the threshold,
    the training images' ids and scribbles, and the held-out image's id; trained on the first call."""
    path = folder / f"calibrated_split_seed{seed}_{time_budget_s:g}s.npz"
    config = training_config(seed, False, time_budget_s=time_budget_s)
    if not path.exists():
        saved = {}
        vectra = load_vectra()
        for train, test in [(vectra[0], vectra[1]), (vectra[1], vectra[0])]:
            model = ImPartialModel.train([train.image], [train.scribbles], tasks_for("cells", 2), config=config)
            name = f"vectra{test.id}"
            for image in (train, test):
                saved[f"{name}/p/{image.id}"] = model.predict(image.image)["cells"].foreground_probability
            saved[f"{name}/t"] = np.float64(model.thresholds["cells"])
            saved[f"{name}/s/{train.id}"] = train.scribbles
            print(f"seed {seed}: Vectra trained on image {train.id}", flush=True)
        fields = load_mp6843()
        for train, test in folds(fields):
            scribbles = simulate_cell_scribbles([f.truth for f in train], SCRIBBLED_CELLS, seed)
            tasks = tasks_for("cells", 2, nuclear_channel=NUCLEAR_CHANNEL)
            model = ImPartialModel.train([f.image for f in train], scribbles, tasks, config=config)
            name = f"mp6843{test.id}"
            for field in list(train) + [test]:
                saved[f"{name}/p/{field.id}"] = model.predict(field.image)["cells"].foreground_probability
            saved[f"{name}/t"] = np.float64(model.thresholds["cells"])
            for field, s in zip(train, scribbles):
                saved[f"{name}/s/{field.id}"] = s
            print(f"seed {seed}: MP6843 trained without field {test.id}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **saved)
    data = np.load(path)
    out: Dict[str, dict] = {}
    for key in data.files:
        name, kind, *rest = key.split("/")
        fold = out.setdefault(name, {"p": {}, "s": {}})
        if kind == "t":
            fold["t"] = float(data[key])
        else:
            fold[kind][rest[0]] = data[key]
    for name, fold in out.items():
        fold["test"] = next(i for i in fold["p"] if i not in fold["s"])
    return out


def stroke_agreement(cells: np.ndarray, scribbles: np.ndarray) -> tuple:
    """(scribbled cells kept whole and alone, scribbled cells): a scribbled cell is a connected part of
    the cell strokes with its holes filled (a cell's skeleton inside its inner contour is one); it is
    kept whole when one grown cell holds at least ``WHOLE`` of its pixels that lie in any cell, and
    alone when no other scribbled cell's main grown cell is that one."""
    strokes, n = ndi.label(ndi.binary_fill_holes(np.isin(scribbles, (NUCLEUS, CYTOPLASM))), structure=np.ones((3, 3), bool))
    if n == 0:
        return 0, 0
    inside = (strokes > 0) & (cells > 0)
    pairs = np.zeros((n + 1, int(cells.max()) + 1), dtype=np.int64)
    np.add.at(pairs, (strokes[inside], cells[inside]), 1)
    pairs = pairs[1:]
    main = pairs.argmax(axis=1)
    covered = pairs.sum(axis=1)
    whole = (covered > 0) & (pairs[np.arange(n), main] >= WHOLE * np.maximum(covered, 1))
    owners = np.bincount(main[covered > 0], minlength=pairs.shape[1])
    alone = owners[main] == 1
    return int(np.count_nonzero(whole & alone)), n


def held_out_score(cells: np.ndarray, test, vectra: bool) -> tuple:
    """(mDICE, recall@0.5) of a Vectra image's traced cells, or (mDICE, F1@0.5) of an MP6843 field."""
    if vectra:
        result = score_traced(cells, test.traced)
        return result["mdice"], result["recall_iou50"]
    result = evaluate_image(None, cells, test.truth)
    return result["mdice"], result["f1_iou50"]


def print_means(held_out: Dict[str, Dict[str, List[tuple]]], prefix: str = "") -> None:
    """Per data set, the mean of each row's (mDICE, second score) over folds and seeds."""
    for dataset, rows in held_out.items():
        print(f"{dataset} (mean over folds and seeds)    mDICE  {'recall' if dataset == 'Vectra' else 'F1'}@0.5")
        for label, values in rows.items():
            print(f"  {prefix + label:36} {np.mean([v[0] for v in values]):.3f}  {np.mean([v[1] for v in values]):.3f}")


def held_out_maps(paths: List[str]):
    """Per fold of the maps ``fold_maps`` saved in ``paths``: (path, fold name, held-out image, its cell
    probability, the threshold, its nuclear stain channel, whether it is a Vectra image)."""
    vectra = {f"vectra{v.id}": v for v in load_vectra()}
    mp6843 = {f"mp6843{f.id}": f for f in load_mp6843()}
    for path in paths:
        data = np.load(path)
        for name in sorted({k.split("/")[0] for k in data.files}):
            test = vectra.get(name) or mp6843[name]
            channel = test.image[VECTRA_NUCLEAR_CHANNEL if name in vectra else NUCLEAR_CHANNEL]
            yield path, name, test, data[f"{name}/p/{test.id}"], float(data[f"{name}/t"]), channel, name in vectra


def cells_at(depth: float, probability: np.ndarray, threshold: float, image: np.ndarray, nuclear_channel: int) -> np.ndarray:
    objects = instances.segment({"cells": probability}, {"cells": threshold}, InstanceConfig(split_h=depth),
                                image=image, nuclear_channel=nuclear_channel)
    return objects.cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maps", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    args = parser.parse_args()
    images = {f"vectra{v.id}": v for v in load_vectra()}
    images.update({f"mp6843{f.id}": f for f in load_mp6843()})
    by_id = {str(v.id): v for v in images.values()}
    held_out: Dict[str, Dict[str, List[float]]] = {}
    for seed in args.seeds:
        for name, fold in fold_maps(Path(args.maps), seed, args.time_budget_s).items():
            vectra = name.startswith("vectra")
            channel = VECTRA_NUCLEAR_CHANNEL if vectra else NUCLEAR_CHANNEL
            agreement = {}
            for depth in DEPTHS:
                counts = [stroke_agreement(cells_at(depth, fold["p"][i], fold["t"], by_id[i].image, channel), s)
                          for i, s in fold["s"].items()]
                agreement[depth] = sum(c[0] for c in counts) / max(sum(c[1] for c in counts), 1)
            best = max(agreement.values())
            picked = min((d for d in DEPTHS if agreement[d] == best), key=lambda d: abs(np.log(d / DEFAULT_DEPTH)))
            test = images[name]
            scores = {depth: held_out_score(cells_at(depth, fold["p"][fold["test"]], fold["t"], test.image, channel),
                                            test, vectra) for depth in DEPTHS}
            print(f"seed {seed} {name}: strokes agree " + " ".join(f"{d:g}:{a:.3f}" for d, a in agreement.items())
                  + f" -> {picked:g}; held out (mDICE, {'recall' if vectra else 'F1'}@0.5) "
                  + " ".join(f"{d:g}:{m:.3f}/{f:.3f}" for d, (m, f) in scores.items()), flush=True)
            dataset = held_out.setdefault("Vectra" if vectra else "MP6843", {})
            for depth in DEPTHS:
                dataset.setdefault(f"{depth:g}", []).append(scores[depth])
            dataset.setdefault("picked by the strokes", []).append(scores[picked])
    print_means(held_out, prefix="split depth ")


if __name__ == "__main__":
    main()
