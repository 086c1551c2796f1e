"""Typed configuration of an ImPartial model: its tasks, network, training and instance settings.

One dataclass per concern, all plain data, so a model file can store them as JSON and the
CellProfiler module can build them from its settings.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .scribbles import BACKGROUND, CYTOPLASM, NUCLEUS


@dataclass(frozen=True)
class TaskSpec:
    """One segmentation objective: which scribble values are its foreground and background.

    ``reconstructed_channels`` are the input channels whose hidden pixels the task's mixture
    explains (the self-supervised loss); ``brighter_channels`` are those where foreground is
    assumed brighter than background (the paper's prior; a cytoplasm marker may be dark inside
    nuclei, so it is switchable per channel).
    """

    name: str
    foreground_values: Tuple[int, ...]
    background_values: Tuple[int, ...]
    reconstructed_channels: Tuple[int, ...] = (0,)
    brighter_channels: Tuple[int, ...] = (0,)
    n_foreground_components: int = 2
    n_background_components: int = 2

    @property
    def n_components(self) -> int:
        return self.n_foreground_components + self.n_background_components

    def __post_init__(self) -> None:
        overlap = set(self.foreground_values) & set(self.background_values)
        if overlap:
            raise ValueError(f"task {self.name!r}: scribble values {sorted(overlap)} are both foreground and background")
        if not set(self.brighter_channels) <= set(self.reconstructed_channels):
            raise ValueError(f"task {self.name!r}: brighter_channels must be among reconstructed_channels")
        if self.n_foreground_components < 1 or self.n_background_components < 1:
            raise ValueError(f"task {self.name!r}: needs at least one foreground and one background component")


def nuclei_task(nuclear_channel: int = 0) -> TaskSpec:
    """Nuclei: foreground = nucleus scribbles, background = outside cells and cytoplasm."""
    return TaskSpec("nuclei", (NUCLEUS,), (BACKGROUND, CYTOPLASM), (nuclear_channel,), (nuclear_channel,))


def cells_task(n_channels: int = 1) -> TaskSpec:
    """Whole cells: foreground = nucleus and cytoplasm scribbles, background = outside any cell."""
    channels = tuple(range(n_channels))
    return TaskSpec("cells", (NUCLEUS, CYTOPLASM), (BACKGROUND,), channels, channels)


TASK_CHOICES = ("nuclei", "cells", "nuclei+cells")


def tasks_for(choice: str, n_channels: int, nuclear_channel: int = 0) -> Tuple[TaskSpec, ...]:
    """The tasks for a user's choice of what to segment (``nuclei``, ``cells`` or ``nuclei+cells``)."""
    if choice not in TASK_CHOICES:
        raise ValueError(f"unknown task {choice!r}; choose one of {', '.join(TASK_CHOICES)}")
    if not 0 <= nuclear_channel < n_channels:
        raise ValueError(f"nuclear channel {nuclear_channel} does not exist in an image of {n_channels} channel(s)")
    tasks: List[TaskSpec] = []
    if "nuclei" in choice:
        tasks.append(nuclei_task(nuclear_channel))
    if "cells" in choice:
        tasks.append(cells_task(n_channels))
    return tuple(tasks)


# Limits of a network's shape. Far above any useful model (the module offers widths up to 128 and
# depth 2), low enough that a model file describing a network cannot exhaust memory when it is built:
# the deepest level has width * 2**depth filters, and its convolutions grow with that number squared.
MAX_CHANNELS = 1024
MAX_WIDTH = 256
MAX_DEPTH = 6
MAX_DEEPEST_WIDTH = 2048


