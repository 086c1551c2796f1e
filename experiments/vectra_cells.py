"""Why do ImPartial's Vectra cells lose to IdentifyPrimaryObjects + IdentifySecondaryObjects?

    python experiments/vectra_cells.py [--seeds 0] [--maps DIR] [--time-budget-s S]
                                       [--variant default|no-ssl|dapi-prior|no-prior|ring-everywhere]

Trains the cells task on each Vectra image's traces (default settings, 3 minutes each on 2 CPU
cores), keeps the other image's cell probability, then scores the traced cells under several
ways of turning that map into cells: the distance-transform split of the cell mask (the
default), no split, and other thresholds, against CellProfiler's IdentifyPrimaryObjects +
IdentifySecondaryObjects. ``--maps DIR`` (default out/vectra_maps) saves the maps on the first
run and reuses them after.
``--variant`` trains otherwise: without the self-supervised loss, with the foreground-brighter
prior on DAPI only (most traced cells are PanCK-negative), with no prior at all, or with the
traces' background ring drawn on bright pixels too (``ring-everywhere``: the converter's rule
before it drew the ring only where the image is dark).
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.accuracy import score_traced  # noqa: E402
from benchmarks.data import load_vectra  # noqa: E402
from impartial_core.config import InstanceConfig, TrainingConfig, tasks_for  # noqa: E402
from impartial_core.instances import cells_from_probability  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.scribbles.objects import scribbles_from_instances  # noqa: E402


VARIANTS = {
    "default": ({}, None),
    "no-ssl": ({"reconstruction_weight": 0.0}, None),
    "dapi-prior": ({}, (1,)),
    "no-prior": ({}, ()),
    "ring-everywhere": ({}, None),
}


def maps_for(seed: int, folder: Path, variant: str, time_budget_s: float) -> dict:
    """Per test image id: (cell probability, threshold) from a model trained on the other image."""
    path = folder / f"vectra_cells_{variant}_seed{seed}_{time_budget_s:g}s.npz"
    if path.exists():
        data = np.load(path)
        return {int(k[1:]): (data[k], float(data["t" + k[1:]])) for k in data.files if k.startswith("p")}
    vectra = load_vectra()
    out = {}
    for train, test in [(vectra[0], vectra[1]), (vectra[1], vectra[0])]:
        overrides, brighter = VARIANTS[variant]
        tasks = tasks_for("cells", 2)
        if brighter is not None:
            tasks = tuple(dataclasses.replace(t, brighter_channels=brighter) for t in tasks)
        scribbles = (scribbles_from_instances(train.traced, task="cells") if variant == "ring-everywhere"
                     else train.scribbles)
        model = ImPartialModel.train([train.image], [scribbles], tasks, config=TrainingConfig(seed=seed, time_budget_s=time_budget_s, **overrides))
        out[test.id] = (model.predict(test.image)["cells"].foreground_probability, model.thresholds["cells"])
        print(f"seed {seed}: trained on image {train.id} ({model.training_summary.get('iterations')} iterations), "
              f"threshold {model.thresholds['cells']:.2f}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{f"p{k}": v[0] for k, v in out.items()}, **{f"t{k}": np.float64(v[1]) for k, v in out.items()})
    return out


def scores(cells: np.ndarray, traced: np.ndarray) -> dict:
    """The benchmark's scores of the traced cells, plus the share of traced pixels inside any cell."""
    return dict(score_traced(cells, traced), covered=float((cells[traced > 0] > 0).mean()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--maps", default=str(Path(__file__).resolve().parents[1] / "out" / "vectra_maps"))
    parser.add_argument("--time-budget-s", type=float, default=TrainingConfig().time_budget_s, help="training time per model")
    parser.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    args = parser.parse_args()
    vectra = {v.id: v for v in load_vectra()}
    cp = {i: baselines.identify_cells(v.image) for i, v in vectra.items()}
    rows = {}
    for seed in args.seeds:
        for test_id, (probability, learnt) in maps_for(seed, Path(args.maps), args.variant, args.time_budget_s).items():
            v = vectra[test_id]
            for label, threshold in [("learnt", learnt)] + [(f"{t:.1f}", t) for t in (0.3, 0.4, 0.5, 0.6)]:
                variants = {
                    "distance split (default)": cells_from_probability(probability, threshold),
                    "no split": cells_from_probability(probability, threshold, InstanceConfig(split_touching=False)),
                }
                for name, cells in variants.items():
                    rows.setdefault((name, label), []).append(scores(cells, v.traced))
        for test_id, v in vectra.items():
            rows.setdefault(("CellProfiler cells (IdentifySecondaryObjects)", "-"), []).append(scores(cp[test_id][1], v.traced))
    print(f"{'cells from the map':46} {'threshold':>9} {'mDICE':>6} {'mIOU':>6} {'recall@0.5':>10} {'covered':>7}  "
          "(mean over folds and seeds)")
    for (name, threshold), runs in rows.items():
        m = {k: np.mean([s[k] for s in runs]) for k in ("mdice", "miou", "recall_iou50", "covered")}
        print(f"{name:46} {threshold:>9} {m['mdice']:6.3f} {m['miou']:6.3f} {m['recall_iou50']:10.3f} {m['covered']:7.2f}")


if __name__ == "__main__":
    main()
