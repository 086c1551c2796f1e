"""Make the README's figures from the bundled data.

    .venv/bin/python docs/make_figures.py [--model out/example/impartial_model.safetensors]

- docs/results_mibi.png: a MIBI image, its scribbles, ImPartial's nuclei against the ground truth,
  and the uncertainty map (the model of `bash scripts/run_example.sh`, or one trained here for 60 s).
- docs/scribble_routes.png: the ways scribbles get made: a Fiji ROI zip of traced cells, a paint
  image (RGB), and a label image with other values, each next to the scribbles it becomes.
- docs/vectra_cells.png (with ``--vectra-maps MAPS.npz``, the held-out cell probabilities that
  ``experiments/vectra_cells.py --maps DIR`` saves): where ImPartial's Vectra cells lose to
  CellProfiler's, on a window of each held-out image.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for benchmarks.data
from benchmarks.data import data_dir  # noqa: E402
from impartial_core.scribbles import BACKGROUND, NUCLEUS, SCRIBBLE_COLOURS, remap_scribbles  # noqa: E402
from impartial_core.scribbles.imagej_rois import rasterize_rois, read_imagej_rois  # noqa: E402
from impartial_core.scribbles.objects import scribbles_from_instances  # noqa: E402
from impartial_core.scribbles.paint import scribbles_from_rgb, scribbles_to_rgb  # noqa: E402
from impartial_core.scribbles.simulation import simulate_scribbles  # noqa: E402
from impartial_core.config import TrainingConfig, tasks_for  # noqa: E402
from impartial_core.metrics import evaluate_image  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402

DATA = data_dir(needs="vectra_2ch/image1_cells.roi.zip")


def grey(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.8])
    g = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    return np.dstack([g, g, g])


def with_scribbles(image: np.ndarray, scribbles: np.ndarray) -> np.ndarray:
    rgb = grey(image)
    painted = scribbles > 0
    rgb[painted] = scribbles_to_rgb(scribbles)[painted] / 255.0
    return rgb


def save_panels(panels, out: Path, cmap: str, height: float, dpi: int) -> None:
    """One row of titled images (single-channel ones in ``cmap``), written to ``out``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), height))
    for ax, (panel, title) in zip(axes, panels):
        ax.imshow(panel, cmap=cmap if panel.ndim == 2 else None)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    print(f"wrote {out}")


def results_figure(model_path: Path, out: Path) -> None:
    image = tifffile.imread(DATA / "mibi_dsdna" / "image0.tif")
    scribbles = tifffile.imread(DATA / "mibi_dsdna" / "image0_scribbles_n100.tif")
    truth = tifffile.imread(DATA / "mibi_dsdna" / "image0_nuclei_labels.tif")
    if model_path.is_file():
        model = ImPartialModel.load(model_path)
    else:
        images = [tifffile.imread(DATA / "mibi_dsdna" / f"image{i}.tif") for i in (0, 3, 5, 7)]
        scribble_images = [tifffile.imread(DATA / "mibi_dsdna" / f"image{i}_scribbles_n100.tif") for i in (0, 3, 5, 7)]
        model = ImPartialModel.train(images, scribble_images, tasks_for("nuclei", 1), config=TrainingConfig(time_budget_s=60))
    maps = model.predict(image)
    nuclei = model.segment(maps).nuclei
    scores = evaluate_image(maps["nuclei"].foreground_probability, nuclei, truth)
    outlines = grey(image)
    outlines[find_boundaries(truth, mode="inner")] = (0.2, 1.0, 0.2)
    outlines[find_boundaries(nuclei, mode="inner")] = (1.0, 0.9, 0.0)
    panels = [
        (grey(image), "MIBI dsDNA (image 0)"),
        (with_scribbles(image, scribbles), "scribbles (blue background, red nuclei)"),
        (outlines, f"ImPartial (yellow) vs truth (green)\nF1@0.5 {scores['f1_iou50']:.2f}, mDICE {scores['mdice']:.2f}"),
        (maps["nuclei"].uncertainty, "uncertainty: where to scribble next"),
    ]
    save_panels(panels, out, "magma", height=4.4, dpi=80)


