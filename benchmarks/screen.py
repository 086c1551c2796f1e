"""A screen in one headless run: many image sets, a saved model, memory and time from first set to last.

    python -m benchmarks.screen                 # 1000 image sets of nuclei, ImPartial then IdentifyPrimaryObjects
    python -m benchmarks.screen --task cells    # 1000 two-channel sets of whole cells, then CellProfiler's modules
    python -m benchmarks.screen --quick         # 30 image sets, ImPartial only

A cluster job of a screen is one ``cellprofiler -c -r`` process working through its image sets
one after the other. What it must not do over a thousand of them: grow in memory, slow down, or
segment the last image set differently from the first. The image sets are made from the bundled
images (``--task nuclei``: the four MIBI dsDNA images; ``--task cells``: the two traced Vectra
PanCK + DAPI images), each set one of them turned by a random multiple of 90 degrees, perhaps
mirrored, and each channel scaled by a random gain (0.5-2) and offset, so that no two files are
alike, and written as 16-bit TIFFs, one per channel (``set00001_DAPI.tif``); two of them, a
third and two thirds of the way in, are blank (all zero, and constant at the images' median),
which the module must flag (``ImPartial_UsableInput`` = 0) without stopping.

The pipelines: Images, Metadata, NamesAndTypes, Groups, then ImPartial "Use a saved model"
(nuclei: a nuclei model; cells: a cells-only model whose cells grow from the nuclei of the DAPI
channel, giving nuclei, cells and cytoplasm) or CellProfiler's own modules (IdentifyPrimaryObjects;
for cells with IdentifySecondaryObjects by propagation on PanCK and IdentifyTertiaryObjects), and
ExportToSpreadsheet, run with ``-L 20`` so that CellProfiler logs each module's time; the resident
memory of CellProfiler's process tree is read each time it logs the last segmentation module of a set.

Checks, each reported: the spreadsheet has one row per image set; the blank sets are flagged and
have no objects, every other set is usable and has some (for cells: as many nuclei as cells);
and the objects of a sample of image sets (first, last, and one every tenth of the way) are
counted again by ``impartial predict`` in a separate process: the same model and code outside
CellProfiler must count the same objects, so nothing carried from one image set to the next
changes them.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.data import ROOT, load_mibi, load_vectra, markdown_table, results_folder, write_results
from benchmarks.speed import _LOG_LINE, headless_command, saved_model, saved_model_and_pipelines, tiled


@dataclass(frozen=True)
class Task:
    """What a screen segments.

    ``channels`` are the image names in the pipelines and the files' suffixes; ``counted`` the
    object set whose counts are checked and compared; ``segmenters`` each pipeline's name, its
    label, and the modules whose logged times make its segmentation (memory is read at the last).
    """
    name: str
    channels: Tuple[str, ...]
    counted: str
    segmenters: Dict[str, Tuple[str, Tuple[str, ...]]]
    nuclear_channel: Optional[int] = None   # cells: the stain seeding them, for ``impartial predict``


TASKS = {
    "nuclei": Task("nuclei", ("DNA",), "Nuclei", {
        "impartial": ("ImPartial (saved model)", ("ImPartial",)),
        "identifyprimaryobjects": ("IdentifyPrimaryObjects", ("IdentifyPrimaryObjects",))}),
    "cells": Task("cells", ("PanCK", "DAPI"), "Cells", {
        "impartial": ("ImPartial (saved model, cells from the DAPI nuclei)", ("ImPartial",)),
        "cellprofiler": ("IdentifyPrimary + Secondary + TertiaryObjects",
                         ("IdentifyPrimaryObjects", "IdentifySecondaryObjects", "IdentifyTertiaryObjects"))},
        nuclear_channel=1),
}


def results_stem(task: str, size: Optional[int] = None) -> str:
    """The results files' name: ``screen`` (nuclei, the first screen), ``screen_cells``;
    ``screen_cells_2048`` for fields tiled to 2048 x 2048."""
    return ("screen" if task == "nuclei" else f"screen_{task}") + (f"_{size}" if size else "")


def set_file(folder: Path, number: int, channel: str) -> Path:
    return folder / f"set{number:05d}_{channel}.tif"


def set_number(file_name: str) -> int:
    """The image set number of a file ``set00042_<channel>.tif``."""
    return int(file_name[3:8])


def write_image_sets(folder: Path, stacks: Sequence[np.ndarray], channels: Sequence[str], n_sets: int,
                     seed: int = 0) -> Tuple[List[int], Dict[int, Tuple[int, int]]]:
    """Write ``n_sets`` image sets, one 16-bit TIFF per channel, made from ``stacks`` ((C, H, W),
    values in [0, 1]) into ``folder``; returns the 1-based numbers of the blank sets, and for each
    other set the index of the stack it was made from and its orientation (0-7: quarter turns,
    twice for mirrored)."""
    import tifffile

    rng = np.random.default_rng(seed)
    medians = np.median(np.concatenate([s.reshape(s.shape[0], -1) for s in stacks], axis=1), axis=1)
    blanks = sorted({max(1, n_sets // 3), max(2, (2 * n_sets) // 3)}) if n_sets >= 3 else []
    sources = {}
    for number in range(1, n_sets + 1):
        if number in blanks:
            stack = np.ones_like(stacks[0]) * (0.0 if number == blanks[0] else medians[:, None, None])
        else:
            source, turns = int(rng.integers(len(stacks))), int(rng.integers(4))
            stack = np.rot90(stacks[source], k=turns, axes=(1, 2))
            mirrored = bool(rng.random() < 0.5)
            if mirrored:
                stack = stack[:, :, ::-1]
            sources[number] = (source, 2 * turns + mirrored)
            stack = np.stack([channel * rng.uniform(0.5, 2.0) + rng.uniform(0.0, 0.1) * float(channel.max())
                              for channel in stack])
        for name, channel in zip(channels, stack):
            # 16-bit integers, as microscopes write them (CellProfiler 5 reads a float TIFF holding
            # values above 1 as whole numbers)
            tifffile.imwrite(set_file(folder, number, name), np.clip(channel * 20000, 0, 65535).astype(np.uint16))
    return blanks, sources


def _build_cells_pipelines_worker(folder: str, model_path: str) -> None:
    """Runs in a fresh process (the plugin folder must be set before CellProfiler fills its module
    table): writes the cells task's impartial.cppipe and cellprofiler.cppipe into ``folder``."""
    from impartial_cellprofiler.pipelines import (
        absolute_folder, add_module, new_pipeline, setting_groups, start_headless, write_pipeline,
    )

    start_headless(ROOT / "plugins")
    from benchmarks import baselines

    channels = TASKS["cells"].channels
    cp = baselines._cellprofiler()

    def impartial(pipeline):
        module = add_module(pipeline, "ImPartial", segment_choice="Cells only", model_mode="Use a saved model",
                            model_directory=absolute_folder(Path(model_path).parent),
                            model_file_name=Path(model_path).name)
        for group, name in zip(setting_groups(module, "channels", "add_channel", len(channels)), channels):
            group.image_name.value = name
        module.nuclear_channel.value = TASKS["cells"].nuclear_channel + 1

    def cellprofiler(pipeline):
        # the accuracy benchmark's Vectra settings; propagation on PanCK alone (it grows over the
        # sum of both channels there, which would need an ImageMath module in the pipeline)
        for module in (baselines._ipo_module(cp, baselines.VECTRA_IPO_SETTINGS, "DAPI", "Nuclei"),
                       baselines._iso_module(cp, baselines.VECTRA_ISO_SETTINGS, "Nuclei", "PanCK", "Cells")):
            module.set_module_num(len(pipeline.modules()) + 1)
            pipeline.add_module(module)
        add_module(pipeline, "IdentifyTertiaryObjects", primary_objects_name="Nuclei",
                   secondary_objects_name="Cells", subregion_objects_name="Cytoplasm")

    rules = [(name, f'and (file does contain "_{name}.tif")') for name in channels]
    for name, add_segmenters in (("impartial", impartial), ("cellprofiler", cellprofiler)):
        pipeline = new_pipeline("^set(?P<Set>[0-9]+)_", rules, match_key="Set")
        add_segmenters(pipeline)
        add_module(pipeline, "ExportToSpreadsheet", wants_overwrite_without_warning=True)
        write_pipeline(pipeline, Path(folder) / f"{name}.cppipe")


