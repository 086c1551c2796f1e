"""Tune the instance step on saved nuclei probability maps (no retraining)."""
import sys, itertools
import numpy as np, tifffile
sys.path.insert(0, '/work/main')
from impartial_core.config import InstanceConfig
from impartial_core.instances import nuclei_from_probability
from impartial_core.metrics import evaluate_image, summarize
D = '/work/shared/data/mibi_dsdna/'
gts = [tifffile.imread(D + f'image{i}_nuclei_labels.tif') for i in (0, 3, 5, 7)]
probs = list(np.load(sys.argv[1]).values())
rows = []
for thr, split, md in itertools.product([0.4, 0.5, 0.6], [False, True], [3, 5, 7, 9]):
    if not split and md != 3: continue
    res = [evaluate_image(p, nuclei_from_probability(p, thr, InstanceConfig(split_touching=split, split_min_distance=md)), g) for p, g in zip(probs, gts)]
    s = summarize(res)
    print(f"thr {thr} split {split} md {md}: mDICE {s['mdice']:.3f} mIOU {s['miou']:.3f} F1 {s['f1_iou50']:.3f} AUC {s['auc']:.3f} pixF1 {s['pixel_f1']:.3f} n_pred {sum(r['n_pred'] for r in res)}", flush=True)
