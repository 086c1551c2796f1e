"""The guided scribble loop with a simulated annotator: suggested boxes against random boxes.

    python -m benchmarks.interactive                         # MIBI nuclei: 4 folds, 1 seed, 1 round of 20 boxes
    python -m benchmarks.interactive --part mp6843           # MP6843 whole cells, the same from 30 cells
    python -m benchmarks.interactive --rounds 3 --seeds 2    # more rounds, base models of 2 seeds
    python -m benchmarks.interactive --quick                 # smoke: one held-out image, 15-s base training

Leave one image out over the four MIBI images (0, 3, 5, 7): per fold, a model is trained from
scratch on the paper's n100 scribbles of the other three images (``--base-budget`` seconds, the
module's default 180). With ``--part mp6843``, over the four MP6843 development fields: the cells
task is trained on about 30 simulated scribbled cells of the other three
(``benchmarks.mp6843.simulate_cell_scribbles``) and its cells are seeded by the nuclei of the DAPI
channel, as ``impartial predict --nuclear-channel 1`` makes them. From that same base model four
simulated annotators each draw ``--rounds`` rounds of ``--boxes`` boxes (32 x 32 pixels) on the
training images only:

- guided: the boxes ``impartial_core.suggestions.suggest_for_model`` suggests for the current
  model and scribbles ("uncertain" windows and "split" places);
- uncertain: the suggestions without split places (``suggest`` given no objects): the windows of
  highest uncertainty, the places whose strokes train the network;
- random: box centres drawn uniformly over the training images (a seeded numpy Generator);
- none: no boxes, the fine-tune alone: how many matches a fine-tune changes by itself (the spread
  against which the others' matches lost and gained are read).

In a box the annotator draws what the paper's simulation draws
(``impartial_core.scribbles.simulation.annotate_box``): the skeleton of every true object touching
the box as object strokes (cells: with their contour 3 px inside, as in their starting scribbles),
the box outline and a 4-px ring around those objects as background, and split strokes where one
object of the current model merges true objects (across the object, where its parts nearest to
each of them meet). New strokes never replace earlier ones. After each round the current model is
fine-tuned on all strokes so far (``ModelStore.refine``: at most ``REFINE_BUDGET_S`` = 20 s, a
quarter of the learning rate, with the start model's confident pixels as anchors,
``impartial_core.anchoring``).

Measured per fold, strategy and round, on the held-out image: F1@0.5 and mDICE
(``impartial_core.metrics.evaluate_image``), the true objects matched at IoU >= 0.5 before the round
and not after (lost) and the reverse (gained); and the stroke pixels and boxes added, the
fine-tune's seconds, and the cumulative compute time (base training, box placement, fine-tunes).
Split strokes do not train the network (the scribble loss leaves them out); they cut objects of
the image they are drawn on, so they cannot change the held-out scores.

Writes ``interactive.md``, ``interactive.json`` and ``interactive.png`` to ``benchmarks/results``
(``interactive_mp6843.*`` for the cells; ``--quick``: ``out/benchmarks-quick``; ``--out``
elsewhere). Time on 2 CPU cores: per fold and seed the base training plus about 22 s per strategy
and round (a 20-s fine-tune, box placement, predictions); the default (4 folds, 1 seed, 1 round, 4
strategies) took 15 minutes, ``--quick`` about 2.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from benchmarks.data import (MIBI_IDS, fmt, git_revision, load_mibi, machine_description, markdown_table,
                             results_folder, write_results)
from benchmarks.editor import _matched
from benchmarks.mp6843 import FIELDS
from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
from impartial_core.metrics import evaluate_image
from impartial_core.model import ImPartialModel
from impartial_core.model_store import REFINE_BUDGET_S, ModelStore, TrainingRequest
from impartial_core.scribbles import BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT
from impartial_core.scribbles.simulation import annotate_box
from impartial_core.suggestions import suggest, suggest_for_model

STRATEGIES = ("guided", "uncertain", "random", "none")
BOX = 32
RING = 4
QUICK_BASE_BUDGET_S = 15.0
#: Simulated scribbled cells of an MP6843 fold's starting scribbles ("a few cells").
START_CELLS = 30


@dataclass(frozen=True)
class Part:
    """One data set of the benchmark: what it is called, its folds and where its results go."""

    title: str          # in headings: what is segmented, and on what
    folds: Tuple[str, ...]
    quick_fold: str
    start: str          # the starting scribbles, in words
    results: str        # results file stem


PARTS = {"mibi": Part("MIBI nuclei", tuple(map(str, MIBI_IDS)), "7", "the n100 scribbles", "interactive"),
         "mp6843": Part("MP6843 whole cells", FIELDS, FIELDS[0], f"about {START_CELLS} simulated scribbled cells",
                        "interactive_mp6843")}
STROKE_NAMES = {BACKGROUND: "background", NUCLEUS: "nucleus", CYTOPLASM: "cell", SPLIT: "split"}


@dataclass(frozen=True)
class Box:
    """One box the annotator fills: ``image`` indexes the fold's training images."""

    image: int
    row: int
    col: int
    kind: str