def prepared(task: Task, work: Path, data: Optional[str], config) -> Tuple[Path, List[np.ndarray], List[str]]:
    """Train and save the task's model, write its pipelines into ``work``; returns the model's path,
    the (C, H, W) images in [0, 1] that the image sets are made from, and their names."""
    from impartial_core.config import tasks_for
    from impartial_core.model import ImPartialModel

    if task.name == "nuclei":
        mibi = load_mibi(data)
        return (saved_model_and_pipelines(work, mibi, config), [image[None] for image in mibi.images],
                [f"MIBI image {i}" for i in mibi.ids])
    vectra = load_vectra(data)
    model_path = saved_model(work, ImPartialModel.train([v.image for v in vectra], [v.scribbles for v in vectra],
                                                        tasks_for("cells", 2), config=config))
    subprocess.run([sys.executable, "-m", "benchmarks.screen", "--_build-cells-pipelines", str(work), str(model_path)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    return (model_path, [v.image / v.image.max(axis=(1, 2), keepdims=True) for v in vectra],
            [f"Vectra image {v.id}" for v in vectra])


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


def run_cellprofiler(pipeline: Path, images: Path, out: Path, segmenters: Sequence[str], log=print) -> Dict:
    """One headless run; per image set: the modules' summed wall time, the ``segmenters``' summed
    time, and the process tree's resident memory when the last of them was logged."""
    import psutil

    start = time.perf_counter()
    child = subprocess.Popen(headless_command(pipeline, images, out), cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched = psutil.Process(child.pid)
    sets: Dict[int, Dict] = {}
    tail: Deque[str] = collections.deque(maxlen=60)
    for line in child.stdout:
        tail.append(line)
        for image, module, _, _, wall in _LOG_LINE.findall(line):
            entry = sets.setdefault(int(image), {"wall_s": 0.0, "segment_s": 0.0})
            entry["wall_s"] += float(wall)
            if module in segmenters:
                entry["segment_s"] += float(wall)
            if module == segmenters[-1]:
                entry.update(rss=tree_rss(watched), at_s=time.perf_counter() - start)
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


def counted_again(task: Task, model_path: Path, images: Path, numbers: Sequence[int], folder: Path) -> Dict[int, int]:
    """Objects (``task.counted``) per image set as ``impartial predict`` counts them, in a process of
    its own, from the image sets' channels stacked into one TIFF each."""
    import tifffile

    folder.mkdir()
    files = []
    for number in numbers:
        stack = np.stack([tifffile.imread(set_file(images, number, name)) for name in task.channels])
        files.append(folder / f"set{number:05d}.tif")
        tifffile.imwrite(files[-1], stack[0] if len(stack) == 1 else stack)
    impartial = shutil.which("impartial", path=str(Path(sys.executable).parent)) or "impartial"
    command = [impartial, "predict", "--model", str(model_path), "--out-dir", str(folder)]
    if task.nuclear_channel is not None:
        command += ["--nuclear-channel", str(task.nuclear_channel)]
    for path in files:
        command += ["--image", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 3):
        raise RuntimeError(f"impartial predict failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return {number: len(np.unique(tifffile.imread(folder / f"{path.stem}_{task.counted.lower()}.tif"))) - 1
            for number, path in zip(numbers, files)}


def blocks(sets: Dict[int, Dict], n_blocks: int = 10) -> List[Dict]:
    """The run cut into ``n_blocks`` consecutive blocks of image sets: mean times, memory at the end."""
    numbers = sorted(n for n, s in sets.items() if "rss" in s)
    out = []
    for part in np.array_split(np.asarray(numbers), min(n_blocks, len(numbers))):
        chosen = [sets[int(n)] for n in part]
        out.append(dict(first=int(part[0]), last=int(part[-1]), wall_s=float(np.mean([s["wall_s"] for s in chosen])),
                        segment_s=float(np.mean([s["segment_s"] for s in chosen])), rss_mb=chosen[-1]["rss"] / 2**20))
    return out


def per_source(counts: Dict[int, int], sources: Dict[int, Tuple[int, int]], names: Sequence[str]) -> List[Dict]:
    """For each source image: how many sets were made from it, the least and most objects counted
    in them (the same field turned, mirrored and rescaled), and the widest range among the sets
    of one orientation (the same field rescaled only)."""
    out = []
    for source in sorted({s for s, _ in sources.values()}):
        by_orientation: Dict[int, List[int]] = {}
        for number, (s, orientation) in sources.items():
            if s == source and number in counts:
                by_orientation.setdefault(orientation, []).append(counts[number])
        found = [c for group in by_orientation.values() for c in group]
        if found:
            out.append(dict(source=names[source], sets=len(found), least=min(found), most=max(found),
                            rescaled_range=max(max(group) - min(group) for group in by_orientation.values())))
    return out


def check_impartial(task: Task, rows: List[Dict[str, str]], blanks: Sequence[int]) -> List[str]:
    """What is wrong in the module's spreadsheet: usable flags, objects in blank sets or none in a
    field, and (cells) a cell without its nucleus."""
    problems = []
    sets = [(set_number(row[f"FileName_{task.channels[0]}"]), row) for row in rows]
    wrong = [n for n, row in sets if int(float(row["ImPartial_UsableInput"])) != (n not in blanks)]
    if wrong:
        problems.append(f"UsableInput wrong for sets {wrong[:5]}")
    wrong = [n for n, row in sets if (int(float(row[f"Count_{task.counted}"])) > 0) == (n in blanks)]
    if wrong:
        problems.append(f"{task.counted.lower()} in a blank set or none in a field: sets {wrong[:5]}")
    if task.name == "cells":
        wrong = [n for n, row in sets if row["Count_Nuclei"] != row["Count_Cells"]]
        if wrong:
            problems.append(f"nuclei and cells counted apart: sets {wrong[:5]}")
    return problems


def screen(task: Task, name: str, work: Path, images: Path, blanks: Sequence[int], n_sets: int, log=print) -> Dict:
    """Run ``name``'s pipeline over the image sets and check what it wrote."""
    segmenters = task.segmenters[name][1]
    out = work / f"out_{name}"
    log(f"  {name}: {n_sets} image sets ...")
    run = run_cellprofiler(work / f"{name}.cppipe", images, out, segmenters, log)
    rows = read_image_table(out)
    counts = {set_number(row[f"FileName_{task.channels[0]}"]): int(float(row[f"Count_{task.counted}"])) for row in rows}
    problems = []
    if run["returncode"] != 0:
        problems.append(f"exit status {run['returncode']}")
    if len(rows) != n_sets:
        problems.append(f"{len(rows)} spreadsheet rows for {n_sets} image sets")
    if name == "impartial":
        problems += check_impartial(task, rows, blanks)
    for problem in problems:
        log(f"  {name}: PROBLEM: {problem}")
    if problems:
        log(run["log_tail"])
    per_block = blocks(run["sets"])
    log(f"  {name}: {run['wall_s']:.0f} s; " + "; ".join(f"sets {b['first']}-{b['last']} {b['wall_s']:.2f} s/set "
                                                            f"{b['rss_mb']:.0f} MB" for b in per_block))
    return dict(pipeline=name, n_sets=n_sets, wall_s=run["wall_s"], blocks=per_block, counts=counts,
                blank_counts={b: counts.get(b) for b in blanks}, problems=problems)


def main(argv: Optional[Sequence[str]] = None, log=print) -> Dict:
    from impartial_core.config import TrainingConfig

    from benchmarks.accuracy import header_lines

    parser = argparse.ArgumentParser(description="ImPartial over a screen's worth of image sets in one headless run")
    parser.add_argument("--task", choices=sorted(TASKS), default="nuclei")
    parser.add_argument("--sets", type=int, default=None, help="image sets (default 1000; 30 with --quick)")
    parser.add_argument("--quick", action="store_true", help="30 image sets, ImPartial only")
    parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=None,
                        help="also run CellProfiler's own modules over the same sets (default: yes unless --quick)")
    parser.add_argument("--size", type=int, default=None,
                        help="tile the fields to SIZE x SIZE pixels (default: as they are, 400 x 400)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results; with --quick out/benchmarks-quick")
    parser.add_argument("--_build-cells-pipelines", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._build_cells_pipelines:
        _build_cells_pipelines_worker(*args._build_cells_pipelines)
        return {}
    args.out = results_folder(args.out, args.quick)
    task = TASKS[args.task]
    n_sets = args.sets or (30 if args.quick else 1000)
    control = (not args.quick) if args.control is None else args.control
    command = "python -m benchmarks.screen " + " ".join(argv if argv is not None else sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="impartial_screen_"))
    start = time.perf_counter()
    try:
        # A fixed number of iterations: the same model on any machine of a kind (its accuracy is
        # the accuracy benchmark's business; here it must only find the objects).
        model_path, stacks, names = prepared(task, work, args.data, TrainingConfig(
            max_iterations=100 if args.quick else 300, time_budget_s=float("inf")))
        if args.size:
            stacks = [np.stack([tiled(channel, args.size) for channel in stack]) for stack in stacks]
        images = work / "images"
        images.mkdir()
        blanks, sources = write_image_sets(images, stacks, task.channels, n_sets)
        runs = [screen(task, name, work, images, blanks, n_sets, log) for name in list(task.segmenters)[:2 if control else 1]]
        for run in runs:
            run["per_source"] = per_source(run["counts"], sources, names)
        sample = sorted({1, n_sets, *blanks, *(int(k) for k in np.linspace(1, n_sets, 11))})
        again = counted_again(task, model_path, images, sample, work / "predict")
        module_counts = runs[0]["counts"]
        agree = [dict(set=n, module=module_counts.get(n), predict=c) for n, c in again.items()]
        mismatched = [a for a in agree if a["module"] != a["predict"]]
        log(f"  counted again by impartial predict: {len(agree) - len(mismatched)} of {len(agree)} image sets alike")
        results = dict(command=command, task=task.name, n_sets=n_sets, image_shape=list(stacks[0].shape), blanks=blanks,
                       runs=runs, counted_again=agree, mismatched=mismatched, elapsed_s=time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    title = "## A screen in one headless run" + ("" if task.name == "nuclei" else f": {task.name}")
    text = "\n\n".join([title, header_lines(command), screen_table(results)])
    log("\n" + text)
    write_results(args.out, results_stem(task.name, args.size), text, results)
    return results


SOURCES = {"nuclei": "the MIBI images turned, mirrored, rescaled",
           "cells": "PanCK and DAPI of the two traced Vectra images turned, mirrored, each channel rescaled"}


def screen_table(data: Dict) -> str:
    task = TASKS[data["task"]]
    header = ["pipeline", "image sets", "s / set (all modules)", "segmentation s / set", "resident memory (MB)"]
    rows = []
    for run in data["runs"]:
        name = task.segmenters[run["pipeline"]][0]
        for b in run["blocks"]:
            rows.append([name, f"{b['first']}-{b['last']}", f"{b['wall_s']:.2f}", f"{b['segment_s']:.2f}", f"{b['rss_mb']:.0f}"])
    lines = []
    counted = task.counted.lower()
    for run in data["runs"]:
        name = task.segmenters[run["pipeline"]][0]
        first, last = run["blocks"][0], run["blocks"][-1]
        lines.append(f"- {name}: {run['n_sets']} image sets in {run['wall_s']:.0f} s (start-up included); memory "
                     f"{first['rss_mb']:.0f} MB after set {first['last']}, {last['rss_mb']:.0f} MB after set "
                     f"{last['last']} ({last['rss_mb'] - first['rss_mb']:+.0f} MB); blank sets' {counted} "
                     + ", ".join(f"set {n}: {c}" for n, c in run["blank_counts"].items()) + "; "
                     + ("checks: all passed" if not run["problems"] else "PROBLEMS: " + "; ".join(run["problems"])))
        lines.append(f"  - {counted} in the sets made from one field (turned, mirrored, rescaled), and the widest "
                     "range among its sets of one orientation (rescaled only): "
                     + "; ".join(f"{p['source']} ({p['sets']} set{'s' if p['sets'] > 1 else ''}) {p['least']}-{p['most']}, "
                                 f"{p['rescaled_range']}" for p in run["per_source"]))
    alike = len(data["counted_again"]) - len(data["mismatched"])
    lines.append(f"- The module's {counted} counted again by `impartial predict` in a process of its own, on "
                 f"{len(data['counted_again'])} image sets from first to last: {alike} alike"
                 + "".join(f", set {a['set']} {a['module']} against {a['predict']}" for a in data["mismatched"]))
    channels, height, width = data["image_shape"]
    return (f"Image sets of {channels} {height}x{width} 16-bit channel{'s' if channels > 1 else ''} ({SOURCES[task.name]}; "
            f"blank sets at {', '.join(str(b) for b in data['blanks'])}); one `cellprofiler -c -r` process per pipeline, "
            "memory of its process tree when each set's segmentation was logged (the last set of each block).\n\n"
            + markdown_table(header, rows) + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
