"""The ``impartial`` command line: train, predict, scribbles, evaluate, info.

    impartial train --image A.tif [--image B.tif ...] --scribbles A_s.tif [...] \\
        --task nuclei|cells|nuclei+cells --model OUT [--seed N]
    impartial predict --model OUT --image X.tif [...] --out-dir DIR
    impartial scribbles (--from-rois ZIP | --from-rgb PNG | --from-labels TIF | --simulate GT ...) ...
    impartial evaluate --pred P.tif --truth T.tif [--probability PROB.tif] ...
    impartial info --model OUT
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import __version__
from .config import TASK_CHOICES, InstanceConfig, NetworkConfig, TrainingConfig, tasks_for
from .imageio import read_image, write_tiff
from .model_io import ModelFileError
from .normalization import as_channels_first


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _parse_mapping(text: Optional[str]) -> Optional[Dict[int, int]]:
    """'4:1,5:2' -> {4: 1, 5: 2}."""
    if not text:
        return None
    try:
        return {int(a): int(b) for a, b in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise CliError(f"--remap must look like '4:1,5:2' (value:class pairs), got {text!r}")


def _progress_bar(stream=sys.stderr):
    """A one-line terminal progress display for training."""
    def show(p) -> None:
        if p.iteration % 5 and p.iteration != 1:
            return
        width = 30
        done = int(width * p.fraction)
        stream.write(f"\r[{'#' * done}{'.' * (width - done)}] it {p.iteration:5d}  loss {p.losses['total']:.4f}  "
                     f"{p.elapsed_s:5.0f}s elapsed, ~{p.remaining_s:4.0f}s left ")
        stream.flush()
    return show


def cmd_train(args: argparse.Namespace) -> int:
    from .model import ImPartialModel
    from .scribbles import remap_scribbles, validate_scribbles

    if len(args.image) != len(args.scribbles):
        raise CliError(f"give one --scribbles per --image: got {len(args.image)} image(s) and {len(args.scribbles)} scribble file(s)")
    images = [as_channels_first(read_image(p), source=str(p)) for p in args.image]
    mapping = _parse_mapping(args.remap)
    scribbles = []
    for path, image in zip(args.scribbles, images):
        raw = read_image(path)
        if mapping:
            raw = remap_scribbles(raw, mapping)
        scribbles.append(validate_scribbles(raw, image.shape[1:], source=str(path)))
    n_channels = images[0].shape[0]
    tasks = tasks_for(args.task, n_channels, args.nuclear_channel)
    model_path = Path(args.model)
    # model.save refuses too; checking first spares minutes of training that could not be saved.
    if model_path.exists() and not args.overwrite:
        raise CliError(f"the model file {model_path} already exists; use --overwrite to replace it")
    start_from = ImPartialModel.load(args.fine_tune) if args.fine_tune else None
    config = TrainingConfig(time_budget_s=args.time_budget, max_iterations=args.iterations, seed=args.seed, device=args.device)
    model = ImPartialModel.train(images, scribbles, tasks, NetworkConfig(n_channels, args.width), config,
                                 channel_names=args.channel_names or (), progress=None if args.quiet else _progress_bar(),
                                 start_from=start_from)
    if not args.quiet:
        sys.stderr.write("\n")
    model.save(model_path, overwrite=args.overwrite)
    s = model.training_summary
    print(f"trained {'+'.join(model.task_names)} in {s['elapsed_s']:.0f} s ({s['iterations']} iterations, "
          f"stopped: {s['stopped_because']}); thresholds {model.thresholds}; saved {model_path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .model import ImPartialModel

    model = ImPartialModel.load(args.model)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = InstanceConfig(threshold=args.threshold, min_size=args.min_size, split_touching=not args.no_split,
                            exclude_border=args.exclude_border)
    for path in args.image:
        image = as_channels_first(read_image(path), source=str(path))
        model.check_compatible(image.shape[0], source=f"the model {args.model}")
        maps = model.predict(image, flips=args.flips, device=args.device)
        objects = model.segment(maps, config)
        stem = Path(path).name.split(".")[0]
        counts = []
        for name in ("nuclei", "cells", "cytoplasm"):
            labels = getattr(objects, name)
            if labels is not None:
                write_tiff(out_dir / f"{stem}_{name}.tif", labels.astype(np.uint16 if labels.max() < 65536 else np.uint32))
                counts.append(f"{int(labels.max())} {name}")
        for task, m in maps.items():
            write_tiff(out_dir / f"{stem}_{task}_probability.tif", m.foreground_probability.astype(np.float32))
            write_tiff(out_dir / f"{stem}_{task}_uncertainty.tif", m.uncertainty.astype(np.float32))
        print(f"{path}: {', '.join(counts)} -> {out_dir}")
    return 0


def cmd_scribbles(args: argparse.Namespace) -> int:
    from . import scribbles as sc

    out = Path(args.out) if args.out else None
    if args.simulate:
        truths = [read_image(p) for p in args.simulate]
        results = sc.simulate_scribbles(truths, args.budget, args.seed)
        out_dir = Path(args.out_dir or ".")
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, result in zip(args.simulate, results):
            target = out_dir / f"{Path(path).name.split('.')[0]}_scribbles.tif"
            write_tiff(target, result)
            print(f"{target}: {sc.count_scribbled_objects(result, read_image(path))} scribbled objects")
        return 0
    if out is None:
        raise CliError("--out is required")
    if args.from_rois:
        if not args.like:
            raise CliError("--from-rois needs --like IMAGE (the image the ROIs were drawn on, for its size)")
        shape = as_channels_first(read_image(args.like)).shape[1:]
        instances = sc.rasterize_rois(sc.read_imagej_rois(args.from_rois), shape)
        result = sc.scribbles_from_instances(instances, task=args.objects)
    elif args.from_rgb:
        result = sc.scribbles_from_rgb(read_image(args.from_rgb))
    elif args.from_labels:
        mapping = _parse_mapping(args.remap)
        if mapping is None:
            raise CliError("--from-labels needs --remap, e.g. --remap 10:1,20:2")
        result = sc.remap_scribbles(read_image(args.from_labels), mapping)
    elif args.from_instances:
        result = sc.scribbles_from_instances(read_image(args.from_instances), task=args.objects)
    else:
        raise CliError("say where the scribbles come from: --from-rois, --from-rgb, --from-labels, --from-instances or --simulate")
    write_tiff(out, result.astype(np.uint8))
    values, counts = np.unique(result, return_counts=True)
    names = {0: "none", 1: "background", 2: "nucleus", 3: "cytoplasm"}
    print(f"{out}: " + ", ".join(f"{names.get(int(v), v)} {c} px" for v, c in zip(values, counts) if v))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate_image, summarize

    if len(args.pred) != len(args.truth):
        raise CliError("give one --truth per --pred")
    probs: List[Optional[str]] = list(args.probability or [])
    if probs and len(probs) != len(args.pred):
        raise CliError("give one --probability per --pred, or none")
    results = []
    for i, (pred, truth) in enumerate(zip(args.pred, args.truth)):
        prob = read_image(probs[i]) if probs else None
        result = evaluate_image(prob, read_image(pred), read_image(truth))
        results.append(result)
        if len(args.pred) > 1:
            print(f"{pred}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)))
    summary = summarize(results)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        keys = ["pixel_f1", "auc", "mdice", "miou", "f1_iou50", "ap_iou50"]
        print("  ".join(f"{k} {summary[k]:.3f}" for k in keys if k in summary))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .model import ImPartialModel

    meta = ImPartialModel.read_metadata(args.model)
    meta.get("training_summary", {}).pop("loss_curve", None)
    print(json.dumps(meta, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="impartial", description="ImPartial: segment nuclei and cells from a few scribbles.")
    parser.add_argument("--version", action="version", version=f"impartial {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from images and scribbles")
    p.add_argument("--image", action="append", required=True, help="2-D image (TIFF/PNG; channel-first stack for several channels); repeat")
    p.add_argument("--scribbles", action="append", required=True, help="scribble image for the matching --image; repeat")
    p.add_argument("--task", choices=TASK_CHOICES, default="nuclei")
    p.add_argument("--model", required=True, help="model file to write (.safetensors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--remap", help="map scribble values to 1 background / 2 nucleus / 3 cytoplasm, e.g. '10:1,20:2'")
    p.add_argument("--nuclear-channel", type=int, default=0,
                   help="index of the nuclear stain channel in multi-channel images (default 0; 1 for the bundled Vectra images)")
    p.add_argument("--channel-names", nargs="*", help="names of the channels, stored in the model")
    p.add_argument("--time-budget", type=float, default=TrainingConfig.time_budget_s, help="seconds of training at most")
    p.add_argument("--iterations", type=int, default=TrainingConfig.max_iterations, help="iterations at most")
    p.add_argument("--width", type=int, default=NetworkConfig.width, help="first-level filters of the U-Net")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--fine-tune", metavar="MODEL", help="start from this model and continue with the given scribbles")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="segment images with a trained model")
    p.add_argument("--model", required=True)
    p.add_argument("--image", action="append", required=True, help="image to segment; repeat")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--threshold", type=float, help="probability threshold (default: the model's)")
    p.add_argument("--min-size", type=int, default=InstanceConfig.min_size)
    p.add_argument("--no-split", action="store_true", help="do not split touching nuclei")
    p.add_argument("--exclude-border", action="store_true", help="drop objects touching the image border")
    p.add_argument("--flips", action="store_true", help="average over 4 flips (slower, smoother uncertainty)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("scribbles", help="convert annotations from other tools, or simulate scribbles")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-rois", metavar="ZIP", help="ImageJ/Fiji ROI Manager zip (or .roi) of traced objects")
    src.add_argument("--from-rgb", metavar="IMAGE", help="paint image: blue background, red nucleus, green cytoplasm")
    src.add_argument("--from-labels", metavar="IMAGE", help="label image with other values (needs --remap)")
    src.add_argument("--from-instances", metavar="IMAGE", help="instance mask of whole objects (e.g. a napari Labels layer)")
    src.add_argument("--simulate", nargs="+", metavar="TRUTH", help="simulate the paper's scribbles from ground-truth masks")
    p.add_argument("--like", help="the image the ROIs belong to (gives the size)")
    p.add_argument("--objects", choices=("nuclei", "cells"), default="cells", help="what traced objects are")
    p.add_argument("--remap")
    p.add_argument("--budget", type=int, default=100, help="scribbled objects over all images (--simulate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output scribble TIFF")
    p.add_argument("--out-dir", help="output folder (--simulate)")
    p.set_defaults(func=cmd_scribbles)

    p = sub.add_parser("evaluate", help="accuracy of label images against ground truth")
    p.add_argument("--pred", action="append", required=True)
    p.add_argument("--truth", action="append", required=True)
    p.add_argument("--probability", action="append")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="print a model file's metadata")
    p.add_argument("--model", required=True)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CliError, ModelFileError, ValueError, FileNotFoundError) as error:
        print(f"impartial {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nimpartial {args.command}: interrupted; no model file was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
