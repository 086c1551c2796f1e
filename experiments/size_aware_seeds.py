"""Touching nuclei cut only into pieces of a nucleus's size: one split depth for Vectra and MP6843?

    python experiments/size_aware_seeds.py DIR/calibrated_split_seed{0,1}_180s.npz

On the fold models' held-out maps that ``calibrated_split.py`` saves, the nuclear stain's seeds
are cut at necks 0.5 px deep (the Vectra traced cells' best) to 2 px (the MP6843 cells' best):
the shallow cut separates Vectra's touching stromal nuclei and cuts MP6843 nuclei in two. Here
each blob of the deep cut takes the shallowest cut whose pieces inside it are each at least
``alpha`` times a typical nucleus's area (pi r^2, r the nuclear radius measured in the stain), and
cells grow from those seeds as the default does. No ground truth is used until scoring.
"""
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from impartial_core import instances  # noqa: E402
from impartial_core.config import InstanceConfig  # noqa: E402
from impartial_core.nuclear_stain import nuclear_contrast  # noqa: E402
from calibrated_split import DEPTHS, held_out_maps, held_out_score, print_means  # noqa: E402

ALPHAS = (0.25, 0.4, 0.55, 0.7)


def size_aware(cuts: Dict[float, np.ndarray], typical_area: float, alpha: float) -> np.ndarray:
    """Per blob of the deepest cut, the pieces of the shallowest cut that are each >= alpha * typical_area."""
    deepest = cuts[max(cuts)]
    out = np.zeros_like(deepest)
    count = 0
    for index, box in enumerate(ndi.find_objects(deepest), start=1):
        if box is None:
            continue
        blob = deepest[box] == index
        chosen = None
        for depth in sorted(cuts):
            pieces = np.where(blob, cuts[depth][box], 0)
            numbers, areas = np.unique(pieces[pieces > 0], return_counts=True)
            if numbers.size > 1 and areas.min() >= alpha * typical_area:
                # Pixels of the blob no piece holds go to the nearest piece.
                _, (rows, cols) = ndi.distance_transform_edt(pieces == 0, return_indices=True)
                chosen = np.where(blob, pieces[rows, cols], 0)
                break
        if chosen is None:
            chosen = blob.astype(np.int32)
        numbers = np.unique(chosen[chosen > 0])
        renumbered = np.zeros(int(chosen.max()) + 1, dtype=np.int32)
        renumbered[numbers] = np.arange(count + 1, count + 1 + numbers.size)
        out[box][blob] = renumbered[chosen[blob]]
        count += numbers.size
    return out


def main() -> None:
    rows: Dict[str, Dict[str, List[float]]] = {}
    for path, name, test, p, t, channel, is_vectra in held_out_maps(sys.argv[1:]):
        _, radius = nuclear_contrast(channel, instances.NUCLEAR_STAIN_SIGMA)
        cuts = {h: instances.nuclei_from_channel(channel, InstanceConfig(split_h=h), instances.NUCLEAR_STAIN_SIGMA)
                for h in DEPTHS}
        seeds = {f"depth {h:g}": cut for h, cut in cuts.items()}
        seeds.update({f"size-aware, alpha {a:g}": size_aware(cuts, np.pi * radius ** 2, a) for a in ALPHAS})
        line = []
        for label, s in seeds.items():
            _, cells = instances.cells_from_seeds(s, p, t, p, InstanceConfig(), instances.PROPAGATION_REGULARIZATION)
            value = held_out_score(cells, test, is_vectra)
            rows.setdefault("Vectra" if is_vectra else "MP6843", {}).setdefault(label, []).append(value)
            line.append(f"{label}: {value[0]:.3f}/{value[1]:.3f}")
        print(f"{Path(path).name} {name} (radius {radius:.1f}): " + "; ".join(line), flush=True)
    print_means(rows)


if __name__ == "__main__":
    main()
