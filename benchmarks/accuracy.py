"""Accuracy benchmark: ImPartial against CellProfiler's modules and a scribble-trained random forest.

MIBI nuclei (images 0, 3, 5, 7) with the paper's n100 and n200 scribbles, scored on the training
images' ground truth with ``impartial_core.metrics`` (as the paper's "train" rows); Vectra whole
cells, leave-one-image-out over the traced cells of images 1 and 2.

    python -m benchmarks.accuracy                 # full: 3 seeds, default training settings
    python -m benchmarks.accuracy --quick         # 1 seed, 30-s trainings: checks the script works
    python -m benchmarks.accuracy --skip-impartial  # baselines only (a minute or two)

Writes benchmarks/results/accuracy.md and accuracy.json (``--out`` elsewhere).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import baselines, mp6843
from benchmarks.data import (fmt, git_revision, load_mibi, load_vectra, machine_description, markdown_table, results_folder,
                             write_results)

METRICS = ("pixel_f1", "auc", "mdice", "miou", "f1_iou50", "ap_iou50")
METRIC_NAMES = ("pixel F1", "AUC", "mDICE", "mIOU", "F1@IoU0.5", "AP@IoU0.5")
QUICK_TIME_BUDGET_S = 20.0

# The paper's numbers on this MIBI data (METHOD.md). "train" rows are scored like this benchmark
# (on the training images); "test" rows on the paper's 4 held-out images.
PAPER_ROWS = {
    "n100": [
        ("ImPartial, paper (train images)", dict(pixel_f1=0.844, auc=0.933, mdice=0.695, miou=0.58)),
        ("ImPartial, paper (test images)", dict(pixel_f1=0.838, auc=0.941, mdice=0.712, miou=0.60)),
        ("Blind-spot net without mixture loss, paper (test)", dict(pixel_f1=0.813, mdice=0.710)),
        ("DenoiSeg, paper (test)", dict(pixel_f1=0.721, mdice=0.668)),
        ("Scribble2Label, paper (test)", dict(pixel_f1=0.809, mdice=0.705)),
    ],
    "n200": [
        ("ImPartial, paper (train images)", dict(pixel_f1=0.829, auc=0.957, mdice=0.719, miou=0.60)),
        ("ImPartial, paper (test images)", dict(pixel_f1=0.822, auc=0.962, mdice=0.731, miou=0.61)),
    ],
}
GOALS = dict(mdice=0.72, miou=0.60, train_s=300.0)
VECTRA_NUCLEAR_CHANNEL = 1  # DAPI: the cells-only model's cells grow from the nuclei found there


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
#: TrainingConfig settings every ImPartial training of a run takes (``--haze``), over the defaults.
TRAINING_OVERRIDES: Dict[str, float] = {}


def training_config(seed: int, quick: bool, **overrides):
    """The default TrainingConfig (impartial_core.config) with a seed and ``TRAINING_OVERRIDES``;
    --quick caps the time."""
    from impartial_core.config import TrainingConfig

    config = TrainingConfig(seed=seed, **{**TRAINING_OVERRIDES, **overrides})
    if quick:
        config = dataclasses.replace(config, time_budget_s=min(config.time_budget_s, QUICK_TIME_BUDGET_S))
    return config


def aggregate(runs: List[Dict]) -> Dict[str, Dict[str, float]]:
    """mean and sample std (ddof 1; NaN for one run) of every numeric key over runs."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if len(values) != len(runs):
            continue
        values = np.asarray(values, dtype=float)
        out[key] = {"mean": float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                    "n": len(values)}
    return out


def _mean(agg: Dict, key: str) -> float:
    return agg.get(key, {}).get("mean", float("nan"))


def _cell(agg: Dict, key: str, digits: int = 3) -> str:
    if key not in agg:
        return "–"
    return fmt(agg[key]["mean"], agg[key]["std"], digits)


# ----------------------------------------------------------------------------------------------
# MIBI nuclei
# ----------------------------------------------------------------------------------------------
def impartial_mibi(mibi, budget: str, config, log=print, network=None) -> Dict:
    from impartial_core.config import tasks_for
    from impartial_core.metrics import evaluate_image, summarize
    from impartial_core.model import ImPartialModel

    start = time.perf_counter()
    model = ImPartialModel.train(mibi.images, mibi.scribbles[budget], tasks_for("nuclei", 1), network=network, config=config)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    per_image = []
    for image, truth in zip(mibi.images, mibi.truth):
        maps = model.predict(image)
        objects = model.segment(maps)
        per_image.append(evaluate_image(maps["nuclei"].foreground_probability, objects.nuclei, truth))
    predict_s = time.perf_counter() - start
    summary = summarize(per_image)
    summary.update(train_s=train_s, predict_s=predict_s, iterations=model.training_summary.get("iterations"),
                   threshold=model.thresholds.get("nuclei"))
    log(f"    seed {config.seed}: {model.training_summary.get('iterations')} iterations in {train_s:.0f} s "
        f"({model.training_summary.get('stopped_because')}), mDICE {summary['mdice']:.3f} F1@0.5 {summary['f1_iou50']:.3f}")
    return {"summary": summary, "per_image": per_image, "stopped_because": model.training_summary.get("stopped_because")}


