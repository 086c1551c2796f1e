"""Tests of impartial_core.scribbles: the label convention, paint images, ImageJ ROIs, scribbles
from whole objects and simulated scribbles.

Synthetic images test each rule; the real-data tests read the Vectra ROI zips and the MIBI ground
truth from ../shared/data, or from the copy bundled in examples/data in a fresh clone.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmarks.data import data_dir
from impartial_core.scribbles import (
    BACKGROUND,
    CYTOPLASM,
    NUCLEUS,
    SPLIT,
    SCRIBBLE_COLOURS,
    UNANNOTATED,
    foreground_value_for,
    remap_scribbles,
    validate_scribbles,
)
from impartial_core.scribbles.imagej_rois import Roi, _decode_roi, rasterize_rois, read_imagej_rois
from impartial_core.scribbles.objects import scribbles_from_instances, scribbles_from_rois
from impartial_core.scribbles.paint import scribbles_from_rgb, scribbles_to_rgb
from impartial_core.scribbles.simulation import count_scribbled_objects, simulate_scribbles


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(str(path))


# ----------------------------------------------------------------------------------------------
# the label convention: values, remapping, validation
# ----------------------------------------------------------------------------------------------
def test_constants():
    assert (UNANNOTATED, BACKGROUND, NUCLEUS, CYTOPLASM) == (0, 1, 2, 3)


def test_inside_an_object_is_a_nucleus_for_nuclei_and_cytoplasm_for_cells():
    assert foreground_value_for("nuclei") == NUCLEUS
    assert foreground_value_for("cells") == CYTOPLASM
    with pytest.raises(ValueError, match="tissue"):
        foreground_value_for("tissue")


def test_the_label_convention_loads_without_image_libraries():
    """Configuration imports the label convention; it must not pull in scikit-image or the ROI reader."""
    code = ("import sys, impartial_core.config; "
            "print(sorted(m for m in ('skimage', 'scipy', 'impartial_core.scribbles.imagej_rois') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_remap_maps_values_and_keeps_zero():
    labels = np.array([[0, 5, 7], [7, 5, 0]], dtype=np.int32)
    out = remap_scribbles(labels, {5: BACKGROUND, 7: NUCLEUS})
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 1, 2], [2, 1, 0]])
    assert labels[0, 1] == 5  # input untouched


def test_remap_accepts_whole_floats_and_explicit_zero():
    labels = np.array([[0.0, 255.0], [128.0, 0.0]])
    out = remap_scribbles(labels, {255: BACKGROUND, 128: CYTOPLASM, 0: UNANNOTATED})
    np.testing.assert_array_equal(out, [[0, 1], [3, 0]])


def test_remap_lists_unexpected_values():
    with pytest.raises(ValueError, match=r"\[4, 9\]"):
        remap_scribbles(np.array([1, 4, 9, 0]), {1: BACKGROUND})


def test_remap_rejects_bad_target():
    with pytest.raises(ValueError, match="target"):
        remap_scribbles(np.array([1, 2]), {1: 1, 2: 7})


def test_remap_rejects_fractional_floats():
    with pytest.raises(ValueError, match="whole numbers"):
        remap_scribbles(np.array([0.5, 1.0]), {1: 1})


@given(
    hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
               elements=st.integers(-5, 20))
)
@settings(max_examples=60, deadline=None)
def test_remap_property_matches_elementwise(labels):
    values = sorted(set(np.unique(labels).tolist()) - {0})
    mapping = {v: (abs(v) % 3) + 1 for v in values}
    out = remap_scribbles(labels, mapping)
    expected = np.vectorize(lambda v: 0 if v == 0 else mapping[v], otypes=[np.uint8])(labels)
    assert out.shape == labels.shape
    np.testing.assert_array_equal(out, expected)


def test_validate_accepts_integer_and_float_integer_values():
    scribbles = np.array([[0, 1], [2, 3]], dtype=np.int64)
    out = validate_scribbles(scribbles, (2, 2))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, scribbles)
    as_float = validate_scribbles(scribbles.astype(np.float32), (2, 2))
    np.testing.assert_array_equal(as_float, scribbles)
    # singleton axes from TIFF readers are squeezed
    assert validate_scribbles(scribbles[None], (2, 2)).shape == (2, 2)


def test_validate_rejects_rgb_with_hint():
    with pytest.raises(ValueError, match="--from-rgb") as info:
        validate_scribbles(np.zeros((5, 6, 3), np.uint8), (5, 6), source="paint.png")
    assert "paint.png" in str(info.value)


def test_validate_rejects_shape_mismatch_naming_both_shapes():
    with pytest.raises(ValueError) as info:
        validate_scribbles(np.zeros((4, 5), np.uint8), (5, 4), source="s.tif")
    message = str(info.value)
    assert "(4, 5)" in message and "(5, 4)" in message and "s.tif" in message


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (np.array([[0.0, 1.5]]), "whole numbers"),
        (np.array([[0, -1]]), "negative"),
        (np.array([[0, 7]]), r"\[7\]"),
        (np.array([[True, False]]), "boolean"),
    ],
)
def test_validate_rejects_bad_values(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        validate_scribbles(bad, bad.shape)


# ----------------------------------------------------------------------------------------------
# paint images: one colour per class
# ----------------------------------------------------------------------------------------------
def test_rgb_round_trip_uint8_float_uint16_rgba():
    rng = np.random.default_rng(0)
    scribbles = rng.integers(0, 4, size=(20, 30)).astype(np.uint8)
    rgb = scribbles_to_rgb(scribbles)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(scribbles_from_rgb(rgb), scribbles)
    np.testing.assert_array_equal(scribbles_from_rgb(rgb / 255.0), scribbles)
    np.testing.assert_array_equal(scribbles_from_rgb(rgb.astype(np.uint16) * 257), scribbles)
    alpha = np.full((20, 30, 1), 255, np.uint8)
    alpha[:5] = 0  # transparent rows carry no paint
    out = scribbles_from_rgb(np.concatenate([rgb, alpha], axis=-1))
    np.testing.assert_array_equal(out[5:], scribbles[5:])
    assert not out[:5].any()


def test_rgb_default_map_tolerance_and_other_colours():
    assert SCRIBBLE_COLOURS == {BACKGROUND: (0, 0, 255), NUCLEUS: (255, 0, 0), CYTOPLASM: (0, 255, 0),
                                SPLIT: (255, 128, 0)}
    rgb = np.array(
        [
            [[250, 10, 5], [0, 0, 0], [255, 255, 255]],
            [[20, 230, 30], [10, 10, 240], [128, 128, 128]],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(scribbles_from_rgb(rgb), [[2, 0, 0], [3, 1, 0]])
    np.testing.assert_array_equal(scribbles_from_rgb(rgb, tolerance=5), [[0, 0, 0], [0, 0, 0]])
    custom = {(255, 255, 0): NUCLEUS}
    yellow = np.array([[[255, 255, 0], [255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(scribbles_from_rgb(yellow, custom), [[2, 0]])


def test_rgb_rejects_grey_and_bad_colour_map():
    with pytest.raises(ValueError, match="rgb"):
        scribbles_from_rgb(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="colours"):
        scribbles_from_rgb(np.zeros((4, 4, 3)), {(0, 0, 0): 9})


def test_paint_in_12_bits_and_channel_first_is_read():
    scribbles = np.zeros((16, 16), np.uint8)
    scribbles[2:5, 2:12], scribbles[8:12, 3:9] = BACKGROUND, NUCLEUS
    rgb8 = scribbles_to_rgb(scribbles)
    twelve_bit = (rgb8.astype(np.uint16) * 4095 // 255).astype(np.uint16)
    np.testing.assert_array_equal(scribbles_from_rgb(twelve_bit), scribbles)
    np.testing.assert_array_equal(scribbles_from_rgb(np.moveaxis(rgb8, -1, 0)), scribbles)
    np.testing.assert_array_equal(scribbles_from_rgb(rgb8.astype(np.float32) / 255 * 1.001), scribbles)


# ----------------------------------------------------------------------------------------------
# ImageJ ROIs: reading and rasterising
# ----------------------------------------------------------------------------------------------
def _roi_bytes(type_code, top, left, bottom, right, xs=(), ys=(), floats=None, line=None, name=""):
    """Encode a minimal ImageJ ROI (version 228) for parser tests."""
    n = len(xs)
    header = bytearray(64)
    header[0:4] = b"Iout"
    header[4:6] = struct.pack(">h", 228)
    header[6] = type_code
    header[8:16] = struct.pack(">4h", top, left, bottom, right)
    header[16:18] = struct.pack(">H", n)
    if line is not None:
        header[18:34] = struct.pack(">4f", *line)
    if floats is not None:
        header[50:52] = struct.pack(">h", 128)
    body = struct.pack(f">{n}h", *[x - left for x in xs])
    body += struct.pack(f">{n}h", *[y - top for y in ys])
    if floats is not None:
        body += struct.pack(f">{n}f", *floats[0]) + struct.pack(f">{n}f", *floats[1])
    data = bytes(header) + body
    if name:
        header2 = len(data)
        name_offset = header2 + 64
        h2 = bytearray(64)
        h2[16:24] = struct.pack(">2i", name_offset, len(name))
        data = data[:60] + struct.pack(">i", header2) + data[64:]
        data += bytes(h2) + name.encode("utf-16-be")
    return data


def test_parse_synthetic_rois(tmp_path):
    rois = {
        "a.roi": _roi_bytes(0, 2, 3, 6, 9, xs=[3, 9, 9, 3], ys=[2, 2, 6, 6], name="square"),
        "b.roi": _roi_bytes(1, 10, 20, 14, 25),
        "c.roi": _roi_bytes(3, 0, 0, 0, 0, line=(1.0, 1.0, 5.0, 1.0)),
        "d.roi": _roi_bytes(
            7, 0, 0, 4, 4, xs=[0, 4, 4, 0], ys=[0, 0, 4, 4],
            floats=([0.25, 4.25, 4.25, 0.25], [0.25, 0.25, 4.25, 4.25]),
        ),
        "e.roi": _roi_bytes(5, 20, 20, 25, 30, xs=[20, 25, 29], ys=[20, 24, 20]),
    }
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for entry, data in rois.items():
            archive.writestr(entry, data)
    parsed = read_imagej_rois(path)
    assert [r.name for r in parsed] == ["square", "b", "c", "d", "e"]
    assert [r.type for r in parsed] == ["polygon", "rect", "line", "freehand", "polyline"]
    assert [r.closed for r in parsed] == [True, True, False, True, False]
    # (x, y) order: x = columns
    np.testing.assert_array_equal(parsed[0].coordinates, [[3, 2], [9, 2], [9, 6], [3, 6]])
    np.testing.assert_allclose(parsed[3].coordinates[0], [0.25, 0.25])
    labels = rasterize_rois(parsed, (32, 32))
    assert labels.dtype == np.int32
    alone = [rasterize_rois([roi], (32, 32)) for roi in parsed]
    # polygon: 6 columns x 4 rows (rows = y); later ROIs overwrite it where they overlap
    assert np.count_nonzero(alone[0]) == 24 and alone[0][2:6, 3:9].min() == 1
    assert np.count_nonzero(labels == 1) == 22 and labels[2, 3] == 4
    assert np.count_nonzero(alone[1]) == 5 * 4 and alone[1][10:14, 20:25].min() == 1
    np.testing.assert_array_equal(np.argwhere(alone[2]), [[1, c] for c in range(1, 6)])
    # sub-pixel freehand: pixel centres 0.5 .. 3.5 lie inside (0.25, 4.25)
    np.testing.assert_array_equal(np.argwhere(alone[3]), np.argwhere(np.ones((4, 4))))
    assert alone[4][20, 20] and alone[4][24, 25] and alone[4][20, 29]
    assert np.count_nonzero(alone[4]) == 10  # two 1-px segments sharing a vertex
    # single .roi file
    single = tmp_path / "one.roi"
    single.write_bytes(rois["b.roi"])
    assert read_imagej_rois(single)[0].name == "one"


def test_read_rois_errors(tmp_path):
    bad = tmp_path / "bad.roi"
    bad.write_bytes(b"nope" + bytes(80))
    with pytest.raises(ValueError, match="bad.roi"):
        read_imagej_rois(bad)
    with pytest.raises(ValueError, match="expected"):
        read_imagej_rois(tmp_path / "x.png")


def test_composite_curves_are_followed_not_cut_short():
    """A composite ROI whose outline is a quarter-circle arc (cubic segment) plus straight edges:
    filled like the quarter disc it is, not like the triangle of its end points."""
    k = 0.5523 * 40  # cubic Bezier control offset for a quarter circle of radius 40
    path = [0, 0, 0, 1, 40, 0, 3, 40, k, k, 40, 0, 40, 4]  # moveTo, lineTo, cubicTo, close
    header = bytearray(_roi_bytes(1, 0, 0, 40, 40))
    header[36:40] = struct.pack(">i", len(path))
    roi = _decode_roi(bytes(header[:64]) + struct.pack(f">{len(path)}f", *path), "arc", "arc.roi")
    area = int((rasterize_rois([roi], (64, 64)) > 0).sum())
    assert abs(area - np.pi * 40 ** 2 / 4) < 0.02 * np.pi * 40 ** 2 / 4, area


def test_roi_dataclass_is_line():
    roi = Roi("x", "polyline", np.zeros((2, 2)), False, [np.zeros((2, 2))])
    assert roi.is_line


@pytest.mark.parametrize("index, count, composites", [(1, 104, 0), (2, 84, 2)])
def test_real_roi_zips(index, count, composites):
    folder = data_dir(needs=f"vectra_2ch/image{index}_cells.roi.zip")
    path = folder / "vectra_2ch" / f"image{index}_cells.roi.zip"
    rois = read_imagej_rois(path)
    # every entry of the zip, none dropped: the README's 73 / 78 count distinct names (the ROI
    # Manager saved same-named cells as "042.roi" and "042-1.roi") and skip composite ROIs
    with zipfile.ZipFile(path) as archive:
        entries = [n for n in archive.namelist() if n.endswith(".roi")]
    assert len(rois) == len(entries) == count
    assert len({r.name for r in rois if r.type != "composite"}) == {1: 73, 2: 78}[index]
    assert sum(r.type == "composite" for r in rois) == composites
    assert all(r.closed for r in rois)
    # first ROI present, as stored: its file name and its header's top-left corner
    assert Path(entries[0]).stem.startswith(rois[0].name)
    with zipfile.ZipFile(path) as archive:
        top, left = struct.unpack(">2h", archive.read(entries[0])[8:12])
    np.testing.assert_array_equal(rois[0].coordinates.min(axis=0), [left, top])
    coords = np.concatenate([r.coordinates for r in rois])
    assert coords.min() >= 0 and coords.max() <= 400
    labels = rasterize_rois(rois, (400, 400))
    areas = np.bincount(labels.ravel())[1:]
    assert areas.size == count and areas.min() > 0  # every ROI, first included, is drawn
    assert 50 <= np.median(areas) <= 2000
    # traced outlines follow pixel corners: the filled pixel count equals the polygon area
    for roi, area in zip(rois[:20], areas[:20]):
        x, y = roi.coordinates.T
        shoelace = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        assert area == pytest.approx(shoelace)
    # not transposed: the DAPI channel is brighter inside the traced cells than outside
    image = _read_tiff(folder / "vectra_2ch" / f"image{index}.tif")
    dapi = image[1]
    assert dapi[labels > 0].mean() > 1.3 * dapi[labels == 0].mean()
    assert dapi[labels > 0].mean() > dapi[labels.T > 0].mean()


# ----------------------------------------------------------------------------------------------
# scribbles from whole objects: instance masks and traced ROIs
# ----------------------------------------------------------------------------------------------
def test_scribbles_from_instances_square():
    labels = np.zeros((30, 30), np.int32)
    labels[5:20, 5:20] = 7
    s = scribbles_from_instances(labels, task="nuclei")
    assert set(np.unique(s)) == {0, BACKGROUND, NUCLEUS}
    assert (s[10:15, 10:15] == NUCLEUS).any()  # skeleton (thinned to near a point) at the centre
    assert s[7, 12] == NUCLEUS  # contour 3 px inside the top border (distance 3)
    assert s[5, 12] == 0 and s[6, 12] == 0  # border itself left unannotated
    assert s[4, 12] == BACKGROUND and s[3, 12] == BACKGROUND and s[2, 12] == 0
    assert scribbles_from_instances(labels).max() == CYTOPLASM  # cells default
    assert scribbles_from_instances(labels, foreground_value=NUCLEUS).max() == NUCLEUS
    assert not scribbles_from_instances(np.zeros((5, 5), int)).any()
    with pytest.raises(ValueError, match="task"):
        scribbles_from_instances(labels, task="tissue")


def test_ring_drawn_only_where_the_image_is_dark():
    """A traced cell beside an untraced bright one: with the image, no background on the neighbour."""
    labels = np.zeros((30, 40), np.int32)
    labels[8:22, 5:19] = 1                      # traced
    image = np.zeros((2, 30, 40), np.float32)
    image[0][labels > 0] = 1.0
    image[1][8:22, 19:35] = 1.0                 # an untraced cell touching it (bright in channel 1)
    image += np.random.default_rng(0).normal(0, 0.01, image.shape).astype(np.float32)
    everywhere = scribbles_from_instances(labels, image=None)
    dark_only = scribbles_from_instances(labels, image=image)
    assert (everywhere[8:22, 19:21] == BACKGROUND).all()          # the ring on the neighbour
    assert not (dark_only[8:22, 19:21] == BACKGROUND).any()       # dropped
    assert (dark_only[6:8, 8:16] == BACKGROUND).all()             # kept above the cell, in the dark
    assert (dark_only == CYTOPLASM).sum() == (everywhere == CYTOPLASM).sum()
    with pytest.raises(ValueError, match="traced on"):
        scribbles_from_instances(labels, image=image[:, :20])


def test_scribbles_from_touching_instances_keeps_both():
    labels = np.zeros((20, 30), np.int32)
    labels[5:15, 3:14] = 1
    labels[5:15, 14:25] = 2
    s = scribbles_from_instances(labels, task="nuclei")
    assert count_scribbled_objects(s, labels) == 2
    assert not s[labels > 0].__eq__(BACKGROUND).any()


def test_thin_object_along_a_larger_label_is_not_lost():
    # the 1-px seam between touching objects would erase this strip entirely
    labels = np.zeros((12, 20), np.int32)
    labels[3, 2:14] = 1
    labels[4:10, 2:14] = 2
    s = scribbles_from_instances(labels, task="nuclei")
    assert count_scribbled_objects(s, labels) == 2
    assert (s[3] == NUCLEUS).any()


@st.composite
def _label_images(draw):
    """Random instance label images built from rectangles (overlaps overwrite, gaps in numbers)."""
    height = draw(st.integers(8, 40))
    width = draw(st.integers(8, 40))
    labels = np.zeros((height, width), np.int32)
    for _ in range(draw(st.integers(0, 8))):
        r0 = draw(st.integers(0, height - 1))
        c0 = draw(st.integers(0, width - 1))
        h = draw(st.integers(1, 15))
        w = draw(st.integers(1, 15))
        labels[r0 : r0 + h, c0 : c0 + w] = draw(st.integers(1, 300))
    return labels


@given(_label_images(), st.integers(0, 4), st.integers(0, 3))
@settings(max_examples=80, deadline=None)
def test_scribbles_from_instances_properties(labels, margin, ring):
    s = scribbles_from_instances(labels, task="nuclei", inner_margin=margin, outer_ring=ring)
    assert s.shape == labels.shape and s.dtype == np.uint8
    assert np.all(labels[s == NUCLEUS] > 0)  # foreground inside objects
    assert np.all(labels[s == BACKGROUND] == 0)  # background outside all objects
    ids, areas = np.unique(labels, return_counts=True)
    scribbled = set(np.unique(labels[s == NUCLEUS]).tolist())
    for label, area in zip(ids, areas):
        if label > 0 and area >= 9:
            assert label in scribbled  # no object lost
    if ring == 0:
        assert not np.any(s == BACKGROUND)


def test_instances_with_huge_ids_convert_like_small_ones():
    labels = np.zeros((32, 32), np.uint32)
    labels[4:12, 4:12], labels[16:28, 16:28] = 4_000_000_000, 7
    small = np.where(labels == 7, 1, np.where(labels > 0, 2, 0))
    np.testing.assert_array_equal(scribbles_from_instances(labels), scribbles_from_instances(small))


def test_drawn_lines_and_points_are_strokes_at_their_width_without_a_background_ring():
    """A line drawn inside a cell says "cell here": painted at its stroke width, no ring around it
    (a ring would call the cell around the line background). Traced areas keep their ring."""
    line = np.array([[10.0, 20.0], [50.0, 20.0]])
    wide = Roi("stroke", "freeline", line, False, [line], stroke_width=5)
    point = Roi("dot", "point", np.array([[30.0, 40.0]]), False, [np.array([[30.0, 40.0]])])
    square = np.array([[5.0, 50.0], [25.0, 50.0], [25.0, 62.0], [5.0, 62.0]])
    area = Roi("cell", "polygon", square, True, [square])
    scribbles = scribbles_from_rois([wide, point, area], (64, 64), task="nuclei")
    assert (scribbles[18:23, 12:48] == NUCLEUS).all() and (scribbles[15:26, 12:48] != BACKGROUND).all()
    assert scribbles[40, 30] == NUCLEUS and not (scribbles[36:45, 26:35] == BACKGROUND).any()
    assert (scribbles[45:70, 0:32] == BACKGROUND).any()  # the traced area's ring


# ----------------------------------------------------------------------------------------------
# simulated scribbles
# ----------------------------------------------------------------------------------------------
def test_simulate_small_and_deterministic():
    labels = np.zeros((100, 100), np.int32)
    for k, (r, c) in enumerate([(10, 10), (10, 60), (60, 10), (60, 60), (85, 85)], start=1):
        labels[r : r + 8, c : c + 8] = k * 10  # gaps in numbering
    a = simulate_scribbles([labels, labels], budget=4, seed=3)
    b = simulate_scribbles([labels, labels], budget=4, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
        assert np.all(labels[x == NUCLEUS] > 0) and np.all(labels[x == BACKGROUND] == 0)
        # objects are 50 px apart, a 32 px box touches one object: the budget is exact
        assert count_scribbled_objects(x, labels) == 2
    assert simulate_scribbles([labels], budget=100, seed=0)[0].any()
    assert count_scribbled_objects(simulate_scribbles([labels], 100, 0)[0], labels) == 5
    assert not simulate_scribbles([labels], budget=0, seed=0)[0].any()
    assert simulate_scribbles([], 10, 0) == []


def test_simulate_on_mibi_matches_budget():
    folder = data_dir(needs="mibi_dsdna/image7_nuclei_labels.tif") / "mibi_dsdna"
    labels = [_read_tiff(folder / f"image{k}_nuclei_labels.tif") for k in (0, 3, 5, 7)]
    scribbles = simulate_scribbles(labels, budget=100, seed=0)
    counts = [count_scribbled_objects(s, l) for s, l in zip(scribbles, labels)]
    # 25 per image, a box may overshoot by the few extra objects it touches
    assert all(25 <= c <= 35 for c in counts), counts
    assert 100 <= sum(counts) <= 125
    for s, l in zip(scribbles, labels):
        assert np.all(l[s == NUCLEUS] > 0) and np.all(l[s == BACKGROUND] == 0)
        assert (s == BACKGROUND).sum() > (s == NUCLEUS).sum()
    # the paper's own n100 scribbles hold 102 nuclei
    paper = [_read_tiff(folder / f"image{k}_scribbles_n100.tif") for k in (0, 3, 5, 7)]
    assert sum(count_scribbled_objects(s, l) for s, l in zip(paper, labels)) == 102


def test_count_scribbled_objects_shape_error():
    with pytest.raises(ValueError, match="shape"):
        count_scribbled_objects(np.zeros((3, 3)), np.zeros((3, 4), int))
