"""ImageJ / Fiji regions of interest: the binary ``.roi`` format, ROI Manager zips, rasterisation.

The reader follows ImageJ's published big-endian layout (a 64-byte header, then int16 or float32
coordinates, an optional composite path and a second header holding the name). Rasterising fills
areas as ImageJ does (a pixel is inside when its centre is) and draws lines as 1-px paths.
"""
from __future__ import annotations

import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
from skimage.draw import line as draw_line
from skimage.draw import polygon as draw_polygon

PathLike = Union[str, Path]


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

