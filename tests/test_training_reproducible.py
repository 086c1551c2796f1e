"""Training is reproducible: the same seed and data give the same weights, bit for bit on a CPU.

The digests below pin whole trainings (weights, loss curve, validations, thresholds, why training
stopped) through each of ``train``'s paths: running to the iteration limit, early stopping, losses
read one iteration late, and stopping at the time budget (on a simulated clock, so the forecast is
deterministic). Floating-point results depend on torch's version, the CPU's vector instructions
and its maker (the same AVX-512 kernels round differently on Intel and AMD processors), so a
digest is kept per (torch version, CPU capability, CPU vendor) and checked with one thread; elsewhere
the exact check is skipped, and the structural checks (which iterations were evaluated, why
training stopped, that the best weights are the ones returned) still run. The scenarios train in
float32; a CPU with native bfloat16 trains in it by default, which is checked apart.
"""
from __future__ import annotations

import hashlib
import json
import math
from types import SimpleNamespace
from typing import Dict, Tuple

import pytest
import torch

from impartial_core import training
from impartial_core.config import NetworkConfig, TrainingConfig, nuclei_task
from impartial_core.normalization import normalize
from impartial_core.sampling import PatchSampler
from impartial_core.training import TrainingResult, train

from .synthetic import blobs

_AVX512_INTEL = {
    "iteration limit": "be81c651ea70bee36f5ec6e384867f0bffa29f41fb0872576af6fa3251acc13e",
    "early stopping": "6c6fd020f218508aae42e394a68c063059d093dba67c62fa53411991b4c433b6",
    "read late": "1d576db3cb0731c8a66e1cd1b07f34a3bb2db517814618cabc9cd16ef3710d12",
    "time budget": "979a7b4e459cf5ea792db96e3edf7990dd4a9dacea87f37c4ba7b1ea189eb149",
}
_AVX512_AMD = {
    "iteration limit": "2be2a943c0e86fd73998a3e6b9fe9168e8ff74218fc8d56e31b68a3098bd1a7a",
    "early stopping": "6901027ff07359c0bcf9ef3ae048388d8931a64511308cbc085b9cac95aafc07",
    "read late": "4d4bb111b4238442277149d8079e21dc052c76c93bd94862dcebe9d1d98c66b0",
    "time budget": "10a4eea9ee9d7a4f09ae41cf41c5f932f231d864a926beb6d10c84b2df0fcad5",
}
# (torch version, CPU capability, CPU vendor) -> scenario -> digest of the training, with one
# thread. The two torch versions of the CellProfiler 5 and 4.2 environments gave the same digests.
PINNED: Dict[Tuple[str, str, str], Dict[str, str]] = {
    ("2.13.0+cpu", "AVX512", "GenuineIntel"): _AVX512_INTEL,
    ("2.8.0+cu128", "AVX512", "GenuineIntel"): _AVX512_INTEL,
    ("2.13.0+cpu", "AVX512", "AuthenticAMD"): _AVX512_AMD,
    ("2.8.0+cu128", "AVX512", "AuthenticAMD"): _AVX512_AMD,
}


def _cpu_vendor() -> str:
    """The CPU's maker as Linux names it (``GenuineIntel``, ``AuthenticAMD``), or "unknown"."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@pytest.fixture
def one_thread():
    """One thread: parallel reductions may sum in another order with another thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(**overrides) -> TrainingResult:
    image, _, scribbles = blobs(seed=1, size=64, n=6)
    settings = dict(max_iterations=12, batch_size=2, patch_size=32, eval_every=3, seed=0, learning_rate=3e-3,
                    time_budget_s=600.0, mixed_precision=False)
    settings.update(overrides)
    return train([normalize(image[None])], [scribbles], [nuclei_task()], NetworkConfig(1, 4),
                 TrainingConfig(**settings))


def _digest(result: TrainingResult) -> str:
    """Everything a training returns except its timings."""
    digest = hashlib.sha256()
    for name, tensor in result.net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    history = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in result.history]
    digest.update(json.dumps([history, result.thresholds, result.iterations, result.stopped_because,
                              result.best_validation], sort_keys=True).encode())
    return digest.hexdigest()


