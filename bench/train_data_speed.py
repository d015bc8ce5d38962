"""Training-data throughput: samples/s of the stage-0 and stage-3 datasets at spec sizes (384²),
decoding + augmentation in one process (a DataLoader worker does the same work per sample)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import cv2
import torch

from deva.train.data import StaticImageSequences, VideoSequences

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"


def _rate(dataset, count: int) -> float:
    dataset.sample(0, epoch=99)  # warm-up (imports, caches)
    start = time.perf_counter()
    for i in range(count):
        dataset.sample(i % len(dataset), epoch=i)
    return count / (time.perf_counter() - start)


def measure(count: int = 24) -> list[dict[str, object]]:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        static = Path(scratch)
        (static / "images").mkdir()
        (static / "masks").mkdir()
        for seq in sorted(p.name for p in (DAVIS / "JPEGImages" / "480p").iterdir()):
            for i in (0, 10):
                stem = f"{seq}-{i:05d}"
                shutil.copy(
                    DAVIS / "JPEGImages/480p" / seq / f"{i:05d}.jpg",
                    static / "images" / f"{stem}.jpg",
                )
                shutil.copy(
                    DAVIS / "Annotations/480p" / seq / f"{i:05d}.png",
                    static / "masks" / f"{stem}.png",
                )
        datasets = [
            ("stage 0: StaticImageSequences (3 frames, 1 object)", StaticImageSequences(static)),
            ("stage 3: VideoSequences, DAVIS (8 frames, ≤ 3 objects)", VideoSequences(DAVIS)),
        ]
        for label, dataset in datasets:
            rows.append({"dataset": label, "samples_per_s": _rate(dataset, count)})
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| dataset (854×480 sources → 384×384) | samples/s, 1 thread |", "|---|---:|"]
    for row in rows:
        lines.append(f"| {row['dataset']} | **{row['samples_per_s']:.1f}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
