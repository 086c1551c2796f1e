"""Reading and writing 2-D images (TIFF, PNG, ...) for the command line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import imageio
import numpy as np
import tifffile

# Longest first, so "x.ome.tif" loses ".ome.tif", not only ".tif".
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png")


def image_stem(path: os.PathLike) -> str:
    """A file's name without its image suffix, for naming outputs after their input.

    Only known image suffixes are removed (case-insensitively); other names lose their last suffix
    (``Path.stem``). Dots elsewhere are kept: ``2024.01.05_A01.tif`` gives ``2024.01.05_A01``, so
    dated or versioned names stay apart.
    """
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _read(path: os.PathLike, tiff: Callable[[str], Any], other: Callable[[str], Any]) -> Any:
    """``tiff(path)`` for a TIFF, else ``other(path)``; a missing or unreadable file named in the error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        return (tiff if path.suffix.lower() in (".tif", ".tiff") else other)(str(path))
    except Exception as error:  # the readers raise many kinds; say which file failed
        raise ValueError(f"could not read image {path}: {error}") from error


def read_image(path: os.PathLike) -> np.ndarray:
    """Read a TIFF (with tifffile) or any other format imageio knows, as a numpy array."""
    return _read(path, lambda p: np.asarray(tifffile.imread(p)), lambda p: np.asarray(imageio.imread(p)))


def read_image_shape(path: os.PathLike) -> tuple:
    """The array shape ``read_image`` would return, from the file's header (no pixel data read)."""
    def tiff_shape(p: str) -> tuple:
        with tifffile.TiffFile(p) as tif:
            return tuple(tif.series[0].shape)
    return _read(path, tiff_shape, lambda p: tuple(imageio.v3.improps(p).shape))


# The TIFF description of every file this package writes: how it tells its own earlier outputs
# (which a re-run may replace) from a user's file of the same name (which it must not).
WRITTEN_BY = "written by impartial"


def written_by_impartial(path: os.PathLike) -> bool:
    """Whether ``path`` is a TIFF that ``write_tiff`` wrote (and nobody re-saved since)."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            return tif.pages[0].description == WRITTEN_BY
    except Exception:  # not a TIFF, unreadable, ...: somebody else's file
        return False


def write_tiff(path: os.PathLike, array: np.ndarray) -> None:
    """Write an array as a (compressed) TIFF, via a temporary file so no partial file is left."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tifffile.imwrite(str(tmp), array, compression="zlib", description=WRITTEN_BY, metadata=None)
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # a failed write (full disk, ...) leaves neither a partial file nor a changed one
            tmp.unlink()
