"""Markers from a centre-ness learnt on synthetic touching nuclei, pasted from the image's own isolated ones.

    python experiments/copy_paste_centres.py --maps DIR [--seeds 0] [--steps 600] [--canvases 300]

``pseudo_centres.py`` learnt a centre-ness from the model's confident objects and found nothing
between touching nuclei: learnt from nuclei bordered by dark background, it never saw a seam.
Here the same isolated nuclei are pasted against each other, so the network sees touching nuclei
whose seams are known. Per held-out MIBI image (the leave-one-image-out maps of
``mibi_fragments.py --maps DIR``, ``DIR/mibi_folds_seed{N}.npz``, trained there when missing):

1. exemplars: the default nuclei (``instances.nuclei_from_probability``) of solidity >= 0.88,
   0.4-1.8 x the median area, nothing else within 3 px and away from the image's edge; each
   kept as its image crop and mask (8-40 per image);
2. synthetic 128 x 128 canvases: a background crop of the same image (its nuclei replaced by
   background pixels), then 10-25 exemplars, rotated, flipped and scaled 0.85-1.35 x, 70% of
   them placed against an earlier one (centres 0.75-1 x the sum of their radii apart), each
   overlapping the others by at most 10%; the image is the brighter of canvas and exemplar over
   the exemplar's mask grown by 3 px, the target each nucleus's distance to its edge over its
   maximum;
3. a U-Net (width 16, depth 3) learns that centre-ness from the image alone (binary
   cross-entropy, batch 8, rotations; bfloat16 where the CPU computes it natively);
4. markers from its centre-ness on the real image, inside the model's mask: regions above 0.3-0.6,
   h-maxima (h 0.05-0.3, smoothed over 1 or 2 px), or the default split of the mask with the
   pixels of centre-ness under 0.05-0.2 cut away; each flooded over the mask, then holes filled
   and small objects dropped as the default does.

No ground truth is used until scoring: F1@0.5 and mDICE per held-out image against the default.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks.data import MIBI_IDS  # noqa: E402
from impartial_core import instances  # noqa: E402
from impartial_core.devices import bfloat16_native  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.network import UNet  # noqa: E402
from mibi_fragments import cleaned, fold_maps  # noqa: E402

EIGHT = np.ones((3, 3), dtype=bool)


def exemplars(image, labels):
    """(image crop, mask, mask grown by 3 px) of the isolated, convex, typical-sized nuclei."""
    props = regionprops(labels)
    median = np.median([r.area for r in props])
    out = []
    for r in props:
        y0, x0, y1, x1 = r.bbox
        if min(y0, x0) < 5 or y1 > labels.shape[0] - 5 or x1 > labels.shape[1] - 5:
            continue
        if r.solidity < 0.88 or not 0.4 * median <= r.area <= 1.8 * median:
            continue
        box = (slice(y0 - 4, y1 + 4), slice(x0 - 4, x1 + 4))
        nucleus = labels[box] == r.label
        if ((labels[box] > 0) & ~nucleus & ndi.binary_dilation(nucleus, iterations=3)).any():
            continue
        out.append((image[box].copy(), nucleus, ndi.binary_dilation(nucleus, iterations=3)))
    return out


def synthetic(image, labels, examples, rng, size=128, touching=0.7):
    """One canvas of pasted exemplars and its centre-ness target."""
    far = ~ndi.binary_dilation(labels > 0, iterations=4)
    y0, x0 = rng.integers(0, image.shape[0] - size), rng.integers(0, image.shape[1] - size)
    canvas = image[y0:y0 + size, x0:x0 + size].copy()
    nuclei = ~far[y0:y0 + size, x0:x0 + size]
    canvas[nuclei] = rng.choice(image[far], nuclei.sum())
    pasted = np.zeros((size, size), np.int32)
    centres, goal = [], rng.integers(10, 26)
    for _ in range(80):
        if len(centres) >= goal:
            break
        crop, nucleus, support = examples[rng.integers(len(examples))]
        turns, flip, zoom = rng.integers(4), rng.integers(2), rng.uniform(0.85, 1.35)
        crop, nucleus, support = ((np.rot90(a, turns)[:, ::-1] if flip else np.rot90(a, turns)) for a in (crop, nucleus, support))
        crop, nucleus, support = ndi.zoom(crop, zoom, order=1), ndi.zoom(nucleus, zoom, order=0), ndi.zoom(support, zoom, order=0)
        h, w = crop.shape
        if centres and rng.random() < touching:
            cy, cx, radius = centres[rng.integers(len(centres))]
            angle = rng.uniform(0, 2 * np.pi)
            distance = (radius + np.sqrt(nucleus.sum() / np.pi)) * rng.uniform(0.75, 1.0)
            top, left = int(cy + distance * np.sin(angle) - h / 2), int(cx + distance * np.cos(angle) - w / 2)
        else:
            top, left = rng.integers(-h // 3, size - h // 2), rng.integers(-w // 3, size - w // 2)
        rows, cols = slice(max(top, 0), min(top + h, size)), slice(max(left, 0), min(left + w, size))
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        inner = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        here = nucleus[inner]
        if here.sum() < 10 or (pasted[rows, cols][here] > 0).mean() > 0.1:
            continue
        region, grown = canvas[rows, cols], support[inner]
        region[grown] = np.maximum(region[grown], crop[inner][grown])
        pasted[rows, cols][here] = len(centres) + 1
        centres.append((top + h / 2, left + w / 2, np.sqrt(nucleus.sum() / np.pi)))
    centre = np.zeros((size, size), np.float32)
    for r in regionprops(pasted):
        nucleus = pasted[r.slice] == r.label
        distance = ndi.distance_transform_edt(np.pad(nucleus, 1))[1:-1, 1:-1]
        centre[r.slice][nucleus] = (distance / distance.max())[nucleus]
    return canvas, centre


def learnt_centres(image, labels, steps, canvases, seed):
    """The centre-ness of ``image`` from a U-Net trained on canvases pasted from its own nuclei."""
    rng = np.random.default_rng(seed)
    examples = exemplars(image, labels)
    data = [synthetic(image, labels, examples, rng) for _ in range(canvases)]
    inputs = torch.tensor(np.stack([a for a, _ in data])[:, None])
    targets = torch.tensor(np.stack([c for _, c in data])[:, None])
    torch.manual_seed(seed)
    network, head = UNet(1, 16, 3), torch.nn.Conv2d(16, 1, 1)
    optimiser = torch.optim.Adam(list(network.parameters()) + list(head.parameters()), 2e-3)
    precision = dict(device_type="cpu", dtype=torch.bfloat16, enabled=bfloat16_native(torch.device("cpu")))
    for _ in range(steps):
        batch = torch.randint(0, len(inputs), (8,))
        turns = int(torch.randint(4, ()))
        x, target = torch.rot90(inputs[batch], turns, (2, 3)), torch.rot90(targets[batch], turns, (2, 3))
        with torch.autocast(**precision):
            logits = head(network(x)).float()
        loss = F.binary_cross_entropy_with_logits(logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad(), torch.autocast(**precision):
        return torch.sigmoid(head(network(torch.tensor(image)[None, None])).float())[0, 0].numpy(), len(examples)


def flooded(markers, surface, mask):
    """Markers flooded over the mask; mask parts no marker reaches become objects of their own;
    finished as the default instance step finishes its nuclei (``mibi_fragments.cleaned``)."""
    labels = watershed(surface, markers, mask=mask)
    orphans = mask & (labels == 0)
    if orphans.any():
        extra = ndi.label(orphans)[0]
        labels = np.where(orphans, extra + labels.max() * (extra > 0), labels)
    return cleaned(labels)


def variants(probability, threshold, centre):
    """name -> nuclei for each way of turning the centre-ness into markers."""
    mask = probability > threshold
    out = {}
    for level in (0.3, 0.4, 0.5, 0.6):
        out[f"regions above {level}"] = flooded(ndi.label((ndi.gaussian_filter(centre, 1.0) > level) & mask)[0], -centre, mask)
    for h in (0.05, 0.1, 0.2, 0.3):
        for sigma in (1.0, 2.0):
            smooth = ndi.gaussian_filter(centre, sigma)
            tops = h_maxima(np.where(mask, smooth, 0).astype(np.float32), h) & mask
            out[f"h-maxima, h {h}, smoothed {sigma:g} px"] = flooded(ndi.label(tops, structure=EIGHT)[0], -smooth, mask)
    for level in (0.05, 0.1, 0.2):
        inner = np.where(mask & (centre > level), probability, 0).astype(np.float32)
        out[f"default split with centre-ness under {level} cut"] = flooded(
            instances.nuclei_from_probability(inner, threshold), -ndi.distance_transform_edt(mask), mask)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", type=Path, required=True, help="folder of mibi_fragments.py's fold maps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=600, help="training steps of the centre-ness network")
    parser.add_argument("--canvases", type=int, default=300, help="synthetic canvases per image")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for seed in args.seeds:
        rows = {}
        for held, (image, truth, probability, threshold) in fold_maps(args.maps, seed).items():
            image = image.reshape(probability.shape)
            start = time.perf_counter()
            default = instances.nuclei_from_probability(probability, threshold)
            centre, n_examples = learnt_centres(image, default, args.steps, args.canvases, seed)
            print(f"seed {seed}, held-out image {held}: {n_examples} exemplars, {time.perf_counter() - start:.0f} s", flush=True)
            for name, nuclei in {"default": default, **variants(probability, threshold, centre)}.items():
                score = evaluate_image(None, nuclei, truth)
                rows.setdefault(name, []).append((score["f1_iou50"], score["mdice"]))
        print(f"seed {seed}: F1@0.5 per held-out image ({', '.join(map(str, MIBI_IDS))}), the mean, mDICE")
        for name, scores in rows.items():
            scores = np.array(scores)
            print(f"    {name:48} " + " ".join(f"{v:.3f}" for v in scores[:, 0])
                  + f"  mean {scores[:, 0].mean():.3f}, mDICE {scores[:, 1].mean():.3f}")


if __name__ == "__main__":
    main()
