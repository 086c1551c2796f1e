"""Prediction: channels scaled robustly, the same maps however an image is tiled or flipped, and
any image a user may give handled without a crash."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from impartial_core.config import NetworkConfig, tasks_for
from impartial_core.instances import nuclei_from_probability
from impartial_core.network import ImPartialNet
from impartial_core.normalization import CLIP, as_channels_first, normalize
from impartial_core.prediction import predict_image

from .synthetic import blobs


# ---------------- scaling channels: bad pixels and sparse markers
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


# ---------------- the same maps however the image is tiled or flipped
def test_tiled_prediction_equals_untiled(trained):
    result = trained[0]
    image = normalize(np.random.default_rng(0).random((1, 150, 170)).astype(np.float32))
    whole = predict_image(result.net, image, tile_size=512)["nuclei"].foreground_probability
    tiled = predict_image(result.net, image, tile_size=96, overlap=48)["nuclei"].foreground_probability
    assert np.abs(whole - tiled).max() < 0.02


@settings(max_examples=15, deadline=None)
@given(height=st.integers(20, 140), width=st.integers(20, 140), seed=st.integers(0, 10_000),
       tile=st.sampled_from([48, 64, 96]))
def test_tiled_prediction_equals_untiled_on_random_images(height, width, seed, tile):
    torch.manual_seed(0)
    net = ImPartialNet(NetworkConfig(1, 4), tasks_for("nuclei", 1)).eval()
    image = np.random.default_rng(seed).random((1, height, width)).astype(np.float32)
    whole = predict_image(net, image, tile_size=1024)["nuclei"].foreground_probability
    tiled = predict_image(net, image, tile_size=tile, overlap=tile // 2)["nuclei"].foreground_probability
    assert whole.shape == (height, width)
    assert np.abs(whole - tiled).max() < 0.01


@settings(max_examples=200, deadline=None)
@given(units=st.integers(1, 3000), tile_units=st.integers(2, 256), overlap_units=st.integers(0, 64),
       multiple=st.sampled_from([1, 4, 8]))
def test_tiles_are_even_overlap_enough_and_cover_the_axis(units, tile_units, overlap_units, multiple):
    """The fewest tiles of at most ``tile`` pixels, overlapping by at least ``overlap``, on the grid."""
    from impartial_core.prediction import _tile_starts

    overlap_units = min(overlap_units, tile_units - 1)
    size, tile, overlap = units * multiple, tile_units * multiple, overlap_units * multiple
    starts, length = _tile_starts(size, tile, overlap, multiple)
    assert length <= tile and length % multiple == 0 and all(start % multiple == 0 for start in starts)
    assert starts[0] == 0 and starts[-1] + length == size
    assert all(a + length - b >= overlap for a, b in zip(starts, starts[1:]))
    assert all(b > a for a, b in zip(starts, starts[1:]))
    n = len(starts)
    assert n == 1 or (n - 1) * tile - (n - 2) * overlap < size  # one tile fewer could not cover it


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


# ---------------- precision
def test_bfloat16_prediction_is_close_to_float32_and_finds_the_same_nuclei(trained):
    """Where the CPU computes bfloat16 natively the network predicts in it (the default, about
    twice as fast); the probability moves by far less than what separates objects from background."""
    from impartial_core.devices import bfloat16_native
    from impartial_core.metrics import evaluate_image

    if not bfloat16_native(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16")
    result, image, truth = trained
    normalised = normalize(image[None])
    exact = predict_image(result.net, normalised, mixed_precision=False)["nuclei"].foreground_probability
    fast = predict_image(result.net, normalised)["nuclei"].foreground_probability
    assert 0 < np.abs(exact - fast).max() < 0.05
    threshold = result.thresholds["nuclei"]
    same = evaluate_image(None, nuclei_from_probability(fast, threshold), nuclei_from_probability(exact, threshold))
    assert same["f1_iou50"] > 0.95


# ---------------- any image a user gives: constant, non-finite, any pixel type, wrong dimensions
def test_constant_zero_and_non_finite_images_give_no_objects_and_no_crash(blob_model):
    for image in (np.zeros((64, 80)), np.full((64, 80), 5.0), np.full((64, 80), np.nan)):
        maps = blob_model.predict(image)
        objects = blob_model.segment(maps)
        assert np.isfinite(maps["nuclei"].foreground_probability).all()
        assert objects.nuclei.shape == (64, 80)
    image, _, _ = blobs(seed=4)
    image[10:12, 10:12] = np.nan
    image[50, 50] = np.inf
    assert np.isfinite(blob_model.predict(image)["nuclei"].foreground_probability).all()


def test_uint8_uint16_and_float_inputs_give_the_same_objects(blob_model):
    image, _, _ = blobs(seed=5)
    scaled = (image - image.min()) / (image.max() - image.min())
    labels = [blob_model.segment(blob_model.predict(x)).nuclei for x in
              (scaled.astype(np.float32), (scaled * 65535).astype(np.uint16), (scaled * 255).astype(np.uint8))]
    assert labels[0].max() > 0
    for other in labels[1:]:
        agreement = ((labels[0] > 0) == (other > 0)).mean()
        assert agreement > 0.99 and abs(int(other.max()) - int(labels[0].max())) <= 1


def test_stacks_and_time_series_get_a_2d_only_message(blob_model):
    with pytest.raises(ValueError, match="2-D images"):
        blob_model.predict(np.zeros((3, 2, 64, 64)))
