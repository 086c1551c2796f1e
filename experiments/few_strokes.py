"""A first training from a few strokes, as in the scribble editor: how long, and with the haze?

    python experiments/few_strokes.py [--iterations 150 1000] [--haze 0 1] [--seeds 0 1] [--first-of-ties] [--crop 160]

A new user's first Save: 160 x 160 crops of MIBI images 0 and 3 (the editor test's), each with
20 strokes through the middle of its largest nuclei and 10 background strokes far from every
nucleus (3 pixels wide; ``--crop 0``: the same on the whole 400 x 400 images), trained from
scratch for a fixed number of iterations (not time, so the machine's load does not change the
result). Scored on the crops themselves and on MIBI images 5 and 7, never scribbled.
``--first-of-ties`` keeps the first of equally good validations, as early stopping did before
``training.BestWeights`` kept the later weights of a tie.
Results: ``experiments/results/few_strokes.txt``.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402
from impartial_core.training import BestWeights  # noqa: E402

TRAINED, HELD_OUT = (0, 1), (2, 3)   # indices into load_mibi(): images 0 and 3; 5 and 7


def strokes(truth: np.ndarray, nuclei: int, background: int) -> np.ndarray:
    """Scribbles (1 background, 2 nucleus): a row through each of the ``nuclei`` largest nuclei,
    stopping 2 pixels short of its edges, and ``background`` 20-pixel rows 7 rows apart where
    every pixel is more than 6 pixels from a nucleus; all 3 pixels wide."""
    scribbles = np.zeros(truth.shape, np.uint8)
    sizes = np.bincount(truth.ravel())
    sizes[0] = 0
    for number in np.argsort(sizes)[::-1][:nuclei]:
        rows, cols = np.nonzero(truth == number)
        row = int(np.median(rows))
        inside = np.sort(cols[rows == row])
        if inside.size >= 7:
            scribbles[line(row, int(inside[2]), row, int(inside[-3]))] = 2
    far = ndi.distance_transform_edt(truth == 0) > 6
    drawn = 0
    for row in range(6, truth.shape[0] - 6, 7):
        starts = np.flatnonzero(np.convolve(far[row].astype(int), np.ones(24, int), "valid") == 24)
        if starts.size and drawn < background:
            scribbles[line(row, int(starts[0] + 2), row, int(starts[0] + 21))] = 1
            drawn += 1
    return ndi.grey_dilation(scribbles, size=(3, 3))


def scores(model: ImPartialModel, images, truths) -> dict:
    per_image = []
    for image, truth in zip(images, truths):
        maps = model.predict(image)
        per_image.append(evaluate_image(maps["nuclei"].foreground_probability, model.segment(maps).nuclei, truth))
    return summarize(per_image)


def keep_first_of_ties() -> None:
    """Early stopping as it was: weights kept only on an improvement of more than MIN_IMPROVEMENT."""
    def offer(self, validation, net):
        if validation < self.value - self.MIN_IMPROVEMENT:
            self.value, self.evaluations_since_best = validation, 0
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return True
        self.evaluations_since_best += 1
        return False
    BestWeights.offer = offer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[150, 1000])
    parser.add_argument("--haze", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--first-of-ties", action="store_true", help="early stopping's earlier rule")
    parser.add_argument("--crop", type=int, default=160, help="side of the top-left crops trained on (0: whole images)")
    args = parser.parse_args()
    if args.first_of_ties:
        keep_first_of_ties()
    mibi = load_mibi()
    crop = (slice(0, args.crop or None), slice(0, args.crop or None))
    crops = [mibi.images[i][crop] for i in TRAINED]
    crop_truth = [mibi.truth[i][crop] for i in TRAINED]
    scribbles = [strokes(truth, 20, 10) for truth in crop_truth]
    held_out = ([mibi.images[i] for i in HELD_OUT], [mibi.truth[i] for i in HELD_OUT])
    print("iterations  haze  seed  scribbled mDICE / F1  held-out mDICE / F1@0.5  iterations run  seconds")
    for iterations in args.iterations:
        for haze in args.haze:
            rows = []
            for seed in args.seeds:
                config = TrainingConfig(max_iterations=iterations, time_budget_s=3600, haze=haze, seed=seed, device="cpu")
                start = time.perf_counter()
                model = ImPartialModel.train(crops, scribbles, tasks_for("nuclei", 1), config=config)
                seconds = time.perf_counter() - start
                a, b = scores(model, crops, crop_truth), scores(model, *held_out)
                rows.append([a["mdice"], a["f1_iou50"], b["mdice"], b["f1_iou50"]])
                print(f"{iterations:10d}  {haze:4g}  {seed:4d}  {a['mdice']:.3f} / {a['f1_iou50']:.3f}          "
                      f"{b['mdice']:.3f} / {b['f1_iou50']:.3f}            {model.training_summary.get('iterations'):14d}  "
                      f"{seconds:7.0f}", flush=True)
            mean = np.mean(rows, axis=0)
            print(f"{iterations:10d}  {haze:4g}  mean  {mean[0]:.3f} / {mean[1]:.3f}          {mean[2]:.3f} / {mean[3]:.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
