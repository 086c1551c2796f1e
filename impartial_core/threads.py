"""How many CPU threads PyTorch may use in this process: what the process is allowed, shared fairly.

PyTorch starts one thread per core it sees. It follows the CPU affinity (``taskset``, many
schedulers), but not a cgroup CPU quota (Docker ``--cpus``, Kubernetes limits, systemd slices),
and it cannot know that sibling processes (CellProfiler's Analysis workers, several jobs on a
node) run beside it: each then runs a thread per core and they spin against each other. Measured
on 2 cores, two prediction jobs took 38.3 s together with the default threads against 24.1 s with
one thread each.

:func:`default_threads` is what the process may use: the user's ``OMP_NUM_THREADS`` or Slurm's
``SLURM_CPUS_PER_TASK`` when set, else the CPUs of its affinity capped by its cgroup quota,
divided among ``workers`` processes. :func:`use_threads` applies it (or the user's own number).
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")

#: The threads of a training that must give the same model everywhere (a fixed number of
#: iterations, no time limit), unless the user sets a number. The thread count changes the order of
#: floating-point sums, and training amplifies the difference: the bundled example trained 300
#: iterations with 1 and with 2 threads gave weights up to 0.26 apart and 94% of the nuclei alike,
#: while with 2 threads each, CellProfiler 4.2 (torch 2.8) and 5 (torch 2.13) gave identical
#: weights (benchmarks/lines.py). Two threads suit any machine: one core runs them more slowly.
REPRODUCIBLE_THREADS = 2


def _positive_int(text: Optional[str]) -> Optional[int]:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity; all CPUs where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Optional[float]:
    """The CPUs' worth of time this process's cgroups allow (e.g. 1.5), None if unlimited or unknown.

    Reads cgroup v2 (``cpu.max``: ``"quota period"`` or ``"max period"``) and v1
    (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) for the process's cgroup and every cgroup above
    it (a parent's quota limits its children), and returns the tightest.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            folders, read = [root, root / "unified"], _v2_quota
        elif "cpu" in controllers.split(","):
            folders, read = [root / controllers, root / "cpu", root / "cpu,cpuacct"], _v1_quota
        else:
            continue
        for folder in folders:
            if not folder.is_dir():
                continue
            parts = [part for part in path.strip("/").split("/") if part]
            for depth in range(len(parts), -1, -1):
                quota = read(folder.joinpath(*parts[:depth]))
                if quota is not None:
                    quotas.append(quota)
            break
    return min(quotas) if quotas else None


def _v2_quota(folder: Path) -> Optional[float]:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> Optional[float]:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def available_cpus() -> int:
    """Whole CPUs this process may use: its affinity, capped by its cgroup quota (rounded up)."""
    quota = cgroup_cpu_quota()
    cpus = affinity_cpus()
    return max(1, min(cpus, math.ceil(quota)) if quota is not None else cpus)


def default_threads(workers: int = 1) -> int:
    """PyTorch threads for this process when the user sets none.

    ``OMP_NUM_THREADS``, else ``SLURM_CPUS_PER_TASK``, when set; else :func:`available_cpus`
    shared among ``workers`` processes that run at once (at least 1 each).
    """
    for variable in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = _positive_int(os.environ.get(variable))
        if value is not None:
            return value
    return max(1, available_cpus() // max(1, workers))


def training_threads(requested: Optional[int], fixed_work: bool) -> Optional[int]:
    """The threads a training asks :func:`use_threads` for: the user's ``requested`` number if any,
    else :data:`REPRODUCIBLE_THREADS` when the work is fixed (the same model everywhere), else None
    (the default share)."""
    if requested is not None:
        return requested
    return REPRODUCIBLE_THREADS if fixed_work else None


def use_threads(threads: Optional[int] = None, workers: int = 1) -> int:
    """Set PyTorch's intra-op threads to ``threads``, or to :func:`default_threads` if None; returns it."""
    import torch

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    chosen = threads if threads is not None else default_threads(workers)
    if torch.get_num_threads() != chosen:
        torch.set_num_threads(chosen)
    if _LOGGED.get("threads") != chosen:  # once per process, and again when it changes
        _LOGGED["threads"] = chosen
        log.info("using %d CPU thread(s)%s", chosen, "" if threads is not None else
                 f" (of {available_cpus()} CPU(s) this process may use, {workers} worker(s))")
    return chosen


_LOGGED: dict = {}
