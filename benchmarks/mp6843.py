"""MP6843 whole cells, leave-one-field-out: ImPartial against IdentifyPrimary + IdentifySecondaryObjects.

Four development fields of cultured cells (channel 0 actin, channel 1 DAPI) with complete
whole-cell ground truth, read from the shared data folder (never copied into the project: their
licence is not established). Each fold trains the cells task on three fields with about 100
simulated cell scribbles and scores the fourth, which it never saw; CellProfiler's modules need no
training and are scored on every field. Run as part of ``python -m benchmarks.accuracy --parts mp6843``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tifffile

FIELDS = ("F01_120", "F01_1296", "F01_1457", "F01_1467")
CELL_CHANNEL = 0
NUCLEAR_CHANNEL = 1
SCRIBBLED_CELLS = 100
SUBFOLDER = "mp6843_2ch"


@dataclass
class Field:
    id: str
    image: np.ndarray   # (2, H, W) float32 raw: actin, DAPI
    truth: np.ndarray   # whole-cell instance labels, every cell of the field


def mp6843_folder(override: Optional[str] = None, data: Optional[str] = None) -> Path:
    """The folder holding the fields: ``override`` (``--mp6843-data``), else ``mp6843_2ch`` in the
    benchmark data folder (``benchmarks.data.data_dir``: ``--data``, $IMPARTIAL_DATA, ../shared/data)."""
    from benchmarks.data import data_dir

    if override:
        if not (Path(override) / f"{FIELDS[0]}.tif").exists():
            raise FileNotFoundError(f"--mp6843-data {override}: no {FIELDS[0]}.tif there")
        return Path(override)
    return data_dir(data, needs=f"{SUBFOLDER}/{FIELDS[0]}_cell_labels.tif") / SUBFOLDER


def load_mp6843(directory: Optional[str] = None) -> List[Field]:
    """The four fields from ``directory`` (the MP6843 folder itself), or where :func:`mp6843_folder` finds them."""
    folder = Path(directory) if directory else mp6843_folder()
    return [Field(f, tifffile.imread(folder / f"{f}.tif").astype(np.float32),
                  tifffile.imread(folder / f"{f}_cell_labels.tif").astype(np.int32)) for f in FIELDS]


def simulate_cell_scribbles(truths: Sequence[np.ndarray], budget: int, seed: int, inner_margin: int = 3) -> List[np.ndarray]:
    """Cell scribbles simulated as the paper did, with the traced-cell contour a user draws too.

    ``scribbles.simulate_scribbles`` picks the cells (32-px boxes, about ``budget`` cells over all
    fields) and draws their skeletons as cytoplasm and the boxes' outlines and a ring around the
    cells as background; each scribbled cell also gets its contour (:func:`with_cell_contours`).
    """
    from impartial_core.scribbles import CYTOPLASM
    from impartial_core.scribbles.simulation import simulate_scribbles

    return [with_cell_contours(truth, scribbles, inner_margin)
            for truth, scribbles in zip(truths, simulate_scribbles(truths, budget, seed, foreground_value=CYTOPLASM))]


def with_cell_contours(truth: np.ndarray, scribbles: np.ndarray, inner_margin: int = 3) -> np.ndarray:
    """``scribbles`` plus, for every true cell its cytoplasm strokes touch, its contour ``inner_margin``
    px inside its border as cytoplasm (as ``scribbles_from_instances`` draws for a traced cell), on
    pixels not scribbled yet."""
    from impartial_core.scribbles import CYTOPLASM
    from impartial_core.scribbles.objects import scribbles_from_instances

    chosen = np.unique(truth[scribbles == CYTOPLASM])
    chosen = chosen[chosen > 0]
    contour = scribbles_from_instances(np.where(np.isin(truth, chosen), truth, 0), task="cells",
                                       inner_margin=inner_margin, outer_ring=0)
    scribbles = scribbles.copy()
    scribbles[(contour == CYTOPLASM) & (scribbles == 0)] = CYTOPLASM
    return scribbles


def folds(fields: Sequence[Field]) -> List[Tuple[List[Field], Field]]:
    """Leave one field out: (the three training fields, the held-out field), one per field."""
    return [([f for f in fields if f is not test], test) for test in fields]


def train_fold(train: Sequence[Field], seed: int, config, budget: int = SCRIBBLED_CELLS):
    """A cells-task model trained on ``train`` with simulated scribbles (seeded by ``seed``)."""
    from impartial_core.config import tasks_for
    from impartial_core.model import ImPartialModel

    scribbles = simulate_cell_scribbles([f.truth for f in train], budget, seed)
    tasks = tasks_for("cells", 2, nuclear_channel=NUCLEAR_CHANNEL)
    return ImPartialModel.train([f.image for f in train], scribbles, tasks, config=config)


def impartial_run(fields: Sequence[Field], config, log: Callable = print, budget: int = SCRIBBLED_CELLS) -> Dict:
    """One seed: every fold trained and its held-out field scored; per-field results and the summary."""
    from impartial_core.instances import segment
    from impartial_core.metrics import evaluate_image, summarize

    per_field, train_s = [], []
    for train, test in folds(fields):
        start = time.perf_counter()
        model = train_fold(train, config.seed, config, budget)
        train_s.append(time.perf_counter() - start)
        maps = model.predict(test.image)
        probability = {k: m.foreground_probability for k, m in maps.items()}
        objects = segment(probability, model.thresholds, image=test.image, nuclear_channel=NUCLEAR_CHANNEL)
        result = evaluate_image(probability["cells"], objects.cells, test.truth)
        result.update(field=test.id, iterations=model.training_summary.get("iterations"), train_s=train_s[-1])
        per_field.append(result)
        log(f"    seed {config.seed}, test {test.id}: {result['iterations']} iterations in {train_s[-1]:.0f} s, "
            f"{result['n_pred']} cells for {result['n_true']}, F1@0.5 {result['f1_iou50']:.3f} mDICE {result['mdice']:.3f}")
    summary = summarize(per_field)
    summary["train_s"] = float(np.mean(train_s))
    return {"summary": summary, "per_field": per_field}


def cellprofiler_run(directory: Optional[str] = None) -> Dict:
    """IdentifyPrimaryObjects on DAPI + IdentifySecondaryObjects (propagation) on actin, every field."""
    from benchmarks import baselines
    from impartial_core.metrics import evaluate_image, summarize

    per_field = []
    for field in load_mp6843(directory):
        _, cells = baselines.identify_cells(field.image, baselines.MP6843_IPO_SETTINGS, baselines.MP6843_ISO_SETTINGS,
                                            nuclear_channel=NUCLEAR_CHANNEL, cell_channel=CELL_CHANNEL)
        result = evaluate_image(None, cells, field.truth)
        result["field"] = field.id
        per_field.append(result)
    return {"summary": summarize(per_field), "per_field": per_field}


def run_mp6843(args, training_config: Callable, aggregate: Callable, in_subprocess: Callable, log: Callable = print) -> Dict:
    """The MP6843 part of ``benchmarks.accuracy``: ImPartial per seed, CellProfiler once (in a child process)."""
    folder = str(mp6843_folder(args.mp6843_data, args.data))
    fields = load_mp6843(folder)
    log(f"MP6843: {len(fields)} fields, {sum(int(f.truth.max()) for f in fields)} cells; leave-one-field-out, "
        f"{SCRIBBLED_CELLS} simulated cell scribbles over the 3 training fields")
    rows: Dict[str, List[Dict]] = {}
    if not args.skip_impartial:
        rows["ImPartial (default settings, cells task, nuclear channel 1)"] = [
            impartial_run(fields, training_config(seed, args.quick), log) for seed in args.seed_list]
    log("  baseline (IdentifyPrimaryObjects + IdentifySecondaryObjects) in a separate process ...")
    rows["CellProfiler IdentifyPrimaryObjects (DAPI) + IdentifySecondaryObjects (propagation, actin)"] = [
        in_subprocess(cellprofiler_run, folder)]
    return {"rows": {name: {"runs": runs, "aggregate": aggregate([r["summary"] for r in runs]),
                            "per_field": {f.id: aggregate([next(p for p in r["per_field"] if p["field"] == f.id) for r in runs])
                                          for f in fields}}
                     for name, runs in rows.items()},
            "fields": [f.id for f in fields], "n_cells": {f.id: int(f.truth.max()) for f in fields}}


def mp6843_table(results: Dict, cell: Callable, markdown_table: Callable) -> str:
    fields = results["fields"]
    header = ["method", "runs", "F1@IoU0.5", "mDICE", "mIOU", "AP@IoU0.5", "cells found / true", "train s"] \
        + [f"F1@0.5 {f}" for f in fields]
    table = []
    for name, data in results["rows"].items():
        agg = data["aggregate"]
        found = f"{agg['n_pred']['mean']:.0f} / {agg['n_true']['mean']:.0f}" if "n_pred" in agg else "–"
        table.append([name, str(len(data["runs"])), cell(agg, "f1_iou50"), cell(agg, "mdice"), cell(agg, "miou"),
                      cell(agg, "ap_iou50"), found, cell(agg, "train_s", 0) if "train_s" in agg else "–"]
                     + [cell(data["per_field"][f], "f1_iou50") for f in fields])
    return ("### MP6843 whole cells, leave-one-field-out (train on 3 fields' simulated scribbles, score the 4th)\n\n"
            + markdown_table(header, table)
            + "\n\nEvery cell of each held-out field is scored (complete ground truth: "
            + ", ".join(f"{f} {n}" for f, n in results["n_cells"].items())
            + " cells). ImPartial trains the cells task on the other three fields with about "
            f"{SCRIBBLED_CELLS} simulated scribbled cells (skeleton and a contour 3 px inside as cell, the 32-px boxes' "
            "outlines and a 4-px ring as background) and is given the nuclear channel (DAPI, channel 1), from which it "
            "seeds its cells. CellProfiler needs no training; its settings were searched on these same four fields "
            "(`baselines.choose_mp6843_settings`), so it is tuned on its test data. F1 / AP pooled over fields; "
            "mDICE / mIOU per field, then averaged.")
