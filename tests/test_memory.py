"""impartial_core.memory: freed heap pages go back to the operating system."""
import resource

import numpy as np
import pytest

from impartial_core import memory


def resident_mb() -> float:
    with open("/proc/self/statm") as fd:
        pages = int(fd.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def test_freed_arrays_leave_the_process():
    """Arrays from the heap, freed between arrays that stay, keep their pages resident until the
    heap is trimmed: what a job over many image sets does to its memory."""
    if memory._malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim (not glibc)")
    # freeing a large (mmapped) block raises glibc's mmap threshold above the arrays below, as the
    # first image sets of a job do, so that they come from the heap
    np.ones(24 * 2**20 // 8).sum()
    freed, kept = [], []
    for _ in range(150):
        freed.append(np.ones(2**20 // 8))      # 1 MB, touched
        kept.append(np.ones(512))              # 4 kB between them: the heap cannot shrink from its top
    before = resident_mb()
    del freed
    freed_only = resident_mb()
    assert memory.release_free_memory()
    after = resident_mb()
    assert len(kept) == 150  # (kept alive until here)
    assert after < freed_only - 100, (before, freed_only, after)


def test_without_malloc_trim_nothing_is_asked(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False
