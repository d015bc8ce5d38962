"""Unsupervised quality of ``MotionSegmenter`` on DAVIS-16 clips (union of segments vs GT fg).

Usage: ``python -m bench.motion_quality [DAVIS_ROOT] [--frames N] [--seq NAME ...]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from deva.io.masks import read_id_png
from deva.segmenters.motion import MotionSegmenter

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"
DEFAULT_SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog")


def load_clip(
    root: Path, sequence: str, max_frames: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RGB frames and boolean foreground masks of one DAVIS sequence, in order."""
    image_paths = sorted((root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[:max_frames]
    frames, masks = [], []
    for path in image_paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        gt_path = root / "Annotations" / "480p" / sequence / (path.stem + ".png")
        masks.append(read_id_png(gt_path) > 0)
    return frames, masks


def iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(prediction, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(prediction, target).sum() / union)


def measure_motion_quality(
    root: Path = DEFAULT_ROOT,
    sequences: Sequence[str] = DEFAULT_SEQUENCES,
    *,
    max_frames: int | None = None,
    make_segmenter: Callable[[], MotionSegmenter] = MotionSegmenter,
) -> dict[str, dict[str, float]]:
    """Per sequence: mean IoU over every frame after the first, and seconds per frame.

    ``observe`` runs on every frame; ``segment`` on every frame but the first (which has no
    motion history by construction). Time covers observe + segment of the segmented frames.
    """
    results: dict[str, dict[str, float]] = {}
    for sequence in sequences:
        frames, masks = load_clip(root, sequence, max_frames)
        segmenter = make_segmenter()
        scores, elapsed = [], 0.0
        for index, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
            start = time.perf_counter()
            segmenter.observe(frame, frame_index=index)
            if index == 0:
                continue
            result = segmenter.segment(frame, frame_index=index)
            elapsed += time.perf_counter() - start
            scores.append(iou(result.ids > 0, mask))
        count = max(len(scores), 1)
        results[sequence] = {
            "iou": float(np.mean(scores)) if scores else 0.0,
            "seconds_per_frame": elapsed / count,
            "frames": float(len(scores)),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--seq", nargs="*", default=list(DEFAULT_SEQUENCES))
    args = parser.parse_args()
    results = measure_motion_quality(args.root, args.seq, max_frames=args.frames)
    for sequence, row in results.items():
        print(
            f"{sequence:16s} IoU {row['iou']:.3f}  {1000 * row['seconds_per_frame']:.1f} ms/frame"
            f"  ({int(row['frames'])} frames)"
        )
    print(f"{'mean':16s} IoU {np.mean([r['iou'] for r in results.values()]):.3f}")


if __name__ == "__main__":
    main()
