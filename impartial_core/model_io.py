"""Model files: safetensors weights plus JSON metadata. Never pickled, written atomically.

A model file is data, not code: it is read with safetensors, which parses a JSON header and raw
tensor bytes and cannot execute anything, so a file from a colleague or the internet is safe to
open. Writing goes to a temporary file in the same folder, flushed to disk, then linked into
place, so a crash, a kill or a full disk never leaves a half-written model or harms an older one.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .config import LEARNT_BEFORE_THEY_EXISTED, NetworkConfig, TaskSpec, TrainingConfig, from_dict, task_from_dict
from .problems import Problem

FORMAT = "impartial-model"
FORMAT_VERSION = 1
_METADATA_KEY = "impartial"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, corrupt, or does not fit the images at hand."""


def write_model_file(path: os.PathLike, state: Dict[str, torch.Tensor], metadata: Dict[str, Any], overwrite: bool = False) -> Path:
    """Write weights and metadata to ``path`` atomically.

    Parameters
    ----------
    path : destination file; its folder must exist.
    state : the network's state dict.
    metadata : JSON-serialisable description (format fields are added here).
    overwrite : replace an existing file. Without it an existing file is an error, so a model the
        user owns is never silently replaced.
    """
    from safetensors.torch import save

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ModelFileError(f"cannot save the model: the folder {folder} does not exist")
    if path.exists() and not overwrite:
        raise ModelFileError(f"the model file {path} already exists; choose another name or allow replacing it")
    header = {_METADATA_KEY: json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}, sort_keys=True)}
    payload = save({k: v.detach().cpu().contiguous() for k, v in state.items()}, metadata=header)
    try:
        # Not tempfile.mkstemp: its files are readable by their owner only, and a model is shared
        # like any output (cluster jobs of other users, a lab folder). os.open with mode 0o666
        # gives what the user's umask allows; O_EXCL keeps the name this call's own.
        tmp = str(folder / f".{path.name}.{secrets.token_hex(8)}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise ModelFileError(f"cannot save the model in {folder}: {error.strerror}") from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the name was taken meanwhile (e.g. by a parallel worker): never clobber.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ModelFileError(f"the model file {path} already exists; choose another name or allow replacing it")
            except OSError:
                if path.exists():
                    raise ModelFileError(f"the model file {path} already exists")
                os.replace(tmp, path)
    except OSError as error:
        raise ModelFileError(f"could not write the model file {path}: {error.strerror or error}; "
                             f"any earlier model file there is unchanged") from error
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_model_file(path: os.PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read (state dict, metadata) from a model file, refusing anything that is not one."""
    return _read(path, with_weights=True)


def read_model_metadata(path: os.PathLike) -> Dict[str, Any]:
    """Read only the metadata of a model file (the weights stay on disk), with the same checks."""
    return _read(path, with_weights=False)[1]


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about its model, read from its metadata (the weights stay on disk).

    Attributes
    ----------
    path : the file read.
    network : the network's shape (its ``n_channels`` is the number of input channels).
    tasks : the segmentation tasks the model learnt.
    channel_names : the names of the channels it was trained on, in order (may be empty).
    thresholds : the probability threshold learnt per task.
    training : the training settings (None in a model that was never trained).
    fingerprint : the fingerprint of the training images, scribbles and settings ("" if untrained).
    training_summary : iterations, time, losses and the like, as the training recorded them.
    package_version : the version of the package that wrote the file ("" if not recorded).
    """

    path: str
    network: NetworkConfig
    tasks: Tuple[TaskSpec, ...]
    channel_names: Tuple[str, ...] = ()
    thresholds: Dict[str, float] = field(default_factory=dict)
    training: Optional[TrainingConfig] = None
    fingerprint: str = ""
    training_summary: Dict[str, Any] = field(default_factory=dict)
    package_version: str = ""

    @classmethod
    def from_metadata(cls, metadata: Dict[str, Any], path: os.PathLike) -> "ModelInfo":
        """The typed form of a model file's metadata; a ModelFileError naming ``path`` if it is damaged."""
        try:
            network = from_dict(NetworkConfig, metadata["network"])
            tasks = tuple(task_from_dict(t) for t in metadata["tasks"])
            # a setting the file lacks was not there when it was written: training had its old value
            training = metadata.get("training")
            if isinstance(training, dict) and training:
                training = {**LEARNT_BEFORE_THEY_EXISTED, **training}
            training = from_dict(TrainingConfig, training) if training else None
            thresholds = {str(k): float(v) for k, v in (metadata.get("thresholds") or {}).items()}
            channels = metadata.get("channels") or {}
            names = tuple(str(name) for name in channels.get("names") or ())
            count = int(channels.get("count", network.n_channels))
            summary = metadata.get("training_summary") or {}
            if count != network.n_channels or not isinstance(summary, dict):
                raise ValueError(f"{count} channel(s) recorded for a network of {network.n_channels}")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ModelFileError(f"{path}: its metadata is damaged or not understood ({error})") from error
        return cls(str(path), network, tasks, names, thresholds, training,
                   str(metadata.get("training_data_fingerprint") or ""), summary,
                   str(metadata.get("package_version") or ""))

    @property
    def n_channels(self) -> int:
        return self.network.n_channels

    @property
    def task_names(self) -> Tuple[str, ...]:
        return tuple(task.name for task in self.tasks)

    @property
    def nuclear_channel(self) -> Optional[int]:
        """The channel (from 0) the nuclei task learnt from; None without a nuclei task."""
        nuclei = [task for task in self.tasks if task.name == "nuclei"]
        return nuclei[0].reconstructed_channels[0] if nuclei and nuclei[0].reconstructed_channels else None

    def problems_with(self, channel_names: Sequence[str], task_names: Optional[Sequence[str]] = None,
                      nuclear_channel: Optional[int] = None) -> List[Problem]:
        """How the inputs of a run differ from what the model was trained on.

        Parameters
        ----------
        channel_names : the channels the run gives, in order (names, or any placeholders: only
            their number matters when the model recorded no names).
        task_names : the tasks the run asks for; None to leave them unchecked.
        nuclear_channel : the channel (from 0) the run says holds the nuclear stain; None to
            leave it unchecked. Checked only with several channels.

        Returns
        -------
        Problems whose field is ``"channels"`` (kind ``"count"``: ``value`` is the model's
        number of channels; kind ``"order"``: ``value`` is the model's channel names),
        ``"nuclear_channel"`` (``value``: the model's, from 0) or ``"tasks"`` (``value``: the
        model's task names). Empty when the model fits.
        """
        given = list(channel_names)
        names = list(self.channel_names)
        listed = " (%s)" % ", ".join(names) if names else ""
        if len(given) != self.n_channels:
            return [Problem("channels", "count",
                            f"the model file {self.path} was trained on {self.n_channels} channel(s){listed}, but "
                            f"{len(given)} channel image(s) are given", self.n_channels)]
        problems = []
        if names and sorted(names) == sorted(given) and names != given:
            problems.append(Problem("channels", "order",
                                    f"the model file {self.path} was trained on the channels {', '.join(names)} in this "
                                    f"order, but the channels given are {', '.join(given)}", tuple(names)))
        learnt = self.nuclear_channel
        if nuclear_channel is not None and len(given) > 1 and learnt is not None and learnt != nuclear_channel:
            name = " (%s)" % names[learnt] if learnt < len(names) else ""
            problems.append(Problem("nuclear_channel", "differs",
                                    f"the model file {self.path} learnt nuclei from channel {learnt + 1}{name}, but "
                                    f"channel {nuclear_channel + 1} is given as the nuclear stain", learnt))
        if task_names is not None and sorted(task_names) != sorted(self.task_names):
            problems.append(Problem("tasks", "differs",
                                    f"the model file {self.path} segments {' + '.join(self.task_names)}, but "
                                    f"{' + '.join(task_names)} is asked for", self.task_names))
        return problems


def read_model_info(path: os.PathLike) -> ModelInfo:
    """The typed metadata of a model file (the weights are not read): a cheap check before loading."""
    return ModelInfo.from_metadata(read_model_metadata(path), path)


def _read(path: os.PathLike, with_weights: bool) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"the model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()} if with_weights else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{path} is not a readable ImPartial model file (expected safetensors; the file may be truncated, "
            f"corrupted or of another kind): {error}") from error
    try:
        metadata = json.loads(header[_METADATA_KEY])
    except (KeyError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path} holds tensors but no ImPartial metadata; it was not written by ImPartial") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ModelFileError(f"{path} is not an ImPartial model file (format {found!r})")
    try:
        version = int(metadata.get("format_version", 0))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: its model format version {metadata['format_version']!r} is not a number") from error
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer ImPartial (model format {version}); "
                             f"update the impartial package to read it")
    return state, metadata
