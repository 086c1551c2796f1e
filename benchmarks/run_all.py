"""Run every benchmark and print all tables: ``python -m benchmarks`` (or ``python -m benchmarks.run_all``).

    python -m benchmarks            # full: 3 seeds, default settings (about an hour on 2 CPU cores)
    python -m benchmarks --quick    # smoke version (a few minutes): 1 seed, short trainings
    python -m benchmarks --seeds 5 --skip speed

Writes benchmarks/results/{accuracy,speed,screen,screen_cells}.{md,json}, time_to_accuracy.png and latest.md (the
tables with date, machine and command: what the README shows); with CUDA, gpu.{md,json} too.
``--quick`` writes to out/benchmarks-quick instead (unless ``--out`` says otherwise).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from benchmarks import accuracy, gpu, screen, speed
from benchmarks.data import results_folder


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Run the accuracy and speed benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smoke version: 1 seed, short trainings, smaller images")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "speed", "screen", "gpu", "impartial"],
                        help="leave out a benchmark ('impartial': accuracy baselines only)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results; with --quick out/benchmarks-quick")
    args = parser.parse_args(argv)
    args.out = results_folder(args.out, args.quick)
    start = time.perf_counter()
    common = (["--data", args.data] if args.data else []) + ["--out", args.out]
    texts, reuse, baseline_f1 = [], None, None
    if "accuracy" not in args.skip:
        acc_args = common + ["--seeds", str(args.seeds)] + (["--quick"] if args.quick else []) \
            + (["--skip-impartial"] if "impartial" in args.skip else [])
        results = accuracy.main(acc_args)
        texts.append((Path(args.out) / "accuracy.md").read_text())
        n100 = results.get("mibi", {}).get("budgets", {}).get("n100", {})
        baseline_f1 = {"IdentifyPrimaryObjects": n100["CellProfiler IdentifyPrimaryObjects (no scribbles)"]["aggregate"]["f1_iou50"]["mean"],
                       "random forest": n100["Random forest, multiscale features (ilastik-like)"]["aggregate"]["f1_iou50"]["mean"]} \
            if n100 else None
        # the default-budget n100 run of seed 0 is one point of the time-to-accuracy curve
        default_runs = n100.get("ImPartial (default settings)", {}).get("runs", [])
        if default_runs and not args.quick and default_runs[0].get("stopped_because") == "time budget":
            reuse = {float(results["training_config"]["time_budget_s"]): default_runs[0]["summary"]}
    if "speed" not in args.skip:
        speed.main(common + (["--quick"] if args.quick else []), reuse_tta=reuse, baseline_f1=baseline_f1)
        texts.append((Path(args.out) / "speed.md").read_text())
    if "screen" not in args.skip:
        for task in screen.TASKS:
            screen.main(common + ["--task", task] + (["--quick"] if args.quick else []))
            texts.append((Path(args.out) / f"{screen.results_stem(task)}.md").read_text())
    if "gpu" not in args.skip and torch.cuda.is_available():
        gpu.main(common + (["--skip", "compile"] if args.quick else []))
        texts.append((Path(args.out) / "gpu.md").read_text())
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    latest = Path(args.out) / "latest.md"
    latest.write_text(f"<!-- written by `{command.strip()}` in {time.perf_counter() - start:.0f} s -->\n\n" + "\n\n".join(texts))
    print(f"\nall benchmarks done in {time.perf_counter() - start:.0f} s; tables in {latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
