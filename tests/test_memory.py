"""impartial_core.memory: freed heap pages go back to the operating system."""
import json
import subprocess
import sys

import pytest

from impartial_core import memory

# Run in a fresh interpreter: what the heap holds after the rest of the suite (its free lists, the
# mmap threshold) decides how much a plain free() already returns, so the same steps in the test
# process measure the suite's history rather than the trim.
_FRAGMENTED_HEAP = r"""
import json, resource
import numpy as np
from impartial_core import memory

def resident_mb():
    with open("/proc/self/statm") as fd:
        return int(fd.read().split()[1]) * resource.getpagesize() / 2**20

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
asked = memory.release_free_memory()
print(json.dumps(dict(before=before, freed_only=freed_only, after=resident_mb(), asked=asked, kept=len(kept))))
"""


def test_freed_arrays_leave_the_process():
    """Arrays from the heap, freed between arrays that stay, keep their pages resident until the
    heap is trimmed: what a job over many image sets does to its memory."""
    if memory._malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim (not glibc)")
    result = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["asked"]
    assert measured["after"] < measured["freed_only"] - 100, measured


def test_without_malloc_trim_nothing_is_asked(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False
