"""Speed of ``FlowPropagator.propagate`` on real 854x480 frames, against raw DIS in the same run.

The machine is shared and noisy, so each row times raw DIS (preset fast, full resolution, one
flow per frame: the propagator's ceiling in REFERENCE-FIGURES.md) right before the propagator,
over the same frames: compare the ratio, not absolute numbers across runs.

Usage: python -m bench.flow_speed [--frames N] [--layout tiles|split] [--profile K]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from deva.propagation.flow import FlowPropagator

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"
REFRESH_EVERY = 10


def load_clip(
    sequence: str, frames: int, root: Path = DAVIS
) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` RGB images of a DAVIS-16 clip and its frame-0 (H, W) bool mask."""
    images = []
    for index in range(frames):
        path = root / "JPEGImages" / "480p" / sequence / f"{index:05d}.jpg"
        images.append(np.asarray(Image.open(path).convert("RGB")))
    mask = np.asarray(Image.open(root / "Annotations" / "480p" / sequence / "00000.png")) > 0
    return images, mask


def make_masks(mask: np.ndarray, num_objects: int, layout: str) -> np.ndarray:
    """(K, H, W) bool, disjoint. ``split``: the true object cut into K vertical strips (few small
    objects, the common case). ``tiles``: the whole frame cut into K tiles, every pixel owned
    by some object (segment-everything, the worst case for per-object work)."""
    height, width = mask.shape
    if layout == "split":
        columns = np.nonzero(mask.any(axis=0))[0]
        edges = np.linspace(columns[0], columns[-1] + 1, num_objects + 1).round().astype(int)
        regions = [(0, height, edges[k], edges[k + 1]) for k in range(num_objects)]
        base = mask
    elif layout == "tiles":
        rows = int(np.floor(np.sqrt(num_objects)))
        cols = int(np.ceil(num_objects / rows))
        ys = np.linspace(0, height, rows + 1).round().astype(int)
        xs = np.linspace(0, width, cols + 1).round().astype(int)
        regions = [
            (ys[k // cols], ys[k // cols + 1], xs[k % cols], xs[k % cols + 1])
            for k in range(num_objects)
        ]
        base = np.ones_like(mask)
    else:
        raise ValueError(f"unknown layout {layout!r}; use 'split' or 'tiles'")
    masks = np.zeros((num_objects, height, width), bool)
    for k, (y0, y1, x0, x1) in enumerate(regions):
        masks[k, y0:y1, x0:x1] = base[y0:y1, x0:x1]
    return masks


def raw_dis_fps(images: list[np.ndarray], preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> float:
    """Frames/s of one DIS flow between consecutive full-resolution grayscale frames."""
    grays = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images]
    dis = cv2.DISOpticalFlow_create(preset)
    dis.calc(grays[1], grays[0], None)  # warm-up
    start = time.perf_counter()
    for previous, current in zip(grays, grays[1:], strict=False):
        dis.calc(current, previous, None)
    return (len(grays) - 1) / (time.perf_counter() - start)


def propagate_times(
    images: list[np.ndarray], masks: np.ndarray, refresh_every: int = REFRESH_EVERY
) -> np.ndarray:
    """Seconds per ``propagate`` call, chaining through ``images`` from ``masks`` at frame 0.

    ``masks`` are memorized again (untimed) every ``refresh_every`` frames, as the tracker's
    merges do; otherwise objects lost to disocclusions and to content entering the frame would
    leave fewer and fewer to propagate (on bmx-trees, all of them within 50 frames).
    """
    ids = list(range(1, len(masks) + 1))
    warm = FlowPropagator()
    warm.memorize(images[0], masks, ids)
    warm.propagate(images[1])
    propagator = FlowPropagator()
    times = []
    for index, image in enumerate(images):
        if index % refresh_every == 0:
            propagator.memorize(image, masks, ids)
            continue
        start = time.perf_counter()
        propagator.propagate(image)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def measure_flow_speed(
    num_objects_list: tuple[int, ...] = (1, 5, 20),
    frames: int = 60,
    *,
    sequence: str = "bmx-trees",
    layout: str = "tiles",
    root: Path = DAVIS,
) -> list[dict[str, float]]:
    """One row per object count: propagator frames/s (throughput and median frame), ms/frame,
    and raw DIS-fast frames/s timed just before on the same frames. ``frames`` + 1 images are
    read; every ``REFRESH_EVERY``-th is a memorize, not timed."""
    images, mask = load_clip(sequence, frames + 1, root)
    rows = []
    for num_objects in num_objects_list:
        raw = raw_dis_fps(images)
        times = propagate_times(images, make_masks(mask, num_objects, layout))
        row = {
            "objects": num_objects,
            "fps": len(times) / float(times.sum()),
            "fps_median": 1.0 / float(np.median(times)),
            "ms_per_frame": 1000.0 * float(times.mean()),
            "raw_dis_fps": raw,
        }
        rows.append(row)
        print(
            f"{num_objects:3d} objects ({layout}): {row['fps']:6.1f} frames/s "
            f"(median frame {row['fps_median']:6.1f}/s, {row['ms_per_frame']:.2f} ms); "
            f"raw DIS fast full-res {raw:6.1f} frames/s, ratio {row['fps'] / raw:.2f}",
            flush=True,
        )
    return rows


def profile_flow(
    num_objects: int = 5, frames: int = 60, *, layout: str = "tiles", top: int = 12
) -> str:
    """cProfile of the propagate loop: where the time goes (tottime, own time per function)."""
    images, mask = load_clip("bmx-trees", frames + 1)
    masks = make_masks(mask, num_objects, layout)
    profiler = cProfile.Profile()
    times = profiler.runcall(propagate_times, images, masks)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    count = len(times) + 1  # one warm-up call
    lines = [f"{num_objects} objects ({layout}), {count} propagate calls; per call, own time:"]
    for (filename, line, name), (_, calls, own, _, _) in rows[:top]:
        where = name if filename == "~" else f"{Path(filename).name}:{line} {name}"
        lines.append(f"  {1000 * own / count:7.3f} ms  {calls / count:6.1f} calls  {where}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--layout", choices=("tiles", "split"), default="tiles")
    parser.add_argument("--profile", type=int, metavar="K", help="also profile with K objects")
    args = parser.parse_args()
    measure_flow_speed(frames=args.frames, layout=args.layout)
    if args.profile:
        print(profile_flow(args.profile, args.frames, layout=args.layout))
