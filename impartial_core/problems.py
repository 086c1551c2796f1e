"""Problems with a user's input, as data: each front end names the setting or option at fault.

A check in this package returns a list of :class:`Problem`; the CellProfiler module turns each into
a ``ValidationError`` on the setting that ``Problem.field`` designates, the command line into an
error naming its option. The library says what is wrong; the front end says where to fix it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    Attributes
    ----------
    field : which input is at fault, one of the names the returning check documents (e.g.
        ``"nucleus_value"``, ``"scribbles"``, ``"channels"``).
    kind : what is wrong, a short identifier (e.g. ``"same_value"``, ``"no_scribbles"``).
    message : the explanation for the user, in the library's words (no front end's setting names).
    value : what the input should be, where one value would do (e.g. the nuclear channel a model
        learnt from, counted from 0); otherwise None.
    """

    field: str
    kind: str
    message: str
    value: Any = None


class InputError(ValueError):
    """Raised where a check's problems cannot be returned; ``problems`` holds them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problem.message for problem in self.problems))

    @property
    def first(self) -> Problem:
        return self.problems[0]
