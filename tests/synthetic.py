"""Tiny synthetic images with known nuclei, for fast tests."""
from __future__ import annotations

from typing import Tuple

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
