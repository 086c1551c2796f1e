"""Whole cells under a diffuse haze or uneven illumination, on the MP6843 held-out fields.

    python experiments/haze.py --models DIR     # trains what DIR lacks (8 models, 3 minutes each)

A field's look changes between fields of one screen: out-of-focus haze, a gradient of
illumination. Each held-out field (leave one field out, default training, seed 0) is scored as it
is and with one channel (DAPI or actin) under a Gaussian haze (width a quarter of the field,
centred at random in its middle half) or a left-to-right ramp, 0.5 or 1 times the channel's range
(1st to 99.8th percentile) high. Models are trained without (``--haze 0``) and with the default
haze augmentation (``TrainingConfig.haze``); CellProfiler's IdentifyPrimary + IdentifySecondary
(the benchmark's settings for these fields) runs on the same images. A last table isolates the
seeds: cells grown over the clean field's cell probability from nuclei found in the hazed DAPI,
with the stain's background removed over 3-8 nuclear radii or not at all
(``nuclear_stain.BACKGROUND_RADII``). Results: ``experiments/results/haze.txt``.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import baselines  # noqa: E402
from benchmarks.accuracy import training_config  # noqa: E402
from benchmarks.mp6843 import CELL_CHANNEL, NUCLEAR_CHANNEL, folds, load_mp6843, train_fold  # noqa: E402
from impartial_core import instances, nuclear_stain  # noqa: E402
from impartial_core.config import InstanceConfig, TrainingConfig  # noqa: E402
from impartial_core.metrics import evaluate_image, summarize  # noqa: E402
from impartial_core.model import ImPartialModel  # noqa: E402


def spot(shape, rng) -> np.ndarray:
    """A Gaussian haze of height 1, a quarter of the field wide, centred in the field's middle half."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    y0, x0, s = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w, 0.25 * min(h, w)
    return np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s))


def ramp(shape, rng) -> np.ndarray:
    """Illumination rising from 0 at the left edge to 1 at the right."""
    return np.broadcast_to(np.linspace(0.0, 1.0, shape[1])[None, :], shape)


def hazed(image: np.ndarray, channel: int, form, height: float, rng) -> np.ndarray:
    """``image`` with ``height`` times the channel's range of ``form`` added to one channel."""
    out = image.copy()
    low, high = np.percentile(image[channel], [1, 99.8])
    out[channel] = image[channel] + height * (high - low) * form(image.shape[1:], rng)
    return out


def models(fields, folder: Path, haze: float) -> dict:
    """The four fold models trained with ``haze``, read from ``folder`` or trained and saved there."""
    out = {}
    for train, test in folds(fields):
        path = folder / f"haze{haze:g}_{test.id}.impartial"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            train_fold(train, 0, training_config(0, False, haze=haze)).save(path)
        out[test.id] = ImPartialModel.load(path)
    return out


def impartial_cells(model, image: np.ndarray) -> tuple:
    """The cell probability and the cells of ``image``, seeded from its DAPI as the benchmark does."""
    maps = {task: m.foreground_probability for task, m in model.predict(image).items()}
    return maps["cells"], instances.segment(maps, model.thresholds, image=image, nuclear_channel=NUCLEAR_CHANNEL).cells


def line(results) -> str:
    summary = summarize(results)
    return f"{summary['f1_iou50']:.3f} / {summary['mdice']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="folder of the fold models (trained there when missing)")
    args = parser.parse_args()
    fields = load_mp6843()
    sets = {f"ImPartial, haze {h:g} in training": models(fields, Path(args.models), h) for h in (0.0, TrainingConfig.haze)}
    conditions = [("none", None, None, 0.0)] + [(f"{form.__name__} {height:g} on {name}", form, channel, height)
                                                for channel, name in ((NUCLEAR_CHANNEL, "DAPI"), (CELL_CHANNEL, "actin"))
                                                for form in (spot, ramp) for height in (0.5, 1.0)]
    print(f"{'haze':18} " + "  ".join(f"{name:>30}" for name in list(sets) + ["CellProfiler"]) + "   (F1@0.5 / mDICE, 4 fields)")
    for label, form, channel, height in conditions:
        rows = {name: [] for name in list(sets) + ["CellProfiler"]}
        for k, field in enumerate(fields):
            image = field.image if form is None else hazed(field.image, channel, form, height, np.random.default_rng(k))
            for name, fold_models in sets.items():
                probability, cells = impartial_cells(fold_models[field.id], image)
                rows[name].append(evaluate_image(probability, cells, field.truth))
            _, cells = baselines.identify_cells(image, baselines.MP6843_IPO_SETTINGS, baselines.MP6843_ISO_SETTINGS,
                                                nuclear_channel=NUCLEAR_CHANNEL, cell_channel=CELL_CHANNEL)
            rows["CellProfiler"].append(evaluate_image(None, cells, field.truth))
        print(f"{label:18} " + "  ".join(f"{line(results):>30}" for results in rows.values()), flush=True)

    print("\nSeeds alone: cells over the clean field's probability (no haze in training), nuclei from the hazed DAPI")
    plain = sets[next(iter(sets))]
    clean = {f.id: plain[f.id].predict(f.image)["cells"].foreground_probability for f in fields}  # once per field
    keep, keep_radii = nuclear_stain.without_background, nuclear_stain.BACKGROUND_RADII
    for radii in (None, 3.0, 4.0, 6.0, 8.0):
        nuclear_stain.without_background = (lambda s, w: s) if radii is None else keep
        nuclear_stain.BACKGROUND_RADII = radii or keep_radii
        scores = []
        for height in (0.0, 0.5, 1.0):
            results = []
            for k, field in enumerate(fields):
                p, threshold = clean[field.id], plain[field.id].thresholds["cells"]
                stain = hazed(field.image, NUCLEAR_CHANNEL, spot, height, np.random.default_rng(k))[NUCLEAR_CHANNEL]
                seeds = instances.nuclei_from_channel(stain)
                cells = instances.cells_from_seeds(seeds, p, threshold, p, InstanceConfig())[1]
                results.append(evaluate_image(None, cells, field.truth))
            scores.append(f"spot {height:g}: {line(results)}")
        print(f"  background removed over {'no' if radii is None else f'{radii:g}'} radii: " + "   ".join(scores), flush=True)
    nuclear_stain.without_background, nuclear_stain.BACKGROUND_RADII = keep, keep_radii

if __name__ == "__main__":
    main()
