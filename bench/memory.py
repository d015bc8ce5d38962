"""Long videos: peak memory must not grow with length, and killed runs resume to identical output.

Each run is a fresh process (``python -m bench.memory ...``) so its peak RSS is its own. The
stream is the rendered demo at 854×480 (objects enter and leave every 120 frames, so objects
are created and deleted all along); detections are its true masks under ids shuffled per frame,
so the tracker must associate, create and delete objects itself.
"""

from __future__ import annotations

import filecmp
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 480, 854


class StreamTruth:
    """Detections of the demo stream: its true objects under per-frame shuffled ids. Holds only
    the masks of frames not yet segmented (at most a clip), so memory stays bounded."""

    def __init__(self) -> None:
        self.pending: dict[int, np.ndarray] = {}

    def frames(self, num_frames: int) -> Iterator[np.ndarray]:
        from deva.demo import iter_demo

        for index, (frame, ids) in enumerate(iter_demo(num_frames, HEIGHT, WIDTH)):
            self.pending[index] = ids
            for old in [i for i in self.pending if i < index - 10]:
                del self.pending[old]
            yield frame

    def segment(self, image, *, frame_index, unsegmented=None):
        from deva.types import Segmentation

        truth = self.pending.pop(frame_index)
        perm = np.random.default_rng(frame_index).permutation(8) + 1
        return Segmentation.from_ids(np.where(truth > 0, perm[truth], 0).astype(np.int32))


def make_propagator(name: str):
    """flow, appearance, or the DEVA network: ``network`` = official architecture (random
    weights), ``network-tiny`` = the test architecture; all but flow run at a 160-pixel
    working size."""
    import torch

    from deva.propagation.flow import FlowPropagator
    from deva.propagation.network.model import PropagationNetwork, tiny_propagation_network
    from deva.propagation.network.propagator import NetworkPropagator

    torch.manual_seed(0)
    if name == "flow":
        return FlowPropagator()
    if name == "appearance":
        from deva.propagation.appearance import AppearancePropagator

        return AppearancePropagator()
    if name == "network":
        return NetworkPropagator(PropagationNetwork())
    if name == "network-tiny":
        return NetworkPropagator(tiny_propagation_network())
    raise ValueError(name)


def run_stream(num_frames: int, propagator: str, mode: str, out_dir: Path) -> dict[str, object]:
    """Track ``num_frames`` of the stream with every output written (overlay included)."""
    import torch

    from deva.api import track_to_folder
    from deva.config import TrackerConfig
    from deva.io.frames import open_frames
    from deva.tracker import Tracker

    torch.set_num_threads(1)
    truth = StreamTruth()
    size = -1 if propagator == "flow" else 160
    config = TrackerConfig(mode=mode, size=size)
    created = 0

    def count(result) -> None:
        nonlocal created
        created = max([created, *(o.id for o in result.objects)])

    tracker = Tracker(truth, make_propagator(propagator), config)
    start = time.perf_counter()
    track_to_folder(tracker, open_frames(truth.frames(num_frames)), out_dir, on_result=count)
    seconds = time.perf_counter() - start
    return {
        "propagator": propagator,
        "mode": mode,
        "frames": num_frames,
        "objects_created": created,
        "peak_rss_mib": peak_rss_mib(),
        "fps": num_frames / seconds,
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: ru_maxrss survives exec, so a
    child started from a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    lengths: tuple[int, ...],
    combos: tuple[tuple[str, str], ...],
    parallel: int = 3,
    rows_file: Path | None = None,
) -> list[dict[str, object]]:
    """One fresh process per (propagator, mode, length), ``parallel`` at a time (peak RSS is
    per process, so running them side by side changes only the frames/s).

    With ``rows_file`` (JSON lines), each finished row is appended as soon as it ends and rows
    already there are reused: a 10,000-frame job takes most of an hour, and a session that ends
    mid-bench must not lose the rows it finished. Delete the file to measure everything again.
    """
    jobs = [(p, m, n) for p, m in combos for n in lengths]
    cached = _read_rows(rows_file)
    with tempfile.TemporaryDirectory() as scratch:
        running: list[tuple[int, subprocess.Popen]] = []
        results: dict[int, dict[str, object]] = {}
        for index, job in enumerate(jobs):
            if job in cached:
                results[index] = cached[job]
        longest_first = sorted(
            (i for i in range(len(jobs)) if i not in results), key=lambda i: -jobs[i][2]
        )
        for index in longest_first:
            propagator, mode, length = jobs[index]
            while len(running) >= parallel:
                _collect(running, results, rows_file)
            out = str(Path(scratch) / str(index))
            command = [sys.executable, "-m", "bench.memory", str(length), propagator, mode, out]
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            running.append((index, process))
        while running:
            _collect(running, results, rows_file)
    return [results[i] for i in range(len(jobs))]


