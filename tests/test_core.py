"""Unit tests of impartial_core's method: masking, losses, network, training, prediction, instances."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from impartial_core.config import InstanceConfig, NetworkConfig, TaskSpec, TrainingConfig, nuclei_task, tasks_for
from impartial_core.instances import cells_from_nuclei, cytoplasm_from, nuclei_from_probability, object_confidence, segment
from impartial_core.losses import UNLABELLED, reconstruction_loss, scribble_loss
from impartial_core.masking import blind_spot_mask
from impartial_core.metrics import match_at_iou, matched_dice_iou
from impartial_core.network import ImPartialNet
from impartial_core.normalization import CLIP, as_channels_first, normalize
from impartial_core.prediction import predict_image
from impartial_core.sampling import PatchSampler, TrainingImage, prepare_training_images, split_validation, task_targets
from impartial_core.training import TrainingDiverged, train

from .synthetic import blobs


# ---------------------------------------------------------------- masking
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


# ---------------------------------------------------------------- network and losses
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


# ---------------------------------------------------------------- data preparation
def test_task_targets_and_validation_split():
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5, :] = 1
    scribbles[40:45, 40:45] = 2
    scribbles[20, 20] = 3
    nuclei = task_targets(scribbles, tasks_for("nuclei", 1)[0])
    cells = task_targets(scribbles, tasks_for("cells", 1)[0])
    assert nuclei[20, 20] == 0 and cells[20, 20] == 1 and nuclei[42, 42] == 1 and nuclei[0, 0] == -1
    targets = np.stack([nuclei, cells])
    train_t, val_t = split_validation(targets, 0.5, np.random.default_rng(0))
    labelled = targets != -1
    # Every labelled pixel is in exactly one of the two; validation takes some, never all.
    assert np.array_equal((train_t != -1) | (val_t != -1), labelled)
    assert not ((train_t != -1) & (val_t != -1)).any()
    assert 0 < (val_t != -1).sum() < labelled.sum()


def test_as_channels_first_and_normalize_handle_bad_pixels():
    rgb_like = np.zeros((50, 60, 3))
    assert as_channels_first(rgb_like).shape == (3, 50, 60)
    with pytest.raises(ValueError, match="2-D"):
        as_channels_first(np.zeros((2, 3, 50, 60)))
    image = np.linspace(0, 1, 100 * 100, dtype=np.float32).reshape(1, 100, 100)
    image[0, 0, :5] = np.nan
    image[0, 1, 0] = np.inf
    out = normalize(image)
    assert np.isfinite(out).all()
    assert abs(np.percentile(out[0, 2:], 50) - 0.5) < 0.05
    assert not normalize(np.full((1, 8, 8), 7.0)).any()


def test_sparse_channel_is_scaled_by_its_signal_not_by_one_hot_pixel():
    """A marker present on a few cells: 99.9% of pixels are 0, so the 1st and 99.8th
    percentiles coincide; its cells must still map near 1, whatever one hot pixel holds."""
    channel = np.zeros((1, 1000, 1000), np.float32)
    channel[0, :1, :] = np.linspace(5, 10, 1000)  # 1000 signal pixels (0.1%)
    channel[0, 500, 500] = 60000
    out = normalize(channel)
    assert 0.45 < out[0, 0, 0] < 0.55 and 0.95 < out[0, 0, -1] < 1.05
    assert out[0, 500, 500] == CLIP
    assert np.count_nonzero(out[0, 1:]) == 1


# ---------------------------------------------------------------- training and prediction
def _train_blobs(seed=0, iterations=60, **overrides):
    image, truth, scribbles = blobs(seed=1)
    config = TrainingConfig(max_iterations=iterations, batch_size=4, patch_size=64, eval_every=20, seed=seed,
                            learning_rate=3e-3, time_budget_s=120, **overrides)
    return train([normalize(image[None])], [scribbles], [nuclei_task()], NetworkConfig(1, 8), config), image, truth


@pytest.fixture(scope="module")
def trained():
    return _train_blobs()


def test_training_learns_to_segment_synthetic_nuclei(trained):
    result, image, truth = trained
    p = predict_image(result.net, normalize(image[None]))["nuclei"].foreground_probability
    labels = nuclei_from_probability(p, result.thresholds["nuclei"])
    scores = match_at_iou(labels, truth)
    assert scores["f1"] >= 0.75, scores
    assert matched_dice_iou(labels, truth)[1] > 0.45  # 60 iterations: blurry borders, right objects
    assert abs(int(labels.max()) - int(truth.max())) <= 3


def test_hot_pixels_do_not_become_nuclei(trained):
    """A camera's hot pixel, far brighter than any nucleus, must not light up a nucleus-sized
    blob around it: normalised values are clipped."""
    result, image, truth = trained
    hot = image.astype(np.float32).copy()
    background = np.argwhere(ndi.binary_erosion(truth == 0, iterations=12))
    spots = background[np.random.default_rng(0).choice(len(background), 5, replace=False)]
    hot[spots[:, 0], spots[:, 1]] = 1000 * np.percentile(image, 99.8)
    normalised = normalize(hot[None])
    assert normalised.max() <= CLIP
    p = predict_image(result.net, normalised)["nuclei"].foreground_probability
    labels = nuclei_from_probability(p, result.thresholds["nuclei"])
    assert not labels[spots[:, 0], spots[:, 1]].any()


def test_same_seed_same_weights_on_cpu(trained):
    again, _, _ = _train_blobs(iterations=10)
    once, _, _ = _train_blobs(iterations=10)
    for a, b in zip(once.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def test_reading_losses_late_changes_nothing(monkeypatch):
    """The accelerator path (losses read one iteration late) trains exactly like the CPU path."""
    at_once, _, _ = _train_blobs(iterations=25)
    monkeypatch.setattr("impartial_core.training.readback_lag", lambda device: 1)
    late, _, _ = _train_blobs(iterations=25)
    assert [h["total"] for h in late.history] == [h["total"] for h in at_once.history]
    assert [h["iteration"] for h in late.history] == list(range(1, 26))
    assert [h.get("validation") for h in late.history] == [h.get("validation") for h in at_once.history]
    for a, b in zip(at_once.net.state_dict().values(), late.net.state_dict().values()):
        assert torch.equal(a, b)


def test_compiled_training_step_trains_like_the_eager_one():
    """``compile_network`` compiles the network with its losses (the GPU fast path); on the CPU
    here it must give the same losses and weights as eager execution, up to float rounding."""
    eager, _, _ = _train_blobs(iterations=3)
    compiled, _, _ = _train_blobs(iterations=3, compile_network=True)
    assert np.allclose([h["total"] for h in compiled.history], [h["total"] for h in eager.history], rtol=1e-4)
    for a, b in zip(eager.net.state_dict().values(), compiled.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_patch_sampler_cuts_the_drawn_views():
    """Each patch is the drawn window, turned by np.rot90(k) and then flipped if asked (view 2k+f)."""
    rng = np.random.default_rng(3)
    data = []
    for h, w in ((70, 90), (40, 33), (64, 64)):   # smaller than a patch: mirror-padded
        targets = rng.integers(-1, 2, (2, h, w)).astype(np.int8)
        data.append(TrainingImage(rng.random((2, h, w)).astype(np.float32), targets, targets))
    draws = PatchSampler(data, 48, 0.5, seed=7).draw(30)
    images, targets = PatchSampler(data, 48, 0.5, seed=7).batch(30)
    assert images.shape == (30, 2, 48, 48) and targets.shape == (30, 2, 48, 48) and targets.dtype == torch.int64
    padded = PatchSampler(data, 48, 0.5, seed=0)
    for (i, y0, x0, view), image, target in zip(draws, images, targets):
        h, w = padded.shapes[i]
        window = padded.pixels[padded.offsets[i]:padded.offsets[i] + h * w].numpy().T.reshape(2, h, w)
        expected = np.rot90(window[:, y0:y0 + 48, x0:x0 + 48], view // 2, axes=(1, 2))
        expected = expected[:, :, ::-1] if view % 2 else expected
        assert np.array_equal(image.numpy(), expected)
        if i == 2:   # not padded: the targets are the image's own
            label = data[2].train_targets[:, y0:y0 + 48, x0:x0 + 48]
            label = np.rot90(label, view // 2, axes=(1, 2))
            assert np.array_equal(target.numpy(), label[:, :, ::-1] if view % 2 else label)


def test_tiled_prediction_equals_untiled(trained):
    result = trained[0]
    image = normalize(np.random.default_rng(0).random((1, 150, 170)).astype(np.float32))
    whole = predict_image(result.net, image, tile_size=512)["nuclei"].foreground_probability
    tiled = predict_image(result.net, image, tile_size=96, overlap=48)["nuclei"].foreground_probability
    assert np.abs(whole - tiled).max() < 0.02


def test_flip_averaged_prediction_is_the_mean_of_unflipped_predictions(trained):
    """Each flipped prediction is flipped back onto the image before averaging (rows and columns
    apart: an asymmetric image catches a flip undone along the wrong axis)."""
    net = trained[0].net
    image, _, _ = blobs(seed=5, size=64)
    image = normalize(image[None])
    image[:, :20, :40] = 0.0  # break any symmetry
    expected_p, expected_r = [], []
    for axes in ((), (2,), (1,), (1, 2)):
        maps = predict_image(net, np.ascontiguousarray(np.flip(image, axes)), reconstruct=True)["nuclei"]
        expected_p.append(np.flip(maps.foreground_probability, tuple(a - 1 for a in axes)))
        expected_r.append(np.flip(maps.reconstruction, axes))
    averaged = predict_image(net, image, flips=True, reconstruct=True)["nuclei"]
    assert np.abs(averaged.foreground_probability - np.mean(expected_p, axis=0)).max() < 1e-5
    assert np.abs(averaged.reconstruction - np.mean(expected_r, axis=0)).max() < 1e-4


def test_diverging_training_stops_with_a_message():
    image, _, scribbles = blobs(seed=2, size=64)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train([normalize(image[None]) * np.float32(np.nan)], [scribbles], [nuclei_task()], NetworkConfig(1, 4),
              TrainingConfig(max_iterations=3, batch_size=2, patch_size=32))


def test_thresholds_are_chosen_on_the_scribbled_images_only(trained, monkeypatch):
    """Images without scribbles hold no pixel to score, so they are not predicted (a plate trained
    in a pipeline is mostly such images), and the thresholds are those of the scribbled images."""
    from impartial_core import training

    result, image, _ = trained
    scribbles = blobs(seed=1)[2]
    images = [normalize(image[None])] + [normalize(blobs(seed=s)[0][None]) for s in (4, 5, 6)]
    data = prepare_training_images(images, [scribbles] + [np.zeros_like(scribbles)] * 3, [nuclei_task()], 0.1,
                                   np.random.default_rng(0))
    expected = training.choose_thresholds(result.net, data[:1], torch.device("cpu"))
    predicted = []
    original = training.predict_image
    monkeypatch.setattr(training, "predict_image",
                        lambda net, image, **kw: predicted.append(image) or original(net, image, **kw))
    assert training.choose_thresholds(result.net, data, torch.device("cpu")) == expected
    assert len(predicted) == 1 and np.shares_memory(predicted[0], data[0].image)


def test_training_needs_both_classes():
    image, _, scribbles = blobs(seed=2, size=64)
    only_fg = np.where(scribbles == 2, 2, 0).astype(np.uint8)
    with pytest.raises(ValueError, match="no background scribbles for the nuclei task"):
        train([normalize(image[None])], [only_fg], [nuclei_task()], NetworkConfig(1, 4), TrainingConfig(max_iterations=2))


# ---------------------------------------------------------------- instances
def test_touching_nuclei_are_split():
    yy, xx = np.mgrid[:60, :80]
    p = (((yy - 30) ** 2 + (xx - 28) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - 50) ** 2 < 12 ** 2)).astype(np.float32)
    assert nuclei_from_probability(p, 0.5, InstanceConfig(split_touching=False)).max() == 1
    assert nuclei_from_probability(p, 0.5, InstanceConfig(split_touching=True)).max() == 2


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images describe the same objects, whatever their numbers."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (np.array_equal(a > 0, b > 0) and len(np.unique(pairs[0])) == pairs.shape[1]
            and len(np.unique(pairs[1])) == pairs.shape[1])


def _touching_discs(seed: int, size: int = 96) -> np.ndarray:
    """A mask of random discs that overlap, touch, nearly touch or stand alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for cy, cx, r in zip(rng.integers(0, size, 14), rng.integers(0, size, 14), rng.integers(3, 12, 14)):
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    return mask


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), h=st.sampled_from([0.5, 1.0, 2.0]))
def test_split_touching_skips_only_blobs_with_one_marker(seed, h):
    """The shortcut (a blob with one local-maximum plateau is one object) changes nothing: the
    result equals splitting every blob on its own."""
    from scipy import ndimage as ndi
    from impartial_core.instances import _split_one_blob, split_touching

    mask = _touching_discs(seed)
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask).astype(np.float32), 1.0)
    blobs_, _ = ndi.label(mask)
    reference = np.zeros(mask.shape, np.int64)
    for index, box in enumerate(ndi.find_objects(blobs_), start=1):
        blob = blobs_[box] == index
        reference[box][blob] = _split_one_blob(distance[box], blob, h)[blob] + 1000 * index
    labels = split_touching(mask, h)
    assert _same_partition(labels, reference)
    assert labels.max() == len(np.unique(labels)) - 1  # numbered 1..n without gaps