def rf_mibi(mibi, features: List[np.ndarray], budget: str, seed: int) -> Dict:
    from impartial_core.metrics import evaluate_image, summarize

    start = time.perf_counter()
    forest = baselines.fit_forest(features, mibi.scribbles[budget], foreground=(2,), background=(1, 3), seed=seed)
    train_s = time.perf_counter() - start
    per_image = []
    for feats, truth in zip(features, mibi.truth):
        p = baselines.predict_forest(forest, feats)
        per_image.append(evaluate_image(p, baselines.rf_nuclei(p), truth))
    summary = summarize(per_image)
    summary.update(train_s=train_s, predict_s=time.perf_counter() - start - train_s)
    return {"summary": summary, "per_image": per_image}


def ipo_mibi(mibi) -> Dict:
    """IdentifyPrimaryObjects: no scribbles, deterministic. Pixel F1 is that of its objects' mask;
    AUC ranks the pixels by the (rescaled) image itself."""
    from impartial_core.metrics import evaluate_image, pixel_f1, summarize

    per_image = []
    start = time.perf_counter()
    for image, truth in zip(mibi.images, mibi.truth):
        labels = baselines.identify_primary_objects(image)
        result = evaluate_image(baselines.rescale01(image), labels, truth)
        result["pixel_f1"] = pixel_f1((labels > 0).astype(np.float32), truth > 0)
        per_image.append(result)
    summary = summarize(per_image)
    summary.update(predict_s=time.perf_counter() - start)
    return {"summary": summary, "per_image": per_image}


