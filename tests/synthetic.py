"""Tiny synthetic images with known nuclei, and the small trainings on them that tests share."""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np
from scipy import ndimage as ndi


def blobs(seed: int = 0, size: int = 96, n: int = 10, noise: float = 0.3) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy image of ``n`` round nuclei, their labels, and sparse scribbles.

    Returns (image float32 (H, W), labels int32, scribbles uint8 with 1 background and 2 nucleus).
    Scribbles: the centre row of every other nucleus, and two background lines away from nuclei.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    radius = max(3, size // 16)
    placed = 0
    for _ in range(n * 20):
        if placed == n:
            break
        cy, cx = rng.integers(radius + 1, size - radius - 1, 2)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
        if (ndi.binary_dilation(labels > 0, iterations=2) & disk).any():
            continue
        placed += 1
        labels[disk] = placed
    image = (labels > 0) * 1.0 + rng.normal(0, noise, labels.shape)
    scribbles = np.zeros((size, size), np.uint8)
    far = ~ndi.binary_dilation(labels > 0, iterations=4)
    for index in range(1, placed + 1, 2):
        ys, xs = np.nonzero(labels == index)
        row = int(np.median(ys))
        scribbles[row, xs[ys == row][1:-1]] = 2
    for row in (size // 4, 3 * size // 4):
        scribbles[row, far[row]] = 1
    return image.astype(np.float32), labels, scribbles


def train_on_blobs(seed: int = 0, iterations: int = 60, **overrides: Any):
    """Train a width-8 nuclei network on ``blobs(seed=1)`` (batch 4 of 64², validated every 20
    iterations); ``overrides`` are further ``TrainingConfig`` fields.

    The time budget is an hour: the iteration limit, not the machine's speed or load (a first
    compiled step can take a minute on a busy machine), ends these trainings.

    Returns (``TrainingResult``, the raw image, its true labels).
    """
    from impartial_core.config import NetworkConfig, TrainingConfig, nuclei_task
    from impartial_core.normalization import normalize
    from impartial_core.training import train

    image, truth, scribbles = blobs(seed=1)
    settings = dict(max_iterations=iterations, batch_size=4, patch_size=64, eval_every=20, seed=seed,
                    learning_rate=3e-3, time_budget_s=3600.0)
    config = TrainingConfig(**{**settings, **overrides})
    return train([normalize(image[None])], [scribbles], [nuclei_task()], NetworkConfig(1, 8), config), image, truth


def blob_model():
    """An ``ImPartialModel`` trained for 40 iterations on ``blobs(seed=1)``: enough to find its nuclei,
    and sure of them (no haze augmentation: after 40 iterations with it, no pixel is sure either
    way, and the anchors and suggestions tested on this model start from sure answers). In float32
    on every CPU: 40 iterations of this small problem take another path in bfloat16, and from seed
    0 that path is not yet sure of the background (from seed 1 it is)."""
    from impartial_core.config import NetworkConfig, TrainingConfig, nuclei_task
    from impartial_core.model import ImPartialModel

    image, _, scribbles = blobs(seed=1)
    config = TrainingConfig(max_iterations=40, batch_size=4, patch_size=64, eval_every=20, learning_rate=3e-3,
                            time_budget_s=3600.0, haze=0.0, mixed_precision=False)
    return ImPartialModel.train([image], [scribbles], [nuclei_task()], NetworkConfig(1, 8), config)
