"""Training iterations/s of ``deva train`` on CPU: the tiny network and the official-size one.

Synthetic in-memory batches (data loading is measured by ``train_data_speed``), the real loop
(``deva.train.trainer.train``: unroll, losses, backward, clipping, AdamW, metrics). The first
iteration (allocation warm-up) is reported apart from the mean of the others.

Usage: python -m bench.train_speed [--full-iterations 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import Dataset

from deva.train.config import StageConfig, TrainConfig
from deva.train.trainer import StepLog, train


class _RandomClips(Dataset):
    """Noise frames with up to N square objects; content does not change the cost."""

    def __init__(self, length: int, frames: int, objects: int, size: int) -> None:
        self.length, self.frames, self.objects, self.size = length, frames, objects, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        s, n = self.size, self.objects
        masks = torch.zeros(self.frames, n, s, s)
        for k in range(n):
            lo = k * s // n
            masks[:, k, lo : lo + s // (2 * n), s // 4 : 3 * s // 4] = 1
        return {
            "images": torch.randn(self.frames, 3, s, s, generator=generator),
            "masks": masks,
            "selector": torch.ones(n),
            "name": f"random-{index}",
        }


def _time_run(network: str, batch: int, frames: int, objects: int, size: int, steps: int) -> dict:
    stage = StageConfig(
        iterations=steps,
        lr=1e-5,
        num_frames=frames,
        num_ref_frames=3,
        max_objects=objects,
        batch_size=batch,
        size=size,
    )
    config = TrainConfig(
        stages="3", network=network, device="cpu", workers=0, log_every=10**9, stage3=stage
    )
    stamps: list[float] = []

    def on_step(_: StepLog) -> None:
        stamps.append(time.perf_counter())

    data = _RandomClips(batch * steps, frames, objects, size)
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        train(config, run, dataset_factory=lambda *_: data, on_step=on_step)
    first = stamps[0] - start
    rest = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    mean = sum(rest) / len(rest) if rest else first
    return {
        "network": network,
        "batch": batch,
        "frames": frames,
        "objects": objects,
        "size": size,
        "steps": steps,
        "first_s": first,
        "s_per_it": mean,
    }


def measure(full_iterations: int = 3) -> list[dict]:
    """Rows: tiny network (batch 4, and at 64 px as in the tests) and the official-size
    network at batch 1, 384 px, 8 frames, 3 objects (stage 3 shapes)."""
    rows = [
        _time_run("tiny", 4, 8, 3, 64, 10),
        _time_run("tiny", 4, 8, 3, 384, 5),
        _time_run("full", 1, 8, 3, 384, full_iterations),
    ]
    for row in rows:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| network | batch × frames × objects | size | iterations timed | first it (s) | "
        "s / it after | it / s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['batch']} × {r['frames']} × {r['objects']} | {r['size']} | "
            f"{r['steps']} | {r['first_s']:.2f} | {r['s_per_it']:.2f} | "
            f"**{1 / r['s_per_it']:.3f}** |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full-iterations", type=int, default=3)
    args = parser.parse_args()
    print(table(measure(args.full_iterations)))
