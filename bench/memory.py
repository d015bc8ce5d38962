"""Peak memory of ``deva track`` on long synthetic streams: it must not grow with length.

Each length runs in a fresh process (``python -m bench.memory N``) so peak RSS is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_stream(num_frames: int, out_dir: Path) -> dict[str, float]:
    """Track the rendered demo stream of ``num_frames`` frames with every output written."""
    from deva.api import track_to_folder
    from deva.config import TrackerConfig
    from deva.demo import iter_demo
    from deva.io.frames import open_frames
    from deva.propagation.flow import FlowPropagator
    from deva.segmenters.motion import MotionSegmenter
    from deva.tracker import Tracker

    frames = open_frames(frame for frame, _ in iter_demo(num_frames))
    tracker = Tracker(MotionSegmenter(), FlowPropagator(), TrackerConfig())
    start = time.perf_counter()
    track_to_folder(tracker, frames, out_dir, video=True)
    seconds = time.perf_counter() - start
    return {"frames": num_frames, "peak_rss_mib": peak_rss_mib(), "fps": num_frames / seconds}


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: ru_maxrss survives exec, so a
    child started from a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(lengths: tuple[int, ...] = (100, 2000)) -> list[dict[str, float]]:
    rows = []
    for length in lengths:
        with tempfile.TemporaryDirectory() as scratch:
            out = subprocess.run(
                [sys.executable, "-m", "bench.memory", str(length), scratch],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    print(json.dumps(run_stream(int(sys.argv[1]), Path(sys.argv[2]))))
