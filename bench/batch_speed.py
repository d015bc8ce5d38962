"""Throughput of ``deva batch``: videos/min and frames/s with 1 worker (in-process) and 2 Ray
workers, over a folder of short clips cut from the shared DAVIS sequences.

Usage: python -m bench.batch_speed
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from deva.batch import run_batch
from deva.io.frames import read_image
from deva.io.video import VideoWriter

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"
SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog")


def write_clips(folder: Path, frames: int) -> int:
    """One mp4 per DAVIS sequence (its first ``frames`` frames, 854×480); returns the total."""
    total = 0
    for sequence in SEQUENCES:
        paths = sorted((DAVIS / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[:frames]
        with VideoWriter(folder / f"{sequence}.mp4", 24) as video:
            for path in paths:
                video.write(read_image(path))
        total += len(paths)
    return total


def measure(frames: int = 30, workers: tuple[int, ...] = (1, 2)) -> list[dict[str, float]]:
    """Wall-clock time of a whole batch (decode, track, write masks; no overlay video) per
    worker count; Ray start-up and shut-down included for 2+ workers."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        clips = Path(scratch) / "clips"
        clips.mkdir()
        total = write_clips(clips, frames)
        for count in workers:
            start = time.perf_counter()
            report = run_batch(clips, Path(scratch) / f"out{count}", workers=count, video=False)
            seconds = time.perf_counter() - start
            if not report.ok:
                raise RuntimeError(f"batch failed: {[v.reason for v in report.failed]}")
            rows.append(
                {
                    "workers": count,
                    "videos": len(report.videos),
                    "frames": report.frames,
                    "seconds": seconds,
                    "videos_per_min": 60 * len(report.videos) / seconds,
                    "fps": total / seconds,
                }
            )
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| workers | videos | frames | seconds | videos/min | frames/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        mode = "1 (in-process)" if row["workers"] == 1 else f"{row['workers']} (Ray)"
        lines.append(
            f"| {mode} | {row['videos']} | {row['frames']} | {row['seconds']:.1f} | "
            f"{row['videos_per_min']:.1f} | **{row['fps']:.1f}** |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
