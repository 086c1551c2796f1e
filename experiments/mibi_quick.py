"""Quick experiment: train on the 4 MIBI images with n100 scribbles and score on their GT."""
import sys, time, json, argparse, dataclasses
import numpy as np, tifffile, torch
sys.path.insert(0, '/work/main')
from impartial_core.config import NetworkConfig, TrainingConfig, InstanceConfig, nuclei_task
from impartial_core.normalization import normalize
from impartial_core.training import train
from impartial_core.prediction import predict_image
from impartial_core.instances import nuclei_from_probability
from scipy import ndimage as ndi

def match(pred, true):
    n_t, n_p = true.max(), pred.max()
    cont = np.bincount(true.ravel().astype(np.int64) * (n_p + 1) + pred.ravel(), minlength=(n_t + 1) * (n_p + 1)).reshape(n_t + 1, n_p + 1)
    area_t = cont.sum(1); area_p = cont.sum(0)
    inter = cont[1:, 1:]
    if n_p == 0:
        return 0, 0, 0, n_t
    best = inter.argmax(1); bi = inter[np.arange(n_t), best]
    union = area_t[1:] + area_p[1:][best] - bi
    iou = np.where(bi > 0, bi / union, 0); dice = np.where(bi > 0, 2 * bi / (area_t[1:] + area_p[1:][best]), 0)
    iou_full = inter / (area_t[1:, None] + area_p[None, 1:] - inter)
    tp = (iou_full > 0.5).sum()
    return dice.mean(), iou.mean(), tp, n_t, n_p

ap = argparse.ArgumentParser()
ap.add_argument('--budget', default='n100')
ap.add_argument('--set', nargs='*', default=[])
ap.add_argument('--width', type=int, default=16)
ap.add_argument('--thr', type=float, default=None)
ap.add_argument('--save', default=None)
args = ap.parse_args()
kw = {}
for s in args.set:
    k, v = s.split('='); f = {f.name: f.type for f in dataclasses.fields(TrainingConfig)}
    kw[k] = type(getattr(TrainingConfig(), k))(v) if not isinstance(getattr(TrainingConfig(), k), bool) else v == 'True'
torch.set_num_threads(2)
D = '/work/shared/data/mibi_dsdna/'
ids = [0, 3, 5, 7]
imgs = [normalize(tifffile.imread(D + f'image{i}.tif')[None]) for i in ids]
scr = [tifffile.imread(D + f'image{i}_scribbles_{args.budget}.tif') for i in ids]
gts = [tifffile.imread(D + f'image{i}_nuclei_labels.tif') for i in ids]
cfg = TrainingConfig(**kw)
t0 = time.time()
res = train(imgs, scr, [nuclei_task()], NetworkConfig(1, args.width), cfg,
            progress=lambda p: (p.iteration % 200 == 0) and print(p.iteration, f"{p.elapsed_s:.0f}s", {k: round(v, 4) for k, v in p.losses.items()}, flush=True))
if args.save:
    np.savez_compressed(args.save, *[predict_image(res.net, im)['nuclei'].foreground_probability for im in imgs])
print('trained', res.iterations, f'{res.elapsed_s:.1f}s', res.stopped_because, res.thresholds)
for split in [False, True]:
    D_, I_, TP, NT, NP = [], [], 0, 0, 0
    for im, gt in zip(imgs, gts):
        p = predict_image(res.net, im)['nuclei'].foreground_probability
        lab = nuclei_from_probability(p, args.thr or res.thresholds['nuclei'], InstanceConfig(split_touching=split))
        d, i, tp, nt, np_ = match(lab, gt)
        D_.append(d); I_.append(i); TP += tp; NT += nt; NP += np_
    f1 = 2 * TP / (NT + NP)
    print(f'split={split} mDICE {np.mean(D_):.3f} mIOU {np.mean(I_):.3f} F1@0.5 {f1:.3f} n_pred {NP} n_true {NT}')
