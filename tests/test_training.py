"""Training: scribbles become targets, the network learns from them whatever the images, the same
training however it is executed, scoring on the scribbles, and bad inputs named.

``test_training_reproducible.py`` pins whole trainings bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from impartial_core.config import NetworkConfig, TrainingConfig, nuclei_task, tasks_for
from impartial_core.instances import nuclei_from_probability
from impartial_core.losses import UNLABELLED
from impartial_core.metrics import match_at_iou, matched_dice_iou
from impartial_core.model import ImPartialModel
from impartial_core.normalization import normalize
from impartial_core.prediction import predict_image
from impartial_core.sampling import PatchSampler, TrainingImage, prepare_training_images, split_validation, task_targets
from impartial_core.scribbles import validate_scribbles
from impartial_core.training import TrainingDiverged, train

from .synthetic import blobs, train_on_blobs


# ---------------- scribbles become targets, split between training and validation
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


def test_patch_sampler_adds_a_smooth_haze_to_half_the_channels():
    """With ``haze``, each channel of a patch gets, with probability 1/2, a Gaussian blob of at most
    that height added; the patches drawn are the same as without it, and a seed repeats the haze."""
    rng = np.random.default_rng(1)
    targets = rng.integers(-1, 2, (1, 80, 80)).astype(np.int8)
    data = [TrainingImage(rng.random((3, 80, 80)).astype(np.float32), targets, targets)]
    plain, _ = PatchSampler(data, 32, 0.5, seed=3).batch(64)
    hazy, _ = PatchSampler(data, 32, 0.5, seed=3, haze=0.7).batch(64)
    again, _ = PatchSampler(data, 32, 0.5, seed=3, haze=0.7).batch(64)
    assert torch.equal(hazy, again)
    haze = (hazy - plain).numpy().astype(np.float64)
    assert haze.min() >= -1e-6 and haze.max() <= 0.7
    hazed = haze.max(axis=(2, 3)) > 1e-3
    assert 0.35 < hazed.mean() < 0.65            # about half of the 64 x 3 channels
    assert np.all(haze[~hazed] < 1e-6)           # the others untouched
    # smooth: a blob at least half a patch wide changes little from one pixel to the next
    assert np.abs(np.diff(haze, axis=3)).max() < 0.7 * 2 / 16


# ---------------- training learns, on any image size and scribble density
def test_training_learns_to_segment_synthetic_nuclei(trained):
    result, image, truth = trained
    p = predict_image(result.net, normalize(image[None]))["nuclei"].foreground_probability
    labels = nuclei_from_probability(p, result.thresholds["nuclei"])
    scores = match_at_iou(labels, truth)
    assert scores["f1"] >= 0.75, scores
    assert matched_dice_iou(labels, truth)[1] > 0.45  # 60 iterations: blurry borders, right objects
    assert abs(int(labels.max()) - int(truth.max())) <= 3


def test_images_smaller_than_a_patch_train_and_predict():
    image, _, scribbles = blobs(seed=6, size=40, n=3)
    small = ImPartialModel.train([image], [scribbles], [nuclei_task()], NetworkConfig(1, 4),
                                 TrainingConfig(max_iterations=3, batch_size=2, patch_size=64, eval_every=2))
    assert small.predict(image[:13, :21])["nuclei"].foreground_probability.shape == (13, 21)


def test_scribbles_covering_every_pixel_still_train():
    image, truth, _ = blobs(seed=7, size=64, n=4)
    full = np.where(truth > 0, 2, 1).astype(np.uint8)
    trained = ImPartialModel.train([image], [full], [nuclei_task()], NetworkConfig(1, 4),
                                   TrainingConfig(max_iterations=4, batch_size=2, patch_size=32, eval_every=2))
    assert trained.training_summary["iterations"] == 4


# ---------------- the same training, however it is executed
def test_same_seed_same_weights_on_cpu(trained):
    again, _, _ = train_on_blobs(iterations=10)
    once, _, _ = train_on_blobs(iterations=10)
    for a, b in zip(once.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def test_reading_losses_late_changes_nothing(monkeypatch):
    """The accelerator path (losses read one iteration late) trains exactly like the CPU path."""
    at_once, _, _ = train_on_blobs(iterations=25)
    monkeypatch.setattr("impartial_core.training.readback_lag", lambda device: 1)
    late, _, _ = train_on_blobs(iterations=25)
    assert [h["total"] for h in late.history] == [h["total"] for h in at_once.history]
    assert [h["iteration"] for h in late.history] == list(range(1, 26))
    assert [h.get("validation") for h in late.history] == [h.get("validation") for h in at_once.history]
    for a, b in zip(at_once.net.state_dict().values(), late.net.state_dict().values()):
        assert torch.equal(a, b)


def test_compiled_training_step_trains_like_the_eager_one():
    """``compile_network`` compiles the network with its losses (the GPU fast path); on the CPU
    here it must give the same losses and weights as eager execution, up to float32 rounding."""
    eager, _, _ = train_on_blobs(iterations=3, mixed_precision=False)
    compiled, _, _ = train_on_blobs(iterations=3, compile_network=True, mixed_precision=False)
    assert np.allclose([h["total"] for h in compiled.history], [h["total"] for h in eager.history], rtol=1e-4)
    for a, b in zip(eager.net.state_dict().values(), compiled.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_gpu_asked_for_but_absent_falls_back_to_cpu_with_a_warning(caplog):
    from impartial_core.devices import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with caplog.at_level("WARNING", logger="impartial_core.devices"):
        assert resolve_device("cuda").type == "cpu"
    assert "'cuda' was requested but is not available; using the CPU" in caplog.text


# ---------------- when training stops: early stopping and the time budget
def test_early_stopping_keeps_the_best_weights_and_counts_evaluations_without_improvement():
    from impartial_core.training import BestWeights

    net = torch.nn.Linear(2, 1)
    best = BestWeights(patience=2)
    assert best.best_validation is None and not best.patience_exhausted
    assert best.offer(0.5, net)
    kept = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight += 1
    assert not best.offer(0.7, net) and not best.patience_exhausted
    assert not best.offer(0.6, net) and best.patience_exhausted and best.best_validation == 0.5
    best.restore(net)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in kept.items())
    assert best.offer(0.1, net) and not best.patience_exhausted   # an improvement starts the count again


def test_early_stopping_keeps_the_later_weights_of_a_tie_but_counts_it_as_no_improvement():
    """Once the held-out scribbles are all classified with certainty every evaluation ties (a
    loss near 0): the later weights, trained longer, are kept, and patience still runs out."""
    from impartial_core.training import BestWeights

    net = torch.nn.Linear(2, 1)
    best = BestWeights(patience=2)
    assert best.offer(1e-12, net)
    with torch.no_grad():
        net.weight += 1
    later = {k: v.clone() for k, v in net.state_dict().items()}
    assert best.offer(3e-12, net) and not best.patience_exhausted       # a tie: kept
    assert best.offer(0.5 * BestWeights.MIN_IMPROVEMENT, net) and best.patience_exhausted
    assert best.best_validation == 1e-12                               # the best value stays the least
    with torch.no_grad():
        net.weight -= 5
    best.restore(net)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in later.items())
    assert not best.offer(0.1, net)                                    # worse: not kept


def test_time_budget_leaves_room_for_the_next_evaluation_and_the_thresholds(monkeypatch):
    """Steps of 1 s, an evaluation guessed at 4 steps until one is timed, and 1.5 evaluations due
    at the end (the last validation and the thresholds): 10 s allow a step at 3 s (3 + 1 + 6 = 10)
    but not at 4 s, nor at 3 s when the next step is followed by an evaluation."""
    from types import SimpleNamespace

    from impartial_core import training

    budget = training.TimeBudget(10.0, steps_per_evaluation=4.0, finishing_evaluations=1.5)
    assert budget.allows_another_step(3.0, 3, next_evaluates=False)
    assert not budget.allows_another_step(3.0, 3, next_evaluates=True)
    assert not budget.allows_another_step(4.0, 4, next_evaluates=False)
    clock = iter([0.0, 0.5])
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timed = training.TimeBudget(10.0, 4.0, 1.5)
    assert timed.timed(lambda: 0.25) == 0.25
    assert timed.evaluation_s == 0.5   # once timed, the measured 0.5 s replace the guess of 4 steps
    assert timed.allows_another_step(7.0, 7, next_evaluates=True)   # 7 + 1 + 0.5 + 0.75 <= 10
    assert not timed.allows_another_step(8.0, 8, next_evaluates=True)   # 8 + 1 + 0.5 + 0.75 > 10
    assert timed.remaining_s(8.0, 8, max_iterations=100) == 2.0
    assert timed.remaining_s(8.0, 8, max_iterations=9) == 1.0


# ---------------- scoring on the scribbles: validation and thresholds
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


# ---------------- bad training inputs stop training with a message naming them
def test_diverging_training_stops_with_a_message():
    image, _, scribbles = blobs(seed=2, size=64)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train([normalize(image[None]) * np.float32(np.nan)], [scribbles], [nuclei_task()], NetworkConfig(1, 4),
              TrainingConfig(max_iterations=3, batch_size=2, patch_size=32))


def test_training_needs_both_classes():
    image, _, scribbles = blobs(seed=2, size=64)
    only_fg = np.where(scribbles == 2, 2, 0).astype(np.uint8)
    with pytest.raises(ValueError, match="no background scribbles for the nuclei task"):
        train([normalize(image[None])], [only_fg], [nuclei_task()], NetworkConfig(1, 4), TrainingConfig(max_iterations=2))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((64, 64, 3), np.uint8), "RGB"),
    (np.full((64, 64), 1.5), "whole numbers|integer"),
    (np.zeros((32, 64), np.uint8), "32"),
])
def test_bad_scribble_images_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_scribbles(bad, (64, 64), source="my_scribbles.tif")


def test_scribble_values_outside_the_mapping_are_listed():
    from impartial_core.scribbles import remap_scribbles

    with pytest.raises(ValueError, match="^plate2/A01_scribbles.tif: values \\[7\\]"):
        remap_scribbles(np.array([[0, 5, 7]]), {5: 1}, source="plate2/A01_scribbles.tif")