def test_split_touching_ignores_neighbouring_blobs():
    """A blob's objects do not depend on what lies next to it (tiles of a large image agree)."""
    from impartial_core.instances import split_touching

    yy, xx = np.mgrid[:60, :120]
    pair = ((yy - 30) ** 2 + (xx - 28) ** 2 < 12 ** 2) | ((yy - 30) ** 2 + (xx - 50) ** 2 < 12 ** 2)
    neighbour = (yy - 30) ** 2 + (xx - 80) ** 2 < 15 ** 2  # two pixels from the pair
    alone = split_touching(pair)
    together = split_touching(pair | neighbour)
    assert alone.max() == 2 and together.max() == 3
    assert _same_partition(np.where(pair, together, 0), alone)


def test_holes_are_filled_by_the_enclosing_object_only():
    from impartial_core.instances import _fill_holes_per_object

    labels = np.zeros((12, 20), np.int32)
    labels[1:8, 1:8] = 1
    labels[3:5, 3:5] = 0  # a hole in object 1
    labels[1:8, 9:16] = 2
    labels[1:8, 8] = 3  # object 3 touches both
    labels[3:6, 11:14] = 0  # a hole in object 2
    labels[9:11, 1:5] = 4  # not a hole: open to the background
    labels[9, 2] = 0
    filled = _fill_holes_per_object(labels)
    assert (filled[3:5, 3:5] == 1).all() and (filled[3:6, 11:14] == 2).all()
    assert filled[9, 2] == 0
    unchanged = labels > 0
    assert np.array_equal(filled[unchanged], labels[unchanged])


