"""Does a slower CPU's 3-minute training cost the MP6843 cells accuracy?

    python experiments/training_budget_cells.py --budgets 450 --seeds 0 1

The module trains for a time budget (3 minutes by default), so a slower CPU fits fewer
iterations: about 490 for the MP6843 folds on 2 AMD EPYC cores with AVX2 only (float32), about
1100 in float32 and 1800 in bfloat16 on 2 Zen 4 cores. The accuracy benchmark's MP6843 part
(``benchmarks.mp6843.impartial_run``) is run here with other budgets, the same folds, scribbles
and seeds, so that its rows pair with the benchmark's 3-minute rows of the same machine.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import training_config  # noqa: E402
from benchmarks.mp6843 import impartial_run, load_mp6843  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", type=float, nargs="+", default=[450.0], help="training seconds per fold")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    fields = load_mp6843()
    for budget in args.budgets:
        for seed in args.seeds:
            run = impartial_run(fields, training_config(seed, False, time_budget_s=budget))
            summary = run["summary"]
            iterations = [field["iterations"] for field in run["per_field"]]
            print(f"budget {budget:g} s, seed {seed}: iterations {min(iterations)}-{max(iterations)}, F1@0.5 "
                  f"{summary['f1_iou50']:.3f}, mDICE {summary['mdice']:.3f}, {summary['n_pred']} cells for "
                  f"{summary['n_true']}, matched {summary['tp_iou50']}; per field "
                  + " ".join(f"{f['field']}:{f['f1_iou50']:.3f}" for f in run["per_field"]), flush=True)


if __name__ == "__main__":
    main()
