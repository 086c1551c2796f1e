"""One optimisation step (losses, backward, Adam), eager or replayed as a CUDA graph.

A small network's training step on a GPU is bound by the host: a few hundred kernel launches, each
costing the Python and dispatcher overhead of an eager operation, for a few microseconds of GPU
work each. Captured once as a CUDA graph, the whole step is one launch per iteration.
"""
from __future__ import annotations

import logging
from typing import Callable, List, Optional

import torch

log = logging.getLogger(__name__)

# losses(masked, batch, mask, targets) -> (n_parts,) float32 tensor of the step's loss parts.
LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class TrainingStep:
    """Eager: computes the weighted loss of a batch, back-propagates it and steps the optimizer.

    Returns the step's losses, ``(total, *parts)``, still on the device: reading them is the
    caller's choice of when to wait for the device.
    """

    def __init__(self, losses: LossFunction, weights: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.losses, self.weights, self.optimizer = losses, weights, optimizer

    def __call__(self, masked: torch.Tensor, batch: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        parts = self.losses(masked, batch, mask, targets)
        loss = (self.weights * parts).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return torch.cat([loss[None], parts]).detach()


class GraphedTrainingStep(TrainingStep):
    """The same step, captured once as a CUDA graph and replayed for every later batch.

    Each call copies the batch into the graph's fixed input tensors and replays the recorded
    kernels: the weights, gradients and Adam state are updated in place, as eagerly. The optimizer
    must be ``capturable`` (Adam's step count lives on the device, so its bias correction advances
    on replay). A learning rate is a constant inside the graph, so a changed one (the plateau
    scheduler's) is picked up by capturing again. The first ``WARMUP`` calls run eagerly on a side
    stream, as CUDA graph capture requires (cuDNN and autograd set themselves up there); if capture
    fails, the step logs why and stays eager.
    """

    WARMUP = 3

    def __init__(self, losses: LossFunction, weights: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        super().__init__(losses, weights, optimizer)
        self.calls = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.inputs: List[torch.Tensor] = []
        self.values: Optional[torch.Tensor] = None
        self.captured_lrs: List[float] = []
        self.failed = False

    def _learning_rates(self) -> List[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _capture(self, inputs: List[torch.Tensor]) -> None:
        self.graph = None   # frees the previous graph's memory pool before the new capture
        torch.cuda.synchronize()
        self.inputs = [x.clone() for x in inputs]   # clone keeps channels-last layouts
        # Gradients must not exist when capture starts: backward inside the graph then allocates
        # them from the graph's pool and every replay writes them afresh instead of adding to them.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.values = super().__call__(*self.inputs)
        self.graph, self.captured_lrs = graph, self._learning_rates()

    def __call__(self, masked: torch.Tensor, batch: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        inputs = [masked, batch, mask, targets]
        if self.failed:
            return super().__call__(*inputs)
        if self.calls <= self.WARMUP:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                values = super().__call__(*inputs)
            torch.cuda.current_stream().wait_stream(side)
            return values
        if self.graph is None or self._learning_rates() != self.captured_lrs:
            try:
                self._capture(inputs)
            except Exception as error:   # e.g. an operation that cannot be captured on this GPU or torch version
                log.warning("CUDA graph capture of the training step failed (%s: %s); training continues without it",
                            type(error).__name__, error)
                self.failed, self.graph = True, None
                torch.cuda.synchronize()
                return super().__call__(*inputs)
        for static, x in zip(self.inputs, inputs):
            static.copy_(x)
        self.graph.replay()
        # A copy: the graph's output tensor is overwritten by the next replay, and the caller
        # reads these values one iteration late.
        return self.values.clone()
