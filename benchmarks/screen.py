"""A screen in one headless run: many image sets, a saved model, memory and time from first set to last.

    python -m benchmarks.screen                 # 1000 image sets, ImPartial then IdentifyPrimaryObjects
    python -m benchmarks.screen --quick         # 30 image sets, ImPartial only

A cluster job of a screen is one ``cellprofiler -c -r`` process working through its image sets
one after the other. What it must not do over a thousand of them: grow in memory, slow down, or
segment the last image set differently from the first. The image sets are the four MIBI dsDNA
images, each set one of them turned by a random multiple of 90 degrees, perhaps mirrored, and
scaled by a random gain (0.5-2) and offset, so that no two files are alike, and written as
16-bit TIFFs; two of them, a third
and two thirds of the way in, are blank (all zero, and constant at the images' median), which the
module must flag (``ImPartial_UsableInput`` = 0) without stopping. The pipeline is the speed
benchmark's (Images, Metadata, NamesAndTypes, Groups, ImPartial "Use a saved model" or
IdentifyPrimaryObjects, ExportToSpreadsheet), run with ``-L 20`` so that CellProfiler logs each
module's time; the resident memory of CellProfiler's process tree is read each time it logs the
segmentation module of a set.

Checks, each reported: the spreadsheet has one row per image set; the blank sets are flagged and
have no nuclei, every other set is usable and has some; and the nuclei of a sample of image sets
(first, last, and one every tenth of the way) are counted again by ``impartial predict`` in a
separate process: the same model and code outside CellProfiler must count the same nuclei, so
nothing carried from one image set to the next changes the objects.
"""
from __future__ import annotations

import argparse
import collections
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.data import load_mibi, markdown_table, results_folder, write_results
from benchmarks.speed import _LOG_LINE, headless_command, saved_model_and_pipelines

SEGMENTERS = {"impartial": ("ImPartial", "ImPartial (saved model)"),
              "identifyprimaryobjects": ("IdentifyPrimaryObjects", "IdentifyPrimaryObjects")}


