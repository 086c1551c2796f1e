"""CPU threads per job: CellProfiler's Analysis mode with 2 workers, and a job under a CPU quota.

    python -m benchmarks.threads            # both parts, each row twice (about 12 minutes on 2 CPU cores)
    python -m benchmarks.threads --quick    # smaller images
    python -m benchmarks.threads --parts analysis

Each worker or job applies a saved nuclei model (default network, trained here for 100 iterations)
to 2000x2000 images tiled from the bundled MIBI images. Rows:

- **analysis**: CellProfiler 5's Analysis mode (what *Analyze Images* runs: the analysis runner and
  its worker processes, driven here without the GUI) with 2 workers on 8 images: the module's
  default (*CPU threads* 0: the CPUs shared among the workers), the same with
  ``OMP_NUM_THREADS=1``, and every worker using all the cores (*CPU threads* set to the core count:
  what PyTorch does on its own, the behaviour before threads were set).
- **quota**: ``impartial predict`` on 2 images inside a cgroup limited to one CPU's worth of time
  (made here when the machine allows it: root and a writable cgroup v1 ``cpu`` controller):
  the default (which reads the quota), ``--threads 1``, and ``--threads`` set to the core count
  (PyTorch's own choice, which ignores quotas).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from benchmarks.data import data_dir, machine_description, markdown_table, results_folder, write_results

REPO = Path(__file__).resolve().parents[1]
QUOTA_CGROUP = Path("/sys/fs/cgroup/cpu/impartial_benchmark")


def _images(folder: Path, count: int, side: int, data: Optional[str]) -> List[Path]:
    """``count`` images of side x side pixels tiled from the MIBI images (each a different tiling)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    sources = [np.asarray(tifffile.imread(str(p)), np.float32) for p in sorted((data_dir(data) / "mibi_dsdna").glob("image?.tif"))]
    paths = []
    for i in range(count):
        source = np.roll(sources[i % len(sources)], 37 * i, axis=1)
        reps = -(-side // source.shape[0])
        paths.append(folder / f"image{i}.tif")
        tifffile.imwrite(str(paths[-1]), np.tile(source, (reps, reps))[:side, :side])
        # the shipped pipeline's NamesAndTypes pairs each image with a scribble image (unused by a saved model)
        tifffile.imwrite(str(folder / f"image{i}_scribbles_n100.tif"), np.zeros((side, side), np.uint8))
    return paths


def _scribbles(images: Sequence[Path]) -> List[Path]:
    return [p.with_name(p.stem + "_scribbles_n100.tif") for p in images]


def _model(folder: Path, data: Optional[str]) -> Path:
    from impartial_core.cli import main

    mibi = data_dir(data) / "mibi_dsdna"
    path = folder / "impartial_model.safetensors"
    if not path.exists():
        status = main(["train", "--image", str(mibi / "image0.tif"), "--scribbles", str(mibi / "image0_scribbles_n200.tif"),
                       "--model", str(path), "--iterations", "100", "--no-time-limit", "--quiet"])
        assert status == 0
    return path


# ------------------------------------------------------------------------------------ Analysis mode
def _analysis_pipeline(folder: Path, model: Path, threads: int) -> Path:
    from impartial_cellprofiler import pipelines

    pipelines.start_headless(REPO / "plugins")
    pipeline, problems = pipelines.load_pipeline(REPO / "pipelines" / "nuclei_mibi.cppipe")
    assert not problems, problems
    for each in pipeline.modules():  # no figure windows: no display requests for a GUI to answer
        each.show_window = False
    module = pipelines.find_module(pipeline, "ImPartial")
    pipelines.set_values(module, model_mode="Use a saved model", model_directory=pipelines.absolute_folder(model.parent),
                         model_file_name=model.name, use_gpu=False, cpu_threads=threads)
    return pipelines.write_pipeline(pipeline, folder / f"apply_{threads}.cppipe")


def run_analysis(pipeline: str, out: str, files: Sequence[str], workers: int) -> None:
    """In this process: run ``pipeline`` on ``files`` as *Analyze Images* does, with ``workers`` worker
    processes; print the wall time and the nuclei count."""
    import logging
    import threading

    import cellprofiler_core.preferences as preferences

    logging.basicConfig(level=logging.INFO)  # the workers log at this level too: their thread counts show
    preferences.set_headless()
    preferences.set_plugin_directory(str(REPO / "plugins"), globally=False)
    preferences.set_default_output_directory(out)
    from cellprofiler_core.reader import ALL_READERS, fill_readers

    # The workers read images as `cellprofiler -e imageio_reader` does (Bio-Formats would start Java
    # and fetch its jars): the GUI's Preferences > image readers, sent to each worker.
    fill_readers(check_config=False)
    for reader in ALL_READERS:
        preferences.config_write_typed(f"Reader.{reader}.enabled", reader == "ImageIO", key_type=bool)
    from cellprofiler_core.analysis._analysis import Analysis  # what the GUI's Analyze Images runs
    from cellprofiler_core.analysis.event import Finished
    from cellprofiler_core.analysis.reply import Ack
    from cellprofiler_core.analysis.request import Display, DisplayPostGroup, ExceptionReport
    from cellprofiler_core.constants.worker import ED_STOP
    from cellprofiler_core.utilities.zmq import Reply
    from cellprofiler_core.image import ImageSetList
    from cellprofiler_core.measurement import Measurements
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.workspace import Workspace

    pipeline_ = Pipeline()
    pipeline_.load(pipeline)
    pipeline_.add_urls(["file://" + os.path.abspath(f) for f in files])
    measurements = Measurements()
    workspace = Workspace(pipeline_, None, None, None, measurements, ImageSetList())
    assert pipeline_.prepare_run(workspace), "prepare_run failed"
    done, result = threading.Event(), {}

    def listen(event):
        if isinstance(event, Finished):
            result["measurements"] = event.measurements
            done.set()
        elif isinstance(event, (Display, DisplayPostGroup)):
            event.reply(Ack())
        elif isinstance(event, ExceptionReport):
            result["error"] = event.message
            event.reply(Reply(disposition=ED_STOP))
            done.set()

    analysis = Analysis(pipeline_, measurements)
    start = time.perf_counter()
    analysis.start(listen, num_workers=workers)
    done.wait(1800)
    seconds = time.perf_counter() - start
    analysis.cancel()
    if "error" in result:
        raise RuntimeError(result["error"])
    final = result["measurements"]
    counts = [int(c) for c in final.get_all_measurements("Image", "Count_Nuclei")]
    print(f"RESULT {seconds:.2f} {sum(counts)} {len(counts)}", flush=True)


def _analysis_row(name: str, pipeline: Path, out: Path, files: List[Path], env: dict) -> dict:
    files = list(files) + _scribbles(files)
    command = [sys.executable, "-m", "benchmarks.threads", "--child-analysis", str(pipeline), str(out)] + [str(f) for f in files]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{name}: no result\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds, nuclei, images = lines[-1].split()[1:]
    # what each worker logged when it set its threads (impartial_core.threads), e.g. "using 1 CPU thread(s)"
    chosen = sorted(set(re.findall(r"using (\d+) CPU thread", proc.stderr + proc.stdout)))
    print(f"{name}: {float(seconds):.1f} s, {nuclei} nuclei in {images} images, threads set {chosen}", flush=True)
    return {"run": name, "seconds": float(seconds), "nuclei": int(nuclei), "images": int(images),
            "threads_logged": chosen}


def analysis_part(work: Path, model: Path, images: List[Path], cores: int, repeats: int) -> List[dict]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    base.update(MPLBACKEND="Agg", PYTHONPATH=str(REPO))
    default, everything = _analysis_pipeline(work, model, 0), _analysis_pipeline(work, model, cores)
    rows = [("default (automatic: the CPUs shared among the workers)", default, base),
            ("OMP_NUM_THREADS=1", default, dict(base, OMP_NUM_THREADS="1")),
            (f"every worker on all {cores} cores (PyTorch's own choice; before)", everything, base)]
    results = []
    for repeat in range(repeats):  # interleaved, so that a slow spell of the machine hits every row
        for name, pipeline, env in rows:
            out = work / ("out_" + str(len(results)))
            out.mkdir(exist_ok=True)
            results.append(dict(_analysis_row(name, pipeline, out, images, env), part="analysis, 2 workers"))
    return results


# ------------------------------------------------------------------------------------ a CPU quota
def _make_quota_cgroup() -> Optional[Path]:
    """A cgroup v1 ``cpu`` group of one CPU's worth of time, if this machine lets us make one."""
    try:
        QUOTA_CGROUP.mkdir(exist_ok=True)
        (QUOTA_CGROUP / "cpu.cfs_period_us").write_text("100000")
        (QUOTA_CGROUP / "cpu.cfs_quota_us").write_text("100000")
    except OSError:
        return None
    return QUOTA_CGROUP


def quota_part(work: Path, model: Path, images: List[Path], cores: int, repeats: int) -> List[dict]:
    group = _make_quota_cgroup()
    if group is None:
        print("quota: cannot make a cgroup with a CPU quota here (needs root and cgroup v1); left out")
        return []
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    impartial = str(Path(sys.executable).parent / "impartial")
    results = []
    runs = (("default (reads the quota)", []), ("--threads 1", ["--threads", "1"]),
            (f"--threads {cores} (PyTorch's own choice; before)", ["--threads", str(cores)]))
    for name, extra in [run for _ in range(repeats) for run in runs]:
        out = work / ("quota_" + str(len(results)))
        # the shell moves itself into the cgroup, then runs the job: the job and its threads are limited
        script = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        command = ["sh", "-c", script, "sh", impartial, "-v", "predict", "--model", str(model), "--out-dir", str(out),
                   "--overwrite"] + [a for p in images for a in ("--image", str(p))] + extra
        start = time.perf_counter()
        proc = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        chosen = sorted(set(re.findall(r"using (\d+) CPU thread", proc.stderr)))
        print(f"quota, {name}: {seconds:.1f} s, threads set {chosen}", flush=True)
        results.append({"part": "impartial predict, 1-CPU cgroup quota", "run": name, "seconds": seconds,
                        "images": len(images), "threads_logged": chosen})
    return results


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="*", default=["analysis", "quota"], choices=["analysis", "quota"])
    parser.add_argument("--quick", action="store_true", help="images of 800x800, one run each")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each row, interleaved (default 2)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = results_folder(args.out, args.quick)
    side = 800 if args.quick else 2000
    args.repeats = 1 if args.quick else args.repeats
    cores = len(os.sched_getaffinity(0))
    results: List[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = _model(work, args.data)
        images = _images(work / "images", 8, side, args.data)
        if "analysis" in args.parts:
            results += analysis_part(work, model, images, cores, args.repeats)
        if "quota" in args.parts:
            results += quota_part(work, model, images[:2], cores, args.repeats)
    rows, medians = [], {}
    for r in results:
        medians.setdefault((r["part"], r["run"]), []).append(r["seconds"])
    for (part, run), times in medians.items():
        fastest = min(float(np.median(t)) for (p, _), t in medians.items() if p == part)
        logged = sorted({t for r in results if (r["part"], r["run"]) == (part, run) for t in r.get("threads_logged", [])})
        rows.append([part, run, ", ".join(logged) or "-", f"{np.median(times):.1f} s ({', '.join(f'{t:.1f}' for t in times)})",
                     f"{np.median(times) / fastest:.2f}x"])
    command = "python -m benchmarks.threads " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "## CPU threads per job", "", f"`{command.strip()}`; {machine_description()}", "",
        f"A saved nuclei model applied to {side}x{side} images (8 in Analysis mode, 2 under the quota).", "",
        f"Median of {args.repeats} interleaved runs (each run's time in brackets); \"threads set\" is what "
        "the workers logged when they set PyTorch's threads.", "",
        markdown_table(["where", "threads", "threads set", "wall time", "vs the fastest"], rows)])
    write_results(out, "threads", text, {"runs": results, "side": side, "cores": cores})
    print(text)
    return {"runs": results}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-analysis":
        run_analysis(sys.argv[2], sys.argv[3], sys.argv[4:], workers=2)
    else:
        main()
