"""Whole-image prediction by overlapping tiles, blended, in bounded memory.

Memory bound: besides the input and one float32 (H, W) map per task plus one shared weight map,
only one tile batch lives at a time (``tile_size``^2 pixels times the network's activations), so
any image size works; an 8192 x 8192 single-channel image needs about 1.4 GB for the maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .network import ImPartialNet


@dataclass
class TaskMaps:
    """Per-pixel outputs of one task for a whole image."""

    foreground_probability: np.ndarray  # (H, W) float32 in [0, 1]
    uncertainty: np.ndarray  # (H, W) float32, binary entropy in bits, in [0, 1]
    reconstruction: Optional[np.ndarray] = None  # (C_task, H, W) float32, the quantised image


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(p) map: 0 where certain, 1 at p = 0.5."""
    p = np.clip(p.astype(np.float32, copy=False), 1e-6, 1 - 1e-6)
    return (-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).astype(np.float32)


def _tile_starts(size: int, tile: int, step: int) -> List[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)  # the last tile is flush with the edge
    return starts


def _ramp(length: int, overlap: int) -> np.ndarray:
    """1-D blending weight: rises linearly over ``overlap`` pixels at each end, never zero."""
    d = np.minimum(np.arange(length), np.arange(length)[::-1]).astype(np.float32)
    return np.clip((d + 1) / max(overlap, 1), 1e-3, 1.0)


def tiles(shape: Tuple[int, int], tile: int, overlap: int) -> Iterator[Tuple[slice, slice]]:
    """The (rows, cols) slices of overlapping tiles covering an image of ``shape``."""
    h, w = shape
    step = max(1, tile - overlap)
    for y in _tile_starts(h, tile, step):
        for x in _tile_starts(w, tile, step):
            yield slice(y, min(y + tile, h)), slice(x, min(x + tile, w))


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def _forward_tile(net: ImPartialNet, tile: torch.Tensor, flips: bool, autocast: bool, reconstruct: bool):
    """Foreground probability (T, h, w) and optional reconstructions for one (C, h, w) tile."""
    x, h, w = _pad_to_multiple(tile[None], net.multiple)
    variants = [(), (-1,), (-2,), (-2, -1)] if flips else [()]
    batch = torch.cat([torch.flip(x, dims) if dims else x for dims in variants]).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=batch.device.type, dtype=torch.bfloat16, enabled=autocast):
        outputs = net(batch)
    probs, recons = [], []
    for task in net.tasks:
        out = outputs[task.name]
        p = out.foreground_probability
        p = torch.stack([torch.flip(p[i], [d + 1 for d in dims]) if dims else p[i] for i, dims in enumerate(variants)])
        probs.append(p.mean(0)[:h, :w])
        if reconstruct:
            r = out.reconstruction()
            r = torch.stack([torch.flip(r[i], [d + 1 for d in dims]) if dims else r[i] for i, dims in enumerate(variants)])
            recons.append(r.mean(0)[:, :h, :w].float().cpu().numpy())
    return torch.stack(probs).float().cpu().numpy(), recons


def predict_image(
    net: ImPartialNet,
    image: np.ndarray,
    tile_size: int = 512,
    overlap: int = 64,
    flips: bool = False,
    reconstruct: bool = False,
    device: Optional[torch.device] = None,
) -> Dict[str, TaskMaps]:
    """Predict every task of ``net`` on a normalised (C, H, W) image.

    Parameters
    ----------
    net : a trained network (its mode is set to eval).
    image : normalised float32 (C, H, W) array.
    tile_size, overlap : tiles of ``tile_size``^2 pixels overlapping by ``overlap`` pixels, blended
        with linear ramps so tile seams do not show.
    flips : average the probability over the 4 flips (test-time augmentation, 4x slower); the
        uncertainty is then the entropy of the averaged probability.
    reconstruct : also return each task's quantised reconstruction of its channels.
    """
    if image.ndim != 3 or image.shape[0] != net.network.n_channels:
        raise ValueError(f"the model expects {net.network.n_channels} channel(s) as (C, H, W); got shape {image.shape}")
    if overlap >= tile_size:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile_size ({tile_size})")
    device = device or next(net.parameters()).device
    net.eval()
    _, h, w = image.shape
    n_tasks = len(net.tasks)
    prob_sum = np.zeros((n_tasks, h, w), dtype=np.float32)
    weight_sum = np.zeros((h, w), dtype=np.float32)
    recon_sum = ([np.zeros((len(t.reconstructed_channels), h, w), dtype=np.float32) for t in net.tasks]
                 if reconstruct else [])
    autocast = device.type == "cuda"
    for rows, cols in tiles((h, w), tile_size, overlap):
        tile = torch.from_numpy(np.ascontiguousarray(image[:, rows, cols])).to(device)
        probs, recons = _forward_tile(net, tile, flips, autocast, reconstruct)
        weight = np.outer(_ramp(probs.shape[1], overlap), _ramp(probs.shape[2], overlap))
        prob_sum[:, rows, cols] += probs * weight
        weight_sum[rows, cols] += weight
        for acc, r in zip(recon_sum, recons):
            acc[:, rows, cols] += r * weight
    prob_sum /= weight_sum
    result = {}
    for i, task in enumerate(net.tasks):
        p = np.clip(prob_sum[i], 0.0, 1.0)
        recon = recon_sum[i] / weight_sum if reconstruct else None
        result[task.name] = TaskMaps(p, binary_entropy(p), recon)
    return result
