"""A user's scribble values: read back from a loaded image, mapped onto the convention, checked.

Users scribble with their own values (e.g. 5, 7 and 9, or what a paint program saved); a front end
says which value marks which class (:class:`ScribbleValues`), and the checks here say what is wrong
as :class:`~impartial_core.problems.Problem` lists, which the front end maps to its settings or
options:

- :func:`decode_scribbles`: the whole-number labels of an image a reader has rescaled (CellProfiler
  divides 8-bit images by 255 and 16-bit ones by 65535);
- :meth:`ScribbleValues.problems`: two classes given the same value;
- :meth:`ScribbleValues.unknown_values`: values in an image that no class is given;
- :func:`missing_classes`: a task without foreground or background scribbles in any image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..problems import InputError, Problem
from . import BACKGROUND, CYTOPLASM, NUCLEUS, SPLIT

#: the classes by their name in the user's words
CLASS_NAMES = {BACKGROUND: "background", NUCLEUS: "nucleus", CYTOPLASM: "cytoplasm", SPLIT: "split"}

#: readers' scale factors of integer images: none, 8-bit (CellProfiler divides by 255), 16-bit
_SCALES = (1.0, 255.0, 65535.0)


def decode_scribbles(data: np.ndarray, scale: Optional[float] = None) -> np.ndarray:
    """The whole-number labels of a grey-level scribble image, undoing a reader's rescaling.

    Parameters
    ----------
    data : (H, W) array, or (H, W, 3|4) whose colour channels are equal (a grey image saved as
        RGB). Integers are taken as they are; floats are multiplied by the first of ``scale``,
        1, 255 and 65535 that gives whole numbers (within 0.001) without rounding a label to 0.
    scale : the factor the reader divided the values by, when it says (CellProfiler records it as
        the image's ``scale``).

    Returns
    -------
    (H, W) int64 array.

    Raises
    ------
    InputError
        With one problem of field ``"scribbles"``: kind ``"colour"`` (a colour image) or
        ``"not_whole_numbers"`` (no factor gives whole numbers: a JPEG, or a rescaled image).
    """
    data = np.asarray(data)
    if data.ndim == 3:
        channels = min(3, data.shape[-1])
        if data.shape[-1] in (3, 4) and not np.all(data[..., :1] == data[..., :channels]):
            raise InputError([Problem(
                "scribbles", "colour",
                "the scribble image is a colour image; it must be a grey-level label image whose values are the "
                "background, nucleus and cytoplasm values")])
        data = data[..., 0]
    if data.dtype.kind in "iub":
        return data.astype(np.int64)
    factors = ([float(scale)] if scale else []) + list(_SCALES)
    for factor in factors:
        scaled = data.astype(np.float64) * factor
        rounded = np.round(scaled)
        # whole numbers, and no label rounded away (16-bit labels are within 0.001 of 0 unscaled)
        if np.all(np.abs(scaled - rounded) < 1e-3) and not np.any((rounded == 0) & (data != 0)):
            return rounded.astype(np.int64)
    raise InputError([Problem(
        "scribbles", "not_whole_numbers",
        "the scribble image does not hold whole-number labels (values like %s): save it as a grey-level image "
        "without compression loss (TIFF or PNG), not as a JPEG or a rescaled image" % np.unique(data)[:5].tolist())])


@dataclass(frozen=True)
class ScribbleValues:
    """Which value of a user's scribble image marks each class (0 always means "not annotated").

    ``cytoplasm`` matters only to tasks with cells (``uses_cytoplasm``): for nuclei alone,
    cytoplasm scribbles count as background, so a nuclei-only run reads the same images as a cells
    one, and a cytoplasm value equal to another class's yields to it. ``split`` marks split strokes
    (lines where touching objects meet); None reads no split strokes.
    """

    background: int = BACKGROUND
    nucleus: int = NUCLEUS
    cytoplasm: int = CYTOPLASM
    uses_cytoplasm: bool = True
    split: Optional[int] = SPLIT

    def classes(self) -> List[Tuple[str, int]]:
        """(field, value) of the classes whose values must differ, in the order the user gives them."""
        fields = [("background", self.background), ("nucleus", self.nucleus)]
        fields += [("cytoplasm", self.cytoplasm)] if self.uses_cytoplasm else []
        return fields + [("split", self.split)] if self.split is not None else fields

    def field_of(self, scribble_class: int) -> str:
        """The field (``background``, ``nucleus``, ``cytoplasm``) of a class of the convention."""
        return CLASS_NAMES[scribble_class]

    def value_of(self, scribble_class: int) -> int:
        """The user's value of a class of the convention."""
        return getattr(self, CLASS_NAMES[scribble_class])

    def mapping(self) -> Dict[int, int]:
        """User value -> the convention's class (for ``remap_scribbles``)."""
        values = {self.background: BACKGROUND, self.nucleus: NUCLEUS}
        if self.split is not None:
            values[self.split] = SPLIT
        if self.uses_cytoplasm:
            values[self.cytoplasm] = CYTOPLASM
        else:
            values.setdefault(self.cytoplasm, CYTOPLASM)
        return values

    def problems(self) -> List[Problem]:
        """Two classes given the same value: a problem (kind ``"same_value"``) on the second one's field."""
        seen: Dict[int, str] = {}
        problems = []
        for name, value in self.classes():
            if value < 1:
                problems.append(Problem(name, "not_positive", f"the {name} value must be 1 or more (0 means not "
                                                              f"annotated), got {value}"))
            elif value in seen:
                problems.append(Problem(name, "same_value", f"the {seen[value]} and {name} classes are both {value}; "
                                                            f"each class needs its own value", value))
            else:
                seen[value] = name
        return problems

    def unknown_values(self, labels: np.ndarray) -> Optional[Problem]:
        """Values of ``labels`` (decoded, integers) that are neither 0 nor a class's value.

        Returns a problem of field ``"scribbles"``, kind ``"unknown_values"``, whose ``value`` lists
        them (at most 10), or None. Negative values or values from 32768 up hint at a signed or
        32-bit file, which readers shift or rescale: the message then says how to save it.
        """
        unknown = sorted(set(np.unique(labels).tolist()) - set(self.mapping()) - {0})
        if not unknown:
            return None
        message = "the scribble image holds the value(s) %s, which are not the value of any class" % unknown[:10]
        if min(unknown) < 0 or max(unknown) >= 32768:
            message += ". " + SIGNED_FILE_HINT
        return Problem("scribbles", "unknown_values", message, tuple(unknown[:10]))

    def to_classes(self, labels: np.ndarray) -> np.ndarray:
        """The scribbles in the convention (uint8); an InputError if ``labels`` holds unknown values."""
        from . import remap_scribbles

        problem = self.unknown_values(labels)
        if problem is not None:
            raise InputError([problem])
        return remap_scribbles(labels, self.mapping())


#: How to save a scribble file that a reader cannot read back: signed 16-bit images are shifted by
#: 32768 (CellProfiler) and 32-bit integer images rescaled, so their label values are lost.
SIGNED_FILE_HINT = ("Save scribble images as unsigned 8- or 16-bit TIFF or PNG files: signed and 32-bit integer "
                    "images are shifted or rescaled when read")


def missing_classes(scribbles: Sequence[np.ndarray], tasks: Sequence) -> List[Problem]:
    """What the scribbles of all images together lack to train ``tasks``.

    Parameters
    ----------
    scribbles : scribble images in the convention (0 unannotated, 1..3 the classes).
    tasks : the ``TaskSpec`` of each task to train.

    Returns
    -------
    Problems of field ``"scribbles"``: one of kind ``"no_scribbles"`` when no image holds any
    scribble; otherwise one of kind ``"missing_class"`` per task and role (foreground or
    background) without scribbles, whose ``value`` is the tuple of classes that would do.
    """
    present = set()
    for image in scribbles:
        present.update(int(v) for v in np.unique(image))
    present.discard(0)
    if not present:
        return [Problem("scribbles", "no_scribbles",
                        f"none of the {len(scribbles)} image(s) has any scribble")]
    problems = []
    for task in tasks:
        for role, values in (("foreground", task.foreground_values), ("background", task.background_values)):
            if not present & set(values):
                names = " or ".join(CLASS_NAMES[v] for v in values)
                problems.append(Problem("scribbles", "missing_class",
                                        f"no {role} scribbles for the {task.name} task in any image: draw some {names}",
                                        tuple(values)))
    return problems
