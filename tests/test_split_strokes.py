"""Split strokes cut the objects they cross, and nothing else."""
import numpy as np
import pytest

from impartial_core.split_strokes import cut_objects


def two_touching_discs():
    rows, cols = np.ogrid[:40, :60]
    left = (rows - 20) ** 2 + (cols - 22) ** 2 <= 64
    right = (rows - 20) ** 2 + (cols - 36) ** 2 <= 64
    merged = np.zeros((40, 60), np.int32)
    merged[left | right] = 1
    merged[5:9, 50:55] = 2  # a small object no stroke touches
    return merged, left, right


def test_a_stroke_across_the_neck_gives_two_objects():
    merged, left, right = two_touching_discs()
    split = np.zeros_like(merged, bool)
    split[8:33, 29] = True  # a vertical line between the centres (22 and 36)
    cut = cut_objects(merged, split)
    assert len(np.unique(cut[cut > 0])) == 3
    # every pixel of the merged object still belongs to an object: no gap where the stroke was
    assert ((cut > 0) == (merged > 0)).all()
    a, b = cut[20, 15], cut[20, 43]
    assert a != b and a > 0 and b > 0
    assert (cut[left & ~right & (np.arange(60) < 28)] == a).all()
    assert (cut[right & ~left & (np.arange(60) > 30)] == b).all()


def test_a_stroke_that_does_not_divide_leaves_the_object_whole():
    merged, _, _ = two_touching_discs()
    split = np.zeros_like(merged, bool)
    split[18:22, 20:24] = True  # a dab inside the left disc
    cut = cut_objects(merged, split)
    assert ((cut > 0) == (merged > 0)).all()
    assert len(np.unique(cut[cut > 0])) == 2


def test_small_parts_rejoin_their_neighbour():
    merged, _, _ = two_touching_discs()
    split = np.zeros_like(merged, bool)
    split[14, 14:29] = True  # cuts a 6-pixel sliver off the top of the left disc
    kept = cut_objects(merged, split, min_size=40)
    assert len(np.unique(kept[kept > 0])) == 2
    assert len(np.unique(cut_objects(merged, split)[merged > 0])) >= 3


def test_no_strokes_only_renumbers():
    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 1:3] = 5
    labels[6:8, 6:8] = 9
    out = cut_objects(labels, np.zeros((10, 10), bool))
    assert sorted(np.unique(out)) == [0, 1, 2]


def test_sizes_must_match():
    with pytest.raises(ValueError, match="differ in size"):
        cut_objects(np.zeros((4, 4), int), np.zeros((4, 5), bool))
