"""What a model's segmentation makes, named once for every front end.

A model of the nuclei task makes nuclei; of the cells task, cells (and, given a nuclear stain, the
nuclei found in it, the cells grown from them and their cytoplasm); of both, nuclei, cells grown
from them and their cytoplasm (cell minus nucleus), related parent to child. The command line writes
one label image per object set, the CellProfiler module adds one object set per name; both also say
how their few object settings become an :class:`~impartial_core.config.InstanceConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .config import InstanceConfig


@dataclass(frozen=True)
class ObjectSet:
    """One kind of object: its name (the attribute of ``instances.Objects``) and the task whose
    probability map it comes from. Cytoplasm comes from the cells task but has no threshold of
    its own (``has_threshold``)."""

    name: str
    task: str

    @property
    def has_threshold(self) -> bool:
        return self.name == self.task


NUCLEI = ObjectSet("nuclei", "nuclei")
CELLS = ObjectSet("cells", "cells")
CYTOPLASM = ObjectSet("cytoplasm", "cells")
#: nuclei found in the nuclear stain by a cells-only model: measured on the cell maps, no threshold learnt
STAINED_NUCLEI = ObjectSet("nuclei", "cells")

#: (parent, child) of the object sets made together: a cell holds its nucleus, cytoplasm belongs to both
RELATIONSHIPS = ((NUCLEI, CELLS), (NUCLEI, CYTOPLASM), (CELLS, CYTOPLASM))

#: the kinds of map each task gives, in output order
MAP_KINDS = ("probability", "uncertainty")


def object_sets(task_names: Sequence[str], nuclear_stain: bool = False) -> Tuple[ObjectSet, ...]:
    """The object sets a model of these tasks makes, in output order (cytoplasm needs nuclei and cells).

    ``nuclear_stain``: a cells-only model is given a nuclear-stain channel, whose nuclei seed the
    cells (``instances.segment``).
    """
    if tuple(task_names) == ("cells",) and nuclear_stain:
        return STAINED_NUCLEI, CELLS, CYTOPLASM
    sets = tuple(s for s in (NUCLEI, CELLS) if s.task in task_names)
    return sets + (CYTOPLASM,) if len(sets) == 2 else sets


def relationships(task_names: Sequence[str], nuclear_stain: bool = False) -> Tuple[Tuple[ObjectSet, ObjectSet], ...]:
    """The (parent, child) pairs recorded for a model of these tasks (none unless cytoplasm is made)."""
    made = {s.name: s for s in object_sets(task_names, nuclear_stain)}
    if "cytoplasm" not in made:
        return ()
    return tuple((made[parent.name], made[child.name]) for parent, child in RELATIONSHIPS)


def instance_config(threshold: Optional[float] = None, min_size: int = InstanceConfig.min_size,
                    split_touching: bool = True, fill_holes: bool = True, exclude_border: bool = False,
                    split_depth: float = InstanceConfig.split_h) -> InstanceConfig:
    """How objects are made from a front end's object settings.

    Parameters
    ----------
    threshold : probability threshold; None for the model's own (learnt) threshold.
    min_size : the smallest object kept, in pixels: nuclei and cells alike.
    split_touching : split touching nuclei (or, with cells only, touching cells).
    fill_holes : fill holes inside each object.
    exclude_border : drop objects touching the image border (a cell with its nucleus and cytoplasm).
    split_depth : where touching objects are cut by their shape alone (nuclei found in a nuclear
        stain; nuclei on a map that is not confident), how much thinner than both objects, in
        pixels, the neck between them must be (``InstanceConfig.split_h``).
    """
    return InstanceConfig(threshold=threshold, min_size=min_size, cell_min_size=min_size, fill_holes=fill_holes,
                          split_touching=split_touching, split_h=split_depth, exclude_border=exclude_border)
