"""Scribble images: conventions, conversions, ImageJ ROI reading and simulation.

A scribble image is a label image with the same height and width as the image it annotates (uint8):
``0`` = not annotated, ``1`` = background (outside any cell), ``2`` = nucleus, ``3`` = cytoplasm
(inside a cell, outside its nucleus). The nuclei task reads foreground {2} / background {1, 3}; the
cell task reads foreground {2, 3} / background {1}.

Users bring other conventions (other label values, RGB paint images, ImageJ/Fiji ROI zips of traced
objects, full instance masks); the functions here map them onto this one.
"""
from __future__ import annotations

import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line
from skimage.draw import polygon as draw_polygon
from skimage.morphology import skeletonize

UNANNOTATED = 0
BACKGROUND = 1
NUCLEUS = 2
CYTOPLASM = 3

#: every value a valid scribble image may hold
SCRIBBLE_VALUES = (UNANNOTATED, BACKGROUND, NUCLEUS, CYTOPLASM)

#: default paint colours of :func:`scribbles_from_rgb` (RGB, 0..255): blue = background,
#: red = nucleus, green = cytoplasm. Any other colour (black, white, grey, ...) = not annotated.
DEFAULT_COLOURS: Dict[Tuple[int, int, int], int] = {
    (0, 0, 255): BACKGROUND,
    (255, 0, 0): NUCLEUS,
    (0, 255, 0): CYTOPLASM,
}

PathLike = Union[str, Path]


# ----------------------------------------------------------------------------------------------
# label values
# ----------------------------------------------------------------------------------------------
def _as_integer_array(values: np.ndarray, source: str) -> np.ndarray:
    """Return ``values`` as an int64 array; floats are accepted only when they hold whole numbers.

    TIFF readers often return float arrays for label images, so integer-valued floats are fine.
    """
    values = np.asarray(values)
    if values.dtype == bool:
        # a boolean mask has no class values: True would silently become "background"
        raise ValueError(
            f"{source}: got a boolean mask; scribbles need class values "
            f"(0 unannotated, 1 background, 2 nucleus, 3 cytoplasm); map it to these values (impartial --remap)"
        )
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64, copy=False)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{source}: contains NaN or infinite values")
        if not np.all(values == np.round(values)):
            raise ValueError(
                f"{source}: float values that are not whole numbers (e.g. "
                f"{values[values != np.round(values)].ravel()[0]!r}); "
                f"scribbles must be class labels"
            )
        return values.astype(np.int64)
    raise ValueError(f"{source}: unsupported dtype {values.dtype}; expected integers")


def remap_scribbles(labels: np.ndarray, mapping: Dict[int, int], source: str = "labels") -> np.ndarray:
    """Map the values of a user's label image onto the scribble convention.

    Parameters
    ----------
    labels : ndarray of int (or whole-number floats)
        The user's annotation, any shape.
    mapping : dict int -> int
        User value -> scribble value (0..3). ``0`` maps to ``0`` unless the mapping says otherwise.
    source : str
        What ``labels`` is (e.g. its file name), named in error messages.

    Returns
    -------
    ndarray of uint8, same shape as ``labels``.

    Raises
    ------
    ValueError
        If ``labels`` holds values that are neither 0 nor keys of ``mapping`` (all of them are
        listed), or if a target value is not a scribble value.
    """
    bad_targets = sorted({int(v) for v in mapping.values()} - set(SCRIBBLE_VALUES))
    if bad_targets:
        raise ValueError(
            f"mapping: target values {bad_targets} are not scribble values {list(SCRIBBLE_VALUES)}"
        )
    values = _as_integer_array(labels, source)
    table = {0: UNANNOTATED}
    table.update({int(k): int(v) for k, v in mapping.items()})
    present, inverse = np.unique(values, return_inverse=True)
    unexpected = [int(v) for v in present if int(v) not in table]
    if unexpected:
        raise ValueError(
            f"{source}: values {unexpected} are not in the mapping {sorted(table)}; "
            f"add them to the mapping (map to 0 to ignore them)"
        )
    lookup = np.array([table[int(v)] for v in present], dtype=np.uint8)
    return lookup[inverse].reshape(values.shape)


