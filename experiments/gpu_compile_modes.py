"""The paper-sized training step under each torch.compile mode named (needs CUDA).

    python experiments/gpu_compile_modes.py --modes max-autotune-no-cudagraphs max-autotune [--out DIR]

The same harness as ``benchmarks.gpu``'s step rows (real ``training.train`` iterations, bf16,
batch 64 of 128², width 64, median of 30 steps after 10), one line per mode appended to
``DIR/gpu_compile_modes.txt`` as soon as it is measured: the autotuning modes compile for
minutes, so a run cut short keeps the modes it finished.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import impartial_core.training as training  # noqa: E402
from benchmarks import speed  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", nargs="+", default=["default", "reduce-overhead", "max-autotune-no-cudagraphs"])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    out = Path(args.out) / "gpu_compile_modes.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    mibi = load_mibi()
    for mode in args.modes:
        torch._dynamo.reset()
        training.compile_mode = lambda device: mode
        timing = speed.time_training_steps(args.width, args.batch, 30, warmup=10, device="cuda", mibi=mibi,
                                           compile_network=True)
        line = (f"{timing['s_per_step'] * 1000:7.2f} ms/step  width {args.width}, batch {args.batch}, torch.compile "
                f"mode {mode}: first step {timing['first_step_s']:.0f} s, mean loss {timing['mean_loss']:.4f}")
        print(line, flush=True)
        with out.open("a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
