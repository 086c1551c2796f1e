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
    p_fg = output.foreground_probability
    fg = targets == 1
    bg = targets == 0
    zero = p_fg.new_zeros(())
    loss_fg = ((1 - p_fg)[fg] ** 2).mean() if fg.any() else zero
    loss_bg = (p_fg[bg] ** 2).mean() if bg.any() else zero
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
    p = output.component_probability.permute(0, 2, 3, 1)  # (B, H, W, K)
    mu = output.component_means  # (B, C, K)
    total = p.new_zeros(())
    count = 0
    # Only the ~1.5% hidden pixels enter the loss: gather them per channel instead of
    # evaluating every pixel against every component.
    for c in range(original.shape[1]):
        where = mask[:, c]
        batch_index = where.nonzero(as_tuple=True)[0]
        if batch_index.numel() == 0:
            continue
        sq = (original[:, c][where].float().unsqueeze(1) - mu[batch_index, c]) ** 2  # (N, K)
        total = total + (p[where] * sq).sum()
        count += batch_index.numel()
    if count == 0:
        return total
    return total / (count * 2 * sigma ** 2)