def test_object_confidence():
    labels = np.array([[1, 1, 0, 2]])
    p = np.array([[0.8, 1.0, 0.0, 0.6]])
    mean_p, mean_u = object_confidence(labels, p, 1 - p)
    assert np.allclose(mean_p, [0.9, 0.6]) and np.allclose(mean_u, [0.1, 0.4])


label_images = st.integers(0, 2 ** 31 - 1).map(lambda seed: blobs(seed=seed, size=48, n=6)[1])


@settings(max_examples=30, deadline=None)
@given(truth=label_images, seed=st.integers(0, 1000))
def test_instance_construction_properties(truth, seed):
    rng = np.random.default_rng(seed)
    nuclei_p = (truth > 0).astype(np.float32)
    cell_p = np.clip(nuclei_p + (rng.random(truth.shape) > 0.5) * 0.6, 0, 1).astype(np.float32)
    objects = segment({"nuclei": nuclei_p, "cells": cell_p}, {"nuclei": 0.5, "cells": 0.5}, InstanceConfig(min_size=1))
    nuclei, cells, cytoplasm = objects.nuclei, objects.cells, objects.cytoplasm
    n = int(nuclei.max())
    # Numbering: 1..n in each set, nothing lost or invented.
    for labels in (nuclei, cells, cytoplasm):
        assert set(np.unique(labels)) - {0} == set(range(1, n + 1))
    # Each nucleus lies inside the cell with its number.
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    # Cytoplasm = cell minus nucleus, apart from the one pixel kept for a fully filled cell.
    expected = np.where(inside, 0, cells)
    differs = cytoplasm != expected
    assert differs.sum() <= n and (cytoplasm[differs] == cells[differs]).all()


