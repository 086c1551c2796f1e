"""Where a training step's GPU time goes, at the paper's configuration (batch 64 of 128², width 64).

    python experiments/gpu_step_parts.py [--out DIR]      # needs CUDA

Times each part of ``impartial_core.training.train``'s iteration alone (median of 30, synchronised)
and the backbone's forward + backward against the decoder it replaced (upsample, concatenate,
convolve), eager and compiled, then lists the largest copies and sums (torch.profiler, by input
shape).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.data import load_mibi  # noqa: E402
from impartial_core.config import NetworkConfig, tasks_for  # noqa: E402
from impartial_core.losses import reconstruction_loss, scribble_loss  # noqa: E402
from impartial_core.masking import blind_spot_mask  # noqa: E402
from impartial_core.network import ImPartialNet  # noqa: E402
from impartial_core.normalization import normalize  # noqa: E402
from impartial_core.sampling import PatchSampler, prepare_training_images  # noqa: E402


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


REPEATS = 30


def timed(fn) -> float:
    """Median milliseconds of ``fn`` between synchronisations, after a few warm-up calls."""
    repeats = REPEATS
    for _ in range(min(5, repeats)):
        fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def forward_concatenating(unet, x: torch.Tensor) -> torch.Tensor:
    """``UNet.forward`` as it was until 2026-11-26: each decoder block upsamples its input and
    concatenates the skip features before its first convolution. The same function."""
    x, skips = unet.encode(x)
    for block in unet.up:
        x = block(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
    return x


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--device", default="cuda", help="cpu only to check that the script runs")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    globals()["REPEATS"] = args.repeats
    device = torch.device(args.device)
    mibi = load_mibi()
    tasks = tasks_for("nuclei", 1)
    data = prepare_training_images([normalize(im[None]) for im in mibi.images], mibi.scribbles["n100"], tasks, 0.1,
                                   np.random.default_rng(0))
    sampler = PatchSampler(data, 128, 0.6, 1, device)
    net = ImPartialNet(NetworkConfig(1, 64, 2), tasks).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    batch, targets = sampler.batch(args.batch)
    masked, mask = blind_spot_mask(batch, 8, 5, generator)
    masked = masked.contiguous(memory_format=torch.channels_last)

    def forward_backward(model=net.backbone):
        with torch.autocast(device.type, torch.bfloat16):
            features = model(masked)
        features.float().mean().backward()

    def step():
        with torch.autocast(device.type, torch.bfloat16):
            out = net(masked)["nuclei"]
        seg = scribble_loss(out, targets[:, 0])
        rec = reconstruction_loss(out, batch, mask, 1.0)
        loss = 0.45 * seg["foreground"] + 0.45 * seg["background"] + 0.1 * rec
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.autocast(device.type, torch.bfloat16):
        features = net.backbone(masked).detach().requires_grad_()

    def head_and_losses():
        with torch.autocast(device.type, torch.bfloat16):
            out = net._head(tasks[0], features)
        seg = scribble_loss(out, targets[:, 0])
        (seg["foreground"] + seg["background"] + reconstruction_loss(out, batch, mask, 1.0)).backward()

    rows = [
        ("sampler.batch (host draw + device gather)", timed(lambda: sampler.batch(args.batch))),
        ("sampler.draw (host only)", timed(lambda: sampler.draw(args.batch))),
        ("blind_spot_mask", timed(lambda: blind_spot_mask(batch, 8, 5, generator))),
        ("backbone forward + backward", timed(forward_backward)),
        ("head + both losses, forward + backward", timed(head_and_losses)),
        ("whole step without sampling and masking", timed(step)),
        ("Adam (fused)", timed(optimizer.step)),
    ]
    with torch.no_grad():
        reference = forward_concatenating(net.backbone.double(), masked.double())
        error = float((net.backbone(masked.double()) - reference).norm() / reference.norm())
    net.backbone.float()
    assert error < 1e-10, error
    concatenating = type("Concatenating", (torch.nn.Module,), {"forward": lambda self, x: forward_concatenating(net.backbone, x)})()
    rows.append((f"backbone forward + backward, concatenating decoder (relative difference {error:.0e})",
                 timed(lambda: forward_backward(concatenating))))
    if device.type == "cuda":
        compiled, compiled_concatenating = torch.compile(net.backbone), torch.compile(concatenating)
        rows.append(("backbone forward + backward, torch.compile", timed(lambda: forward_backward(compiled))))
        rows.append(("backbone forward + backward, concatenating decoder, torch.compile",
                     timed(lambda: forward_backward(compiled_concatenating))))
    text = "\n".join(f"{ms:8.2f} ms  {name}" for name, ms in rows)
    print(text, flush=True)

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(min(5, args.repeats)):
            step()
        synchronize()
    averages = prof.key_averages(group_by_input_shape=True)
    copies = "\n".join(f"{e.self_device_time_total / 5 / 1000:7.3f} ms/step  {e.count // 5:3d} calls/step  {e.key}  {e.input_shapes}"
                        for e in sorted(averages, key=lambda e: -e.self_device_time_total)
                        if e.key in ("aten::copy_", "aten::cat", "aten::add_", "aten::sum", "aten::contiguous")
                        and e.self_device_time_total > 0)
    print(copies)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_step_parts.txt").write_text(text + "\n\n" + copies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
