"""The two baselines a CellProfiler user would pick instead of ImPartial.

1. CellProfiler's own modules, run in-process through cellprofiler_core (the real
   IdentifyPrimaryObjects / IdentifySecondaryObjects code, not a re-implementation): no scribbles.
2. A scribble-trained random forest on multiscale filter features, the ilastik pixel classifier
   (Gaussian, Laplacian of Gaussian, gradient magnitude, difference of Gaussians, structure-tensor
   and Hessian eigenvalues at sigmas 0.7, 1, 1.6, 3.5, 5, 10), followed by exactly ImPartial's
   instance step (``impartial_core.instances``) so that only the pixel classifier differs.

Settings of the CellProfiler modules were chosen as a careful user would: the size range from the
measured nuclei, then the best of a few sensible threshold / declumping combinations tried on the
benchmark images themselves (``choose_ipo_settings``; this favours the baseline, which sees the
ground truth while choosing). The chosen values are the defaults below.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi

# --------------------------------------------------------------------------------------------
# CellProfiler in-process
# --------------------------------------------------------------------------------------------
# MIBI dsDNA nuclei, measured on the ground truth of the 4 images (889 nuclei): equivalent diameter
# 5th-95th percentile 8-28 px, median 18.5 px, longest major axis ~40 px  -> typical diameter 8-40.
#
# Chosen with `python -m benchmarks.baselines` (choose_ipo_settings: starting from CellProfiler's
# defaults, one group of settings varied at a time -- threshold strategy x method (Otsu two- and
# three-class, minimum cross-entropy) x correction factor 1.0/0.8/0.6; declumping; size range --
# keeping the best F1@IoU0.5 over the 4 MIBI images; 44 combinations tried). Best: F1@IoU0.5 0.530;
# global three-class Otsu (middle class to foreground) was a close second (0.529), global two-class
# Otsu reached 0.520 only with correction 0.6 (at 1.0 it keeps only the bright nuclear cores).
MIBI_IPO_SETTINGS = dict(
    size_range=(8, 40),            # typical diameter (px), min/max
    exclude_size=True,             # discard objects outside the diameter range: Yes
    exclude_border=False,          # discard objects touching the border: No
    threshold_scope="Adaptive",    # adaptive, window 50 px
    threshold_method="Minimum Cross-Entropy",
    two_class=True,
    correction=1.0,
    adaptive_window=50,
    unclump="Shape",               # how to distinguish clumped objects
    watershed="Shape",             # how to draw dividing lines between clumped objects
    fill_holes="After both thresholding and declumping",
    automatic_smoothing=True,      # smoothing filter and maxima suppression from the lower size bound
    automatic_suppression=True,
)

# Vectra: IdentifyPrimaryObjects on DAPI, then IdentifySecondaryObjects (propagation) on PanCK + DAPI.
# Chosen with choose_vectra_settings (same one-group-at-a-time search, 79 combinations, best mean
# per-traced-cell Dice over images 1 and 2 = 0.587; the traced cells include small PanCK-negative
# stromal cells, hence the small lower diameter).
VECTRA_IPO_SETTINGS = dict(MIBI_IPO_SETTINGS, size_range=(4, 30), threshold_scope="Adaptive",
                           threshold_method="Minimum Cross-Entropy", correction=0.8, unclump="Shape", watershed="Shape")
VECTRA_ISO_SETTINGS = dict(
    method="Propagation",
    image="sum",                   # PanCK + DAPI (each rescaled to [0, 1]); "panck" = PanCK alone
    threshold_scope="Global",
    threshold_method="Minimum Cross-Entropy",
    two_class=True,
    correction=1.0,
    adaptive_window=50,
    regularization=0.05,           # CellProfiler's default
    fill_holes=True,
    discard_edge=False,
)

# MP6843 (cultured cells, actin + DAPI, 2x downsampled fields): IdentifyPrimaryObjects on DAPI, then
# IdentifySecondaryObjects (propagation) on actin. Chosen with choose_mp6843_settings (the same
# one-group-at-a-time search, 84 combinations, on the 4 development fields with their complete
# ground truth: best F1@IoU0.5 0.923 pooled over the fields; every one of the 12 best was >= 0.917).
# These are the fields the benchmark scores, so CellProfiler is tuned on its own test data.
MP6843_IPO_SETTINGS = dict(MIBI_IPO_SETTINGS, size_range=(10, 50), threshold_scope="Adaptive",
                           threshold_method="Minimum Cross-Entropy", correction=0.6, unclump="Shape", watershed="Intensity")
MP6843_ISO_SETTINGS = dict(VECTRA_ISO_SETTINGS, image="cell", threshold_scope="Global", threshold_method="Minimum Cross-Entropy",
                           correction=0.6, regularization=0.01)

_CP_READY = False


def _cellprofiler():
    """Import the CellProfiler pieces, headless, once."""
    global _CP_READY
    import cellprofiler_core.preferences as prefs

    if not _CP_READY:
        prefs.set_headless()
        prefs.set_awt_headless(True) if hasattr(prefs, "set_awt_headless") else None
        _CP_READY = True
    from cellprofiler.modules.identifyprimaryobjects import IdentifyPrimaryObjects
    from cellprofiler.modules.identifysecondaryobjects import IdentifySecondaryObjects
    from cellprofiler_core.image import Image, ImageSetList
    from cellprofiler_core.measurement import Measurements
    from cellprofiler_core.object import ObjectSet
    from cellprofiler_core.pipeline import Pipeline
    from cellprofiler_core.workspace import Workspace

    return dict(IdentifyPrimaryObjects=IdentifyPrimaryObjects, IdentifySecondaryObjects=IdentifySecondaryObjects,
                Image=Image, ImageSetList=ImageSetList, Measurements=Measurements, ObjectSet=ObjectSet,
                Pipeline=Pipeline, Workspace=Workspace)


def rescale01(image: np.ndarray) -> np.ndarray:
    """What a CellProfiler user feeds the modules: the image scaled to [0, 1] by its min and max."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)