@dataclass
class Fold:
    """A held-out image and the training images, with their truth and starting scribbles.

    ``task`` is what is trained and scored (``nuclei`` on MIBI, ``cells`` on MP6843), ``foreground``
    the scribble value of its objects; a cells fold segments its cells seeded by the nuclei of
    ``nuclear_channel`` (as ``impartial predict --nuclear-channel`` does).
    """

    held_out: str
    number: int          # seeds the random annotator's boxes with the run's seed
    train_ids: Tuple[str, ...]
    images: List[np.ndarray]
    truth: List[np.ndarray]
    scribbles: List[np.ndarray]
    test_image: np.ndarray
    test_truth: np.ndarray
    task: str = "nuclei"
    n_channels: int = 1
    nuclear_channel: Optional[int] = None
    foreground: int = NUCLEUS


def make_fold(mibi, held_out: int) -> Fold:
    """The fold of ``mibi`` (a ``MibiSet``) that holds out the image numbered ``held_out``."""
    train = [i for i, number in enumerate(mibi.ids) if number != held_out]
    test = mibi.ids.index(held_out)
    return Fold(str(held_out), held_out, tuple(str(mibi.ids[i]) for i in train), [mibi.images[i] for i in train],
                [mibi.truth[i] for i in train], [mibi.scribbles["n100"][i].copy() for i in train],
                mibi.images[test], mibi.truth[test])


def make_cell_fold(fields, held_out: str, seed: int, cells: int) -> Fold:
    """The MP6843 fold holding out field ``held_out``: the other three with about ``cells`` simulated
    scribbled cells (``benchmarks.mp6843.simulate_cell_scribbles``, seeded by ``seed``)."""
    from benchmarks.mp6843 import NUCLEAR_CHANNEL, simulate_cell_scribbles

    train = [f for f in fields if f.id != held_out]
    test = next(f for f in fields if f.id == held_out)
    scribbles = simulate_cell_scribbles([f.truth for f in train], cells, seed)
    return Fold(held_out, [f.id for f in fields].index(held_out), tuple(f.id for f in train),
                [f.image for f in train], [f.truth for f in train], scribbles, test.image, test.truth,
                task="cells", n_channels=test.image.shape[0], nuclear_channel=NUCLEAR_CHANNEL, foreground=CYTOPLASM)


def guided_boxes(model: ImPartialModel, fold: Fold, scribbles: Sequence[np.ndarray], count: int) -> List[Box]:
    """The places ``suggest_for_model`` suggests on the training images, best first."""
    places = suggest_for_model(model, fold.images, count=count, scribbles=list(scribbles), window=BOX, device="cpu",
                               nuclear_channel=fold.nuclear_channel)
    return [Box(p.image, p.row, p.col, p.kind) for p in places]


def uncertain_boxes(model: ImPartialModel, fold: Fold, scribbles: Sequence[np.ndarray], count: int) -> List[Box]:
    """The suggestions without split places: the windows of highest uncertainty, best first."""
    uncertainty = [model.predict(image, device="cpu")[fold.task].uncertainty for image in fold.images]
    places = suggest(uncertainty, [None] * len(uncertainty), count, scribbles=list(scribbles), window=BOX)
    return [Box(p.image, p.row, p.col, p.kind) for p in places]


