"""Compare ways of splitting touching nuclei on saved probability maps."""
import sys, itertools
import numpy as np, tifffile
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed
from skimage.feature import peak_local_max
sys.path.insert(0, '/work/main')
from impartial_core.metrics import evaluate_image, summarize
from impartial_core.instances import _fill_holes_per_object, _remove_small
D = '/work/shared/data/mibi_dsdna/'
gts = [tifffile.imread(D + f'image{i}_nuclei_labels.tif') for i in (0, 3, 5, 7)]
probs = list(np.load(sys.argv[1]).values())
print('GT areas median', np.median(np.concatenate([np.bincount(g.ravel())[1:] for g in gts])))
def hmax(p, thr, h, sigma):
    mask = p > thr
    dist = ndi.distance_transform_edt(mask)
    if sigma: dist = ndi.gaussian_filter(dist, sigma)
    markers = ndi.label(h_maxima(dist, h) & mask)[0]
    lab = watershed(-dist, markers, mask=mask)
    lab = _fill_holes_per_object(lab); return _remove_small(lab, 20)
def probws(p, thr, sigma, md):
    mask = p > thr
    sm = ndi.gaussian_filter(p, sigma)
    pk = peak_local_max(sm, min_distance=md, labels=ndi.label(mask)[0], exclude_border=False)
    markers = np.zeros(p.shape, int); markers[tuple(pk.T)] = np.arange(1, len(pk)+1)
    lab = watershed(-sm, markers, mask=mask)
    lab = _fill_holes_per_object(lab); return _remove_small(lab, 20)
def report(name, fn):
    res = [evaluate_image(p, fn(p), g) for p, g in zip(probs, gts)]
    s = summarize(res)
    print(f"{name}: mDICE {s['mdice']:.3f} mIOU {s['miou']:.3f} F1 {s['f1_iou50']:.3f} n_pred {sum(r['n_pred'] for r in res)}", flush=True)
for thr in (0.35, 0.45, 0.55):
    for h, sigma in itertools.product([0.5, 1, 2], [0, 1]):
        report(f'hmax thr {thr} h {h} sigma {sigma}', lambda p: hmax(p, thr, h, sigma))
    for sigma, md in itertools.product([1, 2, 3], [3, 5]):
        report(f'probws thr {thr} sigma {sigma} md {md}', lambda p: probws(p, thr, sigma, md))
