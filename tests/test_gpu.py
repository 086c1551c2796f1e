"""The CUDA-only training paths (skipped without CUDA, as on CI): the step replayed as a CUDA graph.

``python -m benchmarks.gpu`` measures the same paths' speed; these check that they train correctly.
"""
import numpy as np
import pytest
import torch

from impartial_core.training_step import GraphedTrainingStep, TrainingStep

from tests.synthetic import train_on_blobs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_graphed_training_trains_like_the_eager_one():
    """Same seed and data: the CUDA-graph step's losses follow the eager step's (bf16 convolution
    backward is not bit-reproducible on CUDA, so close, not equal), and it learns."""
    eager, _, _ = train_on_blobs(iterations=30, device="cuda", cuda_graphs=False)
    graphed, _, _ = train_on_blobs(iterations=30, device="cuda", cuda_graphs=True)
    e, g = ([h["total"] for h in r.history] for r in (eager, graphed))
    assert np.allclose(g[:10], e[:10], rtol=0.01), (g, e)
    # later on, rounding differences have had time to grow: both must learn, to about the same point
    assert g[-1] < 0.5 * g[0] and abs(g[-1] - e[-1]) < 0.3 * e[-1], (g, e)


def _tiny_step(step_class, loss=None):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1).cuda()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1, fused=True, capturable=True)

    def losses(masked, batch, mask, targets):
        out = net(masked)
        parts = torch.stack([((out - batch) ** 2).mean(), (out * mask).mean()])
        return parts if loss is None else loss(parts)

    inputs = [torch.randn(2, 1, 8, 8, device="cuda") for _ in range(2)] + [torch.ones(2, 1, 8, 8, device="cuda")] * 2
    return net, optimizer, step_class(losses, torch.ones(2, device="cuda"), optimizer), inputs


def test_graphed_step_replays_new_batches_and_follows_learning_rate_changes():
    net, optimizer, step, inputs = _tiny_step(GraphedTrainingStep)
    _, _, eager, _ = _tiny_step(TrainingStep)
    for _ in range(GraphedTrainingStep.WARMUP + 2):
        values, expected = step(*inputs), eager(*inputs)
    assert step.graph is not None and not step.failed
    assert torch.allclose(values, expected, rtol=1e-4)
    # a new batch gives new losses (the graph reads its inputs, it does not replay the old ones)
    other = [x + 1 for x in inputs]
    assert not torch.allclose(step(*other), step(*inputs))
    # a learning rate of 0 (as the plateau scheduler sets smaller ones) stops the weights moving
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in net.parameters()]
    step(*inputs)
    step(*other)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_a_step_that_cannot_be_captured_falls_back_to_eager():
    """Reading a value on the host is not allowed while capturing: the step says so and stays eager."""
    net, _, step, inputs = _tiny_step(GraphedTrainingStep, loss=lambda parts: parts * (parts.sum().item() > -1))
    before = net.weight.detach().clone()
    for _ in range(GraphedTrainingStep.WARMUP + 2):
        values = step(*inputs)
    assert step.failed and step.graph is None
    assert torch.isfinite(values).all() and not torch.equal(before, net.weight)
