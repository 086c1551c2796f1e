"""Reading and writing 2-D images (TIFF, PNG, ...) for the command line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def read_image(path: os.PathLike) -> np.ndarray:
    """Read a TIFF (with tifffile) or any other format imageio knows, as a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(str(path)))
        import imageio

        return np.asarray(imageio.imread(str(path)))
    except Exception as error:  # the readers raise many kinds; say which file failed
        raise ValueError(f"could not read image {path}: {error}") from error


def write_tiff(path: os.PathLike, array: np.ndarray) -> None:
    """Write an array as a (compressed) TIFF, via a temporary file so no partial file is left."""
    import tifffile

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tifffile.imwrite(str(tmp), array, compression="zlib")
    os.replace(tmp, path)