def write_image_sets(folder: Path, images: Sequence[np.ndarray], n_sets: int, seed: int = 0) -> List[int]:
    """Write ``n_sets`` single-channel 16-bit TIFFs ``set00001.tif`` ... into ``folder``; the
    1-based numbers of the blank ones are returned."""
    import tifffile

    rng = np.random.default_rng(seed)
    median = float(np.median(np.concatenate([im.ravel() for im in images])))
    blanks = sorted({max(1, n_sets // 3), max(2, (2 * n_sets) // 3)}) if n_sets >= 3 else []
    for number in range(1, n_sets + 1):
        if number in blanks:
            image = np.full(images[0].shape, 0.0 if number == blanks[0] else median, np.float32)
        else:
            image = np.rot90(images[rng.integers(len(images))], k=int(rng.integers(4)))
            if rng.random() < 0.5:
                image = image[:, ::-1]
            image = image * rng.uniform(0.5, 2.0) + rng.uniform(0.0, 0.1) * float(image.max())
        # 16-bit integers, as microscopes write them (CellProfiler 5 reads a float TIFF holding values
        # above 1 as whole numbers)
        tifffile.imwrite(folder / f"set{number:05d}.tif", np.clip(image * 20000, 0, 65535).astype(np.uint16))
    return blanks


def tree_rss(process) -> int:
    """Resident bytes of ``process`` (a psutil.Process) and its children; 0 once it has ended."""
    import psutil  # a CellProfiler dependency, as is this benchmark

    try:
        members = [process] + process.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_cellprofiler(pipeline: Path, images: Path, out: Path, segmenter: str, log=print) -> Dict:
    """One headless run; per image set: the modules' summed wall time, the segmenter's, and the
    process tree's resident memory when the segmenter's time was logged."""
    import psutil

    start = time.perf_counter()
    child = subprocess.Popen(headless_command(pipeline, images, out), cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(child.pid)
    sets: Dict[int, Dict] = {}
    tail: Deque[str] = collections.deque(maxlen=60)
    for line in child.stdout:
        tail.append(line)
        for image, module, _, _, wall in _LOG_LINE.findall(line):
            entry = sets.setdefault(int(image), {"wall_s": 0.0})
            entry["wall_s"] += float(wall)
            if module == segmenter:
                entry.update(segment_s=float(wall), rss=tree_rss(watched), at_s=time.perf_counter() - start)
                if int(image) % 100 == 0:
                    log(f"    set {image}: {entry['rss'] / 2**20:.0f} MB, {entry['at_s']:.0f} s")
    returncode = child.wait()
    return {"returncode": returncode, "wall_s": time.perf_counter() - start, "sets": sets, "log_tail": "".join(tail)}


def read_image_table(out: Path) -> List[Dict[str, str]]:
    """The rows of the per-image spreadsheet ExportToSpreadsheet wrote (empty if none)."""
    found = sorted(out.glob("*Image.csv"))
    if not found:
        return []
    with open(found[0], newline="") as fd:
        return list(csv.DictReader(fd))


def counted_again(model_path: Path, files: Sequence[Path], folder: Path) -> Dict[str, int]:
    """Nuclei per file as ``impartial predict`` counts them, in a process of its own."""
    import tifffile

    impartial = shutil.which("impartial", path=str(Path(sys.executable).parent)) or "impartial"
    command = [impartial, "predict", "--model", str(model_path), "--out-dir", str(folder)]
    for path in files:
        command += ["--image", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 3):
        raise RuntimeError(f"impartial predict failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return {path.name: len(np.unique(tifffile.imread(folder / f"{path.stem}_nuclei.tif"))) - 1 for path in files}


def blocks(sets: Dict[int, Dict], n_blocks: int = 10) -> List[Dict]:
    """The run cut into ``n_blocks`` consecutive blocks of image sets: mean times, memory at the end."""
    numbers = sorted(n for n, s in sets.items() if "rss" in s)
    out = []
    for part in np.array_split(np.asarray(numbers), min(n_blocks, len(numbers))):
        chosen = [sets[int(n)] for n in part]
        out.append(dict(first=int(part[0]), last=int(part[-1]), wall_s=float(np.mean([s["wall_s"] for s in chosen])),
                        segment_s=float(np.mean([s["segment_s"] for s in chosen])), rss_mb=chosen[-1]["rss"] / 2**20))
    return out


def screen(name: str, work: Path, images: Path, blanks: Sequence[int], n_sets: int, log=print) -> Dict:
    """Run ``name``'s pipeline over the image sets and check what it wrote."""
    segmenter, _ = SEGMENTERS[name]
    out = work / f"out_{name}"
    log(f"  {name}: {n_sets} image sets ...")
    run = run_cellprofiler(work / f"{name}.cppipe", images, out, segmenter, log)
    rows = read_image_table(out)
    counts = {row["FileName_DNA"]: int(float(row["Count_Nuclei"])) for row in rows}
    problems = []
    if run["returncode"] != 0:
        problems.append(f"exit status {run['returncode']}")
    if len(rows) != n_sets:
        problems.append(f"{len(rows)} spreadsheet rows for {n_sets} image sets")
    blank_names = {f"set{b:05d}.tif" for b in blanks}
    if name == "impartial":
        usable = {row["FileName_DNA"]: int(float(row["ImPartial_UsableInput"])) for row in rows}
        wrong = [f for f in usable if usable[f] != (0 if f in blank_names else 1)]
        if wrong:
            problems.append(f"UsableInput wrong for {', '.join(wrong[:5])}")
        wrong_counts = [f for f in counts if (counts[f] > 0) == (f in blank_names)]
        if wrong_counts:
            problems.append(f"nuclei in a blank set or none in a field: {', '.join(wrong_counts[:5])}")
    for problem in problems:
        log(f"  {name}: PROBLEM: {problem}")
    if problems:
        log(run["log_tail"])
    per_block = blocks(run["sets"])
    log(f"  {name}: {run['wall_s']:.0f} s; " + "; ".join(f"sets {b['first']}-{b['last']} {b['wall_s']:.2f} s/set "
                                                            f"{b['rss_mb']:.0f} MB" for b in per_block))
    return dict(pipeline=name, n_sets=n_sets, wall_s=run["wall_s"], blocks=per_block, counts=counts,
                blank_counts={f: counts.get(f) for f in sorted(blank_names)}, problems=problems)


def main(argv: Optional[Sequence[str]] = None, log=print) -> Dict:
    from impartial_core.config import TrainingConfig

    from benchmarks.accuracy import header_lines

    parser = argparse.ArgumentParser(description="ImPartial over a screen's worth of image sets in one headless run")
    parser.add_argument("--sets", type=int, default=None, help="image sets (default 1000; 30 with --quick)")
    parser.add_argument("--quick", action="store_true", help="30 image sets, ImPartial only")
    parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=None,
                        help="also run IdentifyPrimaryObjects over the same sets (default: yes unless --quick)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results; with --quick out/benchmarks-quick")
    args = parser.parse_args(argv)
    args.out = results_folder(args.out, args.quick)
    n_sets = args.sets or (30 if args.quick else 1000)
    control = (not args.quick) if args.control is None else args.control
    command = "python -m benchmarks.screen " + " ".join(argv if argv is not None else sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="impartial_screen_"))
    start = time.perf_counter()
    try:
        mibi = load_mibi(args.data)
        # A fixed number of iterations: the same model on any machine of a kind (its accuracy is
        # the accuracy benchmark's business; here it must only find nuclei).
        model_path = saved_model_and_pipelines(
            work, mibi, TrainingConfig(max_iterations=100 if args.quick else 300, time_budget_s=float("inf")))
        images = work / "images"
        images.mkdir()
        blanks = write_image_sets(images, mibi.images, n_sets)
        runs = [screen(name, work, images, blanks, n_sets, log)
                for name in (("impartial", "identifyprimaryobjects") if control else ("impartial",))]
        sample = sorted({1, n_sets, *blanks, *(int(k) for k in np.linspace(1, n_sets, 11))})
        files = [images / f"set{k:05d}.tif" for k in sample]
        again = counted_again(model_path, files, work / "predict")
        module_counts = runs[0]["counts"]
        agree = [dict(file=f, module=module_counts.get(f), predict=n) for f, n in again.items()]
        mismatched = [a for a in agree if a["module"] != a["predict"]]
        log(f"  counted again by impartial predict: {len(agree) - len(mismatched)} of {len(agree)} image sets alike")
        results = dict(command=command, n_sets=n_sets, image_shape=list(mibi.images[0].shape), blanks=blanks,
                       runs=runs, counted_again=agree, mismatched=mismatched,
                       elapsed_s=time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n\n".join(["## A screen in one headless run", header_lines(command), screen_table(results)])
    log("\n" + text)
    write_results(args.out, "screen", text, results)
    return results


def screen_table(data: Dict) -> str:
    header = ["pipeline", "image sets", "s / set (all modules)", "segmentation s / set", "resident memory (MB)"]
    rows = []
    for run in data["runs"]:
        name = SEGMENTERS[run["pipeline"]][1]
        for b in run["blocks"]:
            rows.append([name, f"{b['first']}-{b['last']}", f"{b['wall_s']:.2f}", f"{b['segment_s']:.2f}", f"{b['rss_mb']:.0f}"])
    lines = []
    for run in data["runs"]:
        name = SEGMENTERS[run["pipeline"]][1]
        first, last = run["blocks"][0], run["blocks"][-1]
        lines.append(f"- {name}: {run['n_sets']} image sets in {run['wall_s']:.0f} s (start-up included); memory "
                     f"{first['rss_mb']:.0f} MB after set {first['last']}, {last['rss_mb']:.0f} MB after set "
                     f"{last['last']} ({last['rss_mb'] - first['rss_mb']:+.0f} MB); blank sets' nuclei {run['blank_counts']}; "
                     + ("checks: all passed" if not run["problems"] else "PROBLEMS: " + "; ".join(run["problems"])))
    alike = len(data["counted_again"]) - len(data["mismatched"])
    lines.append(f"- The module's nuclei counted again by `impartial predict` in a process of its own, on "
                 f"{len(data['counted_again'])} image sets from first to last: {alike} alike"
                 + "".join(f", {a['file']} {a['module']} against {a['predict']}" for a in data["mismatched"]))
    shape = "x".join(str(s) for s in data["image_shape"])
    return (f"Image sets of one {shape} 16-bit channel (the MIBI images turned, mirrored, rescaled; blank sets at "
            f"{', '.join(str(b) for b in data['blanks'])}); one `cellprofiler -c -r` process per pipeline, "
            "memory of its process tree when each set's segmentation was logged (the last set of each block).\n\n"
            + markdown_table(header, rows) + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
