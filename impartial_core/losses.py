"""ImPartial's two losses: the scribble (Brier) loss and the quantised-imputation loss."""
from __future__ import annotations

from typing import Dict

import torch

from .network import TaskOutput

# Scribble targets per task: -1 = not annotated for this task, 0 = background, 1 = foreground.
UNLABELLED = -1


def scribble_loss(output: TaskOutput, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Class-balanced Brier score on scribbled pixels.

    For each class, the mean over that class's scribbled pixels in the batch of (1 - P_class)^2;
    a class without any scribble in the batch contributes 0 (not NaN).

    Parameters
    ----------
    output : the task's network output.
    targets : (B, H, W) int tensor of -1 / 0 / 1.
    """
    # Masked sums over counts rather than boolean indexing: nothing here waits for the device (a
    # GPU keeps its queue full), and a class without scribbles gives 0 / 1 = 0.
    p_fg = output.foreground_probability
    fg = (targets == 1).to(p_fg.dtype)
    bg = (targets == 0).to(p_fg.dtype)
    loss_fg = ((1 - p_fg) ** 2 * fg).sum() / fg.sum().clamp_min(1)
    loss_bg = (p_fg ** 2 * bg).sum() / bg.sum().clamp_min(1)
    return {"foreground": loss_fg, "background": loss_bg}


def reconstruction_loss(output: TaskOutput, original: torch.Tensor, mask: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Expected Gaussian negative log-likelihood of the hidden pixels under the components.

    L = mean over hidden pixels and channels of sum_k p_k(x) (x - mu_k)^2 / (2 sigma^2).

    Parameters
    ----------
    output : the task's network output (means of shape (B, C_task, K)).
    original : (B, C_task, H, W) the unmasked values of the task's reconstructed channels.
    mask : (B, C_task, H, W) bool, True at hidden pixels.
    """
    # Dense over all pixels, weighted by the mask: no data-dependent shapes, so no waiting for the
    # device; the extra arithmetic is a few element-wise passes over (B, C, K, H, W).
    p = output.component_probability.unsqueeze(1)                      # (B, 1, K, H, W)
    mu = output.component_means[..., None, None]                       # (B, C, K, 1, 1)
    per_pixel = (p * (original.float().unsqueeze(2) - mu) ** 2).sum(dim=2)   # (B, C, H, W)
    hidden = mask.to(per_pixel.dtype)
    # No hidden pixel gives 0 / 1 = 0.
    return (per_pixel * hidden).sum() / (hidden.sum().clamp_min(1) * 2 * sigma ** 2)