def _check_pinned(scenario: str, result: TrainingResult) -> None:
    key = (torch.__version__, torch.backends.cpu.get_cpu_capability(), _cpu_vendor())
    if key not in PINNED:
        pytest.skip(f"no pinned digest for torch {key[0]} on {key[1]} ({key[2]})")
    assert _digest(result) == PINNED[key][scenario]


def _validations(result: TrainingResult) -> Dict[int, float]:
    return {h["iteration"]: h["validation"] for h in result.history if "validation" in h}


def _simulated_clock(monkeypatch, step_s: float, evaluation_s: float) -> None:
    """Time advances ``step_s`` per batch drawn and ``evaluation_s`` per validation, nothing else."""
    now = [0.0]

    def batch(self, size):
        now[0] += step_s
        return draw(self, size)

    def validation(*args):
        now[0] += evaluation_s
        return score(*args)

    draw, score = PatchSampler.batch, training._scribble_loss
    monkeypatch.setattr(PatchSampler, "batch", batch)
    monkeypatch.setattr(training, "_scribble_loss", validation)
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: now[0]))


def test_training_to_the_iteration_limit_is_reproducible(one_thread):
    result = _train()
    assert result.iterations == 12 and result.stopped_because == "iteration budget"
    assert [h["iteration"] for h in result.history] == list(range(1, 13))
    assert sorted(_validations(result)) == [3, 6, 9, 12]
    assert result.best_validation == min(_validations(result).values())
    assert _digest(_train()) == _digest(result)
    _check_pinned("iteration limit", result)


def test_early_stopping_is_reproducible_and_keeps_the_best_weights(one_thread):
    result = _train(patience=1, learning_rate=0.05)
    validations = _validations(result)
    assert result.stopped_because == "no validation improvement in 1 evaluations"
    assert result.iterations == max(validations) < 12
    assert result.best_validation == min(validations.values()) < validations[max(validations)]
    # The weights returned are the best evaluation's: scoring them again gives its loss.
    best = min(validations, key=validations.get)
    again = _train(patience=1, learning_rate=0.05, max_iterations=best)
    for a, b in zip(result.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)
    _check_pinned("early stopping", result)


def test_losses_read_late_are_reproducible(one_thread, monkeypatch):
    monkeypatch.setattr(training, "readback_lag", lambda device: 1)
    result = _train(max_iterations=11)
    assert [h["iteration"] for h in result.history] == list(range(1, 12))
    assert sorted(_validations(result)) == [3, 6, 9, 11]
    _check_pinned("read late", result)


def test_stopping_at_the_time_budget_is_reproducible(one_thread, monkeypatch):
    """On a clock where a step takes 1 s and a validation 0.5 s, a 10 s budget stops training
    when the next step, the next validation (if due) and the final validation and threshold choice
    would no longer fit; the last stretch is validated once more before the best weights are kept."""
    _simulated_clock(monkeypatch, step_s=1.0, evaluation_s=0.5)
    result = _train(time_budget_s=10.0, max_iterations=100)
    assert result.stopped_because == "time budget" and result.iterations == 7
    assert [h["iteration"] for h in result.history] == list(range(1, 8))
    assert [h["elapsed_s"] for h in result.history] == [1.0, 2.0, 3.5, 4.5, 5.5, 7.0, 8.0]
    assert sorted(_validations(result)) == [3, 6]
    assert all(math.isfinite(h["total"]) for h in result.history)
    # the final validation of iterations 7 found better weights than any evaluation before
    assert result.best_validation < min(_validations(result).values())
    _check_pinned("time budget", result)


def test_bfloat16_training_is_reproducible(one_thread):
    """Where the CPU computes bfloat16 natively, training runs in it (the default) and is as
    reproducible as in float32, and not the same training: the step really ran in bfloat16."""
    from impartial_core.devices import bfloat16_native

    if not bfloat16_native(torch.device("cpu")):
        pytest.skip("this CPU has no native bfloat16")
    result = _train(mixed_precision=True)
    assert result.iterations == 12 and result.stopped_because == "iteration budget"
    assert _digest(_train(mixed_precision=True)) == _digest(result)
    assert _digest(result) != _digest(_train())