def _read_rows(rows_file: Path | None) -> dict[tuple[str, str, int], dict[str, object]]:
    if rows_file is None or not rows_file.is_file():
        return {}
    rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
    return {(r["propagator"], r["mode"], r["frames"]): r for r in rows}


def _collect(running: list, results: dict[int, dict[str, object]], rows_file: Path | None) -> None:
    """Wait for the first of the running jobs to end and keep its row."""
    while True:
        for entry in running:
            index, process = entry
            if process.poll() is not None:
                running.remove(entry)
                stdout = process.stdout.read() if process.stdout else ""
                if process.returncode:
                    raise RuntimeError(f"bench.memory job {index} failed ({process.returncode})")
                results[index] = json.loads(stdout.strip().splitlines()[-1])
                results[index]["measured"] = time.strftime("%Y-%m-%d")
                print(results[index], file=sys.stderr, flush=True)
                if rows_file is not None:
                    with rows_file.open("a") as rows:
                        rows.write(json.dumps(results[index]) + "\n")
                return
        time.sleep(1)


def kill_resume_loop(num_frames: int = 1000, kills: int = 20, seed: int = 0) -> dict[str, object]:
    """``deva track --checkpoint-every 50`` killed (SIGKILL) at random moments ``kills`` times,
    resumed each time, then run to the end; compared byte for byte with an uninterrupted run.
    Kills are placed by frames written, not by time, so they stay mid-run on any machine."""
    from deva.io.video import VideoWriter

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        video = root / "stream.mp4"
        truth = StreamTruth()
        with VideoWriter(video, 24.0) as writer:
            for frame in truth.frames(num_frames):
                writer.write(frame)
        deva = [sys.executable, "-m", "deva.cli", "track", str(video), "--checkpoint-every", "50"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run([*deva, "-o", str(root / "full")], check=True, env=env, capture_output=True)
        duration = time.perf_counter() - start
        masks = root / "part" / "masks"

        def written() -> int:
            return len(list(masks.glob("*.png"))) if masks.is_dir() else 0

        killed = 0
        for _ in range(kills):
            # A random moment: mostly a random number of new frames in (plus up to 0.3 s, so
            # some kills land inside a checkpoint write), sometimes during start-up.
            early = rng.random() < 0.2
            target = written() + (0 if early else int(rng.integers(1, 40)))
            process = subprocess.Popen(
                [*deva, "-o", str(root / "part"), "--resume"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while process.poll() is None and written() < target:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 3.0 if early else 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait()
        subprocess.run(
            [*deva, "-o", str(root / "part"), "--resume"], check=True, env=env, capture_output=True
        )
        names = sorted(os.listdir(root / "full" / "masks"))
        identical = names == sorted(os.listdir(root / "part" / "masks")) and all(
            filecmp.cmp(root / "full/masks" / n, root / "part/masks" / n, shallow=False)
            for n in names
        )
        for name in ("annotations.json", "overlay.mp4"):
            identical &= filecmp.cmp(root / "full" / name, root / "part" / name, shallow=False)
    return {
        "frames": num_frames,
        "kills": killed,
        "attempts": kills,
        "identical": identical,
        "uninterrupted_s": duration,
    }


if __name__ == "__main__":
    length, propagator, mode, out = sys.argv[1:5]
    print(json.dumps(run_stream(int(length), propagator, mode, Path(out))))