@dataclass(frozen=True)
class NetworkConfig:
    """U-Net shape. Depth 2 and two 3x3 convolutions per level as in the paper; width is ours."""

    n_channels: int = 1
    width: int = 16
    depth: int = 2

    def __post_init__(self) -> None:
        for name, value, limit in (("n_channels", self.n_channels, MAX_CHANNELS), ("width", self.width, MAX_WIDTH),
                                   ("depth", self.depth, MAX_DEPTH)):
            if not isinstance(value, numbers.Integral) or not 1 <= value <= limit:
                raise ValueError(f"network {name} must be a whole number from 1 to {limit}, got {value!r}")
        if self.width * 2 ** self.depth > MAX_DEEPEST_WIDTH:
            raise ValueError(f"network width {self.width} with depth {self.depth} gives {self.width * 2 ** self.depth} "
                             f"filters at the deepest level; at most {MAX_DEEPEST_WIDTH} are allowed")


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. Defaults were chosen by time-to-accuracy measurements on 2 CPU cores."""

    patch_size: int = 128
    batch_size: int = 8
    learning_rate: float = 2e-3
    max_iterations: int = 2000
    time_budget_s: float = 180.0
    seed: int = 0
    # Loss weights (paper: 0.45 foreground, 0.45 background, 0.1 reconstruction).
    foreground_weight: float = 0.45
    background_weight: float = 0.45
    reconstruction_weight: float = 0.1
    sigma: float = 1.0
    # Blind-spot masking: one pixel per cell x cell block, replaced from a (2r+1)^2 window.
    blind_spot_cell: int = 8
    blind_spot_radius: int = 5
    scribble_bias: float = 0.6
    # Training patches see, per channel with probability 1/2, a smooth additive haze up to this
    # bright (normalised intensity; 0 = none), so that probabilities key on local contrast rather
    # than on absolute brightness, which a haze or uneven illumination shifts between fields.
    haze: float = 1.0
    validation_fraction: float = 0.1
    eval_every: int = 100
    patience: int = 8
    device: str = "auto"
    # The network in bfloat16 where the device computes it natively (CUDA; CPUs with AVX-512 BF16:
    # devices.bfloat16_native), its losses in float32: on 2 AMD EPYC (Zen 4) cores a default step
    # took 0.09 s against 0.16 s. Held out, at the 3-minute budget, level with float32 within the
    # seeds' spread (experiments/bfloat16_cpu.py). Elsewhere training runs in float32 whatever this says.
    mixed_precision: bool = True
    # torch.compile the network with its losses (on CUDA replayed as CUDA graphs): 10-20 s of compiling first,
    # then faster steps. Pays off only for long trainings of wide networks on a GPU (benchmarks/results/gpu.md).
    compile_network: bool = False
    # On CUDA, capture the (uncompiled) training step once as a CUDA graph and replay it: one launch per
    # iteration instead of hundreds, for the small default network whose step is bound by the host.
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.patch_size, numbers.Integral) or self.patch_size < 16 or self.patch_size % 4:
            raise ValueError(f"patch_size must be a multiple of 4 and at least 16, got {self.patch_size!r}")
        for name, least in (("batch_size", 1), ("max_iterations", 1), ("eval_every", 1), ("patience", 1), ("seed", 0),
                            ("blind_spot_cell", 2), ("blind_spot_radius", 1)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"{name} must be a whole number, at least {least}, got {value!r}")
        if 2 * self.blind_spot_radius >= self.patch_size:
            raise ValueError(f"blind_spot_radius must be less than half the patch_size ({self.patch_size}), "
                             f"got {self.blind_spot_radius}")
        for name in ("time_budget_s", "learning_rate", "sigma"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 < value <= float("inf"):
                raise ValueError(f"{name} must be positive, got {value!r}")
        weights = ("foreground_weight", "background_weight", "reconstruction_weight")
        for name in weights:
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be 0 or a positive number, got {value!r}")
        if not any(getattr(self, name) > 0 for name in weights):
            raise ValueError(f"{', '.join(weights[:-1])} and {weights[-1]} cannot all be 0: nothing would be learnt")
        if not isinstance(self.haze, numbers.Real) or not 0.0 <= self.haze < float("inf"):
            raise ValueError(f"haze must be 0 or a positive intensity, got {self.haze!r}")
        if not isinstance(self.scribble_bias, numbers.Real) or not 0.0 <= self.scribble_bias <= 1.0:
            raise ValueError(f"scribble_bias must be a fraction from 0 to 1, got {self.scribble_bias!r}")
        if not isinstance(self.validation_fraction, numbers.Real) or not 0.0 <= self.validation_fraction < 0.9:
            raise ValueError(f"validation_fraction must be in [0, 0.9), got {self.validation_fraction!r}")

    def learnt_settings(self) -> Dict[str, Any]:
        """The settings that change what a model learns (``LEARNT_TRAINING_FIELDS``), by name."""
        return {name: getattr(self, name) for name in LEARNT_TRAINING_FIELDS}


#: The TrainingConfig fields that change the learnt model: the training fingerprint covers these and
#: no others. Each field is in exactly one of the two lists (a test checks it), so a new setting must
#: be placed deliberately; a learnt one changes the fingerprint of every saved model.
LEARNT_TRAINING_FIELDS = (
    "patch_size", "batch_size", "learning_rate", "max_iterations", "time_budget_s", "seed", "foreground_weight",
    "background_weight", "reconstruction_weight", "sigma", "blind_spot_cell", "blind_spot_radius", "scribble_bias",
    "haze", "validation_fraction", "eval_every", "patience")
#: Learnt settings added after model files were first written, with the value that training had in
#: effect before each existed. A file without one was trained with that value; a fingerprint hashes
#: a setting only when it differs from it, so a training that equals an older version's keeps that
#: version's fingerprint (and its saved models are reused).
LEARNT_BEFORE_THEY_EXISTED = {"haze": 0.0}
#: The fields of how training runs (where, at what precision, compiled or replayed): a model trained
#: with other values of these is the same model for reuse, e.g. after unticking "Use a GPU".
EXECUTION_TRAINING_FIELDS = ("device", "mixed_precision", "compile_network", "cuda_graphs")


@dataclass(frozen=True)
class InstanceConfig:
    """How probability maps become objects. ``threshold=None`` uses the model's own threshold."""

    threshold: Optional[float] = None
    min_size: int = 20
    fill_holes: bool = True
    split_touching: bool = True
    split_h: float = 1.0
    exclude_border: bool = False
    cell_min_size: int = 20

    def __post_init__(self) -> None:
        threshold = self.threshold
        if threshold is not None and (not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a probability from 0 to 1 (or None for the model's own), got {threshold!r}")
        for name in ("min_size", "cell_min_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be a whole number of pixels, 0 or more, got {value!r}")
        if not isinstance(self.split_h, numbers.Real) or not 0 < self.split_h < float("inf"):
            raise ValueError(f"split_h must be a positive number, got {self.split_h!r}")


def to_dict(obj: Any) -> Dict[str, Any]:
    """A dataclass as JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(obj)


def task_from_dict(data: Dict[str, Any]) -> TaskSpec:
    """Rebuild a TaskSpec from JSON (lists become tuples), ignoring keys like ``from_dict``."""
    lists_as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in _mapping(TaskSpec, data).items()}
    return from_dict(TaskSpec, lists_as_tuples)


def from_dict(cls, data: Dict[str, Any]):
    """Rebuild a config dataclass, ignoring keys a newer version added and an older one lacks."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in _mapping(cls, data).items() if k in names})


def _mapping(cls, data: Any) -> Mapping[str, Any]:
    """``data`` itself if it is a JSON object; a TypeError naming ``cls`` otherwise (a damaged model file)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} settings must be a JSON object, got {type(data).__name__}")
    return data
