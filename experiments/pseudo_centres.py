"""Markers from a learnt centre-ness: can nucleus shape, learnt from the default model's own
confident objects, split touching nuclei better than the distance transform?

    python experiments/pseudo_centres.py MAPS/probs_seed0.npz ... [--steps 400] [--min-solidity 0.88]

Reads the saved MIBI maps of ``flip_average.py --save-maps MAPS`` (``probs_seed{N}.npz`` and the
``.json`` beside it with the model's threshold), as ``tune_markers.py`` does. Per model: the default objects of solidity >= 0.88 and 0.4-1.8x the median area become
pseudo-labels (each object's distance to its edge over its maximum; background where p < the
threshold; other objects and 2 px around them ignored); a width-16 U-Net on (image, probability)
learns that centre-ness (weighted binary cross-entropy, 128² patches, batch 8, flips and
rotations); its h-maxima or thresholded regions are the markers of a watershed of the object
mask. No ground truth is used until scoring.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F  # noqa: E401
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.morphology import h_maxima
from skimage.segmentation import watershed, relabel_sequential
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.data import load_mibi
from impartial_core.instances import nuclei_from_probability, _remove_small
from impartial_core.network import UNet
from impartial_core.normalization import normalize
from impartial_core.metrics import evaluate_image, summarize

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("maps", nargs="+", help="probs_seed{N}.npz files written by flip_average.py --save-maps")
parser.add_argument("--steps", type=int, default=400, help="training steps of the centre-ness network")
parser.add_argument("--min-solidity", type=float, default=0.88, help="objects at least this solid become pseudo-labels")
args = parser.parse_args()
torch.set_num_threads(2)
mibi = load_mibi()
steps = args.steps
SOL = args.min_solidity

def targets(p, thr):
    lab = nuclei_from_probability(p, thr)
    props = regionprops(lab); med = np.median([r.area for r in props])
    keep = [r.label for r in props if r.solidity >= SOL and 0.4 * med <= r.area <= 1.8 * med]
    sel = np.isin(lab, keep) & (lab > 0)
    # centre-ness: distance to the object's edge (per object, objects may touch) / its max
    edt = np.zeros(p.shape, np.float32)
    for r in props:
        if r.label not in keep: continue
        sl = r.slice; obj = lab[sl] == r.label
        d = ndi.distance_transform_edt(np.pad(obj, 1))[1:-1, 1:-1]
        edt[sl][obj] = (d / d.max())[obj]
    weight = np.where(sel | (p < thr) & ~ndi.binary_dilation((lab > 0) & ~sel, iterations=2), 1.0, 0.0).astype(np.float32)
    return edt, weight, len(keep), lab.max()

def split_with(p, thr, c, mode, h):
    mask = p > thr
    cs = ndi.gaussian_filter(c, 1.0)
    if mode == "hmax":
        markers = ndi.label(h_maxima(np.where(mask, cs, 0).astype(np.float32), h) & mask, structure=np.ones((3, 3)))[0]
    else:  # threshold
        markers = ndi.label((cs > h) & mask)[0]
    # blobs without a marker keep themselves
    lab = watershed(-cs, markers, mask=mask)
    orphan = mask & (lab == 0)
    if orphan.any():
        extra = ndi.label(orphan)[0]; lab = np.where(orphan, extra + lab.max(), lab)
    lab = _remove_small(lab, 20)
    return relabel_sequential(lab)[0]

results = {}
for seed, path in enumerate(args.maps):
    maps = list(np.load(path).values())
    thr = json.loads(Path(path).with_suffix(".json").read_text())["threshold"]
    ims = [normalize(im[None])[0] for im in mibi.images]
    X, Y, W = [], [], []
    for im, p in zip(ims, maps):
        y, w, nk, nall = targets(p, thr)
        X.append(np.stack([im, p]).astype(np.float32)); Y.append(y); W.append(w)
        print(f"seed {seed}: {nk}/{nall} objects as pseudo-labels", flush=True)
    torch.manual_seed(seed); g = np.random.default_rng(seed)
    backbone = UNet(2, 16, 2); head = nn.Conv2d(16, 1, 1)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, 1e-3)
    t0 = time.time(); P = 128
    for it in range(steps):
        xb, yb, wb = [], [], []
        for b in range(8):
            i = g.integers(4); H, Wd = Y[i].shape
            r, c = g.integers(H - P + 1), g.integers(Wd - P + 1)
            x, y, w = X[i][:, r:r+P, c:c+P], Y[i][r:r+P, c:c+P], W[i][r:r+P, c:c+P]
            k = g.integers(4); fl = g.integers(2)
            x, y, w = np.rot90(x, k, (1, 2)), np.rot90(y, k), np.rot90(w, k)
            if fl: x, y, w = x[:, ::-1], y[::-1], w[::-1]
            xb.append(x.copy()); yb.append(y.copy()); wb.append(w.copy())
        xb, yb, wb = map(lambda a: torch.from_numpy(np.stack(a)), (xb, yb, wb))
        out = head(backbone(xb))[:, 0]
        loss = (wb * F.binary_cross_entropy_with_logits(out, yb, reduction="none")).sum() / wb.sum().clamp(min=1)
        opt.zero_grad(); loss.backward(); opt.step()
        if it % 100 == 0: print(it, float(loss.detach()), f"{time.time()-t0:.0f}s", flush=True)
    print(f"trained {steps} steps in {time.time()-t0:.0f}s", flush=True)
    with torch.no_grad():
        C = [torch.sigmoid(head(backbone(torch.from_numpy(x)[None])))[0, 0].numpy() for x in X]
    default = [nuclei_from_probability(p, thr) for p in maps]
    variants = {"default": default}
    for h in [0.1, 0.2, 0.3, 0.4]:
        variants[f"hmax {h}"] = [split_with(p, thr, c, "hmax", h) for p, c in zip(maps, C)]
    for t in [0.4, 0.5, 0.6, 0.7]:
        variants[f"thresh {t}"] = [split_with(p, thr, c, "thresh", t) for p, c in zip(maps, C)]
    for name, labs in variants.items():
        s = summarize([evaluate_image(p, l, t) for p, l, t in zip(maps, labs, mibi.truth)])
        results.setdefault(name, []).append([s["mdice"], s["miou"], s["f1_iou50"], sum(int(l.max()) for l in labs)])
        print(f"seed {seed} {name:12s} mDICE {s['mdice']:.3f} mIOU {s['miou']:.3f} F1@0.5 {s['f1_iou50']:.3f} objects {sum(int(l.max()) for l in labs)}", flush=True)
print("mean over seeds")
for name, r in results.items():
    m = np.mean(r, 0); print(f"{name:12s} mDICE {m[0]:.3f} mIOU {m[1]:.3f} F1@0.5 {m[2]:.3f} objects {m[3]:.0f}")