def random_boxes(rng: np.random.Generator, fold: Fold, count: int) -> List[Box]:
    """``count`` box centres drawn uniformly over the training images (each box inside its image)."""
    areas = np.array([np.prod(image.shape[-2:]) for image in fold.images], dtype=float)
    picks = rng.choice(len(fold.images), size=count, p=areas / areas.sum())
    boxes = []
    for index in picks:
        height, width = fold.images[index].shape[-2:]
        row = int(rng.integers(BOX // 2, max(height - BOX // 2, BOX // 2) + 1))
        col = int(rng.integers(BOX // 2, max(width - BOX // 2, BOX // 2) + 1))
        boxes.append(Box(int(index), min(row, height - 1), min(col, width - 1), "random"))
    return boxes


def objects(model: ImPartialModel, fold: Fold, image: np.ndarray, scribbles: Optional[np.ndarray] = None) -> np.ndarray:
    """The fold's objects (nuclei or cells) the model makes of ``image``, as the user sees them: cut
    by the split strokes among ``scribbles``."""
    split = None if scribbles is None else scribbles == SPLIT
    found = model.segment(model.predict(image, device="cpu"), image=image, nuclear_channel=fold.nuclear_channel,
                          split_strokes=split)
    return getattr(found, fold.task)


def annotate(model: ImPartialModel, fold: Fold, scribbles: List[np.ndarray], boxes: Sequence[Box]) -> Dict[str, int]:
    """Add the strokes of ``boxes`` to ``scribbles`` (in place, never over earlier strokes).

    Cells get the contour of each skeletonised cell too, as in their starting scribbles.

    Returns
    -------
    dict
        Pixels added per stroke kind (background, object, split) and in total.
    """
    from benchmarks.mp6843 import with_cell_contours

    added = {name: 0 for name in STROKE_NAMES.values()}
    for index in sorted({b.image for b in boxes}):
        current = objects(model, fold, fold.images[index], scribbles[index])
        for box in (b for b in boxes if b.image == index):
            strokes = annotate_box(fold.truth[index], box.row, box.col, box=BOX, ring=RING, predicted=current,
                                   foreground_value=fold.foreground)
            if fold.task == "cells":
                strokes = with_cell_contours(fold.truth[index], strokes)
            new = (strokes > 0) & (scribbles[index] == 0)
            scribbles[index][new] = strokes[new]
            for value, name in STROKE_NAMES.items():
                added[name] += int(np.count_nonzero(strokes[new] == value))
    added["total"] = sum(added.values())
    return added


def score(model: ImPartialModel, fold: Fold) -> Tuple[Dict[str, float], set]:
    """F1@0.5, mDICE and object counts on the held-out image, and the true objects matched at IoU >= 0.5."""
    found = objects(model, fold, fold.test_image)
    result = evaluate_image(None, found, fold.test_truth)
    kept = ("f1_iou50", "mdice", "n_pred", "tp_iou50", "fp_iou50", "fn_iou50")
    return {key: result[key] for key in kept}, _matched(found, fold.test_truth)


def tasks(fold: Fold):
    """The fold's training tasks (the cells task learns its reconstruction from every channel)."""
    return tasks_for(fold.task, fold.n_channels, fold.nuclear_channel or 0)


def refine(store: ModelStore, path: Path, model: ImPartialModel, fold: Fold, scribbles: Sequence[np.ndarray],
           seed: int) -> Tuple[ImPartialModel, float]:
    """Fine-tune ``model`` on every stroke so far as the editor's Save does; the model and seconds taken."""
    request = TrainingRequest(fold.images, [s.copy() for s in scribbles], tasks(fold), NetworkConfig(fold.n_channels),
                              TrainingConfig(device="cpu", seed=seed), None, ())
    start = time.perf_counter()
    refined = store.refine(path, request, start_from=model).model
    return refined, time.perf_counter() - start


def run_strategy(strategy: str, base: ImPartialModel, base_matched: set, fold: Fold, seed: int, args,
                 folder: Path) -> List[dict]:
    """The rounds of one annotator from the base model: one dict of measurements per round."""
    rng = np.random.default_rng([seed, fold.number])
    store = ModelStore(max_models=2)
    scribbles = [s.copy() for s in fold.scribbles]
    model, matched, rounds = base, base_matched, []
    for number in range(1, args.rounds + 1):
        start = time.perf_counter()
        if strategy == "none":
            boxes = []
        elif strategy == "random":
            boxes = random_boxes(rng, fold, args.boxes)
        else:
            boxes = (guided_boxes if strategy == "guided" else uncertain_boxes)(model, fold, scribbles, args.boxes)
        placement_s = time.perf_counter() - start
        added = annotate(model, fold, scribbles, boxes)
        model, refine_s = refine(store, folder / f"{strategy}_{number}.safetensors", model, fold, scribbles, seed)
        scores, now_matched = score(model, fold)
        rounds.append({"round": number, "n_boxes": len(boxes), "n_split_boxes": sum(b.kind == "split" for b in boxes),
                       "boxes": [{"image": fold.train_ids[b.image], "row": b.row, "col": b.col, "kind": b.kind}
                                 for b in boxes],
                       "pixels_added": added, "placement_s": placement_s, "fine_tune_s": refine_s,
                       "fine_tune_iterations": model.training_summary.get("iterations"),
                       "matches_lost": len(matched - now_matched), "matches_gained": len(now_matched - matched),
                       **scores})
        matched = now_matched
        print(f"  {strategy} round {number}: {len(boxes)} boxes, {added['total']} pixels, F1@0.5 "
              f"{scores['f1_iou50']:.3f}, mDICE {scores['mdice']:.3f}, fine-tune {refine_s:.1f} s", flush=True)
    return rounds


def run_fold(fold: Fold, seed: int, args) -> dict:
    """Base training and every annotator for one held-out image and seed."""
    print(f"held-out image {fold.held_out}, seed {seed}: training on images {fold.train_ids}", flush=True)
    config = TrainingConfig(time_budget_s=args.base_budget, device="cpu", seed=seed)
    start = time.perf_counter()
    base = ImPartialModel.train(fold.images, fold.scribbles, tasks(fold), NetworkConfig(fold.n_channels), config)
    base_s = time.perf_counter() - start
    base_scores, base_matched = score(base, fold)
    print(f"  base: {base_s:.1f} s, F1@0.5 {base_scores['f1_iou50']:.3f}, mDICE {base_scores['mdice']:.3f}", flush=True)
    run = {"held_out": fold.held_out, "seed": seed, "train_ids": list(fold.train_ids),
           "base": {"train_s": base_s, "iterations": base.training_summary.get("iterations"), **base_scores},
           "strategies": {}}
    with tempfile.TemporaryDirectory() as folder:
        for strategy in STRATEGIES:
            rounds = run_strategy(strategy, base, base_matched, fold, seed, args, Path(folder))
            elapsed = base_s
            for entry in rounds:
                assert all(b["image"] != fold.held_out for b in entry["boxes"]), "a box on the held-out image"
                elapsed += entry["placement_s"] + entry["fine_tune_s"]
                entry["cumulative_s"] = elapsed
            run["strategies"][strategy] = rounds
    return run


def curves(runs: Sequence[dict], strategy: str) -> Dict[str, np.ndarray]:
    """Per round (0 = the base model), each measurement over runs: arrays of shape (runs, rounds + 1).

    ``boxes_so_far`` and ``cumulative_s`` add up over the rounds; the others are the round's own.
    """
    def column(read, base_value=lambda run: 0):
        return np.array([[base_value(run)] + [read(entry) for entry in run["strategies"][strategy]] for run in runs],
                        dtype=float)

    boxes = column(lambda e: e["n_boxes"])
    return {"f1_iou50": column(lambda e: e["f1_iou50"], lambda run: run["base"]["f1_iou50"]),
            "mdice": column(lambda e: e["mdice"], lambda run: run["base"]["mdice"]),
            "fp": column(lambda e: e["fp_iou50"], lambda run: run["base"]["fp_iou50"]),
            "fn": column(lambda e: e["fn_iou50"], lambda run: run["base"]["fn_iou50"]),
            "boxes": boxes, "boxes_so_far": np.cumsum(boxes, axis=1),
            "split_boxes": column(lambda e: e["n_split_boxes"]),
            "pixels": column(lambda e: e["pixels_added"]["total"]),
            "split_pixels": column(lambda e: e["pixels_added"]["split"]),
            "lost": column(lambda e: e["matches_lost"]),
            "gained": column(lambda e: e["matches_gained"]),
            "fine_tune_s": column(lambda e: e["fine_tune_s"]),
            "cumulative_s": column(lambda e: e["cumulative_s"], lambda run: run["base"]["train_s"])}


def _mean_std(values: np.ndarray) -> str:
    """Mean ± sample std of a metric over runs (the mean alone for one run)."""
    return fmt(float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None)


def _row(c: Dict[str, np.ndarray], r: int, name: str) -> List[str]:
    """One table row: round ``r`` of the curves ``c`` (means over runs)."""
    def mean(key, digits=0):
        return f"{np.mean(c[key][:, r]):.{digits}f}"

    first = r == 0
    return [name, str(r), "" if first else f"{mean('boxes')} ({mean('split_boxes', 1)})",
            "" if first else f"{mean('pixels')} ({mean('split_pixels')})",
            _mean_std(c["f1_iou50"][:, r]), "" if first else _mean_std(c["f1_iou50"][:, r] - c["f1_iou50"][:, 0]),
            _mean_std(c["mdice"][:, r]), f"{mean('fp', 1)} / {mean('fn', 1)}",
            "" if first else f"{mean('lost', 1)} / {mean('gained', 1)}",
            "" if first else mean("fine_tune_s", 1), mean("cumulative_s")]


TABLE_HEADER = ["strategy", "round", "boxes (split)", "pixels added (split)", "F1@0.5", "ΔF1@0.5 vs base", "mDICE",
                "false pos. / neg.", "matches lost / gained", "fine-tune s", "cumulative s"]


def summary_rows(runs: Sequence[dict], rounds: int) -> List[List[str]]:
    """The table's rows: the base model, then each strategy's rounds (means over runs)."""
    rows = [_row(curves(runs, STRATEGIES[0]), 0, "base")]
    for strategy in STRATEGIES:
        c = curves(runs, strategy)
        rows += [_row(c, r, strategy) for r in range(1, rounds + 1)]
    return rows


def fold_rows(runs: Sequence[dict]) -> List[List[str]]:
    """One row per run and strategy: F1@0.5 of the base and after each round."""
    rows = []
    for run in runs:
        for strategy in STRATEGIES:
            f1 = [run["base"]["f1_iou50"]] + [e["f1_iou50"] for e in run["strategies"][strategy]]
            rows.append([str(run["held_out"]), str(run["seed"]), strategy, " -> ".join(f"{v:.3f}" for v in f1)])
    return rows


def plot(runs: Sequence[dict], path: Path, title: str) -> None:
    """F1@0.5 and mDICE against boxes drawn and against cumulative compute time, guided vs random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharey="row")
    for strategy, style, colour in zip(STRATEGIES, ("o-", "^-.", "s--", "x:"), ("tab:blue", "tab:green", "tab:orange", "tab:grey")):
        c = curves(runs, strategy)
        for row, (key, name) in enumerate((("f1_iou50", "F1@0.5"), ("mdice", "mDICE"))):
            for col, (x_key, x_name) in enumerate((("boxes_so_far", "boxes drawn"),
                                                   ("cumulative_s", "cumulative compute time (s)"))):
                axis = axes[row, col]
                for x, y in zip(c[x_key], c[key]):  # each run, thin: the spread the mean hides
                    axis.plot(x, y, style, color=colour, alpha=0.25, linewidth=0.8, markersize=3)
                axis.plot(c[x_key].mean(axis=0), c[key].mean(axis=0), style, color=colour, linewidth=2.2,
                          label=f"{strategy} (mean; thin: each run)")
                axis.set_xlabel(x_name)
                axis.set_ylabel(f"{name}, held-out image")
                axis.grid(alpha=0.3)
    axes[0, 0].legend()
    figure.suptitle(f"Guided vs random boxes, {title}, mean of {len(runs)} run(s) (held-out images x seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="mibi",
                        help="mibi: nuclei from the n100 scribbles (default); mp6843: whole cells from "
                             f"{START_CELLS} scribbled cells")
    parser.add_argument("--folds", nargs="+", default=None,
                        help="the held-out images (default: all four; with --quick, one): MIBI image numbers "
                             f"{', '.join(PARTS['mibi'].folds)} or MP6843 fields {', '.join(FIELDS)}")
    parser.add_argument("--seeds", type=int, default=1, help="base trainings per fold (seeds 0..N-1)")
    parser.add_argument("--boxes", type=int, default=20, help="boxes per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of boxes and fine-tuning")
    parser.add_argument("--base-budget", type=float, default=None,
                        help=f"seconds of the base training (default {TrainingConfig.time_budget_s:.0f}, the "
                             f"module's default; with --quick {QUICK_BASE_BUDGET_S:.0f})")
    parser.add_argument("--quick", action="store_true", help="smoke version: short base training, one held-out image")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.boxes < 1 or args.rounds < 1:
        parser.error("--seeds, --boxes and --rounds must be at least 1")
    part = PARTS[args.part]
    if args.base_budget is None:
        args.base_budget = QUICK_BASE_BUDGET_S if args.quick else TrainingConfig.time_budget_s
    if args.folds is None:
        args.folds = [part.quick_fold] if args.quick else list(part.folds)
    unknown = [f for f in args.folds if f not in part.folds]
    if unknown:
        parser.error(f"--folds {' '.join(unknown)}: not a held-out image of --part {args.part} "
                     f"({', '.join(part.folds)})")
    return args


def fold_maker(args):
    """``make(held_out, seed) -> Fold`` for the part ``args.part`` (its data read once)."""
    if args.part == "mibi":
        mibi = load_mibi(args.data)
        return lambda held_out, seed: make_fold(mibi, int(held_out))
    from benchmarks.mp6843 import load_mp6843, mp6843_folder

    fields = load_mp6843(str(mp6843_folder(None, args.data)))
    return lambda held_out, seed: make_cell_fold(fields, held_out, seed, START_CELLS)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    part = PARTS[args.part]
    out = results_folder(args.out, args.quick)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    command = "python -m benchmarks.interactive " + " ".join(argv if argv is not None else sys.argv[1:])
    make = fold_maker(args)
    start = time.perf_counter()
    runs = [run_fold(make(held_out, seed), seed, args) for held_out in args.folds for seed in range(args.seeds)]
    total_s = time.perf_counter() - start
    machine = machine_description()
    settings = {"part": args.part, "folds": args.folds, "seeds": args.seeds, "boxes": args.boxes, "rounds": args.rounds,
                "box_px": BOX, "ring_px": RING, "base_budget_s": args.base_budget, "refine_budget_s": REFINE_BUDGET_S}
    results = {"machine": machine, "command": command.strip(), "revision": git_revision(),
               "date": datetime.datetime.now().isoformat(timespec="seconds"), "settings": settings,
               "total_s": total_s, "runs": runs}
    text = (f"## Interactive loop: guided vs random boxes, {part.title}, leave one image out\n\n"
            f"`{command.strip()}` ({datetime.date.today().isoformat()}, commit {git_revision()}, "
            f"{total_s / 60:.1f} min; {machine})\n\n"
            f"Held-out images {', '.join(map(str, args.folds))}, {args.seeds} seed(s): means over "
            f"{len(runs)} run(s) (± sample std). Base: {args.base_budget:.0f}-s training on {part.start} of "
            f"the other three images. Each round: {args.boxes} boxes of {BOX} x {BOX} px on the training images, "
            f"then a fine-tune of at most {REFINE_BUDGET_S:.0f} s. Boxes (split): boxes of the round (those "
            f"suggested as split places). Pixels added (split): stroke pixels of the round (split strokes, which cut "
            f"the training images' objects but do not train the network). False pos. / neg.: held-out objects at "
            f"IoU 0.5. Matches lost / gained: true objects of the held-out image matched at IoU >= 0.5 before the "
            f"round and not after / after and not before. Cumulative s: base training + box placement + "
            f"fine-tunes.\n\n"
            + markdown_table(TABLE_HEADER, summary_rows(runs, args.rounds))
            + "\n\nF1@0.5 per run, base -> each round:\n\n"
            + markdown_table(["held-out image", "seed", "strategy", "F1@0.5"], fold_rows(runs)))
    print(text)
    write_results(out, part.results, text, results)
    plot(runs, Path(out) / f"{part.results}.png", part.title)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
