"""Giving freed memory back to the operating system between images.

A process that segments image after image (a CellProfiler job over a screen, ``impartial
predict`` over a folder) allocates and frees the same large arrays again and again. glibc's
allocator serves an array under its *mmap threshold* from its heaps and keeps the freed pages
there for reuse; and the threshold rises to the size of the largest block freed (up to 32 MB),
so after the first images most arrays of a 400 x 400 field come from the heaps. Those heaps
fragment: a job's resident memory grew from 551 MB to about 900 MB over its first 500 image
sets of whole cells (``python -m benchmarks.screen --task cells``), where CellProfiler's own
modules grew by 144 MB. ``malloc_trim`` returns every whole free page of the heaps to the
system, so that the memory a job holds between image sets is what it uses.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable, Optional


@functools.lru_cache(maxsize=None)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the allocator's free pages to the operating system; whether it could be asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
