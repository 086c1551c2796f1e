"""Whether tiles spread evenly change what the model predicts, against the tiling before.

    python experiments/even_tiles.py

Prediction tiles an image larger than 512 px. Before, tiles were 512 px with only the last one
moved back to the edge (on a 520 x 696 MP6843 field, four 512² tiles for 0.36 megapixels); now
they are of one length and spread evenly (``prediction._tile_starts``: four tiles of 292 x 380
there). Both overlap by at least 64 px and are blended alike. For two MP6843 leave-one-field-out
folds (default 3-minute cells models, seed 0) and a 60-s MIBI n100 nuclei model on the four MIBI
images tiled to 1024² and 2048²: the largest change of the probability, the objects and their
scores under both tilings, and the prediction time (best of 3).
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.accuracy import training_config  # noqa: E402
from benchmarks.data import data_dir, load_mibi  # noqa: E402
from benchmarks.mp6843 import NUCLEAR_CHANNEL, folds, load_mp6843, train_fold  # noqa: E402
from benchmarks.speed import tiled, two_by_two  # noqa: E402
from impartial_core import prediction  # noqa: E402
from impartial_core.config import TrainingConfig, tasks_for  # noqa: E402
from impartial_core.instances import segment  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402

EVEN_TILES = prediction.tiles


def tiles_before(shape, tile, overlap, multiple=1):
    """The tiling before: tiles of ``tile`` pixels every ``tile - overlap``, the last flush with the edge."""
    def starts(size):
        if size <= tile:
            return [0]
        return list(range(0, size - tile, max(1, tile - overlap))) + [size - tile]
    for y in starts(shape[0]):
        for x in starts(shape[1]):
            yield slice(y, min(y + tile, shape[0])), slice(x, min(x + tile, shape[1]))


def under_both(model, image, task):
    """{tiling: (foreground probability, best of 3 seconds)}."""
    out = {}
    for name, tiles in (("before", tiles_before), ("even", EVEN_TILES)):
        prediction.tiles = tiles
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            maps = model.predict(image)
            seconds.append(time.perf_counter() - start)
        out[name] = (maps[task].foreground_probability, min(seconds))
    prediction.tiles = EVEN_TILES
    return out


def main() -> None:
    for train, test in list(folds(load_mp6843()))[:2]:
        model = train_fold(train, 0, training_config(0, False))
        out = under_both(model, test.image, "cells")
        line = f"MP6843 {test.id} {test.image.shape[1:]}: max |change| {np.abs(out['before'][0] - out['even'][0]).max():.4f}"
        for name, (p, seconds) in out.items():
            cells = segment({"cells": p}, model.thresholds, image=test.image, nuclear_channel=NUCLEAR_CHANNEL).cells
            scores = evaluate_image(None, cells, test.truth)
            line += (f"; {name}: {cells.max()} cells, F1@0.5 {scores['f1_iou50']:.4f}, mDICE {scores['mdice']:.4f}, "
                     f"{seconds:.2f} s")
        print(line)
    mibi = load_mibi(data_dir())
    model = ImPartialModel.train(mibi.images, mibi.scribbles["n100"], tasks_for("nuclei", 1),
                                 config=TrainingConfig(time_budget_s=60))
    for size in (1024, 2048):
        out = under_both(model, tiled(two_by_two(mibi.images), size), "nuclei")
        before, even = (segment({"nuclei": p}, model.thresholds).nuclei for p, _ in out.values())
        agreement = evaluate_image(None, even, before)["f1_iou50"]
        print(f"MIBI tiled to {size}²: max |change| {np.abs(out['before'][0] - out['even'][0]).max():.4f}; "
              f"{before.max()} / {even.max()} nuclei, F1@0.5 of the even tiling's against the other's {agreement:.4f}; "
              f"{out['before'][1]:.2f} s / {out['even'][1]:.2f} s")


if __name__ == "__main__":
    main()