def validate_scribbles(
    scribbles: np.ndarray, image_shape: Sequence[int], source: str = "scribbles"
) -> np.ndarray:
    """Check a scribble image against the convention and the image it annotates.

    Parameters
    ----------
    scribbles : ndarray
        2-D label image (integers, or floats holding whole numbers). Singleton axes, as TIFF readers
        sometimes add, are squeezed away.
    image_shape : sequence of int
        ``(H, W)`` of the image the scribbles belong to.
    source : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    ndarray of uint8, shape ``(H, W)``, values in {0, 1, 2, 3}.

    Raises
    ------
    ValueError
        RGB(A) input, non-2-D input, non-whole floats, a shape mismatch, negative values or values
        above 3; each message names ``source``.
    """
    array = np.asarray(scribbles)
    # (1, H, W) with W of 3 or 4 is a squeezable label image, not colour
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] != 1:
        raise ValueError(
            f"{source}: looks like an RGB(A) image {array.shape}; scribbles must be a 2-D label "
            f"image. Convert a paint image with `impartial scribbles --from-rgb` "
            f"(or scribbles_from_rgb)"
        )
    if array.ndim > 2:
        # TIFF readers may return (1, H, W) or (H, W, 1)
        array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"{source}: must be a 2-D label image, got shape {np.shape(scribbles)}")
    expected = tuple(int(s) for s in image_shape)
    if len(expected) != 2:
        raise ValueError(f"image_shape must be (H, W), got {tuple(image_shape)}")
    if array.shape != expected:
        raise ValueError(
            f"{source}: shape {array.shape} does not match the image shape {expected}"
        )
    values = _as_integer_array(array, source)
    if values.size and values.min() < 0:
        raise ValueError(f"{source}: negative values (min {int(values.min())}) are not allowed")
    if values.size and values.max() > CYTOPLASM:
        present = [int(v) for v in np.unique(values) if v > CYTOPLASM]
        raise ValueError(
            f"{source}: values {present[:10]} are not scribble values "
            f"(0 unannotated, 1 background, 2 nucleus, 3 cytoplasm); map them to these values "
            f"(impartial --remap, or the module's scribble value settings)"
        )
    return values.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# RGB paint images
