"""Can a network learn from split strokes where touching nuclei meet, on images without strokes?

    python experiments/seam_network.py [--models DIR] [--folds 5 0] [--steps 600] [--sets every guided]

``seam_strokes.py`` found that a random forest on pixel features cannot tell a seam between
touching MIBI nuclei from the rest of a nucleus. A convolutional network sees more: the shape of
the mask around a pixel (the notches where two nuclei meet) as well as its intensity. This trains
one, per MIBI fold (leave one image out, the base models of ``seam_strokes.py``), on the three
training images: a U-Net (width 16, depth 3) on the image, the base model's nucleus probability
and the distance to the mask's edge learns seam (split-stroke pixels) against not seam (nucleus
strokes; the mask pixels more than 2 px from a split stroke inside the boxes drawn in; background
strokes), by class-balanced binary cross-entropy on 128 x 128 patches with flips and rotations.
Two sets of split strokes, as in ``seam_strokes.py``: every merge of the base model's nuclei on
the training images (the most split strokes could give) and those of 20 guided boxes.

On the held-out image: the mean seam probability on the true seams (where the base model merges
true nuclei) against the other mask pixels, and F1@0.5 / mDICE when the mask is cut where the
seam probability exceeds 0.3 or 0.5 (``seam_strokes.cut``).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks.data import MIBI_IDS, load_mibi  # noqa: E402
from benchmarks.interactive import make_fold  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.network import UNet  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.scribbles import BACKGROUND, NUCLEUS, SPLIT  # noqa: E402
from impartial_core.scribbles.simulation import annotate_box  # noqa: E402
from impartial_core.suggestions import suggest_for_model  # noqa: E402
from seam_strokes import BOX, base_model, cut, every_merge  # noqa: E402

CUTS = (0.5, 0.7, 0.8, 0.9, 0.95)
PATCH = 128
BATCH = 8


def inputs(image: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """(3, H, W): the normalised image, the probability, the distance to the mask's edge / 10."""
    distance = ndi.distance_transform_edt(probability > threshold) / 10.0
    return np.stack([normalize(image[None])[0], probability, distance]).astype(np.float32)