def test_cytoplasm_keeps_one_pixel_of_a_filled_cell():
    nuclei = np.zeros((10, 10), np.int32)
    nuclei[2:5, 2:5] = 1
    nuclei[6:9, 6:9] = 2
    cells = nuclei.copy()
    cells[6:10, 6:10] = 2
    cytoplasm = cytoplasm_from(cells, nuclei)
    assert (cytoplasm == 1).sum() == 1 and (cytoplasm == 2).sum() == 7


def test_cells_grow_from_nuclei_inside_the_cell_mask():
    nuclei = np.zeros((30, 60), np.int32)
    nuclei[10:15, 10:15] = 1
    nuclei[10:15, 40:45] = 2
    cell_p = np.zeros((30, 60), np.float32)
    cell_p[5:20, 5:55] = 0.9
    cells = cells_from_nuclei(nuclei, cell_p, 0.5)
    assert set(np.unique(cells)) == {0, 1, 2}
    assert (cells[5:20, 5:55] > 0).all() and (cells[:5] == 0).all()
    assert cells[12, 6] == 1 and cells[12, 54] == 2


def test_cells_only_mode_is_split_by_nuclear_seeds_and_keeps_cells_without_one():
    """Two touching square cells (no distance neck) become two cells when seeded by their
    nuclei; a third cell without a nucleus is kept, split by distance as without seeds."""
    from impartial_core.instances import cells_from_probability

    cell_p = np.zeros((40, 80), np.float32)
    cell_p[5:35, 5:45] = 0.9           # two cells side by side: one rectangle
    cell_p[10:30, 55:75] = 0.9         # a third cell, its nucleus not seen
    cell_p[5:35, 24:26] = 0.6          # a faint boundary, above the threshold
    seeds = np.zeros((40, 80), np.int32)
    seeds[15:25, 10:18] = 7
    seeds[15:25, 32:40] = 3
    seeds[0:3, 0:3] = 9                # outside the cell mask: ignored
    unseeded = cells_from_probability(cell_p, 0.5, InstanceConfig(min_size=1))
    seeded = cells_from_probability(cell_p, 0.5, InstanceConfig(min_size=1), seeds=seeds)
    assert unseeded.max() == 2
    assert seeded.max() == 3 and np.array_equal(seeded > 0, cell_p > 0.5)
    assert seeded[20, 8] != seeded[20, 42] and seeded[20, 8] != seeded[20, 65] != seeded[20, 42]
    assert (seeded[5:35, 5:24] == seeded[20, 8]).all() and (seeded[5:35, 26:45] == seeded[20, 42]).all()
    # A boolean seed mask works the same way.
    assert _same_partition(cells_from_probability(cell_p, 0.5, InstanceConfig(min_size=1), seeds=seeds > 0), seeded)


