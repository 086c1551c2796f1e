"""Tests of impartial_core.metrics against hand-computed answers, properties and real ground truth.

The real-data test reads MIBI labels from ../shared/data, or from the copy bundled in examples/data
in a fresh clone.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmarks.data import data_dir
from impartial_core.metrics import (
    evaluate_image,
    match_at_iou,
    matched_dice_iou,
    pixel_f1,
    roc_auc,
    summarize,
)


def _square(shape, top, left, size, value=1, out=None):
    labels = np.zeros(shape, np.int32) if out is None else out
    labels[top : top + size, left : left + size] = value
    return labels


# ----------------------------------------------------------------------------------------------
# pixel metrics
# ----------------------------------------------------------------------------------------------
def test_pixel_f1_known_value():
    truth = np.array([[1, 1, 0, 0]])
    prob = np.array([[0.9, 0.2, 0.7, 0.1]])
    # tp 1, fp 1, fn 1 -> 2 / 4
    assert pixel_f1(prob, truth) == pytest.approx(0.5)
    assert pixel_f1(prob, truth, threshold=0.15) == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert pixel_f1(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert pixel_f1(np.zeros((3, 3)), np.ones((3, 3))) == 0.0
    with pytest.raises(ValueError, match="shape"):
        pixel_f1(np.zeros((3, 3)), np.zeros((3, 4)))


def test_auc_perfect_anti_random_and_ties():
    truth = np.array([0, 0, 1, 1, 0, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7]), truth) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]), truth) == 0.0
    assert roc_auc(np.full(6, 0.5), truth) == 0.5  # all tied
    # one positive tied with one negative: 8 of 9 pairs ordered, 1 tie -> 8.5 / 9
    assert roc_auc(np.array([0.1, 0.2, 0.5, 0.9, 0.5, 0.7]), truth) == pytest.approx(8.5 / 9)
    rng = np.random.default_rng(0)
    big_truth = rng.random((200, 200)) < 0.3
    assert abs(roc_auc(rng.random((200, 200)), big_truth) - 0.5) < 0.02
    assert np.isnan(roc_auc(np.ones(4), np.zeros(4)))


@given(
    hnp.arrays(np.float64, st.integers(2, 40), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_auc_equals_pairwise_definition(scores, data):
    truth = data.draw(hnp.arrays(bool, scores.shape))
    pos, neg = scores[truth], scores[~truth]
    if pos.size == 0 or neg.size == 0:
        assert np.isnan(roc_auc(scores, truth))
        return
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(scores, truth) == pytest.approx(pairs / (pos.size * neg.size))


# ----------------------------------------------------------------------------------------------
# mDICE / mIOU
# ----------------------------------------------------------------------------------------------
def test_identical_labels_score_one_with_gaps_and_dtypes():
    true = np.zeros((20, 20), np.uint16)
    _square(true.shape, 2, 2, 5, 3, out=true)
    _square(true.shape, 10, 10, 6, 250, out=true)
    pred = (true.astype(np.int64) * 1000).astype(np.int64)  # other numbering, other dtype
    assert matched_dice_iou(pred, true) == (1.0, 1.0)
    result = match_at_iou(pred, true)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 0, 0)
    assert result["f1"] == result["average_precision"] == 1.0


def test_squares_shifted_by_one_pixel():
    true = _square((10, 10), 2, 2, 4)
    pred = _square((10, 10), 2, 3, 4, value=5)
    # overlap 4 x 3 = 12, union 20, dice 24 / 32
    true_before, pred_before = true.copy(), pred.copy()
    dice, iou = matched_dice_iou(pred, true)
    assert iou == pytest.approx(12 / 20) and dice == pytest.approx(24 / 32)
    np.testing.assert_array_equal(true, true_before)  # inputs untouched
    np.testing.assert_array_equal(pred, pred_before)
    assert match_at_iou(pred, true, 0.5)["tp"] == 1
    assert match_at_iou(pred, true, 0.7)["tp"] == 0


def test_unmatched_object_scores_zero_and_best_overlap_is_used():
    true = _square((20, 20), 1, 1, 4, 1)
    _square(true.shape, 10, 10, 4, 2, out=true)
    pred = np.zeros_like(true)
    pred[1:5, 1:3] = 7  # 8 px of object 1
    pred[1:5, 3:5] = 8  # 8 px too: tie, broken by IoU (both 0.5)
    pred[1:2, 1:5] = 9  # overwrite row: 7 has 6, 8 has 6, 9 has 4
    dice, iou = matched_dice_iou(pred, true)
    # object 1: best 6 px (IoU 6/16), object 2: no overlap -> 0
    assert iou == pytest.approx((6 / 16 + 0) / 2)
    assert dice == pytest.approx((12 / 22 + 0) / 2)


def test_merged_prediction_counts_for_both_true_objects():
    true = _square((10, 20), 2, 2, 4, 1)
    _square(true.shape, 2, 8, 4, 2, out=true)
    pred = np.zeros_like(true)
    pred[2:6, 2:12] = 1  # one blob over both (40 px)
    dice, iou = matched_dice_iou(pred, true)
    assert iou == pytest.approx(16 / 40)
    assert dice == pytest.approx(32 / 56)
    result = match_at_iou(pred, true)
    assert (result["tp"], result["fp"], result["fn"]) == (0, 1, 2)


def test_empty_prediction_and_empty_truth():
    true = _square((10, 10), 2, 2, 4)
    empty = np.zeros((10, 10), np.int32)
    assert matched_dice_iou(empty, true) == (0.0, 0.0)
    assert all(np.isnan(v) for v in matched_dice_iou(true, empty))
    r = match_at_iou(empty, true)
    assert (r["tp"], r["fp"], r["fn"], r["f1"], r["precision"]) == (0, 0, 1, 0.0, 0.0)
    r = match_at_iou(true, empty)
    assert (r["fp"], r["recall"], r["average_precision"]) == (1, 0.0, 0.0)
    r = match_at_iou(empty, empty)
    assert r["f1"] == r["average_precision"] == 1.0
    with pytest.raises(ValueError, match="negative"):
        matched_dice_iou(-true, true)
    with pytest.raises(ValueError, match="shape"):
        match_at_iou(true, true[:5])


def test_low_threshold_uses_one_to_one_assignment():
    # true A (cols 0-5), B (cols 6-9); prediction P1 = 6 covers the right of A and all of B,
    # P2 = 5 the left of A
    true = np.zeros((1, 10), np.int32)
    true[0, :6] = 1
    true[0, 6:] = 2
    pred = np.zeros_like(true)
    pred[0, :2] = 5
    pred[0, 2:] = 6
    # IoU(A,P1)=4/10, IoU(B,P1)=4/8, IoU(A,P2)=2/6: at 0.3 the best one-to-one has 2 matches
    result = match_at_iou(pred, true, 0.3)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 0, 0)
    # at 0.45 only (B, P1) qualifies
    assert match_at_iou(pred, true, 0.45)["tp"] == 1
    with pytest.raises(ValueError, match="iou_threshold"):
        match_at_iou(pred, true, 0.0)


@st.composite
def _labels(draw):
    shape = (draw(st.integers(4, 24)), draw(st.integers(4, 24)))
    labels = np.zeros(shape, np.int32)
    for _ in range(draw(st.integers(0, 6))):
        r, c = draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))
        h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
        labels[r : r + h, c : c + w] = draw(st.integers(1, 1000))
    return labels


@given(_labels(), _labels(), st.sampled_from([0.3, 0.5, 0.75]))
@settings(max_examples=80, deadline=None)
def test_matching_properties(a, b, threshold):
    b = np.resize(b, a.shape)
    dice, iou = matched_dice_iou(b, a)
    n_true = np.unique(a[a > 0]).size
    n_pred = np.unique(b[b > 0]).size
    if n_true == 0:
        assert np.isnan(dice) and np.isnan(iou)
    else:
        assert 0.0 <= iou <= dice <= 1.0
    self_dice, self_iou = matched_dice_iou(a, a)
    if n_true:
        assert self_dice == pytest.approx(1.0) and self_iou == pytest.approx(1.0)
    r = match_at_iou(b, a, threshold)
    assert r["tp"] + r["fn"] == n_true and r["tp"] + r["fp"] == n_pred
    assert 0 <= r["tp"] <= min(n_true, n_pred)
    assert r["average_precision"] <= r["f1"] + 1e-12
    # the matching is symmetric in its counts
    s = match_at_iou(a, b, threshold)
    assert s["tp"] == r["tp"]


# ----------------------------------------------------------------------------------------------
# per image and summary
# ----------------------------------------------------------------------------------------------
def test_evaluate_and_summarize():
    true = _square((10, 10), 2, 2, 4)
    prob = (true > 0).astype(float)
    perfect = evaluate_image(prob, true, true)
    assert perfect["pixel_f1"] == perfect["auc"] == perfect["mdice"] == perfect["miou"] == 1.0
    assert perfect["f1_iou50"] == perfect["ap_iou50"] == 1.0
    assert perfect["n_true"] == perfect["n_pred"] == 1
    missed = evaluate_image(np.zeros((10, 10)), np.zeros_like(true), true)
    assert missed["mdice"] == 0.0 and missed["f1_iou50"] == 0.0 and missed["pixel_f1"] == 0.0
    empty = evaluate_image(None, np.zeros_like(true), np.zeros_like(true))
    assert np.isnan(empty["mdice"]) and np.isnan(empty["pixel_f1"])
    summary = summarize([perfect, missed, empty])
    assert summary["mdice"] == pytest.approx(0.5)  # the empty image is skipped
    assert summary["f1_iou50"] == pytest.approx(2 / (2 + 0 + 1))  # pooled tp 1, fn 1
    assert summary["n_true"] == 2 and summary["n_images"] == 3
    with pytest.raises(ValueError):
        summarize([])


# ----------------------------------------------------------------------------------------------
# real ground truth
# ----------------------------------------------------------------------------------------------
def test_real_labels_against_themselves_and_shifted():
    import tifffile

    name = "mibi_dsdna/image7_nuclei_labels.tif"
    labels = tifffile.imread(str(data_dir(needs=name) / name))
    result = evaluate_image((labels > 0).astype(np.float32), labels, labels)
    assert result["n_true"] == 96 and result["mdice"] == 1.0 and result["ap_iou50"] == 1.0
    shifted = np.roll(labels, 1, axis=1)
    dice, iou = matched_dice_iou(shifted, labels)
    assert 0.6 < iou < dice < 1.0