# ----------------------------------------------------------------------------------------------
def _rgb_to_255(rgb: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Split an RGB(A) image into float RGB on a 0..255 scale and an opacity mask (or None)."""
    if np.issubdtype(rgb.dtype, np.integer) or rgb.dtype == bool:
        # uint8 stays; wider integers (16-bit exports, 12-bit cameras stored in uint16) are scaled
        # by the bit depth their largest value needs
        peak = int(rgb.max()) if rgb.size else 0
        bits = max(8, int(np.ceil(np.log2(peak + 1))))
        scale = 255.0 / (2 ** bits - 1)
        full = 255.0
        data = rgb.astype(np.float64) * scale
    elif np.issubdtype(rgb.dtype, np.floating):
        # floats in [0, 1] are the usual convention (a little above 1 is rounding, or an interpolated
        # brush edge); clearly larger floats are taken as 0..255
        finite_max = float(np.nanmax(rgb)) if rgb.size else 0.0
        data = rgb.astype(np.float64) * (255.0 if finite_max <= 1.5 else 1.0)
        full = 255.0
    else:
        raise ValueError(f"rgb: unsupported dtype {rgb.dtype}")
    colour = data[..., :3]
    opaque = None
    if rgb.shape[-1] == 4:
        # transparent (alpha below half) pixels carry no paint
        opaque = data[..., 3] >= full / 2
    return colour, opaque


def scribbles_from_rgb(
    rgb: np.ndarray,
    colours: Optional[Dict[Tuple[int, int, int], int]] = None,
    tolerance: float = 60.0,
    source: str = "rgb",
) -> np.ndarray:
    """Turn a paint image (one colour per class) into a scribble label image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3) or (H, W, 4)
        Paint image, uint8, uint16 or float (floats in [0, 1], or 0..255 when larger than 1).
        With an alpha channel, pixels less than half opaque are unannotated.
    colours : dict (r, g, b) -> scribble value, optional
        Colours on a 0..255 scale. Default :data:`DEFAULT_COLOURS`: blue (0, 0, 255) = background,
        red (255, 0, 0) = nucleus, green (0, 255, 0) = cytoplasm.
    tolerance : float
        Largest per-channel difference (0..255 scale) between a pixel and a colour for the pixel to
        take that colour's class; it absorbs anti-aliased brush edges and lossy saving.

    Returns
    -------
    ndarray of uint8, shape (H, W). Pixels matching no colour (black, white, image content) are 0;
    a pixel within tolerance of several colours takes the nearest one.
    """
    if colours is None:
        colours = DEFAULT_COLOURS
    array = np.asarray(rgb)
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # an ImageJ RGB composite is saved channel-first
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"{source}: expected an (H, W, 3) or (H, W, 4) RGB(A) image, got shape {array.shape}")
    if not colours:
        raise ValueError("colours: empty colour map")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    keys = []
    classes = []
    for colour, value in colours.items():
        if len(colour) != 3 or any(not 0 <= c <= 255 for c in colour):
            raise ValueError(f"colours: {colour!r} is not an (r, g, b) triple in 0..255")
        if value not in SCRIBBLE_VALUES:
            raise ValueError(f"colours: class {value!r} of {colour!r} is not a scribble value")
        keys.append(colour)
        classes.append(value)
    palette = np.asarray(keys, dtype=np.float64)  # (K, 3)
    lookup = np.asarray(classes, dtype=np.uint8)
    colour, opaque = _rgb_to_255(array)
    # Chebyshev distance of every pixel to every palette colour: (H, W, K)
    distance = np.max(np.abs(colour[..., None, :] - palette), axis=-1)
    nearest = np.argmin(distance, axis=-1)
    within = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0] <= tolerance
    if opaque is not None:
        within &= opaque
    return np.where(within, lookup[nearest], UNANNOTATED).astype(np.uint8)


def scribbles_to_rgb(
    scribbles: np.ndarray, colours: Optional[Dict[Tuple[int, int, int], int]] = None
) -> np.ndarray:
    """Paint a scribble image with one colour per class (the inverse of :func:`scribbles_from_rgb`).

    Unannotated pixels are black. Useful for display and for round-trip tests.
    """
    if colours is None:
        colours = DEFAULT_COLOURS
    values = validate_scribbles(scribbles, np.shape(scribbles))
    table = np.zeros((len(SCRIBBLE_VALUES), 3), dtype=np.uint8)
    for colour, value in colours.items():
        table[value] = colour
    return table[values]


# ----------------------------------------------------------------------------------------------
# ImageJ / Fiji ROI files
# ----------------------------------------------------------------------------------------------
# ROI type codes (byte 6 of the header)
_ROI_TYPES = {
    0: "polygon",
    1: "rect",
    2: "oval",
    3: "line",
    4: "freeline",
    5: "polyline",
    6: "noroi",
    7: "freehand",
    8: "traced",
    9: "angle",
    10: "point",
}
_AREA_TYPES = ("polygon", "rect", "oval", "freehand", "traced", "composite")
_LINE_TYPES = ("line", "freeline", "polyline", "angle")
_COORDINATE_TYPES = ("polygon", "freehand", "traced", "polyline", "freeline", "angle", "point")
_SUB_PIXEL_RESOLUTION = 128  # option bit
_HEADER_SIZE = 64


@dataclass(eq=False)
class Roi:
    """One ImageJ region of interest in pixel units.

    Attributes
    ----------
    name : str
        The ROI's own name, or its file name without ``.roi`` when it has none.
    type : str
        ``polygon``, ``rect``, ``oval``, ``traced``, ``freehand``, ``composite`` (areas),
        ``line``, ``polyline``, ``freeline``, ``angle`` (lines) or ``point``.
    coordinates : ndarray, shape (N, 2)
        Vertices as (x, y) = (column, row), image coordinates where pixel (x, y) spans
        [x, x+1) x [y, y+1) (traced outlines run along pixel corners). For composite ROIs, the
        vertices of all sub-paths one after another.
    closed : bool
        True for an area (filled when rasterised), False for lines and points.
    subpaths : list of ndarray
        Closed outlines of a composite ROI (filled with the even-odd rule); one entry otherwise.
    stroke_width : float
        The line width ImageJ stores with the ROI (0 or 1 for a plain 1-px line).
    """

    name: str
    type: str
    coordinates: np.ndarray
    closed: bool
    subpaths: List[np.ndarray] = field(default_factory=list)
    stroke_width: float = 1.0

    @property
    def is_line(self) -> bool:
        """True for line-like ROIs (line, polyline, freeline, angle)."""
        return self.type in _LINE_TYPES


def _ellipse_vertices(left: float, top: float, width: float, height: float) -> np.ndarray:
    """Polygon approximating the ellipse inscribed in a box (enough vertices for pixel accuracy)."""
    n = int(max(16, np.ceil(2 * np.pi * max(width, height))))
    angle = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    x = left + width / 2.0 * (1.0 + np.cos(angle))
    y = top + height / 2.0 * (1.0 + np.sin(angle))
    return np.stack([x, y], axis=1)


def _bezier_points(start: Tuple[float, float], args: np.ndarray, pieces: int = 16) -> List[Tuple[float, float]]:
    """Points along a quadratic (4 args) or cubic (6 args) Bezier curve from ``start``, its start excluded."""
    controls = np.vstack([np.asarray(start, np.float64)[None], args.reshape(-1, 2)])  # (degree + 1, 2)
    degree = len(controls) - 1
    t = np.linspace(0.0, 1.0, pieces + 1)[1:, None]
    # Bernstein form: sum over control points of C(n, k) t^k (1 - t)^(n - k) P_k
    weights = np.hstack([math.comb(degree, k) * t ** k * (1 - t) ** (degree - k) for k in range(degree + 1)])
    return [tuple(point) for point in weights @ controls]


def _composite_paths(data: bytes, n_floats: int, where: str) -> List[np.ndarray]:
    """Decode the path of a composite (shape) ROI into closed polygons.

    The path is a float list of segments: 0 moveTo x y, 1 lineTo x y, 2 quadTo x1 y1 x2 y2,
    3 cubicTo x1 y1 x2 y2 x3 y3, 4 close; coordinates are absolute. Curves (rounded rectangles,
    shapes combined with ovals) are flattened into short straight pieces.
    """
    end = _HEADER_SIZE + 4 * n_floats
    if len(data) < end:
        raise ValueError(f"{where}: composite ROI truncated ({len(data)} bytes, needs {end})")
    values = np.frombuffer(data[_HEADER_SIZE:end], dtype=">f4").astype(np.float64)
    n_args = {0: 2, 1: 2, 2: 4, 3: 6, 4: 0}
    paths: List[np.ndarray] = []
    current: List[Tuple[float, float]] = []
    i = 0
    # a loop over path segments (tens to hundreds), not over pixels
    while i < len(values):
        code = int(values[i])
        if code not in n_args:
            raise ValueError(f"{where}: unknown composite ROI segment type {values[i]!r}")
        args = values[i + 1 : i + 1 + n_args[code]]
        if len(args) < n_args[code]:
            raise ValueError(f"{where}: composite ROI path ends inside a segment")
        if code == 0:
            if len(current) >= 3:
                paths.append(np.asarray(current))
            current = [(args[0], args[1])]
        elif code == 1:
            current.append((args[0], args[1]))
        elif code in (2, 3):
            current.extend(_bezier_points(current[-1] if current else (args[0], args[1]), args))
        else:  # close
            if len(current) >= 3:
                paths.append(np.asarray(current))
            current = []
        i += 1 + n_args[code]
    if len(current) >= 3:
        paths.append(np.asarray(current))
    return paths


def _decode_roi(data: bytes, default_name: str, where: str) -> Roi:
    """Decode one ImageJ ``.roi`` record (the published big-endian binary layout)."""
    if len(data) < _HEADER_SIZE or data[:4] != b"Iout":
        raise ValueError(f"{where}: not an ImageJ ROI (missing 'Iout' header)")
    roi = _decode_roi_shape(data, default_name, where)
    roi.stroke_width = float(max(1, struct.unpack(">h", data[34:36])[0]))
    return roi


def _decode_roi_shape(data: bytes, default_name: str, where: str) -> Roi:
    version = struct.unpack(">h", data[4:6])[0]
    type_code = data[6]
    top, left, bottom, right = struct.unpack(">4h", data[8:16])
    n = struct.unpack(">H", data[16:18])[0]
    shape_size = struct.unpack(">i", data[36:40])[0]
    options = struct.unpack(">h", data[50:52])[0]
    header2 = struct.unpack(">i", data[60:64])[0]

    name = default_name
    if 0 < header2 and header2 + 24 <= len(data):
        name_offset, name_length = struct.unpack(">2i", data[header2 + 16 : header2 + 24])
        if name_length > 0 and 0 < name_offset and name_offset + 2 * name_length <= len(data):
            name = data[name_offset : name_offset + 2 * name_length].decode("utf-16-be")

    if shape_size > 0:
        # composite ROI (type rect with a path): sub-paths, even-odd filled
        paths = _composite_paths(data, shape_size, where)
        if not paths:
            raise ValueError(f"{where}: composite ROI without any closed outline")
        return Roi(name, "composite", np.concatenate(paths), True, paths)

    if type_code not in _ROI_TYPES or _ROI_TYPES[type_code] == "noroi":
        raise ValueError(f"{where}: unsupported ROI type code {type_code}")
    kind = _ROI_TYPES[type_code]
    sub_pixel = version >= 222 and bool(options & _SUB_PIXEL_RESOLUTION)

    if kind in ("rect", "oval"):
        if sub_pixel:
            x, y, width, height = struct.unpack(">4f", data[18:34])
        else:
            x, y, width, height = left, top, right - left, bottom - top
        if kind == "rect":
            # rounded corners (arc size) are ignored: a rectangle is filled
            coords = np.array(
                [[x, y], [x + width, y], [x + width, y + height], [x, y + height]], dtype=np.float64
            )
        else:
            coords = _ellipse_vertices(x, y, width, height)
        return Roi(name, kind, coords, True, [coords])

    if kind == "line":
        x1, y1, x2, y2 = struct.unpack(">4f", data[18:34])
        coords = np.array([[x1, y1], [x2, y2]], dtype=np.float64)
        return Roi(name, kind, coords, False, [coords])

    # polygon-like types store n int16 x offsets, then n int16 y offsets (relative to left/top),
    # then, with sub-pixel resolution, n float32 x and n float32 y in absolute coordinates
    if n == 0 and len(data) >= 22:
        # very large outlines store their vertex count as an int32 at byte 18
        n = struct.unpack(">i", data[18:22])[0]
    if n <= 0:
        raise ValueError(f"{where}: {kind} ROI without coordinates")
    int_end = _HEADER_SIZE + 4 * n
    if len(data) < int_end:
        raise ValueError(f"{where}: truncated ({len(data)} bytes for {n} coordinates)")
    if sub_pixel and len(data) >= int_end + 8 * n:
        xs = np.frombuffer(data[int_end : int_end + 4 * n], dtype=">f4")
        ys = np.frombuffer(data[int_end + 4 * n : int_end + 8 * n], dtype=">f4")
    else:
        xs = np.frombuffer(data[_HEADER_SIZE : _HEADER_SIZE + 2 * n], dtype=">i2") + left
        ys = np.frombuffer(data[_HEADER_SIZE + 2 * n : int_end], dtype=">i2") + top
    coords = np.stack([xs, ys], axis=1).astype(np.float64)
    return Roi(name, kind, coords, kind in _AREA_TYPES, [coords])


def read_imagej_rois(path: PathLike) -> List[Roi]:
    """Read an ImageJ/Fiji ``.roi`` file or ROI Manager ``.zip`` into a list of :class:`Roi`.

    Every ROI of a zip is returned, in the zip's order (the first one included). ROI names are not
    assumed unique: the ROI Manager saves two ROIs of the same name as ``042.roi`` and
    ``042-1.roi``, and readers keyed by name lose one of them.

    Raises
    ------
    ValueError
        Unknown extension, unreadable zip, or a malformed ROI; the message names the file and entry.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".roi":
        return [_decode_roi(path.read_bytes(), path.stem, str(path))]
    if suffix != ".zip":
        raise ValueError(f"{path}: expected an ImageJ .roi file or a ROI Manager .zip")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a valid zip file ({error})") from None
    rois = []
    with archive:
        for entry in archive.infolist():
            if entry.is_dir() or not entry.filename.lower().endswith(".roi"):
                continue
            stem = Path(entry.filename).name[: -len(".roi")]
            rois.append(
                _decode_roi(archive.read(entry), stem, f"{path}:{entry.filename}")
            )
    if not rois:
        raise ValueError(f"{path}: the zip holds no .roi files")
    return rois


