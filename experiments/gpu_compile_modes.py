"""The paper-sized training step under each torch.compile mode named (needs CUDA).

    python experiments/gpu_compile_modes.py --modes max-autotune-no-cudagraphs max-autotune [--out DIR]

``benchmarks.gpu``'s step rows (real ``training.train`` iterations, bf16, batch 64 of 128², width
64, median of 30 steps after 10) for modes it does not time itself, one line per mode appended to
``DIR/gpu_compile_modes.txt`` as soon as it is measured: the autotuning modes compile for minutes,
so a run cut short keeps the modes it finished.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks import gpu, training_steps  # noqa: E402
from benchmarks.data import load_mibi  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", nargs="+", default=["max-autotune-no-cudagraphs"])
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    out = Path(args.out) / "gpu_compile_modes.txt"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(line: str) -> None:
        print(line, flush=True)
        with out.open("a") as f:
            f.write(line + "\n")

    peaks = {"bf16": training_steps.measure_peak_flops("cuda", "bfloat16"), "fp32": training_steps.measure_peak_flops("cuda", "float32")}
    variants = [(*gpu.PAPER, gpu.StepVariant(compiled=True, compile_mode=mode)) for mode in args.modes]
    gpu.step_rows(load_mibi(), peaks, torch.cuda.get_device_name(0), variants, log=write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