def _set_threshold(threshold, settings: Dict) -> None:
    threshold.threshold_scope.value = settings["threshold_scope"]
    method = settings["threshold_method"]
    if settings["threshold_scope"] == "Global":
        threshold.global_operation.value = method
    else:
        threshold.local_operation.value = method
        threshold.adaptive_window_size.value = int(settings.get("adaptive_window", 50))
    threshold.two_class_otsu.value = "Two classes" if settings.get("two_class", True) else "Three classes"
    if not settings.get("two_class", True):
        threshold.assign_middle_to_foreground.value = settings.get("middle", "Foreground")
    if "correction" in settings:
        threshold.threshold_correction_factor.value = float(settings["correction"])


def _ipo_module(cp, settings: Dict, image_name: str, objects_name: str):
    module = cp["IdentifyPrimaryObjects"]()
    module.use_advanced.value = True
    module.x_name.value = image_name
    module.y_name.value = objects_name
    module.size_range.value = tuple(settings["size_range"])
    module.exclude_size.value = settings["exclude_size"]
    module.exclude_border_objects.value = settings["exclude_border"]
    module.unclump_method.value = settings["unclump"]
    module.watershed_method.value = settings["watershed"]
    module.fill_holes.value = settings["fill_holes"]
    module.automatic_smoothing.value = settings["automatic_smoothing"]
    module.automatic_suppression.value = settings["automatic_suppression"]
    module.limit_choice.value = "Continue"
    _set_threshold(module.threshold, settings)
    return module


def _iso_module(cp, settings: Dict, primary: str, image_name: str, objects_name: str):
    module = cp["IdentifySecondaryObjects"]()
    module.x_name.value = primary
    module.y_name.value = objects_name
    module.image_name.value = image_name
    module.method.value = settings["method"]
    module.regularization_factor.value = float(settings["regularization"])
    module.fill_holes.value = settings["fill_holes"]
    module.wants_discard_edge.value = settings["discard_edge"]
    _set_threshold(module.threshold, settings)
    return module


def _run_modules(images: Dict[str, np.ndarray], modules) -> object:
    """Run CellProfiler modules in order on one image set, in-process; returns the ObjectSet."""
    cp = _cellprofiler()
    pipeline = cp["Pipeline"]()
    image_set_list = cp["ImageSetList"]()
    image_set = image_set_list.get_image_set(0)
    for name, pixels in images.items():
        image_set.add(name, cp["Image"](pixels))
    object_set = cp["ObjectSet"]()
    measurements = cp["Measurements"]()
    for number, module in enumerate(modules, start=1):
        module.set_module_num(number)
        pipeline.add_module(module)
    for module in modules:
        workspace = cp["Workspace"](pipeline, module, image_set, object_set, measurements, image_set_list)
        module.run(workspace)
    return object_set


