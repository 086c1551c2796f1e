"""Choosing the compute device: CUDA, then Apple MPS, then CPU."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(requested: str = "auto") -> torch.device:
    """The torch device for ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) or ``mps``.

    A GPU that was asked for but is absent falls back to the CPU with a warning, so a pipeline
    made on a GPU workstation still runs on a laptop or a CPU-only cluster node.
    """
    requested = (requested or "auto").lower()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if requested.startswith("cuda") and not cuda or requested == "mps" and not mps:
        log.warning("device %r was requested but is not available; using the CPU", requested)
        return torch.device("cpu")
    try:
        return torch.device(requested)
    except RuntimeError as error:
        raise ValueError(f"unknown device {requested!r}; use auto, cpu, cuda or mps") from error
