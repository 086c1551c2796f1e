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

from .devices import bfloat16_native
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


def _tile_starts(size: int, tile: int, overlap: int, multiple: int) -> Tuple[List[int], int]:
    """Starts and length of the tiles along an axis of ``size`` pixels: the fewest tiles of at most
    ``tile`` pixels that overlap by at least ``overlap``, all of one length and spread evenly, the
    last flush with the edge; sizes and starts on the grid of ``multiple`` (which ``size``, ``tile``
    and ``overlap`` are on). Tiles of 512 pixels with only the last one moved back computed 2560
    pixels for a 2048-pixel axis, 1536 for a 1024-pixel one and 1024 for a 520-pixel one; these
    compute 2320, 1152 and 584."""
    if size <= tile:
        return [0], size
    # In units of ``multiple``: n tiles of length L overlapping by at least O cover S when
    # n L - (n - 1) O >= S; the fewest such n, then the shortest such L (<= the tile, as n was
    # chosen for it); starts rounded down keep each step <= L - O.
    s, t, o = size // multiple, tile // multiple, overlap // multiple
    n = -(-(s - o) // (t - o))
    length = -(-(s + (n - 1) * o) // n)
    return [multiple * ((i * (s - length)) // (n - 1)) for i in range(n)], multiple * length


def _ramp(piece: slice, size: int, overlap: int) -> np.ndarray:
    """1-D blending weight of a tile spanning ``piece`` of an axis of ``size`` pixels.

    At an edge inside the image it is ~0 over the first third of ``overlap`` (where the zero
    padding of the convolutions distorts the output) and then rises linearly to 1; at an edge of
    the image itself there is no neighbour to blend with, so the weight stays 1.
    """
    index = np.arange(piece.stop - piece.start, dtype=np.float32)
    from_start = index if piece.start > 0 else np.full_like(index, np.inf)
    from_end = index[::-1] if piece.stop < size else np.full_like(index, np.inf)
    margin = overlap // 3
    return np.clip((np.minimum(from_start, from_end) + 1 - margin) / max(overlap - margin, 1), 1e-3, 1.0)


def tiles(shape: Tuple[int, int], tile: int, overlap: int, multiple: int = 1) -> Iterator[Tuple[slice, slice]]:
    """The (rows, cols) slices of overlapping tiles covering an image of ``shape`` (see
    :func:`_tile_starts`)."""
    (row_starts, height), (col_starts, width) = (_tile_starts(n, tile, overlap, multiple) for n in shape)
    for y in row_starts:
        for x in col_starts:
            yield slice(y, y + height), slice(x, x + width)


@torch.no_grad()
def _forward_tile(net: ImPartialNet, tile: torch.Tensor, flips: bool, autocast: bool, reconstruct: bool):
    """Foreground probability (T, h, w) and optional reconstructions for one (C, h, w) tile."""
    x = tile[None]
    variants = [(), (-1,), (-2,), (-2, -1)] if flips else [()]
    batch = torch.cat([torch.flip(x, dims) if dims else x for dims in variants]).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=batch.device.type, dtype=torch.bfloat16, enabled=autocast):
        outputs = net(batch)
    probs, recons = [], []
    for task in net.tasks:
        out = outputs[task.name]
        p = out.foreground_probability
        # dims are negative (counted from the last axis), so they undo the flip on (H, W) and (C, H, W) alike.
        p = torch.stack([torch.flip(p[i], dims) if dims else p[i] for i, dims in enumerate(variants)])
        probs.append(p.mean(0))
        if reconstruct:
            r = out.reconstruction()
            r = torch.stack([torch.flip(r[i], dims) if dims else r[i] for i, dims in enumerate(variants)])
            recons.append(r.mean(0).float().cpu().numpy())
    return torch.stack(probs).float().cpu().numpy(), recons


def predict_image(
    net: ImPartialNet,
    image: np.ndarray,
    tile_size: int = 512,
    overlap: int = 64,
    flips: bool = False,
    reconstruct: bool = False,
    device: Optional[torch.device] = None,
    mixed_precision: bool = True,
) -> Dict[str, TaskMaps]:
    """Predict every task of ``net`` on a normalised (C, H, W) image.

    Parameters
    ----------
    net : a trained network (its mode is set to eval).
    image : normalised float32 (C, H, W) array.
    tile_size, overlap : tiles of at most ``tile_size``^2 pixels overlapping by at least ``overlap``
        pixels, spread evenly (:func:`tiles`), blended with linear ramps so tile seams do not show.
    flips : average the probability over the 4 flips (test-time augmentation, 4x slower); the
        uncertainty is then the entropy of the averaged probability.
    reconstruct : also return each task's quantised reconstruction of its channels.
    mixed_precision : run the network in bfloat16 where the device computes it natively
        (:func:`.devices.bfloat16_native`); the probability is computed from its logits in float32.
    """
    if image.ndim != 3 or image.shape[0] != net.network.n_channels:
        raise ValueError(f"the model expects {net.network.n_channels} channel(s) as (C, H, W); got shape {image.shape}")
    if overlap >= tile_size:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile_size ({tile_size})")
    device = device or next(net.parameters()).device
    net.eval()
    # Pad once to a multiple of the network's pooling factor, and keep tiles and their starts on
    # that grid: every tile then sees the same pixels and pooling windows as an untiled pass.
    m = net.multiple
    tile_size, overlap = max(m, tile_size - tile_size % m), overlap - overlap % m
    _, h0, w0 = image.shape
    ph, pw = (-h0) % m, (-w0) % m
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h0, w0) > max(ph, pw) else "edge")
    _, h, w = image.shape
    n_tasks = len(net.tasks)
    prob_sum = np.zeros((n_tasks, h, w), dtype=np.float32)
    weight_sum = np.zeros((h, w), dtype=np.float32)
    recon_sum = ([np.zeros((len(t.reconstructed_channels), h, w), dtype=np.float32) for t in net.tasks]
                 if reconstruct else [])
    autocast = mixed_precision and bfloat16_native(device)
    for rows, cols in tiles((h, w), tile_size, overlap, m):
        tile = torch.from_numpy(np.ascontiguousarray(image[:, rows, cols])).to(device)
        probs, recons = _forward_tile(net, tile, flips, autocast, reconstruct)
        weight = np.outer(_ramp(rows, h, overlap), _ramp(cols, w, overlap))
        prob_sum[:, rows, cols] += probs * weight
        weight_sum[rows, cols] += weight
        for acc, r in zip(recon_sum, recons):
            acc[:, rows, cols] += r * weight
    prob_sum /= weight_sum
    result = {}
    for i, task in enumerate(net.tasks):
        p = np.ascontiguousarray(np.clip(prob_sum[i, :h0, :w0], 0.0, 1.0))
        recon = (recon_sum[i] / weight_sum)[:, :h0, :w0] if reconstruct else None
        result[task.name] = TaskMaps(p, binary_entropy(p), recon)
    return result
