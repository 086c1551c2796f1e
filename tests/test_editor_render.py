"""The scribble editor's picture, without a display: composite, overlays, zoom and coordinates."""
import numpy as np
import pytest

from impartial_cellprofiler.editor_render import (OUTSIDE, UNCERTAINTY_COLOUR, Layers, View, blend, composite,
                                                   outline_mask, render, scribble_lut)


def test_view_maps_screen_and_image_both_ways():
    view = View(zoom=4.0, x=10.0, y=20.0)
    # screen pixel (0, 0) shows image pixel (20, 10): its centre is 3/8 of a pixel before that pixel's centre
    row, col = view.to_image(0, 0)
    assert (np.floor(row + 0.5), np.floor(col + 0.5)) == (20, 10)
    for point in [(20.0, 10.0), (33.25, 47.5)]:
        np.testing.assert_allclose(view.to_image(*view.to_screen(*point)[::1]), point)
    sx, sy = view.to_screen(25, 12)
    np.testing.assert_allclose(view.to_image(sx, sy), (25, 12))


def test_fit_zoom_and_pan_keep_the_geometry():
    view = View()
    view.fit((200, 100), (50, 40))  # image 50 rows x 40 cols on a 200 x 100 screen
    assert view.zoom == 2.0  # limited by the height
    np.testing.assert_allclose(view.to_image(99.5, 49.5), (24.5, 19.5))  # centres coincide
    before = view.to_image(30, 70)
    view.zoom_at(3.0, 30, 70)
    assert view.zoom == 6.0
    np.testing.assert_allclose(view.to_image(30, 70), before, atol=1e-9)  # the point under the pointer stays
    view.pan(12, -6)
    np.testing.assert_allclose(view.to_image(42, 64), before, atol=1e-9)
    view.centre_on(7, 9, (200, 100))
    np.testing.assert_allclose(view.to_image(99.5, 49.5), (7, 9), atol=1e-9)


def test_render_zooms_by_whole_pixels_and_blends_scribbles():
    base = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    scribbles = np.zeros((4, 5), np.uint8)
    scribbles[1, 2] = 2
    lut = scribble_lut({2: (255, 0, 0)})
    out = render(base, scribbles, lut, 1.0, View(zoom=2.0, x=-1.0, y=0.0), (14, 9))
    assert out.shape == (9, 14, 3)
    assert (out[:, :2] == OUTSIDE).all() and (out[:, 12:] == OUTSIDE).all() and (out[8:] == OUTSIDE).all()
    for r in range(4):
        for c in range(5):
            expected = (255, 0, 0) if (r, c) == (1, 2) else tuple(base[r, c])
            assert (out[2 * r:2 * r + 2, 2 + 2 * c:4 + 2 * c] == expected).all()
    half = render(base, scribbles, lut, 0.5, View(zoom=1.0), (5, 4))
    np.testing.assert_allclose(half[1, 2], (base[1, 2] + np.array([255, 0, 0])) / 2, atol=1)
    hidden = render(base, scribbles, lut, 0.0, View(zoom=1.0), (5, 4))
    np.testing.assert_array_equal(hidden, base)
    nowhere = render(base, scribbles, lut, 1.0, View(zoom=1.0, x=100.0), (5, 4))
    assert (nowhere == OUTSIDE).all()


def test_composite_scales_each_channel_between_its_limits():
    channels = np.zeros((2, 2, 2), np.float32)
    channels[0, 0, 0] = 10.0
    channels[0, 1, 0] = 5.0
    channels[1, 1, 1] = 1.0
    rgb = composite(channels, [0.0, 0.0], [10.0, 1.0], [(0, 255, 0), (255, 0, 255)], [True, True])
    assert tuple(rgb[0, 0]) == (0, 255, 0) and tuple(rgb[0, 1]) == (0, 128, 0)
    assert tuple(rgb[1, 1]) == (255, 0, 255) and tuple(rgb[1, 0]) == (0, 0, 0)
    only_first = composite(channels, [0.0, 0.0], [10.0, 1.0], [(0, 255, 0), (255, 0, 255)], [True, False])
    assert tuple(only_first[1, 1]) == (0, 0, 0)
    above = composite(channels, [0.0, 0.0], [5.0, 1.0], [(255, 255, 255), (0, 0, 0)], [True, True])
    assert tuple(above[0, 0]) == (255, 255, 255)  # clipped, not wrapped


def test_outline_is_the_inner_border_of_each_object():
    labels = np.zeros((7, 7), np.int32)
    labels[1:6, 1:4] = 1
    labels[1:6, 4:6] = 2  # touching object 1
    edge = outline_mask(labels)
    assert not edge[labels == 0].any()
    assert edge[1, 1:6].all() and edge[5, 1:6].all() and edge[1:6, 1].all()
    assert edge[1:6, 3].all() and edge[1:6, 4].all()  # both sides of the shared border
    assert not edge[2:5, 2].any()  # the inside of object 1


def test_blend_with_a_map_of_opacities():
    rgb = np.zeros((1, 3, 3), np.uint8)
    blend(rgb, np.array([[True, True, False]]), (200, 100, 0), np.array([[1.0, 0.5, 1.0]]))
    np.testing.assert_array_equal(rgb[0], [[200, 100, 0], [100, 50, 0], [0, 0, 0]])


def test_layers_show_outlines_and_uncertainty_on_request():
    channels = np.zeros((6, 6), np.float32)
    labels = np.zeros((6, 6), np.int32)
    labels[2:5, 2:5] = 1
    uncertainty = np.zeros((6, 6))
    uncertainty[0, 0] = 1.0
    layers = Layers(channels, {"Nuclei": labels}, uncertainty)
    base = layers.base()
    assert (base[outline_mask(labels)] == (255, 255, 0)).all() and not base[3, 3].any()
    assert not base[0, 0].any()  # uncertainty hidden until asked for
    layers.show_uncertainty, layers.uncertainty_opacity = True, 1.0
    layers.invalidate()
    assert tuple(layers.base()[0, 0]) == UNCERTAINTY_COLOUR
    layers.show_outlines[0] = False
    layers.invalidate()
    assert not layers.base()[2, 2].any()


def test_layers_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match="objects 'Cells'"):
        Layers(np.zeros((4, 4)), {"Cells": np.zeros((3, 4), int)})
    with pytest.raises(ValueError, match="uncertainty"):
        Layers(np.zeros((4, 4)), None, np.zeros((4, 5)))
    with pytest.raises(ValueError, match="channels"):
        Layers(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="colours"):
        Layers(np.zeros((4, 4, 2)), colours=[(255, 0, 0)])


def test_contrast_uses_the_channel_percentiles():
    channel = np.arange(1001, dtype=np.float32).reshape(7, 143)
    layers = Layers(channel)
    assert layers.intensity(0, 0.0) == 0.0 and layers.intensity(0, 100.0) == 1000.0
    assert layers.intensity(0, 50.0) == pytest.approx(500.0)
    layers.low_percentile[0], layers.high_percentile[0] = 0.0, 50.0
    base = layers.base()
    assert tuple(base.reshape(-1, 3)[250]) == (128, 128, 128) and tuple(base.reshape(-1, 3)[900]) == (255, 255, 255)