def identify_primary_objects(image: np.ndarray, settings: Optional[Dict] = None) -> np.ndarray:
    """Nuclei labels from CellProfiler's IdentifyPrimaryObjects on a 2-D image (rescaled to [0, 1])."""
    cp = _cellprofiler()
    settings = dict(MIBI_IPO_SETTINGS, **(settings or {}))
    module = _ipo_module(cp, settings, "DNA", "Nuclei")
    objects = _run_modules({"DNA": rescale01(image)}, [module])
    return np.asarray(objects.get_objects("Nuclei").segmented, dtype=np.int32)


def identify_cells(image: np.ndarray, ipo_settings: Optional[Dict] = None, iso_settings: Optional[Dict] = None,
                   nuclear_channel: int = 1, cell_channel: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Whole cells the CellProfiler way on a (2, H, W) image: IdentifyPrimaryObjects on the nuclear
    channel, then IdentifySecondaryObjects (propagation) on the cell channel or the sum of both.

    Returns (nuclei, cells) label images; cell n contains nucleus n.
    """
    cp = _cellprofiler()
    ipo = dict(VECTRA_IPO_SETTINGS, **(ipo_settings or {}))
    iso = dict(VECTRA_ISO_SETTINGS, **(iso_settings or {}))
    dna = rescale01(image[nuclear_channel])
    cell = rescale01(image[cell_channel])
    cell_image = rescale01(dna + cell) if iso["image"] == "sum" else cell
    modules = [_ipo_module(cp, ipo, "DNA", "Nuclei"), _iso_module(cp, iso, "Nuclei", "CellImage", "Cells")]
    objects = _run_modules({"DNA": dna, "CellImage": cell_image}, modules)
    return (np.asarray(objects.get_objects("Nuclei").segmented, dtype=np.int32),
            np.asarray(objects.get_objects("Cells").segmented, dtype=np.int32))


THRESHOLD_OPTIONS = [dict(threshold_scope=scope, threshold_method=method, two_class=two, correction=corr)
                     for scope in ("Global", "Adaptive")
                     for method, two in (("Otsu", True), ("Otsu", False), ("Minimum Cross-Entropy", True))
                     for corr in (1.0, 0.8, 0.6)]
DECLUMP_OPTIONS = [dict(unclump=u, watershed=w) for u, w in (("Shape", "Shape"), ("Intensity", "Intensity"), ("Shape", "Intensity"))]


def _coordinate_search(start: Dict, stages: Sequence[List[Dict]], score) -> Tuple[Dict, List[Tuple[Dict, float]]]:
    """What a careful user does: vary one group of settings at a time, keep the best, go round twice."""
    best, best_score, tried = dict(start), score(start), {}
    tried[repr(sorted(best.items()))] = (dict(best), best_score)
    for _ in range(2):
        for options in stages:
            for option in options:
                candidate = dict(best, **option)
                key = repr(sorted(candidate.items()))
                if key not in tried:
                    tried[key] = (candidate, score(candidate))
                if tried[key][1] > best_score:
                    best, best_score = tried[key]
    return best, list(tried.values())


def choose_ipo_settings(images: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> Tuple[Dict, List[Tuple[Dict, float]]]:
    """Search the MIBI IdentifyPrimaryObjects settings; score = F1@IoU0.5 (+ mDICE / 1000 for ties)."""
    from impartial_core.metrics import evaluate_image, summarize

    def score(settings):
        summary = summarize([evaluate_image(None, identify_primary_objects(im, settings), gt) for im, gt in zip(images, truth)])
        return summary["f1_iou50"] + summary["mdice"] / 1000

    sizes = [dict(size_range=r) for r in ((6, 40), (8, 40), (10, 40), (12, 40))]
    start = dict(MIBI_IPO_SETTINGS, threshold_scope="Global", threshold_method="Minimum Cross-Entropy", correction=1.0,
                 unclump="Intensity", watershed="Intensity", size_range=(8, 40))  # CellProfiler's defaults + size
    return _coordinate_search(start, [THRESHOLD_OPTIONS, DECLUMP_OPTIONS, sizes], score)


def choose_vectra_settings(vectra) -> Tuple[Tuple[Dict, Dict], List]:
    """Search IdentifyPrimaryObjects (DAPI) then IdentifySecondaryObjects settings; score = mean
    per-traced-cell Dice over the Vectra images (the traces are the only annotation)."""
    from impartial_core.metrics import matched_dice_iou

    def score(settings):
        ipo = {k[4:]: v for k, v in settings.items() if k.startswith("ipo_")}
        iso = {k[4:]: v for k, v in settings.items() if k.startswith("iso_")}
        return float(np.mean([matched_dice_iou(identify_cells(v.image, ipo, iso)[1], v.traced)[0] for v in vectra]))

    prefix = lambda p, options: [{p + k: v for k, v in o.items()} for o in options]
    start = {**{"ipo_" + k: v for k, v in VECTRA_IPO_SETTINGS.items()}, **{"iso_" + k: v for k, v in VECTRA_ISO_SETTINGS.items()}}
    start.update(ipo_threshold_scope="Global", ipo_threshold_method="Minimum Cross-Entropy", ipo_correction=1.0,
                 ipo_unclump="Intensity", ipo_watershed="Intensity", iso_threshold_method="Minimum Cross-Entropy",
                 iso_correction=1.0)
    stages = [prefix("ipo_", THRESHOLD_OPTIONS), prefix("ipo_", DECLUMP_OPTIONS),
              prefix("ipo_", [dict(size_range=r) for r in ((4, 30), (6, 30), (8, 35))]),
              prefix("iso_", THRESHOLD_OPTIONS), prefix("iso_", [dict(image=i) for i in ("sum", "panck")])]
    best, tried = _coordinate_search(start, stages, score)
    split = ({k[4:]: v for k, v in best.items() if k.startswith("ipo_")}, {k[4:]: v for k, v in best.items() if k.startswith("iso_")})
    return split, tried


def choose_mp6843_settings(fields) -> Tuple[Tuple[Dict, Dict], List]:
    """Search IdentifyPrimaryObjects (DAPI) then IdentifySecondaryObjects (actin) settings on the
    MP6843 fields; score = F1@IoU0.5 pooled over the fields (+ mDICE / 1000 for ties)."""
    from impartial_core.metrics import evaluate_image, summarize

    def score(settings):
        ipo = {k[4:]: v for k, v in settings.items() if k.startswith("ipo_")}
        iso = {k[4:]: v for k, v in settings.items() if k.startswith("iso_")}
        summary = summarize([evaluate_image(None, identify_cells(f.image, ipo, iso, 1, 0)[1], f.truth) for f in fields])
        return summary["f1_iou50"] + summary["mdice"] / 1000

    prefix = lambda p, options: [{p + k: v for k, v in o.items()} for o in options]
    start = {**{"ipo_" + k: v for k, v in MP6843_IPO_SETTINGS.items()}, **{"iso_" + k: v for k, v in MP6843_ISO_SETTINGS.items()}}
    stages = [prefix("ipo_", THRESHOLD_OPTIONS), prefix("ipo_", DECLUMP_OPTIONS),
              prefix("ipo_", [dict(size_range=r) for r in ((6, 40), (10, 50), (15, 60), (20, 80))]),
              prefix("iso_", THRESHOLD_OPTIONS), prefix("iso_", [dict(image=i) for i in ("sum", "cell")]),
              prefix("iso_", [dict(regularization=r) for r in (0.01, 0.05, 0.2, 1.0)])]
    best, tried = _coordinate_search(start, stages, score)
    split = ({k[4:]: v for k, v in best.items() if k.startswith("ipo_")}, {k[4:]: v for k, v in best.items() if k.startswith("iso_")})
    return split, tried


# --------------------------------------------------------------------------------------------
# Random forest on multiscale filter features (ilastik's pixel classification)
# --------------------------------------------------------------------------------------------
SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)


def _features_2d(channel: np.ndarray, sigmas: Sequence[float] = SIGMAS) -> List[np.ndarray]:
    """ilastik's default feature families for one 2-D channel (float32 list)."""
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals, structure_tensor, structure_tensor_eigenvalues

    x = channel.astype(np.float32)
    feats = [x]
    for s in sigmas:
        smooth = ndi.gaussian_filter(x, s)
        feats.append(smooth)                                              # Gaussian smoothing
        feats.append(ndi.gaussian_laplace(x, s))                          # Laplacian of Gaussian
        feats.append(ndi.gaussian_gradient_magnitude(x, s))               # gradient magnitude
        feats.append(smooth - ndi.gaussian_filter(x, 0.66 * s))           # difference of Gaussians (ilastik: 0.66)
        tensor = structure_tensor(x, sigma=0.5 * s, order="rc")           # structure tensor eigenvalues
        feats.extend(structure_tensor_eigenvalues(tensor))
        hessian = hessian_matrix(x, sigma=s, order="rc", use_gaussian_derivatives=True)
        feats.extend(hessian_matrix_eigvals(hessian))                     # Hessian eigenvalues
    return [f.astype(np.float32) for f in feats]


def pixel_features(image: np.ndarray, sigmas: Sequence[float] = SIGMAS) -> np.ndarray:
    """(H, W, F) features of a (H, W) or (C, H, W) image, normalised like ImPartial's input
    (per-channel percentiles 1 / 99.8), features of all channels concatenated."""
    from impartial_core.normalization import as_channels_first, normalize

    channels = normalize(as_channels_first(image))
    feats = []
    for channel in channels:
        feats.extend(_features_2d(channel, sigmas))
    return np.stack(feats, axis=-1)


def fit_forest(features: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], foreground: Sequence[int] = (2,),
               background: Sequence[int] = (1, 3), n_estimators: int = 100, n_jobs: int = 2, seed: int = 0):
    """A RandomForestClassifier trained on the scribbled pixels of (H, W, F) feature stacks."""
    from sklearn.ensemble import RandomForestClassifier

    xs, ys = [], []
    for feats, scribble in zip(features, scribbles):
        fg = np.isin(scribble, foreground)
        bg = np.isin(scribble, background)
        xs += [feats[fg], feats[bg]]
        ys += [np.ones(int(fg.sum()), np.uint8), np.zeros(int(bg.sum()), np.uint8)]
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(np.unique(y)) < 2:
        raise ValueError("the random forest needs scribbles of both foreground and background")
    return RandomForestClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed).fit(x, y)


