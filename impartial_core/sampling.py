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
    """Targets for every task, with a validation split drawn independently per image."""
    prepared = []
    for image, scribble in zip(images, scribbles):
        targets = np.stack([task_targets(scribble, t) for t in tasks])
        train, validation = split_validation(targets, validation_fraction, rng)
        prepared.append(TrainingImage(image, train, validation))
    return prepared


class PatchSampler:
    """Draws augmented patch batches, about ``scribble_bias`` of them centred near a scribble.

    Images smaller than a patch are mirror-padded (their padding carries no scribbles). The 8
    rotations/flips are applied per sample. All randomness comes from one numpy Generator, so a
    seed reproduces the batches.
    """

    def __init__(self, data: Sequence[TrainingImage], patch_size: int, scribble_bias: float, seed: int) -> None:
        self.patch = patch_size
        self.bias = scribble_bias
        self.rng = np.random.default_rng(seed)
        self.images: List[np.ndarray] = []
        self.targets: List[np.ndarray] = []
        for item in data:
            image, targets = item.image, item.train_targets
            _, h, w = image.shape
            ph, pw = max(0, patch_size - h), max(0, patch_size - w)
            if ph or pw:
                image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
                targets = np.pad(targets, ((0, 0), (0, ph), (0, pw)), constant_values=UNLABELLED)
            self.images.append(np.ascontiguousarray(image, dtype=np.float32))
            self.targets.append(np.ascontiguousarray(targets))
        # Scribbled pixel coordinates over all images, for the biased draws.
        coords = [np.argwhere((t != UNLABELLED).any(axis=0)) for t in self.targets]
        self.scribbled = np.concatenate(
            [np.column_stack([np.full(len(c), i), c]) for i, c in enumerate(coords)]
        ) if coords else np.zeros((0, 3), dtype=np.int64)
        areas = np.array([im.shape[1] * im.shape[2] for im in self.images], dtype=float)
        self.image_weights = areas / areas.sum()

    def _corner(self, index: int, centre: Tuple[int, int] | None) -> Tuple[int, int]:
        _, h, w = self.images[index].shape
        p = self.patch
        if centre is None:
            return int(self.rng.integers(0, h - p + 1)), int(self.rng.integers(0, w - p + 1))
        # Jitter so the scribble is not always at the patch centre.
        cy = centre[0] + int(self.rng.integers(-p // 4, p // 4 + 1))
        cx = centre[1] + int(self.rng.integers(-p // 4, p // 4 + 1))
        return int(np.clip(cy - p // 2, 0, h - p)), int(np.clip(cx - p // 2, 0, w - p))

    def batch(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (images (B, C, P, P) float32, targets (B, T, P, P) int64) on the CPU."""
        p = self.patch
        images, targets = [], []
        near_scribble = self.rng.random(batch_size) < self.bias if len(self.scribbled) else np.zeros(batch_size, bool)
        for near in near_scribble:
            if near:
                i, y, x = self.scribbled[self.rng.integers(len(self.scribbled))]
                y0, x0 = self._corner(int(i), (int(y), int(x)))
            else:
                i = int(self.rng.choice(len(self.images), p=self.image_weights))
                y0, x0 = self._corner(i, None)
            image = self.images[i][:, y0:y0 + p, x0:x0 + p]
            target = self.targets[i][:, y0:y0 + p, x0:x0 + p]
            k = int(self.rng.integers(4))
            flip = bool(self.rng.integers(2))
            image, target = np.rot90(image, k, axes=(1, 2)), np.rot90(target, k, axes=(1, 2))
            if flip:
                image, target = image[:, :, ::-1], target[:, :, ::-1]
            images.append(image)
            targets.append(target)
        return (torch.from_numpy(np.ascontiguousarray(np.stack(images))),
                torch.from_numpy(np.ascontiguousarray(np.stack(targets)).astype(np.int64)))
