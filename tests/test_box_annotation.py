"""A simulated annotator's strokes in one box: skeletons, background, and split strokes on merges."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from impartial_core.scribbles import BACKGROUND, NUCLEUS, SPLIT
from impartial_core.scribbles.objects import skeleton_labels
from impartial_core.scribbles.simulation import annotate_box
from impartial_core.split_strokes import cut_objects


def scene():
    """Two touching discs (1 left, 2 right) near the top left, a lone disc (3) far from them."""
    rows, cols = np.ogrid[:80, :80]
    labels = np.zeros((80, 80), np.int32)
    labels[(rows - 20) ** 2 + (cols - 14) ** 2 <= 36] = 1
    labels[((rows - 20) ** 2 + (cols - 26) ** 2 <= 36) & (labels == 0)] = 2
    labels[(rows - 62) ** 2 + (cols - 62) ** 2 <= 25] = 3
    return labels


def test_skeletons_of_touched_objects_and_background_around_them():
    labels = scene()
    strokes = annotate_box(labels, 20, 20, box=16, ring=4)
    # the whole skeleton of both touched discs, computed as for the whole image
    skeleton = skeleton_labels(labels)
    np.testing.assert_array_equal(strokes == NUCLEUS, np.isin(skeleton, [1, 2]))
    assert not strokes[labels == 3].any()
    # background never on an object; it holds the box outline and the ring, nothing farther
    assert (labels[strokes == BACKGROUND] == 0).all()
    near = ndi.distance_transform_edt(~np.isin(labels, [1, 2])) <= 4
    outline = np.zeros_like(near)
    outline[12:28, 12:28] = True
    outline[13:27, 13:27] = False
    np.testing.assert_array_equal(strokes == BACKGROUND, (near | outline) & (labels == 0))
    assert not (strokes == SPLIT).any()


def test_split_strokes_where_one_predicted_object_merges_touching_objects():
    labels = scene()
    merged = np.where(labels > 0, np.where(labels == 3, 2, 1), 0)
    strokes = annotate_box(labels, 20, 20, box=16, predicted=merged)
    split = strokes == SPLIT
    assert split.any()
    # on the seam: inside one disc, next to the other
    grown = {n: ndi.binary_dilation(labels == n, np.ones((3, 3), bool)) for n in (1, 2)}
    assert ((labels[split] == 1) & grown[2][split] | (labels[split] == 2) & grown[1][split]).all()
    assert ((labels == 1) & split).any() and ((labels == 2) & split).any()
    # split strokes take the seam's pixels; elsewhere the strokes are those drawn without a model
    plain = annotate_box(labels, 20, 20, box=16)
    np.testing.assert_array_equal(strokes[~split], plain[~split])


def test_a_split_stroke_across_the_gap_cuts_the_merged_object_in_two():
    rows, cols = np.ogrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(rows - 20) ** 2 + (cols - 20) ** 2 <= 36] = 1
    labels[(rows - 20) ** 2 + (cols - 36) ** 2 <= 36] = 2  # 2..3 px of background between the discs
    predicted = ndi.binary_closing(labels > 0, np.ones((7, 7), bool)).astype(np.int32)
    assert predicted[20, 28] == 1 and labels[20, 28] == 0
    strokes = annotate_box(labels, 20, 28, box=16, predicted=predicted)
    split = strokes == SPLIT
    assert split[20, 27:30].any() and not split[labels > 0].any()
    cut = cut_objects(predicted, split)
    assert cut.max() == 2 and cut[20, 20] != cut[20, 36]


def test_no_split_strokes_where_the_model_separates_the_objects():
    labels = scene()
    assert not (annotate_box(labels, 20, 20, box=16, predicted=labels * 5) == SPLIT).any()
    # a predicted object that covers less than half of one disc does not merge them
    partial = np.where(labels == 1, 1, 0)
    partial[(labels == 2) & (np.arange(80) < 24)] = 1
    assert not (annotate_box(labels, 20, 20, box=16, predicted=partial) == SPLIT).any()


def test_a_box_in_empty_space_draws_its_outline_only():
    labels = scene()
    strokes = annotate_box(labels, 45, 45, box=8)
    assert set(np.unique(strokes)) == {0, BACKGROUND}
    assert (strokes == BACKGROUND).sum() == 28  # the 8 x 8 outline


def test_box_clipped_at_the_image_edge():
    labels = scene()
    strokes = annotate_box(labels, 79, 79, box=32, predicted=labels)
    assert (strokes[48:, 48:] > 0).any()
    np.testing.assert_array_equal(strokes == NUCLEUS, skeleton_labels(labels) == 3)


def test_refuses_a_centre_outside_the_image_and_other_sizes():
    labels = scene()
    with pytest.raises(ValueError, match="outside"):
        annotate_box(labels, 80, 10)
    with pytest.raises(ValueError, match="differ in size"):
        annotate_box(labels, 10, 10, predicted=labels[:-1])