def rasterize_rois(rois: Sequence[Roi], shape: Tuple[int, int]) -> np.ndarray:
    """Draw ROIs into an instance label image.

    ROI ``i`` (0-based, in list order) gets label ``i + 1``: areas are filled (a pixel is inside
    when its centre is, as in ImageJ), lines are drawn as 1-px paths and points as single pixels.
    Where ROIs overlap, the later one wins. Parts outside ``shape`` are clipped.

    Returns
    -------
    ndarray of int32, shape ``shape``.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {tuple(shape)}")
    height, width = int(shape[0]), int(shape[1])
    labels = np.zeros((height, width), dtype=np.int32)
    # loop over ROIs and their segments; the drawing itself is vectorised by skimage.draw
    for number, roi in enumerate(rois, start=1):
        if roi.closed:
            inside = np.zeros((height, width), dtype=bool)
            for path in roi.subpaths or [roi.coordinates]:
                # pixel centres sit at +0.5 in ImageJ coordinates; skimage tests integer points
                rr, cc = draw_polygon(path[:, 1] - 0.5, path[:, 0] - 0.5, shape=(height, width))
                part = np.zeros_like(inside)
                part[rr, cc] = True
                inside ^= part  # even-odd rule for composite ROIs with holes
            labels[inside] = number
            continue
        points = np.floor(roi.coordinates).astype(np.int64)  # the pixel holding each vertex
        rows, cols = [points[:, 1]], [points[:, 0]]
        for (c0, r0), (c1, r1) in zip(points[:-1], points[1:]):
            rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
            rows.append(rr)
            cols.append(cc)
        rr, cc = np.concatenate(rows), np.concatenate(cols)
        keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        labels[rr[keep], cc[keep]] = number
    return labels


def scribbles_from_rois(rois: Sequence[Roi], shape: Tuple[int, int], task: str = "cells") -> np.ndarray:
    """Scribbles from Fiji ROIs: traced areas as whole objects, drawn lines and points as strokes.

    Areas (polygons, ovals, freehand, composites) outline whole objects and become scribbles as
    in :func:`scribbles_from_instances` (skeleton, inner contour, background ring). A line, polyline,
    freeline or point is already a stroke inside an object: it is painted at its stroke width with
    the task's foreground value and gets no background ring (a ring around a line drawn inside a
    cell would call the cell around it background). Strokes are painted over the area scribbles.
    """
    areas = [roi for roi in rois if roi.closed]
    scribbles = (scribbles_from_instances(rasterize_rois(areas, shape), task=task) if areas
                 else np.zeros(tuple(shape), np.uint8))
    for width in sorted({roi.stroke_width for roi in rois if not roi.closed}):
        stroke = rasterize_rois([roi for roi in rois if not roi.closed and roi.stroke_width == width], shape) > 0
        radius = (width - 1) / 2
        if radius >= 0.5:
            stroke = ndi.distance_transform_edt(~stroke) <= radius
        scribbles[stroke] = _foreground_value(task)
    return scribbles


def rois_beyond(rois: Sequence[Roi], shape: Tuple[int, int]) -> Tuple[List[str], List[str]]:
    """Names of the ROIs wholly outside an image of ``shape`` (H, W), and of those crossing its edge.

    Rasterising keeps only the part of a ROI inside the image, which is right for a cell cut by
    the border but means a ROI set drawn on another (larger) image silently loses objects.
    """
    height, width = shape
    outside, crossing = [], []
    for roi in rois:
        if not len(roi.coordinates):
            continue
        x, y = roi.coordinates[:, 0], roi.coordinates[:, 1]
        if x.max() < 0 or y.max() < 0 or x.min() >= width or y.min() >= height:
            outside.append(roi.name)
        elif x.min() < 0 or y.min() < 0 or x.max() > width or y.max() > height:
            crossing.append(roi.name)
    return outside, crossing


def _foreground_value(task: str) -> int:
    """What inside an object is, as a scribble: a nucleus (2), or cytoplasm (3) for whole cells."""
    return CYTOPLASM if task == "cells" else NUCLEUS


# ----------------------------------------------------------------------------------------------
# scribbles from instance masks
# ----------------------------------------------------------------------------------------------
def _check_instances(instance_labels: np.ndarray, source: str = "instance_labels") -> np.ndarray:
    """Return a 2-D non-negative int64 instance label image or raise a ValueError naming it."""
    labels = np.asarray(instance_labels)
    if labels.ndim != 2:
        raise ValueError(f"{source}: must be a 2-D label image, got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    labels = _as_integer_array(labels, source)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{source}: negative labels are not allowed")
    if labels.size and labels.max() >= labels.size:
        # ids as large as 4e9 (uint32 exports) would size per-id tables: number them 1..n first
        # without a 0 in the image, the smallest id is an object too: numbering starts at 1
        labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape) + int(labels.min() > 0)
    return labels


def _separate_touching(labels: np.ndarray) -> np.ndarray:
    """Remove a 1-px seam between touching objects so that they do not merge in a binary mask.

    A pixel is removed when one of its 8 neighbours has a larger label, so only one side of each
    shared border is eroded and no two different labels remain 8-adjacent.
    """
    largest_neighbour = ndi.maximum_filter(labels, size=3, mode="constant", cval=0)
    return np.where(largest_neighbour > labels, 0, labels)


def _inner_distance(separated: np.ndarray) -> np.ndarray:
    """Euclidean distance of object pixels to the nearest pixel outside their (separated) object.

    The image edge counts as a border (a 1-px zero frame is added), because traced outlines of
    objects cut by the image edge run along it.
    """
    padded = np.pad(separated > 0, 1)
    return ndi.distance_transform_edt(padded)[1:-1, 1:-1]


def _skeleton_labels(labels: np.ndarray, separated: Optional[np.ndarray] = None) -> np.ndarray:
    """Skeleton of every object, each skeleton pixel carrying its object's label.

    Every object gets at least one pixel: objects the 1-px seam or skeletonisation erased (thin or
    tiny objects) get their most interior pixel instead.
    """
    if separated is None:
        separated = _separate_touching(labels)
    skeleton = np.where(skeletonize(separated > 0), labels, 0)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return skeleton
    has_skeleton = np.zeros(int(ids.max()) + 1, dtype=bool)
    has_skeleton[np.unique(skeleton)] = True
    lost = ids[~has_skeleton[ids]]
    if lost.size:
        # most interior pixel: distance within the separated object, ties broken by the distance
        # in the unseparated mask (covers objects the seam removed completely)
        score = _inner_distance(separated) + 1e-3 * _inner_distance(labels)
        positions = ndi.maximum_position(score, labels, lost)
        rows, cols = np.asarray(positions, dtype=np.int64).reshape(-1, 2).T
        skeleton[rows, cols] = lost
    return skeleton


def scribbles_from_instances(
    instance_labels: np.ndarray,
    task: str = "cells",
    inner_margin: int = 3,
    outer_ring: int = 2,
    foreground_value: Optional[int] = None,
    source: str = "instance_labels",
) -> np.ndarray:
    """Turn whole annotated objects (e.g. rasterised Fiji traces) into scribbles.

    As the Fiji ImPartial tool does: foreground = the skeleton of each object plus its contour about
    ``inner_margin`` px inside its border; background = the ``outer_ring`` px ring just outside the
    objects, never on any object. Unlike dense masks, this leaves the uncertain border unannotated.

    Parameters
    ----------
    instance_labels : ndarray of int, (H, W)
        0 = not an annotated object; each object its own positive label (touching allowed).
    task : {"cells", "nuclei"}
        What the traces outline; selects the default ``foreground_value``.
    inner_margin : int
        Distance (px) of the inner contour from the object border; 0 disables the contour.
    outer_ring : int
        Width (px) of the background ring; 0 disables background scribbles.
    foreground_value : int, optional
        Scribble value of foreground pixels. Default NUCLEUS for ``task="nuclei"`` and CYTOPLASM for
        ``task="cells"``: a whole-cell trace says "inside a cell", and the cell task's foreground
        is {2, 3}, so either value reads as "inside a cell" there. Caution: the nuclei task reads 3
        as "not nucleus", and a cell's skeleton often crosses its nucleus, so cell-trace scribbles
        should train the cell task only (or be combined with nucleus scribbles that override them).

    Returns
    -------
    ndarray of uint8, (H, W).
    """
    if task not in ("cells", "nuclei"):
        raise ValueError(f"task must be 'cells' or 'nuclei', got {task!r}")
    if foreground_value is None:
        foreground_value = _foreground_value(task)
    if foreground_value not in (NUCLEUS, CYTOPLASM):
        raise ValueError(
            f"foreground_value must be {NUCLEUS} or {CYTOPLASM}, got {foreground_value}"
        )
    if inner_margin < 0 or outer_ring < 0:
        raise ValueError(
            f"inner_margin and outer_ring must be >= 0, got {inner_margin} and {outer_ring}"
        )
    labels = _check_instances(instance_labels, source)
    scribbles = np.zeros(labels.shape, dtype=np.uint8)
    objects = labels > 0
    if not objects.any():
        # nothing annotated: no scribbles (a ring around nothing would be meaningless)
        return scribbles

    separated = _separate_touching(labels)
    foreground = _skeleton_labels(labels, separated) > 0
    if inner_margin > 0:
        distance = _inner_distance(separated)
        foreground |= (distance >= inner_margin) & (distance < inner_margin + 1)

    if outer_ring > 0:
        outside_distance = ndi.distance_transform_edt(~objects)
        scribbles[(~objects) & (outside_distance <= outer_ring)] = BACKGROUND
    scribbles[foreground] = foreground_value
    return scribbles


def simulate_scribbles(
    instance_labels_list: Sequence[np.ndarray],
    budget: int,
    seed: int,
    box: int = 32,
    ring: int = 4,
    foreground_value: int = NUCLEUS,
    sources: Optional[Sequence[str]] = None,
) -> List[np.ndarray]:
    """Simulate scribbles from full instance masks as the ImPartial paper did (for benchmarks).

    The budget (number of scribbled objects) is split evenly over the images, the first
    ``budget % n_images`` images taking one more. Per image, repeatedly: pick a random unannotated
    object, open a ``box`` x ``box`` window around its centre; every object touching the window gets
    its skeleton as foreground and costs one unit; background is the window's 1-px outline plus a
    ``ring``-px ring around those objects, minus all object pixels. This stops once the image's
    budget is spent or every object is annotated; the last window may overshoot the budget (the
    paper's own n100 scribbles hold 102 objects).

    Parameters
    ----------
    instance_labels_list : sequence of (H, W) int arrays
    budget : int
        Total number of objects to scribble over all images.
    seed : int
        Seed of ``numpy.random.default_rng``: the result is deterministic given the seed.
    box, ring : int
        Window side and background ring width in pixels.
    foreground_value : int
        Scribble value of object skeletons (NUCLEUS for nuclei masks).
    sources : sequence of str, optional
        The inputs' names (file names) for error messages.

    Returns
    -------
    list of uint8 (H, W) scribble images, one per input image.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if box < 1 or ring < 0:
        raise ValueError(f"box must be >= 1 and ring >= 0, got box={box}, ring={ring}")
    if foreground_value not in (NUCLEUS, CYTOPLASM):
        raise ValueError(
            f"foreground_value must be {NUCLEUS} or {CYTOPLASM}, got {foreground_value}"
        )
    n_images = len(instance_labels_list)
    if n_images == 0:
        return []
    rng = np.random.default_rng(seed)
    per_image = np.full(n_images, budget // n_images, dtype=np.int64)
    per_image[: budget % n_images] += 1

    results = []
    for index, raw in enumerate(instance_labels_list):
        labels = _check_instances(raw, sources[index] if sources else f"instance_labels_list[{index}]")
        height, width = labels.shape
        scribbles = np.zeros(labels.shape, dtype=np.uint8)
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if ids.size == 0 or per_image[index] == 0:
            results.append(scribbles)
            continue
        skeleton = _skeleton_labels(labels)
        slices = ndi.find_objects(labels)  # slices[k - 1] = bounding box of label k
        centres = np.asarray(ndi.center_of_mass(np.ones(labels.shape), labels, ids))
        centres = centres.reshape(-1, 2)
        position = {int(k): i for i, k in enumerate(ids)}
        annotated = np.zeros(ids.size, dtype=bool)
        background = np.zeros(labels.shape, dtype=bool)
        spent = 0
        # a loop over picked objects (tens per image); each step works on a local window
        while spent < per_image[index] and not annotated.all():
            pick = int(rng.choice(np.flatnonzero(~annotated)))
            cy, cx = np.round(centres[pick]).astype(np.int64)
            r0, r1 = max(cy - box // 2, 0), min(cy - box // 2 + box, height)
            c0, c1 = max(cx - box // 2, 0), min(cx - box // 2 + box, width)
            touched = np.unique(labels[r0:r1, c0:c1])
            touched = touched[touched > 0]
            # the picked object always belongs (its centroid may lie outside it if it is concave)
            touched = np.union1d(touched, [ids[pick]])
            new = np.array([position[int(k)] for k in touched])
            spent += int(np.count_nonzero(~annotated[new]))
            annotated[new] = True

            # local window covering the box and the touched objects, grown by the ring
            boxes = [slices[int(k) - 1] for k in touched]
            wr0 = max(min([r0] + [s[0].start for s in boxes]) - ring - 1, 0)
            wr1 = min(max([r1] + [s[0].stop for s in boxes]) + ring + 1, height)
            wc0 = max(min([c0] + [s[1].start for s in boxes]) - ring - 1, 0)
            wc1 = min(max([c1] + [s[1].stop for s in boxes]) + ring + 1, width)
            local = labels[wr0:wr1, wc0:wc1]
            chosen = np.isin(local, touched)
            if ring > 0:
                near = ndi.distance_transform_edt(~chosen) <= ring
                background[wr0:wr1, wc0:wc1] |= near
            outline = np.zeros((r1 - r0, c1 - c0), dtype=bool)
            outline[[0, -1], :] = True
            outline[:, [0, -1]] = True
            background[r0:r1, c0:c1] |= outline
        scribbles[background & (labels == 0)] = BACKGROUND
        chosen_ids = ids[annotated]
        scribbles[np.isin(skeleton, chosen_ids) & (skeleton > 0)] = foreground_value
        results.append(scribbles)
    return results


def count_scribbled_objects(
    scribbles: np.ndarray,
    instance_labels: np.ndarray,
    foreground_values: Sequence[int] = (NUCLEUS, CYTOPLASM),
) -> int:
    """Number of ground-truth objects touched by at least one foreground scribble pixel."""
    scribbles = np.asarray(scribbles)
    labels = _check_instances(instance_labels)
    if scribbles.shape != labels.shape:
        raise ValueError(
            f"scribbles shape {scribbles.shape} does not match instance_labels shape {labels.shape}"
        )
    touched = np.unique(labels[np.isin(scribbles, foreground_values)])
    return int(np.count_nonzero(touched))
