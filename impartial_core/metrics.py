"""Accuracy metrics of the ImPartial paper and the community instance-matching standard.

Pixel level: F1 and ROC AUC of P(foreground) against the ground-truth foreground.
Object level: mDICE / mIOU (every ground-truth object against the predicted object that overlaps it
most; unmatched objects score 0) and F1 / average precision at IoU 0.5 with one-to-one matching.
Inputs are never modified; label images may have gaps in their numbering and any integer dtype.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _labels(array: np.ndarray, name: str) -> np.ndarray:
    """Return a label image as int64 (bool accepted as one object); whole-number floats allowed."""
    values = np.asarray(array)
    if values.dtype == bool:
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise ValueError(f"{name}: label images must hold whole numbers")
    elif not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name}: unsupported dtype {values.dtype} for a label image")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise ValueError(f"{name}: negative labels are not allowed")
    return values


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(
            f"{name_a} shape {np.shape(a)} does not match {name_b} shape {np.shape(b)}"
        )


def _probability(probability: np.ndarray) -> np.ndarray:
    values = np.asarray(probability, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("probability: contains NaN or infinite values")
    return values


# ----------------------------------------------------------------------------------------------
# pixel metrics
# ----------------------------------------------------------------------------------------------
def pixel_f1(probability: np.ndarray, truth_mask: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of the foreground mask ``probability >= threshold`` against the true foreground.

    F1 = 2 TP / (2 TP + FP + FN). When neither truth nor prediction has any foreground the two
    agree perfectly and 1.0 is returned.
    """
    _same_shape(probability, truth_mask, "probability", "truth_mask")
    predicted = _probability(probability) >= threshold
    truth = np.asarray(truth_mask) > 0
    tp = np.count_nonzero(predicted & truth)
    fp = np.count_nonzero(predicted & ~truth)
    fn = np.count_nonzero(~predicted & truth)
    denominator = 2 * tp + fp + fn
    if denominator == 0:
        return 1.0
    return float(2 * tp / denominator)


def roc_auc(probability: np.ndarray, truth_mask: np.ndarray) -> float:
    """Exact area under the ROC curve, as the Mann-Whitney U statistic with average ranks for ties.

    AUC = (sum of the ranks of foreground pixels - P (P + 1) / 2) / (P N). It is undefined (NaN)
    when the truth has no foreground or no background pixel.
    """
    _same_shape(probability, truth_mask, "probability", "truth_mask")
    scores = _probability(probability).ravel()
    truth = (np.asarray(truth_mask) > 0).ravel()
    n_pos = int(np.count_nonzero(truth))
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # average rank of each distinct score: tied scores share the mean of the ranks they span
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts).astype(np.float64)
    average_rank = last_rank - (counts - 1) / 2.0
    rank_sum = float(np.sum(average_rank[inverse.ravel()][truth]))
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u / (float(n_pos) * float(n_neg)))


# ----------------------------------------------------------------------------------------------
# object overlap
# ----------------------------------------------------------------------------------------------
def _overlaps(
    pred_labels: np.ndarray, true_labels: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse overlap table between true and predicted objects (background excluded).

    Returns
    -------
    true_ids, pred_ids : label values of the objects (sorted, 0 excluded)
    true_area, pred_area : their pixel counts
    rows, cols, inter : one entry per overlapping pair: index into true_ids, into pred_ids, and the
        number of shared pixels
    """
    _same_shape(pred_labels, true_labels, "pred_labels", "true_labels")
    pred = _labels(pred_labels, "pred_labels").ravel()
    true = _labels(true_labels, "true_labels").ravel()
    # compact renumbering: gaps and large label values cost nothing
    true_values, true_index, true_counts = np.unique(true, return_inverse=True, return_counts=True)
    pred_values, pred_index, pred_counts = np.unique(pred, return_inverse=True, return_counts=True)
    table = sparse.coo_matrix(
        (np.ones(true.size, dtype=np.int64), (true_index.ravel(), pred_index.ravel())),
        shape=(true_values.size, pred_values.size),
    ).tocsr().tocoo()  # csr conversion sums duplicate (row, col) entries
    true_object = true_values > 0
    pred_object = pred_values > 0
    keep = true_object[table.row] & pred_object[table.col] & (table.data > 0)
    # shift indices so they point into the object-only arrays (label 0, if present, is index 0)
    true_shift = int(not true_object[0]) if true_values.size else 0
    pred_shift = int(not pred_object[0]) if pred_values.size else 0
    return (
        true_values[true_object],
        pred_values[pred_object],
        true_counts[true_object],
        pred_counts[pred_object],
        table.row[keep] - true_shift,
        table.col[keep] - pred_shift,
        table.data[keep],
    )


def matched_dice_iou(pred_labels: np.ndarray, true_labels: np.ndarray) -> Tuple[float, float]:
    """mDICE and mIOU: each true object against the predicted object that overlaps it most.

    Ties in overlap go to the pair with the higher IoU. A true object that no predicted object
    overlaps scores 0. The means run over true objects; with no true object they are NaN
    (undefined, skipped by :func:`summarize`).
    """
    true_ids, _, true_area, pred_area, rows, cols, inter = _overlaps(pred_labels, true_labels)
    n_true = true_ids.size
    if n_true == 0:
        return float("nan"), float("nan")
    dice = np.zeros(n_true)
    iou = np.zeros(n_true)
    if rows.size:
        area_sum = true_area[rows] + pred_area[cols]
        pair_iou = inter / (area_sum - inter)
        pair_dice = 2.0 * inter / area_sum
        # per true object, the best pair: largest overlap first, then largest IoU
        order = np.lexsort((-pair_iou, -inter, rows))
        first = np.ones(order.size, dtype=bool)
        first[1:] = rows[order][1:] != rows[order][:-1]
        best = order[first]
        dice[rows[best]] = pair_dice[best]
        iou[rows[best]] = pair_iou[best]
    return float(dice.mean()), float(iou.mean())


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return float(numerator / denominator) if denominator > 0 else empty


def match_at_iou(
    pred_labels: np.ndarray, true_labels: np.ndarray, iou_threshold: float = 0.5
) -> Dict[str, float]:
    """One-to-one matching of predicted to true objects at an IoU threshold.

    A pair matches when IoU >= ``iou_threshold``. Above 0.5 each object can match at most one other,
    so all such pairs are taken; otherwise the assignment maximising first the number of matches,
    then the summed IoU, is found with ``linear_sum_assignment``.

    Returns
    -------
    dict with tp, fp, fn (ints) and precision = tp / (tp + fp), recall = tp / (tp + fn),
    f1 = 2 tp / (2 tp + fp + fn), average_precision = tp / (tp + fp + fn) (the StarDist / Cellpose
    "AP at a threshold"). A ratio with a zero denominator is 0, except that an image with neither
    true nor predicted objects scores 1 everywhere (perfect agreement).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    overlaps = _overlaps(pred_labels, true_labels)
    true_ids, pred_ids, true_area, pred_area, rows, cols, inter = overlaps
    iou = inter / (true_area[rows] + pred_area[cols] - inter) if rows.size else np.zeros(0)
    candidate = iou >= iou_threshold
    rows, cols, iou = rows[candidate], cols[candidate], iou[candidate]
    if iou_threshold > 0.5 or rows.size == 0:
        tp = int(rows.size)
    else:
        # dense problem restricted to objects that have at least one candidate partner
        used_rows, row_index = np.unique(rows, return_inverse=True)
        used_cols, col_index = np.unique(cols, return_inverse=True)
        k = min(used_rows.size, used_cols.size)
        weight = np.zeros((used_rows.size, used_cols.size))
        # 1 per match dominates: the IoU term summed over at most k matches stays below 1
        weight[row_index, col_index] = 1.0 + iou / (k + 1.0)
        r, c = linear_sum_assignment(weight, maximize=True)
        tp = int(np.count_nonzero(weight[r, c] > 0))
    fp = int(pred_ids.size - tp)
    fn = int(true_ids.size - tp)
    perfect = 1.0 if tp + fp + fn == 0 else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp, perfect),
        "recall": _ratio(tp, tp + fn, perfect),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, perfect),
        "average_precision": _ratio(tp, tp + fp + fn, perfect),
    }


