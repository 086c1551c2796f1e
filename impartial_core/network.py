"""The ImPartial network: a small U-Net with one mixture head per task.

Per task and pixel the head gives K component logits (foreground components first) and, for each
reconstructed channel, K component means. The means are pooled over the patch into one value per
(sample, channel, component), weighted by the component probabilities ("component consistency"),
and the foreground-brighter prior is applied to the pooled values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from .config import NetworkConfig, TaskSpec


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True),
    )


# Nearest-neighbour 2x upsampling followed by a 3x3 convolution (zero padding 1), along one axis:
# output pixel 2i + a reads upsampled pixels 2i + a - 1, 2i + a, 2i + a + 1, which are the low-
# resolution pixels (i - 1, i, i) for a = 0 and (i, i, i + 1) for a = 1. So each output phase a is
# a two-tap convolution of the low-resolution input whose taps are sums of the three kernel taps:
# (w0, w1 + w2) for a = 0 and (w0 + w1, w2) for a = 1.
def _phase_taps_last_axis(kernel: torch.Tensor) -> torch.Tensor:
    """(..., 3) kernel taps -> (2, ..., 2): the two-tap kernels of output phases 0 and 1 along that axis.

    Plain slicing and sums of the weights: no constant tensor to place on a device, and
    torch.compile traces it like any other arithmetic.
    """
    w0, w1, w2 = kernel.unbind(-1)
    return torch.stack([torch.stack([w0, w1 + w2], -1), torch.stack([w0 + w1, w2], -1)])


def upsample_concatenate_convolve(conv: nn.Conv2d, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``conv(cat([upsample_2x(low), skip]))`` without building the upsampled image or the concatenation.

    The same function (equal up to float rounding), computed as ``conv``'s skip part on ``skip``
    plus its upsampled part as four 2x2 convolutions of ``low``, one per output phase (row parity
    a, column parity b), interleaved. That part takes 16 instead of 36 multiply-adds per pixel and
    channel pair, and neither the upsampled image nor the concatenation is stored for backward:
    fewer operations and much less memory traffic in the decoder.
    """
    c_low, c_out = low.shape[1], conv.out_channels
    # (a, b, out, in, 2, 2): the 2x2 kernel of phase (a, b), from the 3x3 kernel's low part:
    # fold the columns (phase b), then the rows (phase a).
    by_column = _phase_taps_last_axis(conv.weight[:, :c_low])                        # (b, o, i, 3, 2)
    phase_kernels = _phase_taps_last_axis(by_column.transpose(-1, -2)).transpose(-1, -2)   # (a, b, o, i, 2, 2)
    phases = F.conv2d(F.pad(low, (1, 1, 1, 1)), phase_kernels.reshape(4 * c_out, c_low, 2, 2))
    # phases: (B, 4 C_out, H + 1, W + 1); phase (a, b) of output pixel (2i + a, 2j + b) sits at
    # (i + a, j + b). Interleaved channels-last, the layout the next convolution wants.
    n, _, h, w = low.shape
    phases = phases.permute(0, 2, 3, 1).reshape(n, h + 1, w + 1, 2, 2, c_out)
    rows = [torch.stack([phases[:, a:a + h, b:b + w, a, b] for b in (0, 1)], dim=3) for a in (0, 1)]
    upsampled_part = torch.stack(rows, dim=2).reshape(n, 2 * h, 2 * w, c_out).permute(0, 3, 1, 2)
    return upsampled_part + F.conv2d(skip, conv.weight[:, c_low:], conv.bias, padding=1)


class UNet(nn.Module):
    """U-Net backbone: ``depth`` poolings, width doubling per level, skip connections.

    Input height and width must be multiples of ``2**depth`` (prediction pads tiles to that).
    """

    def __init__(self, n_channels: int, width: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(n_channels, widths[0])])
        self.down.extend(_double_conv(widths[i - 1], widths[i]) for i in range(1, depth + 1))
        self.up = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.out_channels = widths[0]

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The contracting path: the deepest features and the skip features, shallowest first."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        return skips.pop(), skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encode(x)
        for block in self.up:
            # block = conv, ReLU, conv, ReLU; its first convolution reads cat(upsampled x, skip).
            x = block[1:](upsample_concatenate_convolve(block[0], x, skips.pop()))
        return x


@dataclass
class TaskOutput:
    """What one task's head predicts for a batch.

    component_probability: (B, K, H, W), the softmax of the head's logits in float32 (computed
    once: the pooling of the means, the scribble loss and the reconstruction loss all read it).
    component_means: (B, C_task, K), after pooling and the prior.
    """

    component_probability: torch.Tensor
    component_means: torch.Tensor
    n_foreground: int

    @property
    def foreground_probability(self) -> torch.Tensor:
        """(B, H, W): the summed probability of the foreground components."""
        return self.component_probability[:, : self.n_foreground].sum(dim=1)

    def reconstruction(self) -> torch.Tensor:
        """(B, C_task, H, W): the quantised image, sum_k p_k * mu_k."""
        return torch.einsum("bkhw,bck->bchw", self.component_probability, self.component_means)


class ImPartialNet(nn.Module):
    """U-Net backbone shared by all tasks, one 1x1-convolution head per task."""

    def __init__(self, network: NetworkConfig, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.network = network
        self.tasks = tuple(tasks)
        self.backbone = UNet(network.n_channels, network.width, network.depth)
        self.heads = nn.ModuleDict({
            t.name: nn.Conv2d(self.backbone.out_channels, t.n_components * (1 + len(t.reconstructed_channels)), 1)
            for t in self.tasks
        })
        for t in self.tasks:
            # Masks selecting the prior's channels, kept as buffers so they follow .to(device).
            brighter = torch.tensor([c in t.brighter_channels for c in t.reconstructed_channels], dtype=torch.bool)
            self.register_buffer(f"_brighter_{t.name}", brighter, persistent=False)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return 2 ** self.network.depth

    def forward(self, x: torch.Tensor) -> Dict[str, TaskOutput]:
        features = self.backbone(x)
        return {t.name: self._head(t, features) for t in self.tasks}

    def _head(self, task: TaskSpec, features: torch.Tensor) -> TaskOutput:
        k = task.n_components
        raw = self.heads[task.name](features)
        logits = raw[:, :k]
        b, _, h, w = raw.shape
        means = raw[:, k:].reshape(b, len(task.reconstructed_channels), k, h, w).float()
        # Component consistency: one mean per (sample, channel, component), averaged over the
        # patch with the component's probability as weight (a component absent from the patch
        # falls back to the plain average thanks to the epsilon).
        probability = torch.softmax(logits.float(), dim=1)
        weight = probability.unsqueeze(1)
        pooled = (means * weight).sum(dim=(-2, -1)) / weight.sum(dim=(-2, -1)).clamp_min(1e-6)
        pooled = (pooled + 1e-6 * means.mean(dim=(-2, -1))) / (1 + 1e-6)
        return TaskOutput(probability, self._apply_prior(task, pooled), task.n_foreground_components)

    def _apply_prior(self, task: TaskSpec, pooled: torch.Tensor) -> torch.Tensor:
        """Foreground means = ReLU(raw) + mean of background means, on the 'brighter' channels."""
        nf = task.n_foreground_components
        background_level = pooled[..., nf:].mean(dim=-1, keepdim=True)
        constrained = F.relu(pooled[..., :nf]) + background_level
        brighter = getattr(self, f"_brighter_{task.name}").view(1, -1, 1)
        foreground = torch.where(brighter, constrained, pooled[..., :nf])
        return torch.cat([foreground, pooled[..., nf:]], dim=-1)