def in_subprocess(function, *args):
    """Run ``function(*args)`` in a fresh (spawned) Python process and return its result."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def mibi_baselines(data: Optional[str], budgets: List[str], seeds: List[int]) -> Dict:
    """IdentifyPrimaryObjects once, the random forest per budget and seed (run by in_subprocess)."""
    mibi = load_mibi(data)
    ipo = ipo_mibi(mibi)
    start = time.perf_counter()
    features = [baselines.pixel_features(im) for im in mibi.images]
    feature_s = time.perf_counter() - start
    rf = {}
    for budget in budgets:
        rf[budget] = [rf_mibi(mibi, features, budget, s) for s in seeds]
        for run in rf[budget]:
            run["summary"]["train_s"] += feature_s  # features of the training images are part of training
    return {"ipo": ipo, "rf": rf}


def run_mibi(args, log=print) -> Dict:
    mibi = load_mibi(args.data)
    log(f"MIBI: {len(mibi.images)} images, {sum(int(t.max()) for t in mibi.truth)} nuclei")
    # The baselines run in a child process so that the process whose trainings run against a time
    # budget holds no CellProfiler / scikit-learn / joblib state (on the shared 2-core machine a
    # suspected slowdown from it could not be told apart from other users' load; this rules it out).
    impartial: Dict[str, Dict[str, List[Dict]]] = {budget: {} for budget in args.budgets}
    if not args.skip_impartial:
        for budget in args.budgets:
            log(f"  ImPartial {budget} ({len(args.seed_list)} seed(s)) ...")
            impartial[budget]["ImPartial (default settings)"] = [
                impartial_mibi(mibi, budget, training_config(s, args.quick), log) for s in args.seed_list]
            if budget in args.ablation_budgets:
                log(f"  ImPartial without the self-supervised loss {budget} ...")
                impartial[budget]["ImPartial without self-supervised loss (Base)"] = [
                    impartial_mibi(mibi, budget, training_config(s, args.quick, reconstruction_weight=0.0), log)
                    for s in args.seed_list]
    log("  baselines (IdentifyPrimaryObjects, random forest) in a separate process ...")
    base = in_subprocess(mibi_baselines, args.data, list(args.budgets), list(args.seed_list))
    results: Dict[str, Dict] = {}
    for budget in args.budgets:
        rows = dict(impartial[budget])
        rows["Random forest, multiscale features (ilastik-like)"] = base["rf"][budget]
        rows["CellProfiler IdentifyPrimaryObjects (no scribbles)"] = [base["ipo"]]
        results[budget] = {name: {"aggregate": aggregate([r["summary"] for r in runs]), "runs": runs}
                           for name, runs in rows.items()}
    return {"budgets": results, "ipo_settings": baselines.MIBI_IPO_SETTINGS,
            "n_scribbled": {b: [int((s > 0).sum()) for s in mibi.scribbles[b]] for b in args.budgets}}


def mibi_tables(mibi: Dict) -> str:
    out = []
    header = ["method", "runs"] + list(METRIC_NAMES) + ["train s", "iterations"]
    for budget, rows in mibi["budgets"].items():
        table = []
        for name, data in rows.items():
            agg = data["aggregate"]
            table.append([name, str(len(data["runs"]))] + [_cell(agg, k) for k in METRICS]
                         + [_cell(agg, "train_s", 0) if "train_s" in agg else "–", _cell(agg, "iterations", 0)])
        for name, values in PAPER_ROWS.get(budget, []):
            table.append([name, "fixed"] + [fmt(values[k]) if k in values else "–" for k in METRICS] + ["–", "–"])
        out.append(f"### MIBI nuclei, {budget} scribbles (4 training images, scored on their ground truth)\n\n"
                   + markdown_table(header, table))
    return "\n\n".join(out)


def goal_lines(mibi: Dict) -> str:
    lines = []
    for budget, rows in mibi["budgets"].items():
        imp = rows.get("ImPartial (default settings)")
        if not imp:
            continue
        agg = imp["aggregate"]
        ipo = _mean(rows["CellProfiler IdentifyPrimaryObjects (no scribbles)"]["aggregate"], "f1_iou50")
        rf = _mean(rows["Random forest, multiscale features (ilastik-like)"]["aggregate"], "f1_iou50")
        checks = [
            (f"mDICE {_mean(agg, 'mdice'):.3f} >= {GOALS['mdice']}", _mean(agg, "mdice") >= GOALS["mdice"]),
            (f"mIOU {_mean(agg, 'miou'):.3f} >= {GOALS['miou']}", _mean(agg, "miou") >= GOALS["miou"]),
            (f"F1@IoU0.5 {_mean(agg, 'f1_iou50'):.3f} > IdentifyPrimaryObjects {ipo:.3f} and random forest {rf:.3f}",
             _mean(agg, "f1_iou50") > max(ipo, rf)),
            (f"training {_mean(agg, 'train_s'):.0f} s <= {GOALS['train_s']:.0f} s", _mean(agg, "train_s") <= GOALS["train_s"]),
        ]
        lines.append(f"- {budget}: " + "; ".join(f"{text} **{'pass' if ok else 'FAIL'}**" for text, ok in checks))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Vectra whole cells (partial annotation)
# ----------------------------------------------------------------------------------------------
def score_traced(cells: np.ndarray, traced: np.ndarray) -> Dict[str, float]:
    """Per traced cell: Dice / IoU with its best-overlapping predicted cell (0 when none), and the
    recall at IoU 0.5 (one-to-one). Predicted cells away from the traces are not scored: the traces
    are a partial annotation, so precision cannot be measured."""
    from impartial_core.metrics import match_at_iou, matched_dice_iou

    dice, iou = matched_dice_iou(cells, traced)
    matching = match_at_iou(cells, traced, 0.5)
    return {"mdice": dice, "miou": iou, "recall_iou50": matching["recall"], "n_traced": int(matching["tp"] + matching["fn"]),
            "n_pred": int(cells.max())}


def vectra_baselines(data: Optional[str], seeds: List[int]) -> Dict[str, List[Dict]]:
    """CellProfiler (once per test image) and the random forest per seed and fold (run by in_subprocess)."""
    vectra = load_vectra(data)
    folds = [(vectra[0], vectra[1]), (vectra[1], vectra[0])]
    rows: Dict[str, List[Dict]] = {}
    # CellProfiler: no training, so each test image is scored once
    cp = {}
    for v in vectra:
        _, cells = baselines.identify_cells(v.image)
        cp[v.id] = score_traced(cells, v.traced)
    rows["CellProfiler IdentifyPrimaryObjects (DAPI) + IdentifySecondaryObjects (propagation)"] = [
        {"folds": [cp[test.id] for _, test in folds]}]
    feats = {v.id: baselines.pixel_features(v.image) for v in vectra}
    rf_runs = []
    for seed in seeds:
        fold_scores = []
        for train, test in folds:
            start = time.perf_counter()
            forest = baselines.fit_forest([feats[train.id]], [train.scribbles], foreground=(2, 3), background=(1,), seed=seed)
            cells = baselines.rf_cells(baselines.predict_forest(forest, feats[test.id]))
            score = score_traced(cells, test.traced)
            score["train_s"] = time.perf_counter() - start
            fold_scores.append(score)
        rf_runs.append({"folds": fold_scores})
    rows["Random forest, multiscale features (2 channels)"] = rf_runs
    return rows


def run_vectra(args, log=print) -> Dict:
    from impartial_core.config import tasks_for
    from impartial_core.instances import segment
    from impartial_core.model import ImPartialModel

    vectra = load_vectra(args.data)
    for v in vectra:
        log(f"Vectra image {v.id}: {v.n_rois} ROIs, {len(np.unique(v.traced)) - 1} traced cells after rasterising")
    folds = [(vectra[0], vectra[1]), (vectra[1], vectra[0])]
    rows: Dict[str, List[Dict]] = {}
    if not args.skip_impartial:
        runs = []
        for seed in args.seed_list:
            fold_scores = []
            for train, test in folds:
                config = training_config(seed, args.quick)
                start = time.perf_counter()
                model = ImPartialModel.train([train.image], [train.scribbles], tasks_for("cells", 2), config=config)
                train_s = time.perf_counter() - start
                maps = model.predict(test.image)
                objects = segment({k: m.foreground_probability for k, m in maps.items()}, model.thresholds,
                                  image=test.image, nuclear_channel=VECTRA_NUCLEAR_CHANNEL)
                score = score_traced(objects.cells, test.traced)
                score.update(train_s=train_s, iterations=model.training_summary.get("iterations"))
                log(f"    ImPartial cells, seed {seed}, train image {train.id} -> test image {test.id}: "
                    f"{score['iterations']} iterations in {train_s:.0f} s, mDICE {score['mdice']:.3f}")
                fold_scores.append(score)
            runs.append({"folds": fold_scores})
        rows["ImPartial (default settings, cells task, nuclear channel 1)"] = runs
    log("  baselines (IdentifyPrimaryObjects + IdentifySecondaryObjects, random forest) in a separate process ...")
    rows.update(in_subprocess(vectra_baselines, args.data, list(args.seed_list)))
    out = {}
    for name, runs in rows.items():
        for run in runs:  # the mean over the two folds, per seed
            run["mean"] = {k: float(np.mean([f[k] for f in run["folds"]])) for k in ("mdice", "miou", "recall_iou50")}
        out[name] = {"runs": runs, "aggregate": aggregate([r["mean"] for r in runs]),
                     "fold_aggregate": [aggregate([r["folds"][i] for r in runs]) for i in range(len(folds))]}
    return {"rows": out, "folds": [[t.id, s.id] for t, s in folds],
            "n_traced": {v.id: len(np.unique(v.traced)) - 1 for v in vectra},
            "ipo_settings": baselines.VECTRA_IPO_SETTINGS, "iso_settings": baselines.VECTRA_ISO_SETTINGS}


def vectra_table(vec: Dict) -> str:
    (a, b), (c, d) = vec["folds"]
    header = ["method", "runs", "mDICE (mean of folds)", "mIOU", "recall@IoU0.5",
              f"mDICE test {b} (train {a})", f"mDICE test {d} (train {c})"]
    table = []
    for name, data in vec["rows"].items():
        agg, folds = data["aggregate"], data["fold_aggregate"]
        table.append([name, str(len(data["runs"])), _cell(agg, "mdice"), _cell(agg, "miou"), _cell(agg, "recall_iou50"),
                      _cell(folds[0], "mdice"), _cell(folds[1], "mdice")])
    n = vec["n_traced"]
    return ("### Vectra whole cells, leave-one-image-out (train on one image's traced cells, test on the other's)\n\n"
            + markdown_table(header, table)
            + f"\n\nThe traces are a PARTIAL annotation ({n[1]} cells in image 1, {n[2]} in image 2): only the traced "
              "cells are scored. mDICE / mIOU: for every traced cell, the predicted cell that overlaps it most "
              "(0 when none); recall: share of traced cells matched one-to-one at IoU >= 0.5. Predicted cells "
              "elsewhere are not counted, so precision is not measured. Scribbles for training: skeleton + contour "
              "3 px inside each traced cell (cell), 2-px ring outside where the image is dark (background).")


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (mean ± sample std); default 3")
    parser.add_argument("--quick", action="store_true", help=f"1 seed, trainings capped at {QUICK_TIME_BUDGET_S:.0f} s")
    parser.add_argument("--skip-impartial", action="store_true", help="baselines only")
    parser.add_argument("--parts", nargs="+", default=["mibi", "vectra", "mp6843"], choices=["mibi", "vectra", "mp6843"],
                        help="mp6843 runs where its fields are found (--mp6843-data) and is left out otherwise")
    parser.add_argument("--budgets", nargs="+", default=["n100", "n200"], choices=["n100", "n200"])
    parser.add_argument("--ablation-budgets", nargs="*", default=["n100"], choices=["n100", "n200"],
                        help="budgets with the 'without self-supervised loss' ablation (default n100)")
    parser.add_argument("--data", default=None, help="folder with mibi_dsdna/ and vectra_2ch/ (default: ../shared/data, else examples/data)")
    parser.add_argument("--mp6843-data", default=None,
                        help="folder with the MP6843 fields (default: mp6843_2ch in the data folder, see --data)")
    parser.add_argument("--haze", type=float, default=None,
                        help="height of the haze augmentation in ImPartial's trainings (default: TrainingConfig's; 0 = none)")
    parser.add_argument("--out", default=None,
                        help="where accuracy.md / accuracy.json go (default benchmarks/results; with --quick out/benchmarks-quick)")
    return parser


def header_lines(command: str) -> str:
    return (f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}  \n"
            f"Machine: {machine_description()}  \nCommit: {git_revision()}  \nCommand: `{command}`")


def main(argv: Optional[Sequence[str]] = None, log=print) -> Dict:
    args = build_parser().parse_args(argv)
    args.out = results_folder(args.out, args.quick)
    if args.quick:
        args.seeds = 1
    TRAINING_OVERRIDES.clear()
    if args.haze is not None:
        TRAINING_OVERRIDES["haze"] = args.haze
    args.seed_list = list(range(args.seeds))
    command = "python -m benchmarks.accuracy " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    results = {"command": command, "quick": args.quick, "seeds": args.seed_list, "haze": args.haze}
    if not args.skip_impartial:
        results["training_config"] = dataclasses.asdict(training_config(0, args.quick))
        del results["training_config"]["seed"]
    if "mibi" in args.parts:
        results["mibi"] = run_mibi(args, log)
    if "vectra" in args.parts:
        results["vectra"] = run_vectra(args, log)
    if "mp6843" in args.parts:
        try:
            mp6843.mp6843_folder(args.mp6843_data, args.data)
        except FileNotFoundError as error:
            if "mp6843" in (argv or sys.argv[1:]):
                raise
            log(f"MP6843 left out: {error}")
        else:
            results["mp6843"] = mp6843.run_mp6843(args, training_config, aggregate, in_subprocess, log)
    results["elapsed_s"] = time.perf_counter() - start
    text = render(results, command)
    log("\n" + text)
    out = write_results(args.out, "accuracy", text, results, default=_json_default).parent
    log(f"\nwrote {out / 'accuracy.md'} and accuracy.json ({results['elapsed_s']:.0f} s)")
    return results


def render(results: Dict, command: str) -> str:
    parts = ["## Accuracy", header_lines(command)]
    config = results.get("training_config")
    if config:
        parts.append("ImPartial training settings (TrainingConfig defaults" + (", --haze" if results.get("haze") is not None else "") + (", --quick: time budget capped" if results["quick"] else "")
                     + "): " + ", ".join(f"{k}={v}" for k, v in config.items() if k in (
                         "patch_size", "batch_size", "learning_rate", "max_iterations", "time_budget_s",
                         "reconstruction_weight", "haze", "mixed_precision")))
    if "mibi" in results:
        parts.append(mibi_tables(results["mibi"]))
        goals = goal_lines(results["mibi"])
        if goals:
            parts.append("Goals (default settings, 2 CPU cores, mean over seeds):\n" + goals)
        s = results["mibi"]["ipo_settings"]
        parts.append("Values are mean ± sample standard deviation over seeds (runs column). IdentifyPrimaryObjects "
                     "uses no scribbles (same objects for both budgets); its pixel F1 is that of its object mask and "
                     "its AUC ranks pixels by the rescaled image. Its settings were chosen on these same images "
                     f"(`python -m benchmarks.baselines`): {baselines._short(s)}, fill holes: {s['fill_holes']}, "
                     "discard border objects: No. The random forest uses ImPartial's instance step at threshold 0.5; "
                     "its train s includes computing the features. Paper rows are copied from the paper; "
                     "its test rows are on 4 other images.")
    if "vectra" in results:
        parts.append(vectra_table(results["vectra"]))
    if "mp6843" in results:
        parts.append(mp6843.mp6843_table(results["mp6843"], _cell, markdown_table))
    return "\n\n".join(parts)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


if __name__ == "__main__":
    main()