# ----------------------------------------------------------------------------------------------
# per image and summary
# ----------------------------------------------------------------------------------------------
def evaluate_image(
    probability: Optional[np.ndarray],
    pred_labels: np.ndarray,
    true_labels: np.ndarray,
    threshold: float = 0.5,
) -> Dict[str, float]:
    """All metrics of one image.

    Parameters
    ----------
    probability : (H, W) float array or None
        P(foreground); None skips the pixel metrics (NaN).
    pred_labels, true_labels : (H, W) instance label images (0 = background).
    threshold : float
        Foreground threshold of the pixel F1.

    Returns
    -------
    dict with pixel_f1, auc, mdice, miou, f1_iou50, ap_iou50, n_true, n_pred, and the counts
    tp_iou50, fp_iou50, fn_iou50 that :func:`summarize` pools.
    """
    truth_mask = np.asarray(true_labels) > 0
    if probability is None:
        f1_pixels, auc = float("nan"), float("nan")
    else:
        f1_pixels = pixel_f1(probability, truth_mask, threshold)
        auc = roc_auc(probability, truth_mask)
    mdice, miou = matched_dice_iou(pred_labels, true_labels)
    matching = match_at_iou(pred_labels, true_labels, 0.5)
    return {
        "pixel_f1": f1_pixels,
        "auc": auc,
        "mdice": mdice,
        "miou": miou,
        "f1_iou50": matching["f1"],
        "ap_iou50": matching["average_precision"],
        "n_true": int(matching["tp"] + matching["fn"]),
        "n_pred": int(matching["tp"] + matching["fp"]),
        "tp_iou50": matching["tp"],
        "fp_iou50": matching["fp"],
        "fn_iou50": matching["fn"],
    }


def _nanmean(values: List[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(results: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Combine per-image results of :func:`evaluate_image` over a set of images.

    pixel_f1, auc, mdice, miou: mean over images of the per-image values (mDICE/mIOU are thus the
    mean over objects per image, then over images, as in the paper); images where a value is
    undefined (NaN, e.g. no true object) are skipped. f1_iou50, ap_iou50: computed from tp, fp and
    fn pooled over all images, so every object weighs the same. n_true, n_pred, counts: sums.
    """
    if len(results) == 0:
        raise ValueError("results: nothing to summarize")
    summary: Dict[str, float] = {
        key: _nanmean([float(r[key]) for r in results])
        for key in ("pixel_f1", "auc", "mdice", "miou")
    }
    tp = int(sum(r["tp_iou50"] for r in results))
    fp = int(sum(r["fp_iou50"] for r in results))
    fn = int(sum(r["fn_iou50"] for r in results))
    perfect = 1.0 if tp + fp + fn == 0 else 0.0
    summary.update(
        {
            "f1_iou50": _ratio(2 * tp, 2 * tp + fp + fn, perfect),
            "ap_iou50": _ratio(tp, tp + fp + fn, perfect),
            "n_true": int(sum(r["n_true"] for r in results)),
            "n_pred": int(sum(r["n_pred"] for r in results)),
            "tp_iou50": tp,
            "fp_iou50": fp,
            "fn_iou50": fn,
            "n_images": len(results),
        }
    )
    return summary
