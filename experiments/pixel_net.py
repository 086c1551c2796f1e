"""A small U-Net that learns one pixel class against another from sparse labels, for experiments.

Used by ``seam_network.py`` (seams between touching nuclei) and ``scribble_centres.py`` (the
centre lines of nucleus strokes): both train it on a few labelled pixels of whole images and read
its probability on an image it never saw.
"""
import time
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from impartial_core.network import UNet

PATCH = 128
BATCH = 8


class PixelNet(torch.nn.Module):
    """A width-16, depth-3 U-Net with one output: the logit of the positive class."""

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.backbone = UNet(n_channels, 16, 3)
        self.head = torch.nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))[:, 0]


def train(xs: Sequence[np.ndarray], positives: List[np.ndarray], negatives: List[np.ndarray], steps: int,
          seed: int = 0) -> PixelNet:
    """Class-balanced binary cross-entropy on 128 x 128 patches of ``xs`` ((C, H, W) each), with
    flips and rotations; pixels in neither ``positives`` nor ``negatives`` are not learnt from."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_pos = sum(int(p.sum()) for p in positives)
    n_neg = sum(int(n.sum()) for n in negatives)
    weights = [np.where(p, n_neg / max(n_pos, 1), 0.0) + np.where(n, 1.0, 0.0) for p, n in zip(positives, negatives)]
    ys = [p.astype(np.float32) for p in positives]
    # Half the patches are drawn around positive pixels, so that the few of them are seen often.
    anchors = [np.argwhere(p) for p in positives]
    net = PixelNet(xs[0].shape[0])
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    t0 = time.time()
    for step in range(steps):
        xb, yb, wb = [], [], []
        for _ in range(BATCH):
            i = int(rng.integers(len(xs)))
            height, width = ys[i].shape
            if rng.random() < 0.5 and len(anchors[i]):
                r, c = anchors[i][rng.integers(len(anchors[i]))] - PATCH // 2 + rng.integers(-32, 33, 2)
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
        if step % 200 == 0:
            print(f"    step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    return net


def probability(net: PixelNet, x: np.ndarray) -> np.ndarray:
    """The positive class's probability over a whole (C, H, W) image (padded to a multiple of 8)."""
    height, width = x.shape[-2:]
    with torch.no_grad():
        padded = F.pad(torch.from_numpy(x)[None], (0, (-width) % 8, 0, (-height) % 8), mode="reflect")
        return torch.sigmoid(net(padded))[0, :height, :width].numpy()
