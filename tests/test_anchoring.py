"""Anchors for a fine-tune: the start model's confident pixels, sampled, never over a user stroke."""
import numpy as np
from scipy import ndimage as ndi

from impartial_core import anchoring
from impartial_core.anchoring import anchor_scribbles
from impartial_core.scribbles import BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT

from .synthetic import blobs


def test_anchors_keep_the_models_confident_answers_away_from_user_strokes(blob_model):
    image, _, scribbles = blobs(seed=2)
    scribbles = scribbles.copy()
    scribbles[40:44, 5:30] = SPLIT
    anchored = anchor_scribbles(blob_model, [image], [scribbles], seed=0, device="cpu")[0]
    added = (anchored > 0) & (scribbles == 0)
    assert np.array_equal(anchored[scribbles > 0], scribbles[scribbles > 0])       # the user's strokes unchanged
    assert not (added & ndi.binary_dilation(scribbles > 0, iterations=anchoring.MARGIN)).any()
    probability = blob_model.predict(image, device="cpu")["nuclei"].foreground_probability
    nucleus, background = added & (anchored == NUCLEUS), added & (anchored == BACKGROUND)
    assert nucleus.any() and background.any() and set(np.unique(anchored[added])) == {NUCLEUS, BACKGROUND}
    assert (probability[nucleus] >= anchoring.CONFIDENT).all() and (probability[background] <= 1 - anchoring.CONFIDENT).all()
    # as many anchors per class as user strokes of that class, at most
    assert nucleus.sum() <= (scribbles == NUCLEUS).sum() * 1.3 and background.sum() <= (scribbles == BACKGROUND).sum() * 1.3
    again = anchor_scribbles(blob_model, [image], [scribbles], seed=0, device="cpu")[0]
    assert np.array_equal(again, anchored)


def test_the_anchor_class_of_each_kind_of_model():
    """Cells only: "cell" is the cytoplasm value, and the user's nucleus and cytoplasm strokes both
    count as cell strokes; nuclei + cells: nucleus, cytoplasm (cell but not nucleus), background."""
    nuclei = np.array([[0.95, 0.02, 0.02, 0.5]])
    cells = np.array([[0.97, 0.96, 0.03, 0.97]])
    only_cells = anchoring._confident({"cells": cells})
    assert only_cells[CYTOPLASM].tolist() == [[True, True, False, True]] and only_cells[BACKGROUND].tolist() == [[False, False, True, False]]
    both = anchoring._confident({"nuclei": nuclei, "cells": cells})
    assert both[NUCLEUS].tolist() == [[True, False, False, False]]
    assert both[CYTOPLASM].tolist() == [[False, True, False, False]]   # the unsure nucleus is no anchor
    assert both[BACKGROUND].tolist() == [[False, False, True, False]]
    strokes = [np.array([[NUCLEUS, CYTOPLASM, CYTOPLASM, BACKGROUND]], np.uint8)]
    assert anchoring._user_pixels(strokes, CYTOPLASM, ("cells",)) == 3
    assert anchoring._user_pixels(strokes, CYTOPLASM, ("nuclei", "cells")) == 2
