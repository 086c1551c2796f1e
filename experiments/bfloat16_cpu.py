"""Training and predicting in bfloat16 on a CPU that computes it natively: faster, and as accurate?

    python experiments/bfloat16_cpu.py [--seeds 0 1] [--mp6843-seeds 0] [--time-budget-s 180] [--matched-iterations]

On CPUs with the AVX-512 BF16 instructions (``devices.bfloat16_native``) PyTorch's oneDNN
convolutions run in bfloat16 about twice as fast as in float32. This trains, per seed, the
leave-one-image-out MIBI folds (n100 scribbles of three images, the fourth scored; default
settings and 3-minute budget) once in float32 and once in bfloat16 autocast, one after the other
fold by fold, and predicts each held-out image at the training's precision; then the same for the
MP6843 folds (cells task, nuclei from the DAPI channel). With ``--matched-iterations`` each MIBI
fold is also trained in bfloat16 for exactly the float32 training's iterations, which tells the
precision's effect from that of the extra iterations it fits in the budget. Printed per fold and
run: iterations, why training stopped, F1@0.5 and mDICE of the default objects. First, one
model's prediction in both precisions: the largest change of the probability, the objects'
agreement (F1@0.5 of one against the other), and the time to predict a 2048² image.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import MIBI_IDS, load_mibi  # noqa: E402
from benchmarks.interactive import make_fold  # noqa: E402
from benchmarks.mp6843 import NUCLEAR_CHANNEL, folds, load_mp6843, train_fold  # noqa: E402
from impartial_core.config import NetworkConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.devices import bfloat16_native, resolve_device  # noqa: E402
from impartial_core.instances import segment  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402

PRECISIONS = {"float32": False, "bfloat16": True}
MATCHED = "bfloat16, float32's iterations"


def scored(model: ImPartialModel, image: np.ndarray, truth: np.ndarray, mixed: bool, task: str, **cells) -> dict:
    """F1@0.5 and mDICE of the default objects of ``task`` on one held-out image."""
    maps = model.predict(image, device="cpu", mixed_precision=mixed)
    probability = {k: m.foreground_probability for k, m in maps.items()}
    objects = getattr(segment(probability, model.thresholds, image=image, **cells), task)
    result = evaluate_image(probability[task], objects, truth)
    summary = model.training_summary
    return dict(f1=result["f1_iou50"], mdice=result["mdice"], iterations=summary.get("iterations"),
                stopped=summary.get("stopped_because"))


def mibi_seed(mibi, seed: int, budget: float, matched: bool) -> dict:
    names = list(PRECISIONS) + ([MATCHED] if matched else [])
    runs = {name: [] for name in names}
    for held in MIBI_IDS:
        fold = make_fold(mibi, held)
        for name in names:
            if name == MATCHED:
                config = TrainingConfig(time_budget_s=1e6, max_iterations=runs["float32"][-1]["iterations"],
                                        device="cpu", seed=seed, mixed_precision=True)
            else:
                config = TrainingConfig(time_budget_s=budget, device="cpu", seed=seed, mixed_precision=PRECISIONS[name])
            model = ImPartialModel.train(fold.images, fold.scribbles, tasks_for("nuclei", 1), NetworkConfig(1), config)
            row = scored(model, fold.test_image, fold.test_truth, config.mixed_precision, "nuclei")
            runs[name].append(row)
            print(f"MIBI seed {seed}, image {held}, {name}: {row['iterations']} iterations ({row['stopped']}), "
                  f"F1@0.5 {row['f1']:.3f}, mDICE {row['mdice']:.3f}", flush=True)
    return runs


def mp6843_seed(fields, seed: int, budget: float) -> dict:
    runs = {name: [] for name in PRECISIONS}
    for train, test in folds(fields):
        for name, mixed in PRECISIONS.items():
            config = TrainingConfig(time_budget_s=budget, device="cpu", seed=seed, mixed_precision=mixed)
            model = train_fold(train, seed, config)
            row = scored(model, test.image, test.truth, mixed, "cells", nuclear_channel=NUCLEAR_CHANNEL)
            runs[name].append(row)
            print(f"MP6843 seed {seed}, field {test.id}, {name}: {row['iterations']} iterations ({row['stopped']}), "
                  f"F1@0.5 {row['f1']:.3f}, mDICE {row['mdice']:.3f}", flush=True)
    return runs


def summary(title: str, runs: dict) -> None:
    for name, rows in runs.items():
        print(f"{title}, {name}: F1@0.5 {np.mean([r['f1'] for r in rows]):.3f}, mDICE "
              f"{np.mean([r['mdice'] for r in rows]):.3f}, iterations {np.mean([r['iterations'] for r in rows]):.0f}",
              flush=True)


def prediction_check(mibi, seed: int) -> None:
    """One 60-s model (fold holding out image 0) predicted in both precisions."""
    from impartial_core.instances import nuclei_from_probability

    fold = make_fold(mibi, MIBI_IDS[0])
    model = ImPartialModel.train(fold.images, fold.scribbles, tasks_for("nuclei", 1), NetworkConfig(1),
                                 TrainingConfig(time_budget_s=60, device="cpu", seed=seed))
    threshold = model.threshold("nuclei")
    for image, truth in zip(mibi.images, mibi.truth):
        p32, p16 = (model.predict(image, device="cpu", mixed_precision=m)["nuclei"].foreground_probability
                    for m in (False, True))
        n32, n16 = nuclei_from_probability(p32, threshold), nuclei_from_probability(p16, threshold)
        print(f"prediction: probability changes by at most {np.abs(p32 - p16).max():.4f} (mean "
              f"{np.abs(p32 - p16).mean():.5f}); F1@0.5 against the truth {evaluate_image(None, n32, truth)['f1_iou50']:.3f} "
              f"(float32) / {evaluate_image(None, n16, truth)['f1_iou50']:.3f} (bfloat16); the two agree at "
              f"F1@0.5 {evaluate_image(None, n16, n32)['f1_iou50']:.3f}", flush=True)
    big = np.tile(mibi.images[0], (6, 6))[:2048, :2048]
    for name, mixed in list(PRECISIONS.items()) * 2:
        start = time.perf_counter()
        model.predict(big, device="cpu", mixed_precision=mixed)
        print(f"prediction of 2048², {name}: {time.perf_counter() - start:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--mp6843-seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--time-budget-s", type=float, default=180.0)
    parser.add_argument("--matched-iterations", action="store_true",
                        help="also train each MIBI fold in bfloat16 for the float32 training's iterations")
    args = parser.parse_args()
    if not bfloat16_native(resolve_device("cpu")):
        sys.exit("this CPU has no native bfloat16 (AVX-512 BF16): nothing to compare")
    mibi = load_mibi()
    prediction_check(mibi, 0)
    for seed in args.seeds:
        summary(f"MIBI seed {seed}", mibi_seed(mibi, seed, args.time_budget_s, args.matched_iterations))
    fields = load_mp6843() if args.mp6843_seeds else []
    for seed in args.mp6843_seeds:
        summary(f"MP6843 seed {seed}", mp6843_seed(fields, seed, args.time_budget_s))


if __name__ == "__main__":
    main()
