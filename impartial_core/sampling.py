"""Training data: scribble targets per task, a held-aside validation region, and patch batches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

from .config import TaskSpec
from .losses import UNLABELLED

# Validation blocks: the images are cut into squares of this size and a fraction of the squares
# that hold scribbles is set aside, so validation pixels are spatially apart from training ones.
VALIDATION_BLOCK = 32


def task_targets(scribbles: np.ndarray, task: TaskSpec) -> np.ndarray:
    """Map scribble values to a task's targets: 1 foreground, 0 background, -1 not annotated."""
    lut = np.full(max(256, int(scribbles.max(initial=0)) + 1), UNLABELLED, dtype=np.int8)
    lut[list(task.foreground_values)] = 1
    lut[list(task.background_values)] = 0
    return lut[scribbles]


@dataclass
class TrainingImage:
    """One normalised (C, H, W) image with per-task training and validation targets (T, H, W)."""

    image: np.ndarray
    train_targets: np.ndarray
    validation_targets: np.ndarray

    @property
    def all_targets(self) -> np.ndarray:
        """Training and validation targets together (they label different pixels)."""
        return np.where(self.train_targets != UNLABELLED, self.train_targets, self.validation_targets)


def split_validation(
    targets: np.ndarray, fraction: float, rng: np.random.Generator, block: int = VALIDATION_BLOCK
) -> Tuple[np.ndarray, np.ndarray]:
    """Move the scribbles of a random ``fraction`` of the scribbled blocks to a validation copy.

    Returns (train_targets, validation_targets); each pixel's label is in at most one of them.
    """
    validation = np.full_like(targets, UNLABELLED)
    if fraction <= 0:
        return targets, validation
    _, h, w = targets.shape
    gh, gw = -(-h // block), -(-w // block)
    annotated = np.zeros((gh * block, gw * block), dtype=bool)
    annotated[:h, :w] = (targets != UNLABELLED).any(axis=0)
    has_scribble = annotated.reshape(gh, block, gw, block).any(axis=(1, 3))
    candidates = np.flatnonzero(has_scribble)
    n_val = int(round(fraction * candidates.size))
    # Keep at least one scribbled block for training: validation must never take everything.
    n_val = min(n_val, candidates.size - 1)
    if n_val <= 0:
        return targets, validation
    chosen = np.zeros(gh * gw, dtype=bool)
    chosen[rng.choice(candidates, n_val, replace=False)] = True
    in_val = np.repeat(np.repeat(chosen.reshape(gh, gw), block, 0), block, 1)[:h, :w]
    train = targets.copy()
    validation[:, in_val] = targets[:, in_val]
    train[:, in_val] = UNLABELLED
    return train, validation


def prepare_training_images(
    images: Sequence[np.ndarray],
    scribbles: Sequence[np.ndarray],
    tasks: Sequence[TaskSpec],
    validation_fraction: float,
    rng: np.random.Generator,
) -> List[TrainingImage]:
    """Targets for every task, with a validation split drawn independently per image.

    A split that left a task's class (foreground or background) with no training pixel at all,
    e.g. when every nucleus stroke lies in one block, is undone in the images whose validation
    part holds that class: the network must see every class it is asked to learn.
    """
    prepared = []
    for image, scribble in zip(images, scribbles):
        targets = np.stack([task_targets(scribble, t) for t in tasks])
        train, validation = split_validation(targets, validation_fraction, rng)
        prepared.append(TrainingImage(image, train, validation))
    for t in range(len(tasks)):
        for cls in (0, 1):
            if any((item.train_targets[t] == cls).any() for item in prepared):
                continue
            for i, item in enumerate(prepared):
                if (item.validation_targets[t] == cls).any():
                    prepared[i] = TrainingImage(item.image, item.all_targets, np.full_like(item.train_targets, UNLABELLED))
    return prepared


class PatchSampler:
    """Draws augmented patch batches, about ``scribble_bias`` of them centred near a scribble.

    Images smaller than a patch are mirror-padded (their padding carries no scribbles). The 8
    rotations/flips are applied per sample, and with ``haze`` > 0 a smooth haze to half the
    channels (:meth:`_haze`). The positions and views are drawn by one numpy
    Generator, so a seed reproduces the batches, on any device; the pixels are then cut out by one
    gather on ``device``, where all training images are kept, so a GPU never waits for the host to
    copy patches (a per-sample loop of numpy slices took 10 ms for a batch of 64).
    """

    def __init__(self, data: Sequence[TrainingImage], patch_size: int, scribble_bias: float, seed: int,
                 device: torch.device = torch.device("cpu"), haze: float = 0.0) -> None:
        self.patch = patch_size
        self.bias = scribble_bias
        self.haze = float(haze)
        self.rng = np.random.default_rng(seed)
        padded = []
        for item in data:
            image, targets = item.image, item.train_targets
            _, h, w = image.shape
            ph, pw = max(0, patch_size - h), max(0, patch_size - w)
            if ph or pw:
                image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
                targets = np.pad(targets, ((0, 0), (0, ph), (0, pw)), constant_values=UNLABELLED)
            padded.append((image, targets))
        self.shapes: List[Tuple[int, int]] = [image.shape[1:] for image, _ in padded]
        sizes = np.array([h * w for h, w in self.shapes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # int32 indices: half the index arithmetic of int64, which dominates a batch on the CPU.
        if sizes.sum() >= 2 ** 31:
            raise ValueError(f"the training images hold {sizes.sum()} pixels in all; at most 2**31 - 1 are supported")
        # All images pixel-major, (N, C), in one array filled in place (one copy of the images, not
        # three): a gather then yields channels-last batches, the layout training uses.
        pixels = np.empty((sizes.sum(), padded[0][0].shape[0]), dtype=np.float32)
        labels = np.empty((sizes.sum(), padded[0][1].shape[0]), dtype=np.int8)
        for (image, targets), start, size in zip(padded, starts, sizes):
            pixels[start:start + size] = image.reshape(image.shape[0], -1).T
            labels[start:start + size] = targets.reshape(targets.shape[0], -1).T
        self.image_weights = sizes / sizes.sum()
        self.device = device
        self.offsets = torch.from_numpy(starts.astype(np.int32)).to(device)
        self.widths = torch.tensor([w for _, w in self.shapes], dtype=torch.int32, device=device)
        # Scribbled pixel coordinates (image, y, x) over all images, for the biased draws.
        coords = [np.argwhere((targets != UNLABELLED).any(axis=0)) for _, targets in padded]
        self.scribbled = np.concatenate([np.column_stack([np.full(len(c), i), c]) for i, c in enumerate(coords)])
        # On the CPU these share the arrays above (no further copy).
        self.pixels = torch.from_numpy(pixels).to(device)
        self.labels = torch.from_numpy(labels).to(device)
        # The 8 views as source rows and columns inside a patch: view 2k + f is np.rot90(patch, k)
        # then, if f, a left-right flip; patch[view_rows[v], view_cols[v]] is view v of the patch.
        grid = np.arange(patch_size * patch_size).reshape(patch_size, patch_size)
        views = np.stack([np.rot90(grid, k)[:, ::-1] if flip else np.rot90(grid, k) for k in range(4) for flip in (0, 1)])
        rows, cols = np.divmod(views, patch_size)
        self.view_rows = torch.from_numpy(rows.astype(np.int32)).to(device)
        self.view_cols = torch.from_numpy(cols.astype(np.int32)).to(device)

    def _corner(self, index: int, centre: Tuple[int, int] | None) -> Tuple[int, int]:
        h, w = self.shapes[index]
        p = self.patch
        if centre is None:
            return int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
        # Jitter so the scribble is not always at the patch centre.
        cy = centre[0] + int(self.rng.integers(-p // 4, p // 4 + 1))
        cx = centre[1] + int(self.rng.integers(-p // 4, p // 4 + 1))
        return int(np.clip(cy - p // 2, 0, h - p)), int(np.clip(cx - p // 2, 0, w - p))

    def draw(self, batch_size: int) -> np.ndarray:
        """Draw (image, top, left, view) for each sample of a batch, as a (B, 4) int32 array."""
        draws = np.empty((batch_size, 4), dtype=np.int32)
        near_scribble = self.rng.random(batch_size) < self.bias if len(self.scribbled) else np.zeros(batch_size, bool)
        for b, near in enumerate(near_scribble):
            if near:
                i, y, x = self.scribbled[self.rng.integers(len(self.scribbled))]
                y0, x0 = self._corner(int(i), (int(y), int(x)))
            else:
                i = int(self.rng.choice(len(self.shapes), p=self.image_weights))
                y0, x0 = self._corner(i, None)
            k = int(self.rng.integers(4))
            flip = int(self.rng.integers(2))
            draws[b] = (i, y0, x0, 2 * k + flip)
        return draws

    def batch(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (images (B, C, P, P) float32 channels-last, targets (B, T, P, P) int64) on the device."""
        image, top, left, view = torch.from_numpy(self.draw(batch_size)).to(
            self.device, non_blocking=True).unbind(1)   # non-blocking: no wait for the device's queue
        width = self.widths[image]
        corner = self.offsets[image] + top * width + left
        index = corner[:, None, None] + self.view_rows[view] * width[:, None, None] + self.view_cols[view]  # (B, P, P)
        images = self.pixels[index].permute(0, 3, 1, 2)                                  # (B, C, P, P)
        targets = self.labels[index].permute(0, 3, 1, 2).long()
        if self.haze > 0:
            images = images + self._haze(images.shape[0], images.shape[1])
        return images, targets

    def _haze(self, batch_size: int, channels: int) -> torch.Tensor:
        """Smooth additive backgrounds, (B, C, P, P), for half the channels of a batch's patches.

        How it works: each haze is one Gaussian blob, its centre anywhere from half a patch before
        to half a patch beyond the patch, its width 0.5-2 patches, its height uniform up to
        ``haze`` (normalised intensity). A blob is separable, so it is the outer product of a row
        and a column profile: (B, C, P) by (B, C, P), with no per-sample loop. The parameters come
        from the sampler's generator, so a seed reproduces them.
        """
        p = self.patch
        shape = (batch_size, channels)
        height = self.rng.uniform(0.0, self.haze, shape) * (self.rng.random(shape) < 0.5)
        centre = self.rng.uniform(-0.5 * p, 1.5 * p, shape + (2,))
        width = self.rng.uniform(0.5 * p, 2.0 * p, shape)
        parameters = torch.from_numpy(np.concatenate([height[..., None], centre, width[..., None]], axis=-1).astype(np.float32))
        height, cy, cx, width = parameters.to(self.device).unbind(-1)
        grid = torch.arange(p, dtype=torch.float32, device=self.device)
        rows = torch.exp(-0.5 * ((grid - cy[..., None]) / width[..., None]) ** 2)   # (B, C, P)
        cols = torch.exp(-0.5 * ((grid - cx[..., None]) / width[..., None]) ** 2)
        return height[..., None, None] * rows[..., :, None] * cols[..., None, :]