def predict_forest(forest, features: np.ndarray) -> np.ndarray:
    """P(foreground) (H, W) float32 of a fitted forest on one (H, W, F) feature stack."""
    p = forest.predict_proba(features.reshape(-1, features.shape[-1]))[:, 1]
    return p.reshape(features.shape[:2]).astype(np.float32)


def random_forest(images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], predict_images: Sequence[np.ndarray],
                  foreground: Sequence[int] = (2,), background: Sequence[int] = (1, 3), n_estimators: int = 100,
                  n_jobs: int = 2, seed: int = 0) -> List[np.ndarray]:
    """P(foreground) maps of ``predict_images`` from a random forest trained on the scribbled pixels.

    Scribble values in ``foreground`` are class 1, in ``background`` class 0 (nuclei: fg {2}, bg {1, 3};
    whole cells: fg {2, 3}, bg {1}); other pixels are not used. 100 trees, sklearn defaults otherwise
    (as ilastik: no class balancing).
    """
    forest = fit_forest([pixel_features(im) for im in images], scribbles, foreground, background, n_estimators, n_jobs, seed)
    return [predict_forest(forest, pixel_features(im)) for im in predict_images]


def rf_nuclei(probability: np.ndarray) -> np.ndarray:
    """ImPartial's nuclei instance step (InstanceConfig defaults) at threshold 0.5."""
    from impartial_core.config import InstanceConfig
    from impartial_core.instances import nuclei_from_probability

    return nuclei_from_probability(probability, 0.5, InstanceConfig())


