"""The ``impartial`` command line: train, predict, scribbles, evaluate, info.

    impartial train --image A.tif [--image B.tif ...] --scribbles A_s.tif [...] \\
        --task nuclei|cells|nuclei+cells --model OUT [--seed N]
    impartial predict --model OUT --image X.tif [...] --out-dir DIR [--overwrite]
    impartial scribbles (--from-rois ZIP | --from-rgb PNG | --from-labels TIF --remap MAP
                         | --from-instances TIF --objects nuclei|cells | --simulate GT ...) ... [--overwrite]
    impartial evaluate --pred P.tif --truth T.tif [--probability PROB.tif] ...
    impartial info --model OUT
    impartial export --model OUT --out PACKAGE.zip [--image X.tif]
    impartial suggest --model OUT --image X.tif [...] [--scribbles X_s.tif ...] --count K --out FILE.csv
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from . import __version__
from .config import MAX_WIDTH, TASK_CHOICES, InstanceConfig, NetworkConfig, TrainingConfig, tasks_for
from .cli_files import (CliError, check_model_destination, output_path, output_stems, parse_mapping,
                        refuse_existing)
from .imageio import read_image, read_image_shape, write_tiff
from .normalization import as_channels_first

log = logging.getLogger(__name__)


#: exit status of ``impartial predict`` when some images were unusable (flagged, no objects)
UNUSABLE_INPUT_STATUS = 3


def _checked(kind: Callable[[str], Union[int, float]], accept: Callable[[float], bool], expected: str
             ) -> Callable[[str], Union[int, float]]:
    """An argparse ``type``: ``kind(text)`` if ``accept`` takes it. A refusal is an argparse error,
    which names the option (``argument --iterations: must be ...``), before any work starts."""
    def parse(text: str) -> Union[int, float]:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value
    return parse


POSITIVE_INT = _checked(int, lambda v: v >= 1, "a whole number of at least 1")
NON_NEGATIVE_INT = _checked(int, lambda v: v >= 0, "a whole number of at least 0")
POSITIVE_FLOAT = _checked(float, lambda v: v > 0, "a number above 0")
NON_NEGATIVE_FLOAT = _checked(float, lambda v: 0 <= v < math.inf, "0 or a number above 0")
PROBABILITY = _checked(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")
WIDTH = _checked(int, lambda v: 1 <= v <= MAX_WIDTH, f"a whole number from 1 to {MAX_WIDTH}")


#: seconds between two progress lines when the output is not a terminal (a file, a pipe, a job log)
LOG_EVERY_S = 10.0


def _progress(stream=None, every_s: float = LOG_EVERY_S):
    """Training progress: a live one-line bar in a terminal; elsewhere (a file, a pipe, a cluster
    job's log) one line about every ``every_s`` seconds and at the end, with iteration, loss and
    time left."""
    stream = stream or sys.stderr
    last = [-float("inf")]

    def bar(p) -> None:
        if p.iteration % 5 and p.iteration != 1:
            return
        width = 30
        done = int(width * p.fraction)
        stream.write(f"\r[{'#' * done}{'.' * (width - done)}] it {p.iteration:5d}  loss {p.losses['total']:.4f}  "
                     f"{p.elapsed_s:5.0f}s elapsed, ~{p.remaining_s:4.0f}s left ")
        stream.flush()

    def lines(p) -> None:
        if p.elapsed_s - last[0] < every_s and p.iteration < p.max_iterations and p.remaining_s > 0:
            return
        last[0] = p.elapsed_s
        stream.write(f"training: iteration {p.iteration}/{p.max_iterations}, loss {p.losses['total']:.4f}, "
                     f"{p.elapsed_s:.0f} s elapsed, about {p.remaining_s:.0f} s left\n")
        stream.flush()

    return bar if stream.isatty() else lines


def cmd_train(args: argparse.Namespace) -> int:
    from .model import ImPartialModel
    from .model_store import ModelStore, TrainingRequest
    from .input_checks import check_usable
    from .problems import InputError
    from .scribbles import remap_scribbles, validate_scribbles
    from .scribbles.values import missing_classes
    from .threads import training_threads, use_threads

    if len(args.image) != len(args.scribbles):
        raise CliError(f"give one --scribbles per --image: got {len(args.image)} image(s) and {len(args.scribbles)} scribble file(s)")
    model_path = Path(args.model)
    if model_path.resolve() in {Path(p).resolve() for p in args.image + args.scribbles}:
        raise CliError(f"--model {model_path} is one of the training images or scribbles; give a new file name")
    # All inputs are read and checked before the model's destination is: one run names every fault
    # of the inputs in turn, and a refused input never touches a model file.
    images = [as_channels_first(read_image(p), source=str(p)) for p in args.image]
    for path, image in zip(args.image, images):
        if image.shape[0] != images[0].shape[0]:
            raise CliError(f"{path} has {image.shape[0]} channel(s) but {args.image[0]} has {images[0].shape[0]}; "
                           f"all training images need the same channels")
    if args.channel_names and len(args.channel_names) != images[0].shape[0]:
        raise CliError(f"--channel-names: {len(args.channel_names)} name(s) for images of {images[0].shape[0]} "
                       f"channel(s)")
    try:
        check_usable(images, sources=[f"--image {path}" for path in args.image], channel_names=args.channel_names)
    except InputError as error:
        raise CliError(f"{error}; nothing was trained") from None
    mapping = parse_mapping(args.remap)
    scribbles = []
    for path, image in zip(args.scribbles, images):
        raw = read_image(path)
        if mapping:
            raw = remap_scribbles(raw, mapping, source=str(path))
        scribbles.append(validate_scribbles(raw, image.shape[1:], source=str(path)))
    n_channels = images[0].shape[0]
    store = ModelStore(max_models=1, logger=log)
    start_from = store.load(args.fine_tune) if args.fine_tune else None
    if start_from is not None:
        start_from.check_compatible(n_channels, source=f"--fine-tune {args.fine_tune}")
    nuclear_channel = args.nuclear_channel
    if nuclear_channel is None:  # a fine-tuned model keeps the nuclear channel it was trained with
        learnt = store.info(args.fine_tune).nuclear_channel if start_from else None
        nuclear_channel = learnt if learnt is not None else 0
    tasks = tasks_for(args.task, n_channels, nuclear_channel)
    problems = missing_classes(scribbles, tasks)
    if problems:
        option = "--scribbles" + (" and --remap" if mapping else "")
        raise CliError(f"{option}: {InputError(problems)}")
    check_model_destination(model_path)
    network = start_from.net.network if start_from else NetworkConfig(n_channels, args.width)
    budget = math.inf if args.no_time_limit else args.time_budget
    use_threads(training_threads(args.threads, fixed_work=args.no_time_limit))
    config = TrainingConfig(time_budget_s=budget, max_iterations=args.iterations, seed=args.seed, device=args.device,
                            haze=args.haze, mixed_precision=not args.float32)
    request = TrainingRequest(images, scribbles, tasks, network, config, start_from, tuple(args.channel_names or ()))
    if model_path.exists() and store.holds(model_path, request):
        print(f"{model_path} already holds a model trained on these images, scribbles and settings: not training "
              f"(delete it, or give another --model, to train again)")
        return 0
    if model_path.exists() and not args.overwrite:
        raise CliError(f"the model file {model_path} already exists and holds no model of these images, scribbles "
                       f"and settings; use --overwrite to replace it (it is kept as a dated backup)")

    def train(request: TrainingRequest) -> ImPartialModel:
        return ImPartialModel.train(request.images, request.scribbles, request.tasks, request.network, request.training,
                                    channel_names=request.channel_names, start_from=request.start_from,
                                    progress=None if args.quiet else _progress())

    stored = store.train_or_reuse(model_path, request, train)
    model = stored.model
    if not args.quiet and sys.stderr.isatty():
        sys.stderr.write("\n")  # ends the progress bar's line
    s = model.training_summary
    kept = f" (the model it held is kept as {stored.backup})" if stored.backup else ""
    print(f"trained {'+'.join(model.task_names)} in {s['elapsed_s']:.0f} s ({s['iterations']} iterations, "
          f"stopped: {s['stopped_because']}); thresholds {model.thresholds}; saved {model_path}{kept}")
    return 0


def nuclear_stain_for(model, args: argparse.Namespace) -> Optional[int]:
    """``--nuclear-channel`` of ``predict`` and ``suggest``, checked against the model: only a
    cells-only model takes one (the others learnt theirs), and it must be one of its channels."""
    stain = args.nuclear_channel
    if stain is not None and model.task_names != ("cells",):
        raise CliError(f"--nuclear-channel is for cells-only models; {args.model} segments "
                       f"{' + '.join(model.task_names)} and learnt its nuclear channel")
    if stain is not None and not stain < model.n_channels:
        raise CliError(f"--nuclear-channel {stain}: the model {args.model} has {model.n_channels} channel(s), "
                       f"numbered from 0")
    return stain


def cmd_predict(args: argparse.Namespace) -> int:
    from .input_checks import unusable_channels
    from .memory import release_free_memory
    from .model import ImPartialModel
    from .object_sets import MAP_KINDS, instance_config, object_sets
    from .problems import InputError

    model = ImPartialModel.load(args.model)
    out_dir = Path(args.out_dir)
    stain = nuclear_stain_for(model, args)
    # Every image is checked (from its header) before any output is checked or written: a wrong image
    # late in a list must not leave a half-written output folder behind.
    for path in args.image:
        # a zero-strided view of the header's shape: as_channels_first's checks without the pixels
        shape_only = np.broadcast_to(np.zeros((), np.uint8), read_image_shape(path))
        channels = as_channels_first(shape_only, source=str(path)).shape[0]
        try:
            model.check_compatible(channels, source=f"the model {args.model}")
        except ValueError as error:
            raise CliError(f"{path}: {error}") from None
    object_names = [objects.name for objects in object_sets(model.task_names, nuclear_stain=stain is not None)]
    map_names = [f"{task}_{kind}" for task in model.task_names for kind in MAP_KINDS]
    stems = output_stems(args.image, object_names + map_names, out_dir, args.overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = instance_config(args.threshold, args.min_size, split_touching=not args.no_split,
                             exclude_border=args.exclude_border, split_depth=args.split_depth)
    unusable = 0
    for path, stem in zip(args.image, stems):
        image = as_channels_first(read_image(path), source=str(path))
        problems = unusable_channels(image, model.channel_names or None)
        if problems:
            # flagged, not segmented: empty label images (so every input has its outputs) and no maps
            unusable += 1
            for name in object_names:
                write_tiff(output_path(out_dir, stem, name), np.zeros(image.shape[1:], np.uint16))
            print(f"warning: {path}: unusable, no objects: {InputError(problems)}", file=sys.stderr)
            continue
        maps = model.predict(image, flips=args.flips, device=args.device, mixed_precision=not args.float32)
        objects = model.segment(maps, config, image=image, nuclear_channel=stain)
        release_free_memory()  # the step's freed arrays: a long list of images does not grow
        counts = []
        for name in object_names:
            labels = getattr(objects, name)
            write_tiff(output_path(out_dir, stem, name), labels.astype(np.uint16 if labels.max() < 65536 else np.uint32))
            counts.append(f"{int(labels.max())} {name}")
        for task, m in maps.items():
            write_tiff(output_path(out_dir, stem, f"{task}_probability"), m.foreground_probability.astype(np.float32))
            write_tiff(output_path(out_dir, stem, f"{task}_uncertainty"), m.uncertainty.astype(np.float32))
        print(f"{path}: {', '.join(counts)} -> {out_dir}")
    if unusable:
        print(f"impartial predict: {unusable} of {len(args.image)} image(s) were unusable (see the warnings): their "
              f"label images are empty and they have no probability maps", file=sys.stderr)
        return UNUSABLE_INPUT_STATUS
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    import csv

    from .model import ImPartialModel
    from .object_sets import instance_config
    from .scribbles.values import decode_scribbles
    from .suggestions import suggest_for_model

    if args.scribbles and len(args.scribbles) != len(args.image):
        raise CliError(f"give one --scribbles per --image ({len(args.image)} images, {len(args.scribbles)} scribbles)")
    model = ImPartialModel.load(args.model)
    stain = nuclear_stain_for(model, args)
    images = []
    for path in args.image:
        image = as_channels_first(read_image(path), source=str(path))
        try:
            model.check_compatible(image.shape[0], source=f"the model {args.model}")
        except ValueError as error:
            raise CliError(f"{path}: {error}") from error
        images.append(image)
    scribbles = None
    if args.scribbles:
        scribbles = []
        for path in args.scribbles:
            try:
                scribbles.append(decode_scribbles(read_image(path)))
            except ValueError as error:
                raise CliError(f"{path}: {error}") from error
        for path, drawn, image in zip(args.scribbles, scribbles, images):
            if drawn.shape != image.shape[1:]:
                raise CliError(f"{path}: scribbles of {drawn.shape[0]}x{drawn.shape[1]} pixels for an image of "
                               f"{image.shape[1]}x{image.shape[2]}")
    out = Path(args.out)
    refuse_existing([out], args.overwrite)
    places = suggest_for_model(model, images, args.count, scribbles=scribbles, window=args.window,
                               device=args.device, nuclear_channel=stain,
                               config=instance_config(split_depth=args.split_depth))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "row", "col", "kind", "score", "object"])
        for place in places:
            writer.writerow([args.image[place.image], place.row, place.col, place.kind, f"{place.score:.4f}",
                             place.object_number])
    print(f"{len(places)} places, best first -> {out}")
    return 0


def cmd_scribbles(args: argparse.Namespace) -> int:
    from .scribbles import remap_scribbles
    from .scribbles.imagej_rois import read_imagej_rois, rois_beyond
    from .scribbles.objects import scribbles_from_instances, scribbles_from_rois
    from .scribbles.paint import scribbles_from_rgb
    from .scribbles.simulation import count_scribbled_objects, simulate_scribbles

    out = Path(args.out) if args.out else None
    if args.simulate:
        if out is not None:
            raise CliError("--simulate writes one file per ground-truth image into --out-dir (X.tif gives "
                           "X_scribbles.tif); --out is for the other sources")
        out_dir = Path(args.out_dir or ".")
        truths = [read_image(p) for p in args.simulate]
        stems = output_stems(args.simulate, ["scribbles"], out_dir, args.overwrite)
        results = simulate_scribbles(truths, args.budget, args.seed, sources=args.simulate)
        out_dir.mkdir(parents=True, exist_ok=True)
        for stem, truth, result in zip(stems, truths, results):
            target = output_path(out_dir, stem, "scribbles")
            write_tiff(target, result)
            print(f"{target}: {count_scribbled_objects(result, truth)} scribbled objects")
        return 0
    if args.out_dir:
        raise CliError("--out-dir is for --simulate; give the scribble file to write with --out")
    if out is None:
        raise CliError("--out is required")
    if args.from_rois:
        if not args.like:
            raise CliError("--from-rois needs --like IMAGE (the image the ROIs were drawn on, for its size)")
        like = as_channels_first(read_image(args.like), source=args.like)
        shape = like.shape[1:]
        rois = read_imagej_rois(args.from_rois)
        outside, crossing = rois_beyond(rois, shape)
        if outside:
            raise CliError(f"{args.from_rois}: {len(outside)} of {len(rois)} ROIs (e.g. {outside[0]!r}) lie wholly outside "
                           f"--like {args.like} ({shape[1]}x{shape[0]} pixels); was it the image they were drawn on?")
        if crossing:
            print(f"note: {len(crossing)} ROI(s) (e.g. {crossing[0]!r}) cross the image edge and are cut there", file=sys.stderr)
        result = scribbles_from_rois(rois, shape, task=args.objects or "cells",
                                     image=None if args.ring_everywhere else like)
    elif args.from_rgb:
        result = scribbles_from_rgb(read_image(args.from_rgb), source=args.from_rgb)
        if not result.any():
            raise CliError(f"{args.from_rgb}: no pixel is painted in the scribble colours (blue background, red "
                           f"nucleus, green cytoplasm); nothing was written")
    elif args.from_labels:
        mapping = parse_mapping(args.remap)
        if mapping is None:
            raise CliError("--from-labels needs --remap, e.g. --remap 10:1,20:2")
        result = remap_scribbles(read_image(args.from_labels), mapping, source=args.from_labels)
    elif args.from_instances:
        if not args.objects:
            # No default: inside a nucleus is 2, inside a cell 3, which the nuclei task learns as "not nucleus".
            raise CliError("--from-instances needs --objects nuclei or --objects cells: what the label image outlines")
        instances = read_image(args.from_instances)
        like = None
        if args.like and not args.ring_everywhere:
            like = as_channels_first(read_image(args.like), source=args.like)
            if like.shape[1:] != instances.shape[-2:]:
                raise CliError(f"--like {args.like} is {like.shape[2]}x{like.shape[1]} pixels and {args.from_instances} "
                               f"{instances.shape[-1]}x{instances.shape[-2]}; give the image the objects were traced on")
        result = scribbles_from_instances(instances, task=args.objects, source=args.from_instances, image=like)
    else:
        raise CliError("say where the scribbles come from: --from-rois, --from-rgb, --from-labels, --from-instances or --simulate")
    if result.ndim != 2:
        source = args.from_labels or args.from_instances or args.from_rgb
        raise CliError(f"{source}: a scribble image is one 2-D plane; this one has shape {result.shape}")
    refuse_existing([out], args.overwrite)  # after the inputs were read and converted
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
        try:
            result = evaluate_image(prob, read_image(pred), read_image(truth))
        except ValueError as error:
            files = f"--pred {pred} --truth {truth}" + (f" --probability {probs[i]}" if probs else "")
            raise CliError(f"{files}: {error}") from error
        results.append(result)
        if len(args.pred) > 1:
            print(f"{pred}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)))
    summary = summarize(results)
    if args.json:
        # undefined values (no probability given, no true object) are NaN, which strict JSON lacks
        print(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in summary.items()}, indent=2))
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


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model

    image = read_image(args.image) if args.image else None
    out = export_model(args.model, args.out, image, name=args.name, authors=args.author or (),
                       license_id=args.license, overwrite=args.overwrite)
    print(f"wrote the bioimage.io model package {out}")
    return 0


def _add_float32(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--float32", action="store_true",
                        help=f"run the network in float32 where the device computes bfloat16 natively (a GPU, a CPU "
                             f"with AVX-512 BF16), which is otherwise used there: about twice as slow, {what}")


def _add_split_depth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split-depth", type=POSITIVE_FLOAT, default=InstanceConfig.split_h, metavar="PIXELS",
                   help="touching nuclei cut by their shape alone (those of a nuclear stain; those of a map that is "
                        "not confident) are cut where the neck between them is this much thinner than both "
                        "(default %(default)s; lower cuts more)")


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=POSITIVE_INT,
                        help="CPU threads (default: OMP_NUM_THREADS or SLURM_CPUS_PER_TASK when set, else the CPUs "
                             "this process may use: its affinity, capped by a cgroup CPU quota)")


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
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    p.add_argument("--remap", help="map scribble values to 1 background / 2 nucleus / 3 cytoplasm / 4 split stroke, "
                                    "e.g. '10:1,20:2' "
                                    "(write --remap=-1:1 when a value is negative)")
    p.add_argument("--nuclear-channel", type=NON_NEGATIVE_INT,
                   help="index of the nuclear stain channel in multi-channel images (default 0, or the fine-tuned "
                        "model's; 1 for the bundled Vectra images)")
    p.add_argument("--channel-names", nargs="*", help="names of the channels, stored in the model")
    p.add_argument("--time-budget", type=POSITIVE_FLOAT, default=TrainingConfig.time_budget_s, help="seconds of training at most")
    p.add_argument("--iterations", type=POSITIVE_INT, default=TrainingConfig.max_iterations, help="iterations at most")
    p.add_argument("--no-time-limit", action="store_true",
                   help="ignore --time-budget and run --iterations iterations (fewer only if the validation loss "
                        "stops improving, at the same iteration everywhere) on 2 CPU threads unless --threads says "
                        "otherwise: the same model from the same inputs, seed and options whatever the machine's "
                        "speed and cores")
    p.add_argument("--width", type=WIDTH, default=NetworkConfig.width, help="first-level filters of the U-Net")
    p.add_argument("--haze", type=NON_NEGATIVE_FLOAT, default=TrainingConfig.haze,
                   help="height of the smooth haze added to training patches so that the model sees through a haze "
                        "or uneven illumination (normalised intensity; 0 = none). 0 trains better on images that "
                        "hold only a few 128-pixel patches in all (experiments/few_strokes.py)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--fine-tune", metavar="MODEL",
                   help="start from this model and continue with the given scribbles; pixels the model is sure "
                        "of, away from the scribbles, are kept as anchors so that it keeps what it got right")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a model file that holds another model; the replaced file is kept beside it as "
                        "MODEL.<date-time>.bak.safetensors (a file holding a model of the same images, scribbles and "
                        "settings is reused, with or without this option, and nothing is trained)")
    p.add_argument("--quiet", action="store_true", help="no progress (a bar in a terminal, else a line about every 10 s)")
    _add_float32(p, "and the model a machine without bfloat16 trains")
    _add_threads(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="segment images with a trained model",
                       description="Segment images with a trained model. Exit status 3: some images had nothing to "
                                   "segment (a constant, saturated or mostly NaN channel, or under 16x16 pixels); "
                                   "their label images are empty and the others are segmented.")
    p.add_argument("--model", required=True)
    p.add_argument("--image", action="append", required=True, help="image to segment; repeat")
    p.add_argument("--out-dir", required=True,
                   help="output folder: X.tif gives X_nuclei.tif, X_nuclei_probability.tif, ... (X.ome.tif gives X_...)")
    p.add_argument("--overwrite", action="store_true",
                   help="also replace files of the output names that impartial did not write (e.g. edited labels)")
    p.add_argument("--threshold", type=PROBABILITY, help="probability threshold (default: the model's)")
    p.add_argument("--min-size", type=NON_NEGATIVE_INT, default=InstanceConfig.min_size,
                   help="smallest object kept, in pixels (nuclei and cells)")
    p.add_argument("--no-split", action="store_true", help="do not split touching objects")
    _add_split_depth(p)
    p.add_argument("--exclude-border", action="store_true", help="drop objects touching the image border")
    p.add_argument("--nuclear-channel", type=NON_NEGATIVE_INT,
                   help="cells-only models: the nuclear stain's channel (from 0); one nucleus found there seeds "
                        "each cell, and X_nuclei.tif, X_cells.tif and X_cytoplasm.tif are written")
    p.add_argument("--flips", action="store_true", help="average over 4 flips (slower, smoother uncertainty)")
    p.add_argument("--device", default="auto")
    _add_float32(p, "and the maps of float32 tools (an exported bioimage.io package) up to rounding")
    _add_threads(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("suggest", help="where to scribble next: places ranked by how much a stroke should help")
    p.add_argument("--model", required=True)
    p.add_argument("--image", action="append", required=True, help="image to look at; repeat")
    p.add_argument("--scribbles", action="append",
                   help="the scribbles drawn so far on each --image, in the same order (places already "
                        "scribbled rank lower)")
    p.add_argument("--count", type=POSITIVE_INT, default=10, help="how many places (default 10)")
    p.add_argument("--window", type=POSITIVE_INT, default=32,
                   help="side of a suggested window in pixels, and the least distance between places (default 32)")
    p.add_argument("--nuclear-channel", type=NON_NEGATIVE_INT,
                   help="cells-only models: the nuclear stain's channel (from 0), as given to predict; split "
                        "places are then looked for among the cells it seeds, the cells predict writes")
    _add_split_depth(p)
    p.add_argument("--out", required=True,
                   help="CSV file: image,row,col (the centre of each place),kind (uncertain: add foreground or "
                        "background strokes; split: a split stroke across a merged object),score,object")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--device", default="auto")
    _add_threads(p)
    p.set_defaults(func=cmd_suggest)

    p = sub.add_parser("scribbles", help="convert annotations from other tools, or simulate scribbles")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-rois", metavar="ZIP", help="ImageJ/Fiji ROI Manager zip (or .roi) of traced objects")
    src.add_argument("--from-rgb", metavar="IMAGE", help="paint image: blue background, red nucleus, green cytoplasm")
    src.add_argument("--from-labels", metavar="IMAGE", help="label image with other values (needs --remap)")
    src.add_argument("--from-instances", metavar="IMAGE", help="instance mask of whole objects (e.g. a napari Labels layer)")
    src.add_argument("--simulate", nargs="+", metavar="TRUTH", help="simulate the paper's scribbles from ground-truth masks")
    p.add_argument("--like", help="the image the objects were traced on: its size, and where it is dark (the "
                                  "background ring around traced objects is drawn only there)")
    p.add_argument("--ring-everywhere", action="store_true",
                   help="draw the background ring around traced objects on bright pixels too")
    p.add_argument("--objects", choices=("nuclei", "cells"),
                   help="what the traced objects are: nuclei (inside written as 2, nucleus) or cells (3, cytoplasm); "
                        "required with --from-instances, default cells with --from-rois")
    p.add_argument("--remap")
    p.add_argument("--budget", type=POSITIVE_INT, default=100, help="scribbled objects over all images (--simulate)")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    p.add_argument("--out", help="output scribble TIFF")
    p.add_argument("--out-dir", help="output folder (--simulate): X.tif gives X_scribbles.tif")
    p.add_argument("--overwrite", action="store_true",
                   help="also replace files of the output names that impartial did not write (e.g. edited labels)")
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

    p = sub.add_parser("export", help="write a model as a bioimage.io model package (Fiji, QuPath, ilastik, napari)")
    p.add_argument("--model", required=True, help="ImPartial model file (.safetensors)")
    p.add_argument("--out", required=True, help="package to write (.zip)")
    p.add_argument("--image", help="an image like the training images: the package's test input and cover "
                                   "(default: a synthetic image)")
    p.add_argument("--name", help="the package's name (default: ImPartial and the tasks)")
    p.add_argument("--author", action="append", help="who made the model; repeat for several")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the weights (default CC-BY-4.0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    _add_threads(p)
    p.set_defaults(func=cmd_export)
    return parser


def _one_line(error: BaseException) -> str:
    """An error's message as one line (a torch error can span many); its type if it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if hasattr(args, "threads"):  # the commands that run a network
            from .threads import use_threads

            use_threads(args.threads)
        return args.func(args)
    except (CliError, ValueError, OSError, RuntimeError) as error:  # ModelFileError is a ValueError
        log.info("the error in full:", exc_info=True)  # with --verbose
        print(f"impartial {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nimpartial {args.command}: interrupted; no model file was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
