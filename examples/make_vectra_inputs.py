#!/usr/bin/env python
"""Derive CellProfiler inputs for the Vectra example from the bundled originals.

    python examples/make_vectra_inputs.py            # writes into examples/data/vectra_2ch/
    python examples/make_vectra_inputs.py --preview DIR   # also PNG previews of the scribbles

Writes, for each ``imageK.tif`` (2 x 400 x 400 float32, channel 0 = PanCK, channel 1 = DAPI):

- ``imageK_PanCK.tif`` and ``imageK_DAPI.tif``: the two channels as separate single-plane uint16
  TIFFs holding round(raw intensity x 1000) (raw values reach 50, so nothing clips).
  CellProfiler's NamesAndTypes loads one grey image per name; picking a plane of a multi-plane
  TIFF depends on the reader (Bio-Formats in CellProfiler 4.2, imageio in CellProfiler 5), so
  separate files are the robust choice. Integer files because the two lines load float TIFFs with
  values above 1 differently (4.2 keeps the raw values, which then break 8-bit SaveImages of
  overlays), while both scale uint16 by 1/65535.
- ``imageK_scribbles.tif``: a uint8 scribble image (0 not annotated, 1 background, 2 nucleus,
  3 cytoplasm) made from the person's whole-cell traces ``imageK_cells.roi.zip``, the way a user
  turns traces into scribbles (see examples/data/README.md for the exact recipe). image3 has no
  traces: its scribble image is all 0 (it still takes part in training, unannotated).

Deterministic: the same originals always give the same files.
"""
import argparse
import pathlib
import sys

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.filters import gaussian, threshold_otsu
from skimage.morphology import disk, skeletonize

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from impartial_core.scribbles import BACKGROUND, CYTOPLASM, NUCLEUS, SCRIBBLE_COLOURS  # noqa: E402
from impartial_core.scribbles.imagej_rois import rasterize_rois, read_imagej_rois  # noqa: E402
from impartial_core.scribbles.objects import inner_distance, separate_touching  # noqa: E402

DATA = REPO / "examples" / "data" / "vectra_2ch"
CHANNELS = ("PanCK", "DAPI")
SCALE = 1000.0  # uint16 channel files hold round(raw x SCALE)


def largest_component(mask):
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def scribbles_from_traces(image, cells):
    """(H, W) uint8 scribbles from a (2, H, W) image and the traced cells' instance labels."""
    panck = gaussian(image[0].astype(np.float64), 1.0, preserve_range=True)
    dapi = gaussian(image[1].astype(np.float64), 1.0, preserve_range=True)
    t_dapi = threshold_otsu(dapi)
    scribbles = np.zeros(cells.shape, np.uint8)

    # Inside each traced cell: its nucleus = the largest blob (holes filled) of the smoothed DAPI
    # channel above the lower of two Otsu thresholds, the cell's own and the whole image's (tumour
    # nuclei are dimmer than stromal ones, so the image's threshold alone misses them). Kept when
    # it is at least 15 px and either DAPI-bright by the image's threshold or 1.3 x brighter than
    # the rest of the cell.
    nuclei = np.zeros(cells.shape, bool)
    for sl, number in zip(ndi.find_objects(cells), range(1, cells.max() + 1)):
        if sl is None:
            continue
        cell = cells[sl] == number
        inner = ndi.binary_erosion(cell, iterations=1)
        values = dapi[sl][inner]
        if values.size < 40 or values.min() == values.max():
            continue
        threshold = min(threshold_otsu(values), t_dapi)
        bright = ndi.binary_fill_holes(largest_component(inner & (dapi[sl] > threshold))) & inner
        if bright.sum() < 15:
            continue
        rest = cell & ~bright
        mean_bright = dapi[sl][bright].mean()
        if mean_bright > t_dapi or (rest.any() and mean_bright > 1.3 * dapi[sl][rest].mean()):
            nuclei[sl] |= bright
    # Scribbles stay off the uncertain borders: the nucleus interior (1 px in), and the cytoplasm
    # = cell interior (>= 2 px from the traced outline) at least 2 px away from the nucleus and from
    # any DAPI-bright pixel.
    nucleus_scribble = ndi.binary_erosion(nuclei, iterations=1)
    inside = inner_distance(separate_touching(cells)) >= 2
    cytoplasm = inside & ~ndi.binary_dilation(nuclei | (dapi > t_dapi), disk(2))
    # Background: dark at the scale of cells (PanCK smoothed over ~4 px below half its Otsu
    # threshold, so the PanCK-free nuclei inside tumour nests do not count) and in DAPI, at least
    # 4 px from any traced cell and 3 px from any DAPI-bright pixel; drawn as its skeleton (thin
    # strokes, like a user's) plus a 1-px ring at 3 px around the traced cells wherever that ring
    # falls on the dark area.
    panck_coarse = gaussian(image[0].astype(np.float64), 4.0, preserve_range=True)
    dark = (panck_coarse < 0.5 * threshold_otsu(panck_coarse)) & (dapi < t_dapi)
    dark = ndi.binary_opening(dark, disk(2))
    far_from_nuclei = ndi.distance_transform_edt(dapi < t_dapi) >= 3
    far_from_cells = ndi.distance_transform_edt(cells == 0) >= 4
    safe_dark = ndi.binary_erosion(dark, disk(3)) & far_from_cells & far_from_nuclei
    strokes = skeletonize(safe_dark)
    ring_distance = ndi.distance_transform_edt(cells == 0)
    ring = (ring_distance >= 3) & (ring_distance < 4) & ndi.binary_erosion(dark, disk(1)) & far_from_nuclei
    scribbles[strokes | ring] = BACKGROUND
    scribbles[cytoplasm] = CYTOPLASM
    scribbles[nucleus_scribble] = NUCLEUS
    return scribbles