def routes_figure(out: Path) -> None:
    vectra = tifffile.imread(DATA / "vectra_2ch" / "image1.tif")
    rois = read_imagej_rois(DATA / "vectra_2ch" / "image1_cells.roi.zip")
    traced = rasterize_rois(rois, vectra.shape[1:])
    from_rois = scribbles_from_instances(traced, task="cells", image=vectra)
    composite = grey(vectra[1]) * 0.6
    composite[..., 0] += 0.4 * grey(vectra[0])[..., 0]
    traced_view = composite.copy()
    traced_view[find_boundaries(traced, mode="inner")] = (1.0, 1.0, 0.0)

    mibi = tifffile.imread(DATA / "mibi_dsdna" / "image0.tif")[100:260, 100:260]
    truth = tifffile.imread(DATA / "mibi_dsdna" / "image0_nuclei_labels.tif")[100:260, 100:260]
    painted = (grey(mibi) * 255).astype(np.uint8)
    strokes = simulate_scribbles([truth], budget=8, seed=1)[0]
    for value in (NUCLEUS, BACKGROUND):
        painted[strokes == value] = SCRIBBLE_COLOURS[value]
    from_rgb = scribbles_from_rgb(painted)
    napari_like = np.select([from_rgb == 1, from_rgb == 2], [7, 9], 0).astype(np.uint8)
    from_labels = remap_scribbles(napari_like, {7: 1, 9: 2})

    panels = [
        (traced_view, "Fiji ROI Manager zip: traced cells\n(Vectra image 1, PanCK red, DAPI grey)"),
        (with_scribbles(vectra[1], from_rois), "--from-rois: skeleton + inner contour = cell (green),\nring outside where dark = background (blue)"),
        (painted, "paint program (RGB): red nucleus,\nblue background, green cytoplasm"),
        (with_scribbles(mibi, from_rgb), "--from-rgb: the same strokes as\nscribble values 2 (nucleus), 1 (background)"),
        (napari_like * 25, "napari Labels layer saved as TIFF\n(values 7 and 9)"),
        (with_scribbles(mibi, from_labels), "--from-labels --remap 7:1,9:2"),
    ]
    save_panels(panels, out, "gray", height=4.6, dpi=70)


#: The window of each held-out Vectra image the figure shows (row, col of its top-left corner).
VECTRA_WINDOWS = {1: (100, 100), 2: (200, 100)}
VECTRA_SIDE = 180


def vectra_figure(maps_path: Path, out: Path) -> None:
    """Per held-out Vectra image: traced cells; ImPartial's cells and seed nuclei; CellProfiler's;
    ImPartial's cell probability (model trained on the other image). mDICE of the whole image."""
    from benchmarks.accuracy import score_traced
    from benchmarks.baselines import identify_cells
    from benchmarks.data import load_vectra
    from impartial_core.instances import segment

    maps = np.load(maps_path)
    fig, axes = plt.subplots(2, 4, figsize=(16, 9))
    for row, v in zip(axes, load_vectra()):
        probability, threshold = maps[f"p{v.id}"], float(maps[f"t{v.id}"])
        ours = segment({"cells": probability}, {"cells": threshold}, image=v.image, nuclear_channel=1)
        cp_nuclei, cp_cells = identify_cells(v.image)
        top, left = VECTRA_WINDOWS[v.id]
        window = (slice(top, top + VECTRA_SIDE), slice(left, left + VECTRA_SIDE))
        composite = np.dstack([grey(v.image[0])[..., 0], 0.3 * grey(v.image[0])[..., 0], grey(v.image[1])[..., 0]])[window]

        def outlined(*layers):
            rgb = composite.copy()
            for labels, colour in layers:
                rgb[find_boundaries(labels[window], mode="inner")] = colour
            return rgb

        traced = (v.traced, (1.0, 1.0, 0.0))
        panels = [
            (outlined(traced), f"Vectra image {v.id} (PanCK red, DAPI blue):\n{int(v.traced.max())} traced cells (yellow)"),
            (outlined((ours.cells, (0.2, 1.0, 0.2)), (ours.nuclei, (0.0, 1.0, 1.0)), traced),
             f"ImPartial cells (green), seed nuclei (cyan)\nmDICE {score_traced(ours.cells, v.traced)['mdice']:.3f}"),
            (outlined((cp_cells, (1.0, 0.0, 1.0)), (cp_nuclei, (0.0, 1.0, 1.0)), traced),
             f"CellProfiler cells (magenta), nuclei (cyan)\nmDICE {score_traced(cp_cells, v.traced)['mdice']:.3f}"),
            (probability[window], f"ImPartial cell probability\n(trained on image {3 - v.id}'s traces)"),
        ]
        for ax, (panel, title) in zip(row, panels):
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    fig.tight_layout(h_pad=2.0)
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "out" / "example" / "impartial_model.safetensors")
    parser.add_argument("--vectra-maps", type=Path, default=None,
                        help="held-out Vectra cell probabilities (experiments/vectra_cells.py --maps DIR writes "
                             "DIR/vectra_cells_default_seed0.npz): also draw docs/vectra_cells.png")
    args = parser.parse_args()
    results_figure(args.model, REPO / "docs" / "results_mibi.png")
    routes_figure(REPO / "docs" / "scribble_routes.png")
    if args.vectra_maps:
        vectra_figure(args.vectra_maps, REPO / "docs" / "vectra_cells.png")


if __name__ == "__main__":
    main()
