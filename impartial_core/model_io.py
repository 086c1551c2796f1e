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
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

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
