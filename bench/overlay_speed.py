"""Time of the overlay drawn on every written frame (``deva.io.visualize.overlay``), so that
writing ``overlay.mp4`` keeps up with video: it was a timed assertion in the test suite, which
a busy machine failed; speed is measured here instead."""

from __future__ import annotations

import time

import cv2
import numpy as np

from deva.io.visualize import overlay

SHAPE = (480, 854)


def scene(objects: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A noise image and an id map: the five shapes of the old test, then a grid of discs."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    ids = np.zeros(SHAPE, np.int32)
    cv2.circle(ids, (200, 200), 90, 1, -1)
    cv2.rectangle(ids, (400, 100), (700, 400), 2, -1)
    cv2.ellipse(ids, (600, 300), (120, 40), 30, 0, 360, 3, -1)
    ids[10:60, 10:800] = 4
    ids[300:470, 50:120] = 5
    for i in range(5, objects):
        y, x = 40 + (i * 37) % 400, 30 + (i * 71) % 790
        cv2.circle(ids, (x, y), 12, i + 1, -1)
    return image, ids


def measure(counts: tuple[int, ...] = (5, 20, 100), repeats: int = 10) -> list[dict]:
    rows = []
    for count in counts:
        image, ids = scene(count)
        labels = {i: f"object {i}" for i in range(1, count + 1)}
        overlay(image, ids, labels=labels)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            overlay(image, ids, labels=labels)
            times.append(time.perf_counter() - start)
        rows.append(
            {"objects": len(np.unique(ids)) - 1, "best_ms": 1000 * min(times),
             "median_ms": 1000 * float(np.median(times))}
        )  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| objects (854×480, labelled) | best ms per frame | median ms | frames/s (best) |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['objects']} | **{row['best_ms']:.1f}** | {row['median_ms']:.1f} | "
            f"{1000 / row['best_ms']:.0f} |"
        )
    lines.append("")
    lines.append("Goal: under 33.3 ms (30 frames/s) for the 5-object frame.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
