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
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import __version__
from .anchoring import anchor_scribbles
from .config import LEARNT_BEFORE_THEY_EXISTED, InstanceConfig, NetworkConfig, TaskSpec, TrainingConfig, to_dict
from .devices import resolve_device
from .input_checks import check_usable
from .instances import Objects, segment
from .model_io import ModelFileError, ModelInfo, read_model_file, read_model_metadata, write_model_file
from .network import ImPartialNet
from .normalization import CLIP, HIGH_PERCENTILE, LOW_PERCENTILE, as_channels_first, normalize
from .prediction import TaskMaps, predict_image
from .training import ProgressCallback, train


# What version 0.1 hashed for the settings of how training runs (EXECUTION_TRAINING_FIELDS), at
# their defaults then. The fingerprint still hashes these constant values in their place, so the
# fingerprint of a model trained with the defaults is the one version 0.1 computed.
_EXECUTION_AS_HASHED = {"device": "auto", "mixed_precision": True, "compile_network": False}


def _hashed_training_settings(config: TrainingConfig, execution: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The training settings a fingerprint covers: the learnt ones (those added later only where
    they differ from ``LEARNT_BEFORE_THEY_EXISTED``), plus ``execution`` (default: the constant
    values above; a file of version 0.1 hashed its own)."""
    learnt = {name: value for name, value in config.learnt_settings().items()
              if not (name in LEARNT_BEFORE_THEY_EXISTED and value == LEARNT_BEFORE_THEY_EXISTED[name])}
    return {**learnt, **(_EXECUTION_AS_HASHED if execution is None else execution)}


def training_fingerprint(images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], *configs: Any) -> str:
    """A SHA-256 over the training images, scribbles and settings: the identity of a training run.

    Equal fingerprints mean equal inputs; the weights are equal too when the iteration limit (not
    the time budget, which depends on the machine's speed) ended training. A TrainingConfig among
    ``configs`` is hashed through ``_hashed_training_settings``: only what changes the learnt model.
    """
    return _fingerprints(images, scribbles, configs, [None])[0]


def _fingerprints(images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], configs: Sequence[Any],
                  executions: Sequence[Optional[Dict[str, Any]]]) -> List[str]:
    """The fingerprint for each way of hashing the execution settings; the pixels are hashed once."""
    digest = hashlib.sha256()
    for array in list(images) + list(scribbles):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    results = []
    for execution in executions:
        each = digest.copy()
        for config in configs:
            if isinstance(config, TrainingConfig):
                data = _hashed_training_settings(config, execution)
            else:
                data = to_dict(config) if hasattr(config, "__dataclass_fields__") else config
            each.update(json.dumps(data, sort_keys=True).encode())
        results.append(each.hexdigest())
    return results


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

        ``start_from`` fine-tunes an existing model (its network shape and tasks must match); the
        pixels it is confident about join the scribbles as anchors (:mod:`.anchoring`), so that the
        fine-tune keeps what it got right.
        """
        channels_first = [as_channels_first(im, source=f"training image {i + 1}") for i, im in enumerate(images)]
        n_channels = channels_first[0].shape[0] if channels_first else 1
        for i, im in enumerate(channels_first):
            if im.shape[0] != n_channels:
                raise ValueError(f"training image {i + 1} has {im.shape[0]} channel(s), the first one has {n_channels}")
        names = list(channel_names) if len(channel_names) == n_channels else None
        check_usable(channels_first, channel_names=names)  # before any work, and before a model file is touched
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
        strokes = list(scribbles)
        if start_from is not None:
            strokes = anchor_scribbles(start_from, channels_first, strokes, seed=config.seed, device=config.device)
        result = train([normalize(im) for im in channels_first], strokes, tasks, network, config, progress, initial_state)
        last = result.history[-1] if result.history else {}
        scribbled = int(sum(int((s > 0).sum()) for s in scribbles))
        summary = {
            "iterations": result.iterations,
            "elapsed_s": round(result.elapsed_s, 2),
            "stopped_because": result.stopped_because,
            "best_validation_loss": result.best_validation,
            "final_losses": {k: v for k, v in last.items() if k not in ("iteration", "elapsed_s")},
            "n_images": len(images),
            "n_scribbled_pixels": scribbled,
            "n_anchor_pixels": int(sum(int((a > 0).sum()) for a in strokes)) - scribbled,
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
        return ImPartialModel.fingerprints_for(images, scribbles, tasks, network, config, start_from)[0]

    @staticmethod
    def fingerprints_for(
        images: Sequence[np.ndarray], scribbles: Sequence[np.ndarray], tasks: Sequence[TaskSpec],
        network: NetworkConfig, config: TrainingConfig, start_from: Optional["ImPartialModel"] = None,
        saved_training: Optional[TrainingConfig] = None,
    ) -> Tuple[str, ...]:
        """Every fingerprint under which a saved model of these inputs is the same model.

        The first is ``fingerprint_for``'s. With ``saved_training`` (the training settings a model
        file records) a second hashes that file's own execution settings, as version 0.1 did: a
        file it wrote with other execution settings (e.g. on the CPU only) is still recognised.
        """
        channels_first = [as_channels_first(im) for im in images]
        executions: List[Optional[Dict[str, Any]]] = [None]
        if saved_training is not None:
            executions.append({name: getattr(saved_training, name) for name in _EXECUTION_AS_HASHED})
        extra = {"tasks": [to_dict(t) for t in tasks], "start_from": start_from.fingerprint if start_from else ""}
        return tuple(_fingerprints(channels_first, scribbles, [network, config, extra], executions))

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
                tile_size: Optional[int] = None, device: str = "auto", mixed_precision: bool = True
                ) -> Dict[str, TaskMaps]:
        """Probability and uncertainty maps per task for a raw (H, W) or (C, H, W) image (in
        bfloat16 where the device computes it natively, unless ``mixed_precision`` is False:
        :func:`.prediction.predict_image`)."""
        channels_first = as_channels_first(image)
        self.check_compatible(channels_first.shape[0])
        dev = resolve_device(device)
        net = self.net.to(dev)
        tile = tile_size or (1024 if dev.type == "cuda" else 512)
        try:
            return predict_image(net, normalize(channels_first), tile_size=tile, flips=flips, reconstruct=reconstruct,
                                 device=dev, mixed_precision=mixed_precision)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if tile <= 128:
                raise RuntimeError("the GPU ran out of memory even with 128-pixel tiles; set the device to CPU")
            return self.predict(image, flips, reconstruct, tile // 2, device, mixed_precision)

    def threshold(self, task: str, config: InstanceConfig = InstanceConfig()) -> float:
        """The probability threshold ``segment`` applies to a task's map: the configured one, else the
        one learnt at training (0.5 for a model that learnt none)."""
        from .instances import task_threshold

        return task_threshold(task, self.thresholds, config)

    def segment(self, maps: Dict[str, TaskMaps], config: InstanceConfig = InstanceConfig(),
                image: Optional[np.ndarray] = None, nuclear_channel: Optional[int] = None,
                split_strokes: Optional[np.ndarray] = None) -> Objects:
        """Objects (nuclei, cells, cytoplasm) from this model's probability maps.

        A cells-only model given the raw ``image`` and its ``nuclear_channel`` seeds its cells from
        the nuclei in that channel and returns nuclei and cytoplasm too (``instances.segment``).
        ``split_strokes`` (a boolean (H, W) mask of the image's split strokes) divide the objects they
        cross (``split_strokes.split_objects``).
        """
        from .split_strokes import split_objects

        objects = segment({k: m.foreground_probability for k, m in maps.items()}, self.thresholds, config,
                          image=image, nuclear_channel=nuclear_channel)
        return objects if split_strokes is None else split_objects(objects, split_strokes, config.min_size)

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
        info = ModelInfo.from_metadata(meta, path)
        return cls(_network_for_weights(info.network, info.tasks, state, path), info.thresholds, info.channel_names,
                   info.training, info.fingerprint, info.training_summary)

    @staticmethod
    def read_metadata(path: os.PathLike) -> Dict[str, Any]:
        """Only the metadata as stored (the weights are not read); ``read_model_info`` gives it typed."""
        return read_model_metadata(path)
