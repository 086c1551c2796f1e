"""Shallow cuts of touching nuclei only where the stain dips: one split rule for Vectra and MP6843?

    python experiments/dip_gated_seeds.py DIR/calibrated_split_seed{0,1}_180s.npz

The nuclear stain's seeds are cut at necks ``split_h`` px deep: Vectra's traced cells want 0.5,
MP6843's cells 2 (``calibrated_split.py``). A neck of the mask says only that the outline pinches;
between two touching nuclei the stain usually also dims, across a textured nucleus pinched by a
dark inlet it need not. Here the seeds are cut at 2 px, and a shallower cut (0.5 px) is kept only
where the stain along the border between its two pieces is dimmer than ``ratio`` times the dimmer
piece's median. On the fold models' held-out maps that ``calibrated_split.py`` saves; cells grow
from the seeds as the default grows them. No ground truth is used until scoring.
"""
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.nuclear_stain import nuclear_contrast  # noqa: E402
from calibrated_split import held_out_maps, held_out_score, print_means  # noqa: E402

SHALLOW, DEEP = 0.5, 2.0
RATIOS = (0.6, 0.7, 0.8, 0.9, 0.95)


def border_ratios(shallow: np.ndarray, deep: np.ndarray, signal: np.ndarray) -> Dict[tuple, float]:
    """For each pair of touching pieces of the shallow cut that lie in one object of the deep cut:
    the signal's mean on their border (the pixels on both sides) over the dimmer piece's median."""
    n, n_deep = int(shallow.max()) + 1, int(deep.max()) + 1
    inside = (shallow > 0) & (deep > 0)
    keys, counts = np.unique(shallow[inside].astype(np.int64) * n_deep + deep[inside], return_counts=True)
    parent = np.zeros(n, dtype=np.int64)  # 0: a piece outside every object of the deep cut
    order = np.argsort(counts)  # repeated indices keep the last value: each piece's most overlapped object
    parent[keys[order] // n_deep] = keys[order] % n_deep
    medians = np.zeros(n)
    for index, box in enumerate(ndi.find_objects(shallow), start=1):
        if box is not None:
            medians[index] = np.median(signal[box][shallow[box] == index])
    firsts, seconds, values = [], [], []
    for axis in (0, 1):
        a, b = shallow.take(np.arange(shallow.shape[axis] - 1), axis=axis), shallow.take(np.arange(1, shallow.shape[axis]), axis=axis)
        va, vb = signal.take(np.arange(signal.shape[axis] - 1), axis=axis), signal.take(np.arange(1, signal.shape[axis]), axis=axis)
        touching = (a > 0) & (b > 0) & (a != b)
        touching &= (parent[a] == parent[b]) & (parent[a] > 0)
        low, high = np.minimum(a, b)[touching], np.maximum(a, b)[touching]
        firsts += [low, low]
        seconds += [high, high]
        values += [va[touching], vb[touching]]
    pairs = np.concatenate(firsts).astype(np.int64) * n + np.concatenate(seconds)
    keys, inverse = np.unique(pairs, return_inverse=True)
    means = np.bincount(inverse, np.concatenate(values)) / np.bincount(inverse)
    return {(int(k // n), int(k % n)): float(m / max(min(medians[k // n], medians[k % n]), 1e-6))
            for k, m in zip(keys, means)}


def joined(shallow: np.ndarray, ratios: Dict[tuple, float], ratio: float) -> np.ndarray:
    """The shallow cut with the pieces of every border at least ``ratio`` bright joined."""
    root = np.arange(int(shallow.max()) + 1)

    def find(x):
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for (x, y), value in ratios.items():
        if value >= ratio:
            root[find(x)] = find(y)
    lookup = np.array([find(x) for x in range(root.size)])
    return lookup[shallow]


def main() -> None:
    rows: Dict[str, Dict[str, List[tuple]]] = {}
    for path, name, test, p, t, channel, is_vectra in held_out_maps(sys.argv[1:]):
        cuts = {h: instances.nuclei_from_channel(channel, InstanceConfig(split_h=h), instances.NUCLEAR_STAIN_SIGMA)
                for h in (SHALLOW, DEEP)}
        signals = {"contrast": nuclear_contrast(channel, instances.NUCLEAR_STAIN_SIGMA)[0],
                   "stain": gaussian(normalize(np.asarray(channel, np.float32)[None])[0], sigma=instances.NUCLEAR_STAIN_SIGMA)}
        seeds = {f"depth {SHALLOW:g}": cuts[SHALLOW], f"depth {DEEP:g}": cuts[DEEP]}
        for label, signal in signals.items():
            ratios = border_ratios(cuts[SHALLOW], cuts[DEEP], signal)
            for r in RATIOS:
                seeds[f"{label} dip, ratio {r:g}"] = joined(cuts[SHALLOW], ratios, r)
        line = []
        dataset = "Vectra" if is_vectra else "MP6843"
        for label, s in seeds.items():
            _, cells = instances.cells_from_seeds(s, p, t, p, InstanceConfig(), instances.PROPAGATION_REGULARIZATION)
            value = held_out_score(cells, test, is_vectra)
            rows.setdefault(dataset, {}).setdefault(label, []).append(value)
            line.append(f"{label}: {value[0]:.3f}/{value[1]:.3f} ({len(np.unique(s)) - 1})")
        print(f"{Path(path).name} {name}: " + "; ".join(line), flush=True)
    print_means(rows)


if __name__ == "__main__":
    main()
