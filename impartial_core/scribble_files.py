"""Scribble files kept by the CellProfiler module: one file per image set, in one folder.

When the scribbles are drawn in CellProfiler, the module keeps them in a folder of its own, one
file per image set, named after the image's file: ``<image stem>_scribbles.tif`` (uint8, the usual
values: 0 unannotated, 1 background, 2 nucleus, 3 cytoplasm, 4 split stroke between touching
objects). Headless runs, cluster jobs and the command line read exactly what was drawn. A file made
in Fiji or napari and dropped in the folder under that name (8- or 16-bit labels with these values)
is read the same way. An image set without a file has no scribbles.

Writing goes to a temporary file that is then renamed over the old one (never a half-written file),
and an existing file with other scribbles is first kept as a dated backup next to it
(``<image stem>_scribbles.<YYYYmmdd-HHMMSS>.bak.tif``), as model files are: a stroke is never lost
to a Save.
"""
from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from impartial_core.imageio import image_stem, read_image, write_tiff
from impartial_core.scribbles import validate_scribbles

PathLike = Union[str, os.PathLike]

#: what follows the image's stem in its scribble file's name
SCRIBBLE_FILE_SUFFIX = "_scribbles.tif"


def scribble_file_name(image_file: PathLike) -> str:
    """The scribble file's name for an image file: ``<image stem>_scribbles.tif``.

    ``image_file`` may be a path or a bare name; its folder does not matter, and known image
    suffixes (``.ome.tif``, ``.tiff``, ``.png``, ...) are dropped (see :func:`image_stem`).
    """
    name = Path(image_file).name
    if not name:
        raise ValueError(f"cannot name a scribble file after {str(image_file)!r}: it has no file name")
    return image_stem(name) + SCRIBBLE_FILE_SUFFIX


def scribble_file_path(folder: PathLike, image_file: PathLike) -> Path:
    """Where the scribbles of ``image_file`` are kept in ``folder``."""
    return Path(folder) / scribble_file_name(image_file)


def read_scribble_file(path: PathLike, image_shape: Sequence[int]) -> Optional[np.ndarray]:
    """Read a scribble file, or None if there is none (the image set has no scribbles).

    Parameters
    ----------
    path : the scribble file (see :func:`scribble_file_path`).
    image_shape : ``(H, W)`` of the image it annotates.

    Returns
    -------
    uint8 array ``(H, W)`` with values in :data:`~impartial_core.scribbles.SCRIBBLE_VALUES`, or None
    when ``path`` does not exist.

    Raises
    ------
    ValueError
        The file cannot be read, is not a 2-D label image of that shape, or holds other values;
        the message names the file.
    """
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        raise ValueError(f"scribble file {path} is a folder, not an image")
    raw = np.asarray(read_image(path))
    return validate_scribbles(raw, image_shape, f"scribble file {path}")


def dated_backup_path(path: PathLike, when: Optional[datetime.datetime] = None) -> Path:
    """A free name for a backup of ``path``: ``<stem>.<YYYYmmdd-HHMMSS>[-N].bak<suffix>``, same folder.

    The suffix is the file's image suffix (``.tif``, ``.ome.tif``, ...) or else its last suffix
    (``.safetensors``), so the backup opens in the same programs as the file.
    """
    path = Path(path)
    stem = image_stem(path.name)
    suffix = path.name[len(stem):]
    stamp = (when or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{stem}.{stamp}.bak{suffix}")
    n = 1
    while backup.exists():
        backup = path.with_name(f"{stem}.{stamp}-{n}.bak{suffix}")
        n += 1
    return backup


def keep_dated_backup(path: PathLike, when: Optional[datetime.datetime] = None) -> Optional[Path]:
    """Copy an existing file to :func:`dated_backup_path` before it is replaced.

    Returns the backup's path, or None when ``path`` does not exist (nothing to keep).

    Raises
    ------
    OSError
        The copy failed; the caller must then not replace ``path``.
    """
    path = Path(path)
    if not path.exists():
        return None
    backup = dated_backup_path(path, when)
    shutil.copy2(path, backup)
    return backup


def write_scribble_file(path: PathLike, scribbles: np.ndarray,
                        image_shape: Optional[Sequence[int]] = None) -> Tuple[bool, Optional[Path]]:
    """Write scribbles to their file, keeping any different earlier file as a dated backup.

    Parameters
    ----------
    path : the scribble file; its folder must exist.
    scribbles : 2-D array of values in :data:`~impartial_core.scribbles.SCRIBBLE_VALUES`.
    image_shape : ``(H, W)`` of the image they annotate, checked when given.

    Returns
    -------
    (written, backup) : whether the file was written (False when it already held exactly these
        scribbles), and the backup of the earlier file (None if there was none, or nothing changed).

    Raises
    ------
    ValueError
        Bad scribbles, a missing folder, or a failed write; messages name the file. A failed write
        leaves the earlier file as it was.
    """
    path = Path(path)
    source = f"scribbles for {path}"
    array = np.asarray(scribbles)
    shape = tuple(image_shape) if image_shape is not None else np.squeeze(array).shape
    checked = validate_scribbles(array, shape, source)
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"cannot save the scribble file {path}: the folder {folder} does not exist")
    backup = None
    if path.exists():
        try:
            earlier = read_scribble_file(path, checked.shape)
        except ValueError:
            earlier = None  # unreadable or not scribbles: replaced, but kept as a backup first
        if earlier is not None and np.array_equal(earlier, checked):
            return False, None
        try:
            backup = keep_dated_backup(path)
        except OSError as error:
            raise ValueError(f"cannot keep a backup of the scribble file {path} ({error}); "
                             f"it was not replaced") from error
    try:
        write_tiff(path, checked)
    except Exception as error:  # tifffile and the OS raise many kinds; the earlier file is intact
        raise ValueError(f"could not write the scribble file {path}: {error}") from error
    return True, backup