def rf_cells(probability: np.ndarray) -> np.ndarray:
    """ImPartial's cells-only instance step (what ``model.segment`` does for the cells task) at 0.5."""
    from impartial_core.config import InstanceConfig
    from impartial_core.instances import segment

    return segment({"cells": probability}, {"cells": 0.5}, InstanceConfig()).cells


def _short(settings: Dict) -> str:
    keys = ("size_range", "threshold_scope", "threshold_method", "two_class", "correction", "unclump", "watershed", "image")
    return ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)


if __name__ == "__main__":
    import argparse

    from benchmarks.data import load_mibi, load_vectra

    parser = argparse.ArgumentParser(description="Search the CellProfiler settings a careful user would try (prints all).")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    mibi = load_mibi(args.data)
    best, results = choose_ipo_settings(mibi.images, mibi.truth)
    print(f"MIBI IdentifyPrimaryObjects: {len(results)} settings tried (F1@IoU0.5 over the 4 images), best 15:")
    for settings, value in sorted(results, key=lambda r: -r[1])[:15]:
        print(f"  {value:.3f}  {_short(settings)}")
    print("best:", _short(best))
    (ipo, iso), vresults = choose_vectra_settings(load_vectra(args.data))
    print(f"Vectra IPO+ISO: {len(vresults)} settings tried (mean per-traced-cell Dice), best 10:")
    for settings, value in sorted(vresults, key=lambda r: -r[1])[:10]:
        i = {k[4:]: v for k, v in settings.items() if k.startswith("ipo_")}
        s = {k[4:]: v for k, v in settings.items() if k.startswith("iso_")}
        print(f"  {value:.3f}  IPO {_short(i)} | ISO {_short(s)}")
    print("best IPO:", _short(ipo), "| ISO:", _short(iso))
