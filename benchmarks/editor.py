"""The editor loop's speed: Save -> model refined -> objects updated, on the bundled MIBI example.

    python -m benchmarks.editor                  # base model: a default training on the n100 scribbles
    python -m benchmarks.editor --base-budget 60 # a shorter base training (quicker; a rougher base)
    python -m benchmarks.editor --quick          # smoke version

What a user's Save costs in the module's editor (``impartial_cellprofiler.drawn_scribbles``):
writing the file aside, the model is refined with every stroke of the group
(``ModelStore.refine``, at most ``REFINE_BUDGET_S`` seconds) and the image set is predicted and
segmented again. The strokes added are those the paper's n200 scribbles have beyond n100 on image 0
(about 25 nuclei and their background), i.e. one generous round of drawing. Also reported: F1@0.5
on image 7, which no stroke touches, before and after the refinement, and the objects of image 7
that matched the truth before and no longer do (what a refinement may forget).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from benchmarks.data import fmt, load_mibi, machine_description, markdown_table, results_folder, write_results
from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for
from impartial_core.metrics import evaluate_image
from impartial_core.model_store import REFINE_BUDGET_S, ModelStore, TrainingRequest


def _matched(pred: np.ndarray, truth: np.ndarray) -> set:
    """True objects matched at IoU >= 0.5 (each true object's best predicted object)."""
    found = set()
    for number in np.unique(truth[truth > 0]):
        inside = pred[truth == number]
        best = np.bincount(inside[inside > 0]).argmax() if (inside > 0).any() else 0
        if best:
            inter = np.sum((truth == number) & (pred == best))
            union = np.sum((truth == number) | (pred == best))
            if inter / union >= 0.5:
                found.add(int(number))
    return found


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-budget", type=float, default=TrainingConfig.time_budget_s,
                        help="seconds of the base training on the n100 scribbles (default: the module's default)")
    parser.add_argument("--quick", action="store_true", help="smoke version: short base training")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = results_folder(args.out, args.quick)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    mibi = load_mibi(args.data)
    training = TrainingConfig(time_budget_s=10.0 if args.quick else args.base_budget, device="cpu")
    tasks = tasks_for("nuclei", 1)
    train_ids = [0, 1, 2]  # images 0, 3, 5; image 7 is held out
    images = [mibi.images[i] for i in train_ids]
    before = TrainingRequest(images, [mibi.scribbles["n100"][i] for i in train_ids], tasks, NetworkConfig(1), training)
    store = ModelStore(max_models=2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        start = time.perf_counter()
        base = store.train_or_reuse(path, before).model
        base_s = time.perf_counter() - start
        drawn = [s.copy() for s in before.scribbles]
        added = (mibi.scribbles["n200"][0] > 0) & (drawn[0] == 0)
        drawn[0][added] = mibi.scribbles["n200"][0][added]
        after = dataclasses.replace(before, scribbles=drawn)
        start = time.perf_counter()
        refined = store.refine(path, after, base).model
        refine_s = time.perf_counter() - start
        start = time.perf_counter()
        maps = refined.predict(mibi.images[0][None], device="cpu")
        refined.segment(maps)
        update_s = time.perf_counter() - start
    held_out = mibi.images[3][None]
    scores, matched = {}, {}
    for name, model in (("before", base), ("after", refined)):
        objects = model.segment(model.predict(held_out, device="cpu"))
        scores[name] = evaluate_image(None, objects.nuclei, mibi.truth[3])
        matched[name] = _matched(objects.nuclei, mibi.truth[3])
    lost, gained = len(matched["before"] - matched["after"]), len(matched["after"] - matched["before"])
    summary = refined.training_summary
    results = {"machine": machine_description(), "base_budget_s": training.time_budget_s, "base_training_s": base_s,
               "added_stroke_pixels": int(added.sum()), "refine_s": refine_s, "refine_iterations": summary.get("iterations"),
               "predict_and_segment_s": update_s, "save_to_objects_s": refine_s + update_s,
               "held_out": {k: {m: v[m] for m in ("f1_iou50", "mdice")} for k, v in scores.items()},
               "matches_lost": lost, "matches_gained": gained, "refine_budget_s": REFINE_BUDGET_S}
    rows = [["base training (n100, images 0, 3, 5)", f"{base_s:.1f} s", ""],
            [f"Save: refine with {int(added.sum())} added stroke pixels (budget {REFINE_BUDGET_S:.0f} s)",
             f"{refine_s:.1f} s", f"{summary.get('iterations')} iterations"],
            ["predict + segment image 0 (400x400)", f"{update_s:.1f} s", ""],
            ["**Save -> objects updated**", f"**{refine_s + update_s:.1f} s**", "goal <= 30 s"],
            ["held-out image 7, F1@0.5 before -> after", fmt(scores["before"]["f1_iou50"]) + " -> "
             + fmt(scores["after"]["f1_iou50"]), f"matches lost {lost}, gained {gained}"],
            ["held-out image 7, mDICE before -> after", fmt(scores["before"]["mdice"]) + " -> "
             + fmt(scores["after"]["mdice"]), ""]]
    text = (f"## Editor loop: Save -> objects updated ({machine_description()})\n\n"
            + markdown_table(["step", "time", "note"], rows))
    print(text)
    write_results(out, "editor", text, results)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
