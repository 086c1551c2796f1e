"""Where to scribble next: uncertain windows and split strokes on merged objects."""
import numpy as np
import pytest

from impartial_core import suggestions as S


def disc(shape, centre, radius):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def nuclei_with_one_merge(shape=(96, 128)):
    """Five single discs of radius 6, and two overlapping discs numbered as one object (number 6)."""
    labels = np.zeros(shape, np.int32)
    for number, centre in enumerate([(15, 15), (15, 60), (15, 105), (80, 15), (80, 110)], start=1):
        labels[disc(shape, centre, 6)] = number
    labels[disc(shape, (55, 55), 7) | disc(shape, (55, 67), 7)] = 6
    return labels


def test_merged_object_gets_a_split_at_its_neck():
    found = S.merged_objects(nuclei_with_one_merge())
    assert [s.object_number for s in found] == [6]
    split = found[0]
    assert split.kind == S.SPLIT and 0 < split.score <= 1
    # the neck lies between the two centres (55, 55) and (55, 67)
    assert abs(split.row - 55) <= 1 and 59 <= split.col <= 63


def test_round_objects_of_any_size_are_not_split():
    labels = np.zeros((80, 80), np.int32)
    labels[disc(labels.shape, (20, 20), 5)] = 1
    labels[disc(labels.shape, (20, 60), 5)] = 2
    labels[disc(labels.shape, (55, 40), 12)] = 3  # large, but convex
    assert S.merged_objects(labels) == []


def test_uncertain_window_found_and_scribbles_lower_it():
    uncertainty = np.full((128, 128), 0.05)
    uncertainty[16:48, 80:112] = 0.9  # a doubtful square
    uncertainty[90:110, 10:30] = 0.6  # a second one, less doubtful
    first = S.suggest([uncertainty], [None], count=2, window=32)
    assert [(s.kind, s.image) for s in first] == [(S.UNCERTAIN, 0)] * 2
    assert abs(first[0].row - 32) <= 8 and abs(first[0].col - 96) <= 8
    assert abs(first[1].row - 100) <= 16 and abs(first[1].col - 20) <= 16
    # scribbling the first square moves it down the list
    scribbles = np.zeros((128, 128), np.uint8)
    scribbles[20:44:2, 84:108] = 2
    after = S.suggest([uncertainty], [None], count=1, scribbles=[scribbles], window=32)
    assert abs(after[0].row - 100) <= 16 and abs(after[0].col - 20) <= 16


def test_places_are_apart_ranked_and_span_images():
    rng = np.random.default_rng(0)
    maps = [rng.random((64, 64)) * 0.2, rng.random((64, 64)) * 0.2]
    maps[1][20:40, 20:40] = 1.0
    labels = [None, nuclei_with_one_merge((64, 96))[:64, :64]]
    places = S.suggest(maps, labels, count=6, window=16)
    assert len(places) == 6
    assert [p.score for p in places] == sorted((p.score for p in places), reverse=True)
    assert places[0].image == 1
    for i, a in enumerate(places):
        for b in places[i + 1:]:
            if a.image == b.image:
                assert max(abs(a.row - b.row), abs(a.col - b.col)) >= 16


def test_no_uncertain_window_on_an_object_suggested_for_a_split():
    labels = nuclei_with_one_merge()
    uncertainty = np.zeros(labels.shape)
    uncertainty[labels == 6] = 1.0  # the seam region is where the model is unsure
    places = S.suggest([uncertainty], [labels], count=3, window=16)
    assert places[0].kind == S.SPLIT and places[0].object_number == 6
    assert all(labels[p.row, p.col] != 6 for p in places if p.kind == S.UNCERTAIN)


@pytest.mark.parametrize("kwargs, message", [({"count": 0}, "count"), ({"count": 1, "window": 2}, "window")])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.suggest([np.zeros((8, 8))], [None], **kwargs)


class _FixedMaps:
    """A cells-only model whose cell probability is a given mask: ``segment`` is the real one."""

    def __init__(self, cells: np.ndarray):
        from impartial_core.prediction import TaskMaps

        p = cells.astype(np.float32)
        self.maps = {"cells": TaskMaps(p, np.zeros_like(p))}

    def predict(self, image, flips=False, device="auto"):
        return self.maps

    def segment(self, maps, *args, **kwargs):
        from impartial_core.model import ImPartialModel

        return ImPartialModel.segment(self, maps, *args, **kwargs)

    thresholds = {"cells": 0.5}


def two_cells_one_blob(shape=(160, 128)):
    """A cell mask of three single round cells, two joined by a bridge (a dumbbell) and one large
    L-shaped cell, and a nuclear stain (channel 1) with one nucleus in each cell."""
    centres = [(32, 33), (32, 63), (85, 20), (85, 60), (85, 100)]
    cells = np.zeros(shape, bool)
    image = np.zeros((2,) + shape, np.float32)
    for centre in centres:
        cells |= disc(shape, centre, 12)
        image[1][disc(shape, centre, 5)] = 1.0
    cells[28:36, 33:63] = True
    cells[112:152, 20:34] = cells[138:152, 20:80] = True   # the L, its nucleus in the corner
    image[1][disc(shape, (145, 27), 5)] = 1.0
    image[0][cells] = 1.0
    return cells, image


def test_suggest_for_model_seeds_cells_from_the_nuclear_channel():
    blob, image = two_cells_one_blob()
    model = _FixedMaps(blob)
    # without the stain, the dumbbell is one cell that looks merged (and so does the L)
    alone = S.suggest_for_model(model, [image], 5, window=16)
    splits = [p for p in alone if p.kind == S.SPLIT]
    assert any(abs(p.row - 32) <= 4 and 44 <= p.col <= 52 for p in splits)
    # seeded by the nuclei of channel 1, the dumbbell is the two cells the user sees, and the L,
    # with one round nucleus, is one irregular cell: nothing to split
    seeded = S.suggest_for_model(model, [image], 5, window=16, nuclear_channel=1)
    assert all(p.kind != S.SPLIT for p in seeded)


def test_suggest_for_model_does_not_suggest_what_a_split_stroke_divided():
    blob, image = two_cells_one_blob()
    strokes = np.zeros(blob.shape, np.uint8)
    strokes[:60, 47:49] = 4   # a split stroke across the dumbbell's bridge
    found = S.suggest_for_model(_FixedMaps(blob), [image], 5, scribbles=[strokes], window=16)
    splits = [p for p in found if p.kind == S.SPLIT]
    assert splits and all(p.row > 100 for p in splits)   # the L alone is left