def targets(seam: np.ndarray, region: np.ndarray, scribbles: np.ndarray, probability: np.ndarray,
            threshold: float):
    """Per pixel: 1 seam, 0 not seam, and a class-balancing weight (0 where nothing is known)."""
    away = ndi.distance_transform_edt(~seam) > 2
    other = ((scribbles == NUCLEUS) | (scribbles == BACKGROUND) | (region & (probability > threshold))) & away
    return seam.astype(np.float32), seam, other


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The chance that a seam pixel scores above another mask pixel (ties count half)."""
    values = np.concatenate([positive, negative])
    order = np.argsort(values, kind="mergesort")
    rank = np.empty(len(values))
    rank[order] = np.arange(1, len(values) + 1)
    return float((rank[:len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


class SeamNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = UNet(3, 16, 3)
        self.head = torch.nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))[:, 0]


def train(xs, ys, positives, negatives, steps: int, seed: int) -> SeamNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_pos = sum(int(p.sum()) for p in positives)
    n_neg = sum(int(n.sum()) for n in negatives)
    weights = [np.where(p, n_neg / max(n_pos, 1), 0.0) + np.where(n, 1.0, 0.0) for p, n in zip(positives, negatives)]
    # Patches are drawn around seam pixels half the time, so that the few seams are seen often.
    seam_pixels = [np.argwhere(p) for p in positives]
    net = SeamNet()
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    t0 = time.time()
    for step in range(steps):
        xb, yb, wb = [], [], []
        for _ in range(BATCH):
            i = int(rng.integers(len(xs)))
            height, width = ys[i].shape
            if rng.random() < 0.5 and len(seam_pixels[i]):
                r, c = seam_pixels[i][rng.integers(len(seam_pixels[i]))] - PATCH // 2 + rng.integers(-32, 33, 2)
                r, c = int(np.clip(r, 0, height - PATCH)), int(np.clip(c, 0, width - PATCH))
            else:
                r, c = int(rng.integers(height - PATCH + 1)), int(rng.integers(width - PATCH + 1))
            x, y, w = (a[..., r:r + PATCH, c:c + PATCH] for a in (xs[i], ys[i], weights[i]))
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            x, y, w = np.rot90(x, k, (1, 2)), np.rot90(y, k), np.rot90(w, k)
            if flip:
                x, y, w = x[:, ::-1], y[::-1], w[::-1]
            xb.append(x.copy()), yb.append(y.copy()), wb.append(w.copy())
        xb, yb, wb = (torch.from_numpy(np.stack(a)).float() for a in (xb, yb, wb))
        loss = (wb * F.binary_cross_entropy_with_logits(net(xb), yb, reduction="none")).sum() / wb.sum().clamp(min=1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0:
            print(f"    step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    return net


def guided_strokes(model, fold, nuclei):
    strokes = [np.zeros(image.shape, np.uint8) for image in fold.images]
    boxed = [np.zeros(image.shape, bool) for image in fold.images]
    for place in suggest_for_model(model, fold.images, 20, scribbles=fold.scribbles, window=BOX, device="cpu"):
        drawn = annotate_box(fold.truth[place.image], place.row, place.col, box=BOX, ring=4,
                             predicted=nuclei[place.image])
        strokes[place.image] = np.where(strokes[place.image] == 0, drawn, strokes[place.image])
        boxed[place.image][max(place.row - BOX // 2, 0):place.row + BOX // 2,
                           max(place.col - BOX // 2, 0):place.col + BOX // 2] = True
    return [s == SPLIT for s in strokes], [np.where(s == NUCLEUS, NUCLEUS, f) for s, f in zip(strokes, fold.scribbles)], boxed


def run_fold(mibi, held_out: int, folder: Path, steps: int, sets) -> None:
    fold = make_fold(mibi, held_out)
    model = base_model(mibi, held_out, folder)
    threshold = model.threshold("nuclei")
    maps = [model.predict(image, device="cpu") for image in fold.images]
    nuclei = [model.segment(m).nuclei for m in maps]
    probability = [m["nuclei"].foreground_probability for m in maps]
    test_maps = model.predict(fold.test_image, device="cpu")
    test_nuclei = model.segment(test_maps).nuclei
    test_p = test_maps["nuclei"].foreground_probability
    true_seams = every_merge(fold.test_truth, test_nuclei)
    before = evaluate_image(None, test_nuclei, fold.test_truth)
    xs = [inputs(image, p, threshold) for image, p in zip(fold.images, probability)]
    test_x = torch.from_numpy(inputs(fold.test_image, test_p, threshold))[None]
    choices = {}
    if "every" in sets:
        choices["every merge"] = ([every_merge(t, n) for t, n in zip(fold.truth, nuclei)], fold.scribbles,
                                  [np.ones(p.shape, bool) for p in probability])
    if "guided" in sets:
        choices["20 guided boxes"] = guided_strokes(model, fold, nuclei)
    for name, (seams, scribbles, regions) in choices.items():
        known = [targets(s, r, f, p, threshold) for s, r, f, p in zip(seams, regions, scribbles, probability)]
        net = train(xs, [k[0] for k in known], [k[1] for k in known], [k[2] for k in known], steps, seed=0)
        with torch.no_grad():
            pad = [(0, (-n) % 8) for n in test_x.shape[-2:]]
            padded = F.pad(test_x, (0, pad[1][1], 0, pad[0][1]), mode="reflect")
            seam_p = torch.sigmoid(net(padded))[0, :test_p.shape[0], :test_p.shape[1]].numpy()
        others = (test_p > threshold) & ~true_seams
        print(f"held-out {held_out}, {name} ({int(sum(s.sum() for s in seams))} stroke px): seam probability "
              f"{seam_p[true_seams].mean():.3f} on the {int(true_seams.sum())} true seam px, "
              f"{seam_p[others].mean():.3f} on other mask px, AUC {auc(seam_p[true_seams], seam_p[others]):.3f}",
              flush=True)
        for at in CUTS:
            after = evaluate_image(None, cut(test_p, threshold, seam_p, at), fold.test_truth)
            print(f"    cut above {at}: F1@0.5 {before['f1_iou50']:.3f} -> {after['f1_iou50']:.3f}, mDICE "
                  f"{before['mdice']:.3f} -> {after['mdice']:.3f}, {before['n_pred']} -> {after['n_pred']} nuclei "
                  f"(true {after['n_true']})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[1] / "out" / "seam_models")
    parser.add_argument("--folds", type=int, nargs="+", default=[5, 0], choices=MIBI_IDS)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--sets", nargs="+", default=["every", "guided"], choices=["every", "guided"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    mibi = load_mibi()
    for held_out in args.folds:
        run_fold(mibi, held_out, args.models, args.steps, args.sets)


if __name__ == "__main__":
    main()