def test_nuclei_from_channel_finds_stained_nuclei_without_training():
    from impartial_core.instances import nuclei_from_channel

    image, labels, _ = blobs(seed=3, size=96, n=8, noise=0.3)
    found = nuclei_from_channel(image * 500 + 100)  # raw intensities: the scale must not matter
    match = match_at_iou(found, labels, 0.5)
    assert match["tp"] == labels.max() and found.max() == labels.max()
    assert nuclei_from_channel(np.full((32, 32), 7.0)).max() == 0


def test_border_rule_with_cells_keeps_the_inner_cells_whole():
    """Discarding border objects with nuclei + cells: the border cell goes with its nucleus, and its
    touching neighbour keeps its own extent (it must not flood the discarded cell's place)."""
    nuclei, cells = np.zeros((40, 90), np.float32), np.zeros((40, 90), np.float32)
    cells[5:35, 0:58], cells[5:35, 60:88] = 0.9, 0.9  # a cell on the left border touching a middle cell
    cells[5:35, 28:30] = 0.6  # their faint shared edge
    nuclei[15:25, 0:8], nuclei[15:25, 40:50], nuclei[15:25, 70:80] = 0.9, 0.9, 0.9
    kept = segment({"nuclei": nuclei, "cells": cells}, {"nuclei": 0.5, "cells": 0.5},
                   InstanceConfig(exclude_border=True, min_size=5))
    everything = segment({"nuclei": nuclei, "cells": cells}, {"nuclei": 0.5, "cells": 0.5}, InstanceConfig(min_size=5))
    assert everything.cells.max() == 3 and kept.cells.max() == kept.nuclei.max() == 2
    middle = everything.cells == everything.cells[20, 45]
    np.testing.assert_array_equal(kept.cells == kept.cells[20, 45], middle)
    assert not middle[:, :28].any()


