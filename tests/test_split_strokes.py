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


def test_cells_follow_their_cut_nucleus_and_keep_its_number():
    from impartial_core.instances import Objects, cytoplasm_from
    from impartial_core.split_strokes import split_objects

    merged, left, right = two_touching_discs()
    nuclei = np.where(merged == 1, 1, 0).astype(np.int32)
    rows, cols = np.ogrid[:40, :60]
    cells = np.where((np.abs(rows - 20) <= 14) & (cols >= 8) & (cols <= 50), 1, 0).astype(np.int32)
    cells[nuclei > 0] = 1
    objects = Objects(nuclei=nuclei, cells=cells, cytoplasm=cytoplasm_from(cells, nuclei))
    split = np.zeros_like(merged, bool)
    split[8:33, 29] = True
    out = split_objects(objects, split)
    assert sorted(np.unique(out.nuclei[out.nuclei > 0])) == [1, 2]
    assert sorted(np.unique(out.cells[out.cells > 0])) == [1, 2]
    assert ((out.cells > 0) == (cells > 0)).all()  # the cell is divided, not shrunk
    for n in (1, 2):  # each cell holds its own nucleus
        assert (out.cells[out.nuclei == n] == n).all()
    assert out.cells[20, 10] == out.nuclei[20, 18] and out.cells[20, 48] == out.nuclei[20, 40]
    assert ((out.cytoplasm > 0) == ((out.cells > 0) & (out.nuclei == 0))).all()
    # no strokes: the very same objects
    assert split_objects(objects, np.zeros_like(split)) is objects
