"""Many segments: ``deva track --detections`` on a 2-frame clip whose detections hold thousands
of segment ids (RGB-coded PNGs), in a fresh process each, for its peak RSS.

The clip is one smooth picture shown twice, and the detection is the same grid of cells on
both frames, so the flow is zero and the right output is the grid itself under new ids: the
test suite checks exactly that (``tests/test_many_segments.py``).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 480, 854


def grid_ids(segments: int, height: int, width: int) -> np.ndarray:
    """(H, W) int32 map of ``segments`` rectangular cells (the rest 0) under scattered ids up
    to 2**24, so they need the RGB encoding."""
    cols = max(1, math.ceil(math.sqrt(segments * width / height)))
    rows = math.ceil(segments / cols)
    if rows > height or cols > width:
        raise ValueError(f"{segments} cells do not fit in {width}x{height}")
    cell = (np.arange(height)[:, None] * rows // height) * cols + np.arange(width) * cols // width
    ids = np.where(cell < segments, cell * 211 + 5, 0).astype(np.int32)
    if len(np.unique(ids[ids > 0])) != segments:
        raise ValueError(f"a {width}x{height} grid does not hold {segments} distinct cells")
    return ids


def write_clip(folder: Path, segments: int, height: int = HEIGHT, width: int = WIDTH) -> None:
    """``folder/frames`` (two equal PNG frames) and ``folder/dets`` (their RGB id PNGs)."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack(
        [xs * 255 // width, ys * 255 // height, ((xs + ys) * 7) % 256], axis=-1
    ).astype(np.uint8)
    ids = grid_ids(segments, height, width)
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    for sub in ("frames", "dets"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in range(2):
        Image.fromarray(image).save(folder / "frames" / f"{index:05d}.png")
        Image.fromarray(rgb).save(folder / "dets" / f"{index:05d}.png")


def track_in_child(folder: Path, out: Path, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """``deva track folder/frames --detections folder/dets -o out`` in a fresh process: its
    seconds and peak RSS (MiB); raises with the child's output if it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.many_segments", str(folder), str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"deva track failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def _child(folder: str, out: str, *extra: str) -> None:
    """Run the CLI in this process and print its peak RSS (MiB) as the last line."""
    from typer.main import get_command

    from deva.cli import app

    args = ["track", f"{folder}/frames", "--detections", f"{folder}/dets", "-o", out, *extra]
    code = get_command(app).main(args=args, standalone_mode=False)
    if code:
        sys.exit(code)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": peak}))


def measure(counts: tuple[int, ...] = (10, 1000, 50000)) -> list[dict[str, float]]:
    """One row per segment count: seconds and peak RSS of the whole ``deva track`` process
    (imports, decoding, tracking, masks, annotations and overlay video)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            folder = Path(tmp) / f"clip{count}"
            write_clip(folder, count)
            row = track_in_child(folder, Path(tmp) / f"out{count}")
            objects = json.loads((Path(tmp) / f"out{count}" / "annotations.json").read_text())
            row.update(segments=count, objects=len(objects["frames"][-1]["objects"]))
            rows.append(row)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| segment ids per frame | objects tracked | peak RSS (MiB) | seconds (2 frames) |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['segments']:,} | {row['objects']:,} | **{row['peak_rss_mib']:.0f}** | "
            f"{row['seconds']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    _child(*sys.argv[1:])