def test_scores_near_scribbles_equal_whole_image_scores(trained):
    """Validation and thresholds predict only blocks around the scribbles (with a margin of image):
    on a large, lightly scribbled image the scores equal those of predicting the whole image."""
    from impartial_core import training

    result = trained[0]
    image, _, scribbles = blobs(seed=7, size=640, n=60)
    sparse = np.zeros_like(scribbles)
    sparse[:200, :200], sparse[500:, 300:] = scribbles[:200, :200], scribbles[500:, 300:]
    data = prepare_training_images([normalize(image[None])], [sparse], [nuclei_task()], 0.0, np.random.default_rng(0))
    targets = [d.all_targets for d in data]
    blocks = training.evaluation_windows(targets, training.THRESHOLD_PIXELS, np.random.default_rng(0))
    whole = [(0, slice(0, 640), slice(0, 640))]
    assert 1 < len(blocks) < 9 and all(ys.stop - ys.start <= training.EVALUATION_BLOCK for _, ys, _ in blocks)
    cpu = torch.device("cpu")
    assert training._scribble_loss(result.net, [data[0].image], targets, blocks, cpu) == pytest.approx(
        training._scribble_loss(result.net, [data[0].image], targets, whole, cpu), abs=1e-6)
    assert training.choose_thresholds(result.net, data, cpu) == training.choose_thresholds(result.net, data, cpu, whole)


def test_evaluation_windows_are_bounded_and_seeded():
    """A plate of scribbled images is scored on a seeded random share of its windows, within the cap."""
    from impartial_core import training

    targets = [np.full((1, 300, 300), 1, np.int8) for _ in range(30)]
    chosen = training.evaluation_windows(targets, 2 ** 20, np.random.default_rng(5))
    assert training._window_pixels(chosen) <= 2 ** 20 and len(chosen) == 2 ** 20 // (300 * 300)
    assert chosen == training.evaluation_windows(targets, 2 ** 20, np.random.default_rng(5))
    assert len({index for index, _, _ in chosen}) == len(chosen)  # whole small images, none twice
    big = [np.full((1, 3000, 3000), UNLABELLED, np.int8)]
    big[0][0, 10, 10] = 1
    assert [(ys.start, xs.start) for _, ys, xs in training.evaluation_windows(big, 2 ** 20, np.random.default_rng(0))] \
        == [(0, 0)]


