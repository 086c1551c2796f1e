"""Blind-spot masking for self-supervision (Noise2Void style), vectorised on the tensor's device."""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def _offset_inside(position: torch.Tensor, offset: torch.Tensor, size: int) -> torch.Tensor:
    """position + offset, or position - offset where that would leave [0, size).

    Flipping the offset (rather than mirroring the index at the edge) keeps it non-zero, so a
    hidden pixel can never be replaced by itself.
    """
    moved = position + offset
    return torch.where((moved < 0) | (moved >= size), position - offset, moved)


def blind_spot_mask(
    patches: torch.Tensor,
    cell: int = 8,
    radius: int = 5,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hide one random pixel per ``cell`` x ``cell`` block, per patch and channel.

    Each hidden pixel takes the value of a random *other* pixel of the (2r+1)^2 window around it,
    so the network cannot learn the identity and must impute it from context.

    Parameters
    ----------
    patches : (B, C, H, W) float tensor.
    cell : stratification block size (8 gives about 1.5% of the pixels, as in the paper).
    radius : half-size r of the replacement window.
    generator : optional ``torch.Generator`` on the patches' device, for reproducibility.

    Returns
    -------
    masked : a copy of ``patches`` with the hidden pixels replaced.
    mask : (B, C, H, W) bool tensor, True at hidden pixels.
    """
    if patches.ndim != 4:
        raise ValueError(f"patches must be (B, C, H, W), got shape {tuple(patches.shape)}")
    b, c, h, w = patches.shape
    if h <= 2 * radius or w <= 2 * radius:
        raise ValueError(f"patches of {h}x{w} are too small for a blind-spot radius of {radius}")
    device = patches.device
    gh, gw = -(-h // cell), -(-w // cell)
    shape = (b, c, gh, gw)
    # Stratified positions: one per block; the last block of a ragged edge is clamped inside.
    rows = (torch.arange(gh, device=device).view(1, 1, gh, 1) * cell
            + torch.randint(0, cell, shape, device=device, generator=generator)).clamp_max(h - 1)
    cols = (torch.arange(gw, device=device).view(1, 1, 1, gw) * cell
            + torch.randint(0, cell, shape, device=device, generator=generator)).clamp_max(w - 1)
    # A random offset in the window excluding (0, 0): draw from n-1 choices and skip the centre.
    side = 2 * radius + 1
    choice = torch.randint(0, side * side - 1, shape, device=device, generator=generator)
    choice = choice + (choice >= (side * side) // 2).long()
    src_rows = _offset_inside(rows, choice // side - radius, h)
    src_cols = _offset_inside(cols, choice % side - radius, w)

    flat = patches.reshape(b, c, h * w)
    target = (rows * w + cols).reshape(b, c, -1)
    source = (src_rows * w + src_cols).reshape(b, c, -1)
    masked = flat.clone()
    masked.scatter_(2, target, flat.gather(2, source))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(2, target, True)
    return masked.view(b, c, h, w), mask.view(b, c, h, w)
