"""What the network and its losses compute: blind-spot masking, outputs and prior, the decoder, the losses."""
from __future__ import annotations

import pytest
import torch

from impartial_core.config import NetworkConfig, TaskSpec, nuclei_task, tasks_for
from impartial_core.losses import reconstruction_loss, scribble_loss
from impartial_core.masking import blind_spot_mask
from impartial_core.network import ImPartialNet


# ---------------- blind-spot masking: what the self-supervised loss hides
def test_blind_spot_mask_hides_one_pixel_per_block_with_a_neighbour_value():
    x = torch.arange(2 * 3 * 32 * 40, dtype=torch.float32).reshape(2, 3, 32, 40)
    g = torch.Generator().manual_seed(0)
    masked, mask = blind_spot_mask(x, cell=8, radius=5, generator=g)
    assert mask.shape == x.shape
    # One hidden pixel per 8x8 block, per sample and channel: 4 x 5 blocks.
    assert mask.sum(dim=(-2, -1)).eq(20).all()
    blocks = mask.reshape(2, 3, 4, 8, 5, 8).sum(dim=(3, 5))
    assert blocks.eq(1).all()
    # Unmasked pixels untouched; hidden ones replaced by another pixel's value of the same
    # channel, within the 11x11 window.
    assert torch.equal(masked[~mask], x[~mask])
    changed = masked[mask]
    assert (changed != x[mask]).all()
    b, c, yy, xx = mask.nonzero(as_tuple=True)
    src = changed.long() - c * 32 * 40 - b * 3 * 32 * 40
    assert ((src >= 0) & (src < 32 * 40)).all()
    assert ((src // 40 - yy).abs() <= 5).all() and ((src % 40 - xx).abs() <= 5).all()


def test_blind_spot_mask_is_reproducible_with_a_generator():
    x = torch.rand(2, 1, 64, 64)
    a = blind_spot_mask(x, generator=torch.Generator().manual_seed(3))
    b = blind_spot_mask(x, generator=torch.Generator().manual_seed(3))
    c = blind_spot_mask(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[1], c[1])


# ---------------- the network: its outputs, the foreground prior, the decoder
def _net(tasks, channels=1, width=4):
    torch.manual_seed(0)
    return ImPartialNet(NetworkConfig(channels, width), tasks)


@pytest.mark.parametrize("low_size", [(5, 7), (8, 8)])
def test_decoder_convolution_equals_upsample_concatenate_convolve(low_size):
    """The decoder's phase-split convolution is the textbook one: same values and gradients."""
    import torch.nn.functional as F
    from impartial_core.network import upsample_concatenate_convolve

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(12, 5, 3, padding=1).double()
    h, w = low_size
    low = torch.randn(2, 8, h, w, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(2, 4, 2 * h, 2 * w, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 5, 2 * h, 2 * w, dtype=torch.float64)
    results = []
    for fn in (lambda: conv(torch.cat([F.interpolate(low, scale_factor=2.0, mode="nearest"), skip], dim=1)),
               lambda: upsample_concatenate_convolve(conv, low, skip)):
        out = fn()
        grads = torch.autograd.grad(out, [low, skip, conv.weight, conv.bias], upstream)
        results.append((out, *grads))
    for reference, ours in zip(*results):
        assert torch.allclose(ours, reference, rtol=1e-12, atol=1e-12)


def test_network_outputs_and_foreground_prior():
    tasks = tasks_for("nuclei+cells", 2, nuclear_channel=1)
    net = _net(tasks, channels=2)
    out = net(torch.rand(3, 2, 32, 48))
    assert set(out) == {"nuclei", "cells"}
    nuc, cells = out["nuclei"], out["cells"]
    assert nuc.component_probability.shape == (3, 4, 32, 48)
    assert nuc.component_means.shape == (3, 1, 4) and cells.component_means.shape == (3, 2, 4)
    p = cells.foreground_probability
    p = p.detach()
    assert p.shape == (3, 32, 48) and float(p.min()) >= 0 and float(p.max()) <= 1
    # Prior: on 'brighter' channels every foreground mean >= the average background mean.
    for o in (nuc, cells):
        mu = o.component_means
        assert (mu[..., :2] >= mu[..., 2:].mean(-1, keepdim=True) - 1e-5).all()


def test_prior_is_switchable_per_channel():
    task = TaskSpec("cells", (2, 3), (1,), (0, 1), (1,))
    net = _net([task], channels=2)
    with torch.no_grad():
        net.heads["cells"].bias[4:8] = torch.tensor([-5.0, -5.0, 5.0, 5.0])  # channel 0 means: fg dark
        mu = net(torch.zeros(1, 2, 16, 16))["cells"].component_means
    assert (mu[0, 0, :2] < mu[0, 0, 2:].mean()).all()  # not constrained on channel 0


# ---------------- the losses
def test_scribble_loss_is_class_balanced_and_ignores_unlabelled():
    net = _net([nuclei_task()])
    out = net(torch.rand(1, 1, 16, 16))["nuclei"]
    p = out.foreground_probability.detach()
    targets = torch.full((1, 16, 16), -1)
    targets[0, 0, :3] = 1
    targets[0, 5, :] = 0
    loss = scribble_loss(out, targets)
    assert torch.isclose(loss["foreground"], ((1 - p[0, 0, :3]) ** 2).mean())
    assert torch.isclose(loss["background"], (p[0, 5, :] ** 2).mean())
    none = scribble_loss(out, torch.full((1, 16, 16), -1))
    assert float(none["foreground"].detach()) == 0 and float(none["background"].detach()) == 0


def test_reconstruction_loss_matches_the_formula():
    net = _net([nuclei_task()])
    x = torch.rand(2, 1, 16, 16)
    out = net(x)["nuclei"]
    mask = torch.rand(2, 1, 16, 16) < 0.2
    p = out.component_probability  # (B, K, H, W)
    mu = out.component_means  # (B, 1, K)
    expected = (p * (x - mu[:, 0, :, None, None]) ** 2).sum(1, keepdim=True) / 2
    assert torch.isclose(reconstruction_loss(out, x, mask), expected[mask].mean(), rtol=1e-5)
