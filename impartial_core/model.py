"""ImPartialModel: a trained network with everything needed to apply it and to check it fits.

This is the one object the command line and the CellProfiler module use: train it from raw images
and scribbles, predict probability maps and objects, save it to and load it from a model file.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from . import __version__
from .config import (InstanceConfig, NetworkConfig, TaskSpec, TrainingConfig, from_dict, task_from_dict, to_dict)
from .devices import resolve_device
from .instances import Objects, segment
from .model_io import ModelFileError, read_model_file, read_model_metadata, write_model_file
from .network import ImPartialNet
from .normalization import CLIP, HIGH_PERCENTILE, LOW_PERCENTILE, as_channels_first, normalize
from .prediction import TaskMaps, predict_image
from .training import ProgressCallback, train


# Settings of how a training step is executed, not of what it learns (the CUDA-graph step's losses
# equal the eager step's: benchmarks/results/gpu.md). Left out of the fingerprint, so that a model
# saved before such a setting existed is still recognised and reused instead of trained again.
NOT_IN_FINGERPRINT = frozenset({"cuda_graphs"})


def training_fingerprint(images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], *configs: Any) -> str:
    """A SHA-256 over the training images, scribbles and settings: the identity of a training run.

    Equal fingerprints mean equal inputs; the weights are equal too when the iteration limit (not
    the time budget, which depends on the machine's speed) ended training.
    """
    digest = hashlib.sha256()
    for array in list(images) + list(scribbles):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    for config in configs:
        data = to_dict(config) if hasattr(config, "__dataclass_fields__") else config
        data = {k: v for k, v in data.items() if k not in NOT_IN_FINGERPRINT}
        digest.update(json.dumps(data, sort_keys=True).encode())
    return digest.hexdigest()


def _network_for_weights(network: NetworkConfig, tasks: Sequence[TaskSpec], state: Dict[str, torch.Tensor],
                         path: os.PathLike) -> ImPartialNet:
    """The network a model file describes, with its weights; a ModelFileError naming ``path`` if they differ.

    The shapes are compared on the meta device first (nothing is allocated there), so metadata that
    describes a network far larger than the weights stored beside it is refused before it is built.
    """
    try:
        with torch.device("meta"):
            described = {k: tuple(v.shape) for k, v in ImPartialNet(network, tasks).state_dict().items()}
        stored = {k: tuple(v.shape) for k, v in state.items()}
        if described != stored:
            differing = sorted(k for k in set(described) | set(stored) if described.get(k) != stored.get(k))
            raise ValueError(f"{len(differing)} tensor(s) differ, e.g. {differing[0]}: "
                             f"{described.get(differing[0])} described, {stored.get(differing[0])} stored")
        net = ImPartialNet(network, tasks)
        net.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the weights do not match the network described in its metadata ({error})") from error
    return net.eval()


@dataclass
class ImPartialModel:
    """A trained ImPartial network, its tasks, channels, thresholds and provenance."""

    net: ImPartialNet
    thresholds: Dict[str, float]
    channel_names: Tuple[str, ...] = ()
    training: Optional[TrainingConfig] = None
    fingerprint: str = ""
    training_summary: Dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(
        cls,
        images: Sequence[np.ndarray],
        scribbles: Sequence[np.ndarray],
        tasks: Sequence[TaskSpec],
        network: Optional[NetworkConfig] = None,
        config: TrainingConfig = TrainingConfig(),
        channel_names: Sequence[str] = (),
        progress: Optional[ProgressCallback] = None,
        start_from: Optional["ImPartialModel"] = None,
    ) -> "ImPartialModel":
        """Train from raw images ((H, W) or (C, H, W), any dtype) and uint8 scribble images.

        ``start_from`` fine-tunes an existing model (its network shape and tasks must match).
        """
        channels_first = [as_channels_first(im, source=f"training image {i + 1}") for i, im in enumerate(images)]
        n_channels = channels_first[0].shape[0] if channels_first else 1
        for i, im in enumerate(channels_first):
            if im.shape[0] != n_channels:
                raise ValueError(f"training image {i + 1} has {im.shape[0]} channel(s), the first one has {n_channels}")
        initial_state = None
        if start_from is not None:
            start_from.check_compatible(n_channels, [t.name for t in tasks])
            start_from.check_same_tasks(tasks)
            network = start_from.net.network
            initial_state = start_from.net.state_dict()
        network = network or NetworkConfig(n_channels=n_channels)
        if network.n_channels != n_channels:
            raise ValueError(f"the network expects {network.n_channels} channel(s) but the images have {n_channels}")
        fingerprint = cls.fingerprint_for(channels_first, scribbles, tasks, network, config, start_from)
        result = train([normalize(im) for im in channels_first], list(scribbles), tasks, network, config, progress, initial_state)
        last = result.history[-1] if result.history else {}
        summary = {
            "iterations": result.iterations,
            "elapsed_s": round(result.elapsed_s, 2),
            "stopped_because": result.stopped_because,
            "best_validation_loss": result.best_validation,
            "final_losses": {k: v for k, v in last.items() if k not in ("iteration", "elapsed_s")},
            "n_images": len(images),
            "n_scribbled_pixels": int(sum(int((s > 0).sum()) for s in scribbles)),
            "loss_curve": [[h["iteration"], round(h["total"], 5)] for h in result.history[:: max(1, len(result.history) // 200)]],
            "fine_tuned_from": start_from.fingerprint if start_from else None,
        }
        return cls(result.net.cpu(), result.thresholds, tuple(channel_names), config, fingerprint, summary)

    @staticmethod
    def fingerprint_for(
        images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], tasks: Sequence[TaskSpec],
        network: NetworkConfig, config: TrainingConfig, start_from: Optional["ImPartialModel"] = None,
    ) -> str:
        """The fingerprint ``train`` would give a model of these inputs: the cache key of callers
        that want to reuse a model file instead of training again."""
        channels_first = [as_channels_first(im) for im in images]
        return training_fingerprint(channels_first, scribbles, network, config, {
            "tasks": [to_dict(t) for t in tasks], "start_from": start_from.fingerprint if start_from else ""})

    # ------------------------------------------------------------------ properties
    @property
    def tasks(self) -> Tuple[TaskSpec, ...]:
        return self.net.tasks

    @property
    def task_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.net.tasks)

    @property
    def n_channels(self) -> int:
        return self.net.network.n_channels

    def check_compatible(self, n_channels: int, task_names: Optional[Sequence[str]] = None, source: str = "the model") -> None:
        """Refuse images or a pipeline that do not match what the model was trained on."""
        if n_channels != self.n_channels:
            names = f" ({', '.join(self.channel_names)})" if self.channel_names else ""
            raise ModelFileError(f"{source} was trained on {self.n_channels} channel(s){names} but {n_channels} channel(s) were given")
        if task_names is not None and set(task_names) != set(self.task_names):
            raise ModelFileError(f"{source} segments {' + '.join(self.task_names)}, but {' + '.join(task_names)} was asked for")

    def check_same_tasks(self, tasks: Sequence[TaskSpec]) -> None:
        """Refuse to fine-tune with tasks that differ from the model's in more than their names.

        A head's weights belong to what it learnt: nuclei reconstructed from DAPI are not nuclei
        from another channel, and a scribble class cannot change sides.
        """
        mine = {t.name: t for t in self.tasks}
        for task in tasks:
            base = mine[task.name]
            if task != base:
                differ = [f"{f.name} {getattr(base, f.name)} (asked: {getattr(task, f.name)})"
                          for f in fields(TaskSpec) if getattr(base, f.name) != getattr(task, f.name)]
                raise ModelFileError(f"the model's {task.name} task was trained with {', '.join(differ)}; fine-tune "
                                     f"with the same nuclear channel and scribble classes, or train a new model")

    # ------------------------------------------------------------------ use
    def predict(self, image: np.ndarray, flips: bool = False, reconstruct: bool = False,
                tile_size: Optional[int] = None, device: str = "auto") -> Dict[str, TaskMaps]:
        """Probability and uncertainty maps per task for a raw (H, W) or (C, H, W) image."""
        channels_first = as_channels_first(image)
        self.check_compatible(channels_first.shape[0])
        dev = resolve_device(device)
        net = self.net.to(dev)
        tile = tile_size or (1024 if dev.type == "cuda" else 512)
        try:
            return predict_image(net, normalize(channels_first), tile_size=tile, flips=flips, reconstruct=reconstruct, device=dev)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if tile <= 128:
                raise RuntimeError("the GPU ran out of memory even with 128-pixel tiles; set the device to CPU")
            return self.predict(image, flips, reconstruct, tile // 2, device)

    def segment(self, maps: Dict[str, TaskMaps], config: InstanceConfig = InstanceConfig()) -> Objects:
        """Objects (nuclei, cells, cytoplasm) from this model's probability maps."""
        return segment({k: m.foreground_probability for k, m in maps.items()}, self.thresholds, config)

    # ------------------------------------------------------------------ files
    def metadata(self) -> Dict[str, Any]:
        return {
            "package_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "network": to_dict(self.net.network),
            "tasks": [to_dict(t) for t in self.tasks],
            "channels": {"count": self.n_channels, "names": list(self.channel_names)},
            "normalization": {"method": "percentile", "low": LOW_PERCENTILE, "high": HIGH_PERCENTILE, "clip": CLIP, "per_image": True, "per_channel": True},
            "thresholds": self.thresholds,
            "training": to_dict(self.training) if self.training else None,
            "training_data_fingerprint": self.fingerprint,
            "training_summary": self.training_summary,
        }

    def save(self, path: os.PathLike, overwrite: bool = False) -> None:
        """Write the model file atomically (see ``model_io.write_model_file``)."""
        write_model_file(path, self.net.state_dict(), self.metadata(), overwrite=overwrite)

    @classmethod
    def load(cls, path: os.PathLike) -> "ImPartialModel":
        """Read a model file; refuses files that are corrupt or not ImPartial models."""
        state, meta = read_model_file(path)
        try:
            network = from_dict(NetworkConfig, meta["network"])
            tasks = [task_from_dict(t) for t in meta["tasks"]]
            training = from_dict(TrainingConfig, meta["training"]) if meta.get("training") else None
            thresholds = {str(k): float(v) for k, v in meta.get("thresholds", {}).items()}
            channel_names = tuple(str(name) for name in meta.get("channels", {}).get("names", []))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelFileError(f"{path}: its metadata is damaged or not understood ({error})") from error
        return cls(_network_for_weights(network, tasks, state, path), thresholds, channel_names, training,
                   meta.get("training_data_fingerprint", ""), meta.get("training_summary", {}))

    @staticmethod
    def read_metadata(path: os.PathLike) -> Dict[str, Any]:
        """Only the metadata (cheap check of a file before loading it: the weights are not read)."""
        return read_model_metadata(path)
