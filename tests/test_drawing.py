"""Strokes, their rasterisation and the editing session's undo/redo (impartial_core.drawing)."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from impartial_core.drawing import ERASER, EditingSession, Stroke, paint_stroke, stroke_mask


def test_single_point_paints_a_round_disc():
    mask = stroke_mask(Stroke([(5, 5)], 2, 2.0), (11, 11))
    rows, cols = np.mgrid[:11, :11]
    np.testing.assert_array_equal(mask, (rows - 5) ** 2 + (cols - 5) ** 2 <= 4)
    assert mask.sum() == 13  # the 13 pixels within 2 of the centre: a disc, not a square


def test_minimum_radius_gives_a_one_pixel_line():
    mask = stroke_mask(Stroke([(3, 0), (3, 9)], 1, 0.5), (7, 10))
    expected = np.zeros((7, 10), bool)
    expected[3, :] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("end", [(2, 37), (29, 31), (39, 1), (17, 3)])
def test_stroke_is_continuous_when_points_are_far_apart(end):
    """Two mouse positions far apart give one connected line, whatever its slope."""
    mask = stroke_mask(Stroke([(1, 1), end], 2, 0.5), (40, 40))
    _, n = ndi.label(mask, structure=np.ones((3, 3)))
    assert n == 1
    assert mask[1, 1] and mask[end]
    # thin: about one pixel per step along the longer axis, not a filled box
    assert mask.sum() <= max(abs(end[0] - 1), abs(end[1] - 1)) * 2 + 2


def test_wide_stroke_covers_the_swept_band_only():
    mask = stroke_mask(Stroke([(10, 5), (10, 25)], 3, 3.0), (21, 31))
    assert mask[7:14, 5:26].all()          # the band of half-width 3 along the segment
    assert not mask[:7].any() and not mask[14:].any()
    assert mask[10, 2] and not mask[10, 1]  # round caps: 3 pixels beyond the end, no more
    assert not mask[7, 2]                   # cap corner outside the radius


def test_polyline_paints_every_segment_and_the_value():
    scribbles = np.zeros((20, 20), np.uint8)
    box = paint_stroke(scribbles, Stroke([(2, 2), (2, 15), (15, 15)], 3, 0.5))
    assert set(np.unique(scribbles)) == {0, 3}
    assert scribbles[2, 2:16].all() and scribbles[2:16, 15].all()
    assert scribbles.sum() == 3 * (14 + 13)
    assert box == (2, 16, 2, 16)


def test_stroke_outside_the_image_is_clipped():
    scribbles = np.zeros((5, 5), np.uint8)
    assert paint_stroke(scribbles, Stroke([(-10, -10), (-10, 20)], 1, 1.0)) is None
    assert not scribbles.any()
    paint_stroke(scribbles, Stroke([(-3, 2), (8, 2)], 1, 0.5))
    np.testing.assert_array_equal(scribbles[:, 2], 1)
    assert scribbles.sum() == 5


def test_invalid_strokes_are_refused():
    with pytest.raises(ValueError, match="at least one point"):
        Stroke([], 1, 1.0)
    with pytest.raises(ValueError, match="radius"):
        Stroke([(0, 0)], 1, 0.2)
    with pytest.raises(ValueError, match="0 to 255"):
        Stroke([(0, 0)], 300, 1.0)
    with pytest.raises(ValueError, match="finite"):
        Stroke([(0, float("nan"))], 1, 1.0)
    with pytest.raises(ValueError, match="uint8"):
        paint_stroke(np.zeros((4, 4), np.int32), Stroke([(0, 0)], 1, 1.0))


def test_eraser_writes_zero():
    scribbles = np.full((6, 6), 2, np.uint8)
    paint_stroke(scribbles, Stroke([(0, 3), (5, 3)], ERASER, 0.5))
    assert ERASER == 0
    assert (scribbles[:, 3] == 0).all() and (np.delete(scribbles, 3, axis=1) == 2).all()


def test_session_live_stroke_undo_redo_restore_exactly():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 4, (30, 30)).astype(np.uint8)
    given = original.copy()
    session = EditingSession(original)
    assert not session.changed and not session.can_undo
    session.begin_stroke((5, 5), 2, 1.5)
    session.extend_stroke((5, 20))
    session.extend_stroke((25, 20))
    stroke = session.end_stroke()
    assert stroke.points == ((5.0, 5.0), (5.0, 20.0), (25.0, 20.0)) and stroke.value == 2
    after_first = session.result()
    assert (after_first[5, 5:21] == 2).all() and (after_first[5:26, 20] == 2).all()
    session.apply_stroke(Stroke([(10, 0), (10, 29)], ERASER, 1.0))
    after_second = session.result()
    assert (after_second[9:12, :] == 0).all()
    assert session.changed and session.undo_depth == 2

    assert session.undo() is not None
    np.testing.assert_array_equal(session.scribbles, after_first)
    session.undo()
    np.testing.assert_array_equal(session.scribbles, original)
    assert not session.changed and session.undo() is None
    session.redo()
    np.testing.assert_array_equal(session.scribbles, after_first)
    session.redo()
    np.testing.assert_array_equal(session.scribbles, after_second)
    assert session.redo() is None
    # a new edit after an undo drops what could have been redone
    session.undo()
    session.apply_stroke(Stroke([(0, 0)], 1, 1.0))
    assert not session.can_redo and session.undo_depth == 2
    np.testing.assert_array_equal(original, given)


def test_session_never_modifies_the_callers_array_and_exposes_read_only_view():
    original = np.zeros((8, 8), np.uint8)
    session = EditingSession(original)
    session.apply_stroke(Stroke([(4, 4)], 1, 2.0))
    assert not original.any()
    with pytest.raises(ValueError):
        session.scribbles[0, 0] = 3
    result = session.result()
    result[0, 0] = 3
    assert session.scribbles[0, 0] == 0


def test_stroke_that_changes_nothing_is_not_an_undo_step():
    session = EditingSession(np.full((6, 6), 1, np.uint8))
    session.apply_stroke(Stroke([(2, 2), (3, 3)], 1, 1.0))
    assert session.undo_depth == 0 and not session.changed
    session.apply_stroke(Stroke([(-20, -20)], 2, 1.0))  # wholly outside
    assert session.undo_depth == 0


def test_history_is_bounded_and_oldest_edits_go_first():
    session = EditingSession(np.zeros((10, 10), np.uint8), max_undo=3)
    for col in range(5):
        session.apply_stroke(Stroke([(0, col * 2)], 1, 0.5))
    assert session.undo_depth == 3
    while session.undo() is not None:
        pass
    # the two oldest strokes can no longer be undone; the three newest were
    assert session.scribbles[0, 0] == 1 and session.scribbles[0, 2] == 1
    assert session.scribbles[0, 4:].sum() == 0

    by_memory = EditingSession(np.zeros((10, 10), np.uint8), max_undo_bytes=150)
    for _ in range(3):
        by_memory.clear()
        by_memory.replace(np.ones((10, 10), np.uint8))
    assert by_memory.undo_depth == 1  # each whole-image edit holds 200 bytes: only the last is kept


def test_changed_follows_the_saved_state():
    session = EditingSession(np.zeros((5, 5), np.uint8))
    session.apply_stroke(Stroke([(2, 2)], 3, 1.0))
    assert session.changed
    session.mark_saved()
    assert not session.changed
    session.undo()
    assert session.changed  # differs from what was saved
    session.redo()
    assert not session.changed


def test_session_refuses_what_is_not_a_scribble_array():
    with pytest.raises(ValueError, match="2-D"):
        EditingSession(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="0 to 255"):
        EditingSession(np.full((3, 3), 300, np.int32))
    with pytest.raises(ValueError, match="0 to 255"):
        EditingSession(np.zeros((3, 3), np.float32))
    session = EditingSession(np.array([[0, 4]], np.uint16))
    assert session.scribbles.dtype == np.uint8 and session.scribbles[0, 1] == 4
    with pytest.raises(RuntimeError, match="begin_stroke"):
        session.extend_stroke((0, 0))
    with pytest.raises(ValueError, match="shape"):
        session.replace(np.zeros((2, 2), np.uint8))
