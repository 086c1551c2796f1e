"""The model store: where trained models are kept, reused and replaced, for every front end.

One policy for the CellProfiler module and the command line alike:

- **Reuse by fingerprint.** A training run is identified by the fingerprint of its images,
  scribbles and learnt settings (``ImPartialModel.fingerprints_for``). When the destination file
  already holds a model of that fingerprint it is loaded instead of training again; a model
  trained earlier in the same process is reused from memory.
- **Dated backups.** A file that holds a *different* model is never silently replaced: it is
  copied to ``<name>.<YYYYmmdd-HHMMSS>.bak.safetensors`` beside it first (as scribble files are:
  ``scribble_files.keep_dated_backup``).
- **Atomic writes.** Files are written by ``model_io.write_model_file``: a crash never leaves half
  a model, and the earlier file stays whole until the new one is complete.

Models in memory are kept in a bounded, thread-safe least-recently-used cache, owned by the
:class:`ModelStore` object (one per CellProfiler module class, one per command).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, Sequence, Tuple, Union

import numpy as np

from .config import NetworkConfig, TaskSpec, TrainingConfig
from .model import ImPartialModel
from .model_io import ModelFileError, ModelInfo, read_model_info
from .scribble_files import keep_dated_backup

log = logging.getLogger(__name__)

#: Seconds a refinement (a fine-tune after new strokes, :meth:`ModelStore.refine`) trains at most.
REFINE_BUDGET_S = 20.0
#: A refinement's learning rate, as a fraction of the training's. Adam's first steps move every
#: weight by about the learning rate whatever its gradient: from a trained model, the full rate
#: undid part of it. Measured on MIBI (base: 150 iterations on n100 of images 0, 3, 5; image 0's
#: n200 strokes added; held-out image 7, F1@0.5 0.825 before): the full rate gave 0.798 / 0.783
#: after 15 / 40 iterations (4-5 matched nuclei lost), a quarter of it 0.826 / 0.819 (2 lost).
REFINE_LEARNING_RATE_FACTOR = 0.25


def _file_stamp(path: os.PathLike) -> Tuple[str, int, int]:
    """What identifies a file's content for the caches: its absolute path, modification time and size."""
    stat = os.stat(path)
    return (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


class _Bounded:
    """A thread-safe mapping that keeps the ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache needs room for at least one entry, got {size}")
        self.size = size
        self._entries: "OrderedDict[Hashable, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class TrainingRequest:
    """Everything that decides a trained model: the inputs of ``ImPartialModel.train``.

    ``images`` are raw (H, W) or (C, H, W) arrays; ``scribbles`` uint8 images in the scribble
    convention; ``start_from`` a model to fine-tune (its network shape is then used).
    """

    images: Sequence[np.ndarray]
    scribbles: Sequence[np.ndarray]
    tasks: Sequence[TaskSpec]
    network: NetworkConfig
    training: TrainingConfig
    start_from: Optional[ImPartialModel] = None
    channel_names: Sequence[str] = ()

    def fingerprints(self, saved: Optional[ModelInfo] = None) -> Tuple[str, ...]:
        """The fingerprint a model of this request gets, then any other under which ``saved`` (a
        model file's information) is the same model (see ``ImPartialModel.fingerprints_for``)."""
        return ImPartialModel.fingerprints_for(self.images, self.scribbles, self.tasks, self.network, self.training,
                                               self.start_from, saved.training if saved is not None else None)


@dataclass(frozen=True)
class Stored:
    """A model the store gave, where it came from (``"memory"``, ``"file"`` or ``"trained"``) and
    the dated backup of the different model it replaced, if any."""

    model: ImPartialModel
    source: str
    backup: Optional[Path] = None


class ModelStore:
    """Model files and the models kept in memory: load, reuse by fingerprint, save with backups.

    Parameters
    ----------
    max_models : how many models to keep in memory (trained ones by fingerprint, loaded ones by
        file); the least recently used goes first.
    logger : where to say what was reused, loaded, trained, saved or backed up (default: this
        module's logger); a front end may pass its own (e.g. one that prefixes its name).
    """

    def __init__(self, max_models: int = 4, logger: Optional[Union[logging.Logger, logging.LoggerAdapter]] = None) -> None:
        self._models = _Bounded(max_models)
        self._infos = _Bounded(64)
        self.log = logger or log

    def clear(self) -> None:
        """Forget every model and file kept in memory (the files stay)."""
        self._models.clear()
        self._infos.clear()

    # ------------------------------------------------------------------ reading
    def info(self, path: os.PathLike) -> ModelInfo:
        """A model file's information, read once per version of the file (a GUI checks it on every edit)."""
        try:
            key = _file_stamp(path)
        except OSError as error:
            raise ModelFileError(f"the model file {path} does not exist or cannot be read ({error.strerror})") from error
        info = self._infos.get(key)
        if info is None:
            info = read_model_info(path)
            self._infos.put(key, info)
        return info

    def load(self, path: os.PathLike) -> ImPartialModel:
        """The model of a file, read once per version of the file."""
        try:
            key = ("file",) + _file_stamp(path)
        except OSError as error:
            raise ModelFileError(f"the model file {path} does not exist or cannot be read ({error.strerror})") from error
        model = self._models.get(key)
        if model is None:
            model = ImPartialModel.load(path)
            self.log.info("loaded the model %s", path)
            self._models.put(key, model)
        return model

    def holds(self, path: os.PathLike, request: TrainingRequest) -> bool:
        """Whether ``path`` holds a model of this request (an unreadable file holds none)."""
        try:
            saved = self.info(path)
        except ModelFileError:
            return False
        return bool(saved.fingerprint) and saved.fingerprint in request.fingerprints(saved)

    # ------------------------------------------------------------------ training and writing
    def train_or_reuse(self, path: os.PathLike, request: TrainingRequest,
                       train: Optional[Callable[[TrainingRequest], ImPartialModel]] = None) -> "Stored":
        """The model of ``request``, saved at ``path``: reused from memory or the file when they hold
        it, trained (by ``train``, default ``ImPartialModel.train``) and saved otherwise.

        A different model at ``path`` is kept as a dated backup before the new one replaces it.
        """
        fingerprint = request.fingerprints()[0]
        key = ("trained", fingerprint)
        model = self._models.get(key)
        if os.path.isfile(path) and self.holds(path, request):
            if model is not None:
                self.log.info("using the model trained earlier in this session (%s)", fingerprint[:12])
                return Stored(model, "memory")
            model = self.load(path)
            self.log.info("%s holds a model trained on these images, scribbles and settings: not training", path)
            self._models.put(key, model)
            return Stored(model, "file")
        source = "memory"
        if model is None:
            model = (train or _train)(request)
            self._models.put(key, model)
            source = "trained"
        return Stored(model, source, self.save(model, path))

    def refine(self, path: os.PathLike, request: TrainingRequest, start_from: ImPartialModel,
               train: Optional[Callable[[TrainingRequest], ImPartialModel]] = None,
               budget_s: float = REFINE_BUDGET_S) -> "Stored":
        """Fine-tune ``start_from`` on ``request``'s images and scribbles for at most ``budget_s``
        seconds (at ``REFINE_LEARNING_RATE_FACTOR`` of the learning rate), and keep the result as
        *the* model of ``request``.

        This is the loop of drawing in the editor: a few strokes are added, and the model learns
        them in seconds instead of training again from scratch. The refined model carries the
        fingerprint of ``request``, so a later :meth:`train_or_reuse` of the same images, scribbles
        and settings (a headless run of the pipeline, a cluster job) reuses it and does not train.
        It is saved at ``path`` like a trained model (a different model there is backed up first).
        """
        if start_from.task_names != tuple(t.name for t in request.tasks):
            raise ValueError(f"cannot refine a model of {' + '.join(start_from.task_names)} for "
                             f"{' + '.join(t.name for t in request.tasks)}")
        budget = dataclasses.replace(request.training, time_budget_s=min(budget_s, request.training.time_budget_s),
                                     learning_rate=request.training.learning_rate * REFINE_LEARNING_RATE_FACTOR)
        tuning = dataclasses.replace(request, training=budget, start_from=start_from, network=start_from.net.network)
        fingerprint = request.fingerprints()[0]
        refined = (train or _train)(tuning)
        summary = dict(refined.training_summary, refined_for=fingerprint)
        model = dataclasses.replace(refined, fingerprint=fingerprint, training=request.training,
                                    training_summary=summary)
        self._models.put(("trained", fingerprint), model)
        self.log.info("refined the model %s in %s s (%s iterations)", start_from.fingerprint[:12],
                      summary.get("elapsed_s"), summary.get("iterations"))
        return Stored(model, "trained", self.save(model, path))

    def save(self, model: ImPartialModel, path: os.PathLike) -> Optional[Path]:
        """Write ``model`` to ``path`` atomically; a file already there is first copied to a dated
        backup, whose path is returned (None when there was no file)."""
        path = Path(path)
        try:
            backup = keep_dated_backup(path)
        except OSError as error:
            raise ModelFileError(f"cannot keep a backup of {path} ({error.strerror or error}); the file is unchanged "
                                 f"and the new model was not saved") from error
        if backup is not None:
            self.log.warning("%s held a model trained on other data or settings; kept it as %s and replaced it "
                             "with the new model", path, backup)
        model.save(path, overwrite=backup is not None)
        self.log.info("saved the model to %s", path)
        return backup


def _train(request: TrainingRequest) -> ImPartialModel:
    return ImPartialModel.train(request.images, request.scribbles, request.tasks, request.network, request.training,
                                channel_names=request.channel_names, start_from=request.start_from)