def preview(image, scribbles, path):
    import imageio

    def norm(x):
        lo, hi = np.percentile(x, (1, 99.5))
        return np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)

    grey = 0.5 * (norm(image[0]) + norm(image[1]))  # PanCK and DAPI together, in grey
    rgb = np.dstack([grey, grey, grey])
    for value, colour in SCRIBBLE_COLOURS.items():
        rgb[scribbles == value] = np.asarray(colour) / 255.0
    imageio.imwrite(str(path), (np.kron(rgb, np.ones((2, 2, 1))) * 255).astype(np.uint8))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="the vectra_2ch folder (default: %(default)s)")
    parser.add_argument("--preview", metavar="DIR", help="also write PNG previews of the scribbles to DIR")
    args = parser.parse_args(argv)
    data = pathlib.Path(args.data)
    for path in sorted(data.glob("image[0-9].tif")):
        stem = path.stem
        image = np.asarray(tifffile.imread(str(path)), np.float32)
        assert image.ndim == 3 and image.shape[0] == 2, (path, image.shape)
        for c, name in enumerate(CHANNELS):
            scaled = np.round(image[c].astype(np.float64) * SCALE)
            assert scaled.max() <= 65535, (path, name, float(image[c].max()))
            tifffile.imwrite(str(data / ("%s_%s.tif" % (stem, name))), scaled.astype(np.uint16))
        rois = data / ("%s_cells.roi.zip" % stem)
        if rois.is_file():
            cells = rasterize_rois(read_imagej_rois(rois), image.shape[1:])
            scribbles = scribbles_from_traces(image, cells)
        else:
            cells, scribbles = None, np.zeros(image.shape[1:], np.uint8)
        tifffile.imwrite(str(data / ("%s_scribbles.tif" % stem)), scribbles)
        counts = {v: int((scribbles == v).sum()) for v in (1, 2, 3)}
        print("%s: channels %s; scribbles background %d px, nucleus %d px, cytoplasm %d px%s" % (
            stem, "/".join(CHANNELS), counts[1], counts[2], counts[3],
            " (no traces: all 0)" if cells is None else " from %d traced cells" % len(np.unique(cells[cells > 0]))))
        if args.preview:
            pathlib.Path(args.preview).mkdir(parents=True, exist_ok=True)
            preview(image, scribbles, pathlib.Path(args.preview) / ("%s_scribbles_preview.png" % stem))


if __name__ == "__main__":
    main()
