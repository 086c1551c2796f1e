"""The same pipeline in CellProfiler 5 and 4.2.8.1: does it give the same model and objects?

    python -m benchmarks.lines                    # 300 iterations, plus 30-s time budgets
    python -m benchmarks.lines --iterations 100 --quick

Runs the shipped ``pipelines/nuclei_mibi.cppipe`` headless on the four bundled MIBI images, as a
user would (``cellprofiler -c -r``, CellProfiler 5 with ``-e imageio_reader``), with the module's
*Train for* set to a fixed number of iterations, in CellProfiler 5 (PyTorch 2.13, 2 threads and 1
thread available) and 4.2.8.1 (PyTorch 2.8, 2 threads); then with a time budget in both lines. Needs both
environments (``scripts/setup_env.sh all``). Per run: iterations, the weights' largest difference
from the first run, nuclei per image, F1@0.5 against the ground truth, and how many of the first
run's nuclei each run reproduces (F1@0.5 between the two label images).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from benchmarks.data import data_dir, fmt, machine_description, markdown_table, results_folder, write_results

REPO = Path(__file__).resolve().parents[1]
LINES = {"5": REPO / ".venv", "4.2.8.1": REPO / ".venv-cp42"}
FIXED = "A fixed number of iterations (the same model on any machine)"


def _pipeline(path: Path, iterations: int, budget: Optional[float]) -> Path:
    """The shipped MIBI pipeline with training set to ``iterations`` (or a time ``budget``)."""
    from impartial_cellprofiler import pipelines

    pipelines.start_headless(REPO / "plugins")
    pipeline, problems = pipelines.load_pipeline(REPO / "pipelines" / "nuclei_mibi.cppipe")
    assert not problems, problems
    module = pipelines.find_module(pipeline, "ImPartial")
    module.use_gpu.value = False
    module.max_iterations.value = iterations
    if budget is None:
        module.training_length.value = FIXED
    else:
        module.time_budget.value = budget
    return pipelines.write_pipeline(pipeline, path)


def _run(line: str, pipeline: Path, inputs: Path, out: Path, threads: Optional[int]) -> float:
    """Run the pipeline with CellProfiler ``line``; seconds taken. The log is ``out/run.log``."""
    venv = LINES[line]
    command = [str(venv / "bin" / "cellprofiler"), "-c", "-r", "-p", str(pipeline), "-i", str(inputs), "-o", str(out),
               "--plugins-directory", str(REPO / "plugins")] + (["-e", "imageio_reader"] if line == "5" else [])
    env = dict(os.environ, JAVA_HOME=os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64"),
               MPLBACKEND="Agg", PYTHONPATH=str(REPO))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
        if threads:
            env[var] = str(threads)
    shutil.rmtree(out, ignore_errors=True)  # a model left by an earlier run would be reused, not trained
    out.mkdir(parents=True)
    start = time.perf_counter()
    with open(out / "run.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO), check=False)
    if not (out / "Image.csv").is_file():
        raise RuntimeError(f"CellProfiler {line} wrote no Image.csv; see {out / 'run.log'}")
    return time.perf_counter() - start


def _outputs(out: Path) -> Dict:
    import tifffile

    from impartial_core.model import ImPartialModel

    with open(out / "Image.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    stems = ["image%s" % row["Metadata_ImageID"] for row in rows]
    model = ImPartialModel.load(out / "impartial_model.safetensors")
    return {"counts": {stem: int(float(row["Count_Nuclei"])) for stem, row in zip(stems, rows)},
            "labels": {stem: np.asarray(tifffile.imread(str(out / f"{stem}_nuclei_impartial.tiff"))) for stem in stems},
            "weights": {k: v.numpy() for k, v in model.net.state_dict().items()},
            "iterations": model.training_summary["iterations"], "fingerprint": model.fingerprint}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    import tifffile

    from impartial_core.metrics import match_at_iou

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300, help="the fixed number of training iterations")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of the time-budget runs (0: none)")
    parser.add_argument("--quick", action="store_true", help="smoke version: the fixed-iteration runs of 2 threads")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = Path(results_folder(args.out, args.quick))
    work = REPO / "out" / "lines"
    work.mkdir(parents=True, exist_ok=True)
    inputs = data_dir(args.data) / "mibi_dsdna"
    fixed = _pipeline(work / "fixed.cppipe", args.iterations, None)
    runs = [(f"CellProfiler 5, {args.iterations} iterations, 2 threads", "5", fixed, 2),
            (f"CellProfiler 4.2.8.1, {args.iterations} iterations, 2 threads", "4.2.8.1", fixed, 2)]
    if not args.quick:  # a machine limited to one thread: fixed work still trains on 2 (threads.REPRODUCIBLE_THREADS)
        runs.insert(1, (f"CellProfiler 5, {args.iterations} iterations, OMP_NUM_THREADS=1", "5", fixed, 1))
    if args.budget and not args.quick:
        budget = _pipeline(work / "budget.cppipe", 2000, args.budget)
        runs += [(f"CellProfiler {line}, {args.budget:.0f}-s budget, 2 threads", line, budget, 2) for line in LINES]
    results, references = [], {}
    for name, line, pipeline, threads in runs:
        folder = work / name.replace(" ", "_").replace(",", "")
        seconds = _run(line, pipeline, inputs, folder, threads)
        got = _outputs(folder)
        reference = references.setdefault(pipeline, dict(got, name=name))  # the first run of this pipeline
        weight_diff = max(float(np.abs(got["weights"][k] - reference["weights"][k]).max()) for k in got["weights"])
        stems = sorted(got["counts"])
        truth = {s: np.asarray(tifffile.imread(str(inputs / f"{s}_nuclei_labels.tif"))) for s in stems}
        f1 = np.mean([match_at_iou(got["labels"][s].astype(np.int64), truth[s].astype(np.int64), 0.5)["f1"] for s in stems])
        same = np.mean([match_at_iou(got["labels"][s].astype(np.int64), reference["labels"][s].astype(np.int64), 0.5)["f1"]
                        for s in stems])
        results.append({"run": name, "reference": reference["name"], "seconds": seconds, "iterations": got["iterations"],
                        "max_weight_difference": weight_diff, "counts": got["counts"], "f1_iou50": float(f1),
                        "agreement_f1_iou50": float(same), "same_fingerprint": got["fingerprint"] == reference["fingerprint"]})
        print(f"{name}: {seconds:.0f} s, {got['iterations']} iterations, counts {got['counts']}, "
              f"max weight difference {weight_diff:.2e}, agreement {same:.3f}", flush=True)
    header = ["run", "iterations", "nuclei (images 0, 3, 5, 7)", "F1@0.5 vs truth", "largest weight difference",
              "nuclei matching the first run's (F1@0.5)", "time"]
    rows = [[r["run"], str(r["iterations"]), ", ".join(str(r["counts"][s]) for s in sorted(r["counts"])),
             fmt(r["f1_iou50"]), f"{r['max_weight_difference']:.1e}", fmt(r["agreement_f1_iou50"]), f"{r['seconds']:.0f} s"]
            for r in results]
    command = "python -m benchmarks.lines " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## The same pipeline in CellProfiler 5 and 4.2.8.1", "", f"`{command.strip()}`; {machine_description()}", "",
        "The shipped `nuclei_mibi.cppipe` on the four bundled MIBI images, trained in the pipeline; each run is compared "
        "with the first run of its kind (fixed iterations, or time budget).", "",
        markdown_table(header, rows)])
    write_results(str(out), "lines", text, {"runs": results})
    print(text)
    return {"runs": results}


if __name__ == "__main__":
    main()