def test_holes_shared_by_touching_objects_are_filled_only_when_smaller_than_them():
    """A lumen that a ring of touching cells encloses stays background; a hole inside one object
    and a speck where several objects meet are filled."""
    from impartial_core.instances import _fill_holes_per_object

    yy, xx = np.mgrid[:80, :80]
    radius, angle = np.hypot(yy - 40, xx - 40), np.arctan2(yy - 40, xx - 40)
    ring = (radius >= 15) & (radius < 30)
    labels = np.where(ring, (angle + np.pi) // (np.pi / 4) % 8 + 1, 0).astype(np.int32)  # 8 cells around a lumen
    filled = _fill_holes_per_object(labels)
    np.testing.assert_array_equal(filled[radius < 15], 0)
    labels[22, 42] = 0  # a hole inside one cell
    labels[39:41, 56] = 0  # a speck on the seam between two cells
    filled = _fill_holes_per_object(labels)
    assert filled[22, 42] == labels[21, 42] and set(filled[39:41, 56]) == {labels[38, 56], labels[41, 56]}
    np.testing.assert_array_equal(filled[radius < 15], 0)


def test_validation_split_never_takes_a_class_away_from_training():
    """All nucleus strokes in one validation block: the split is undone for that image, so the
    network still sees nucleus pixels (it would otherwise learn that nothing is a nucleus)."""
    scribbles = np.zeros((128, 128), np.uint8)
    scribbles[::8, :] = 1
    scribbles[40:44, 40:56] = 2  # every nucleus pixel in one 32-px block
    for seed in range(20):
        data = prepare_training_images([np.zeros((1, 128, 128), np.float32)], [scribbles], [nuclei_task()], 0.5,
                                       np.random.default_rng(seed))
        assert (data[0].train_targets == 1).any() and (data[0].train_targets == 0).any(), seed


def test_training_fingerprint_is_stable_across_versions_and_execution_settings():
    """A saved model is reused while its training fingerprint matches, so the fingerprint of the
    same inputs must not change with a release that only adds a way of executing the step: the
    value below is what version 0.1 computed. A change of it makes every user's pipeline train its
    models again. Where, at what precision and how the step runs never changes it; a learnt
    setting does."""
    from impartial_core.model import ImPartialModel

    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) % 17
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5, 5:20], scribbles[30, 30:40] = 1, 2
    inputs = ([image], [scribbles], tasks_for("nuclei", 1), NetworkConfig(1, 16))
    fingerprint = ImPartialModel.fingerprint_for(*inputs, TrainingConfig())
    assert fingerprint == "56868f15d7c575367f2f327fde61312f7bf5ca39fc9e603505b0d518d91c5482"
    for execution in ({"cuda_graphs": False}, {"device": "cpu"}, {"mixed_precision": False},
                      {"compile_network": True}):
        assert ImPartialModel.fingerprint_for(*inputs, TrainingConfig(**execution)) == fingerprint, execution
    assert ImPartialModel.fingerprint_for(*inputs, TrainingConfig(seed=1)) != fingerprint
    # a file that version 0.1 wrote after training on the CPU only hashed device "cpu": still recognised
    cpu_only = ImPartialModel.fingerprints_for(*inputs, TrainingConfig(), saved_training=TrainingConfig(device="cpu"))
    assert cpu_only[0] == fingerprint and cpu_only[1] != fingerprint


def test_every_training_setting_is_either_learnt_or_how_training_runs():
    """The fingerprint covers an allow-list: a new TrainingConfig field must be placed in one list."""
    import dataclasses

    from impartial_core.config import EXECUTION_TRAINING_FIELDS, LEARNT_TRAINING_FIELDS

    names = [field.name for field in dataclasses.fields(TrainingConfig)]
    assert sorted(LEARNT_TRAINING_FIELDS + EXECUTION_TRAINING_FIELDS) == sorted(names)
    assert not set(LEARNT_TRAINING_FIELDS) & set(EXECUTION_TRAINING_FIELDS)
