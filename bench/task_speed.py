"""Time per task run: every ``deva run-task`` protocol end to end, through the real command
(``python -m deva.cli run-task TASK ...`` in a fresh process: start-up, reading, tracking or
consensus, writing), on small fixture datasets in each task's real layout built from the shared
DAVIS-16 clips (the first ``FRAMES`` frames of ``SEQUENCES``, 854×480).

Inputs, made from the ground truth (so every task has something real to track):

* vipseg: RGB-id panoptic PNGs under ``pan_pred/`` + ``pred.json``; the object a thing (dog),
  the rest two stuff regions (sky, road) and a VOID strip (``bench.eval_speed``'s layout);
* burst: ``<dataset>/<seq>/`` frames, noisy instance detections (PNG + JSON scores,
  ``deva.eval.noise``) and a BURST GT file annotating every 3rd frame; tracked every 3rd frame
  as in the paper (``--subsample-every 3``), merged into ``burst_predictions.json``;
* davis17-unsup: the same noisy instance detections per video;
* davis16-saliency: noisy soft saliency maps (``bench.unsup_saliency``);
* ref-davis / ref-youtube: two soft masks per video (the object and a fixed box, blurred and
  noised as in ``tests/test_tasks_cli.py``) + ``scores.csv``; ref-youtube also zips its output.

Default options everywhere, so the default flow propagator (``FlowPropagator()``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.eval_speed import _panoptic, _rgb
from bench.tracking import DAVIS
from bench.unsup_saliency import noisy_saliency
from deva.eval.noise import write_noisy_detections
from deva.io.rle import encode_counts
from tests.test_tasks_cli import DOG, ROAD, SKY, copy_frames, ref_scores, soft_from_gt

SEQUENCES = ("blackswan", "dog")
FRAMES = 40
BURST_DATASET = "YFCC100M"
ROOT = Path(__file__).resolve().parents[1]


def _gt_subset(scratch: Path, sequence: str) -> Path:
    """The first FRAMES ground-truth PNGs of ``sequence`` in a folder of their own."""
    folder = scratch / "gt" / sequence
    folder.mkdir(parents=True)
    for index in range(FRAMES):
        shutil.copy(DAVIS / "Annotations" / "480p" / sequence / f"{index:05d}.png", folder)
    return folder


def _vipseg(dets: Path, gts: dict[str, list[np.ndarray]]) -> None:
    annotations = []
    for sequence, masks in gts.items():
        frames = []
        for index, mask in enumerate(masks):
            _rgb(dets / "pan_pred" / sequence / f"{index:05d}.png", _panoptic(mask, 1000, 500, 700))
            segments = [
                {"id": 500, "category_id": SKY, "score": 0.8},
                {"id": 700, "category_id": ROAD, "score": 0.7},
                {"id": 1000, "category_id": DOG, "score": 0.9},
            ]
            frames.append({"file_name": f"{index:05d}.jpg", "segments_info": segments})
        annotations.append({"video_id": sequence, "annotations": frames})
    (dets / "pred.json").write_text(json.dumps({"annotations": annotations}))


def _burst_gt(path: Path, gts: dict[str, list[np.ndarray]]) -> None:
    sequences = []
    for sequence, masks in gts.items():
        annotated = list(range(0, len(masks), 3))
        height, width = masks[0].shape
        sequences.append(
            {
                "dataset": BURST_DATASET,
                "seq_name": sequence,
                "height": height,
                "width": width,
                "all_image_paths": [f"{i:05d}.jpg" for i in range(len(masks))],
                "annotated_image_paths": [f"{i:05d}.jpg" for i in annotated],
                "segmentations": [{"1": {"rle": encode_counts(masks[i])}} for i in annotated],
                "track_category_ids": {"1": 1},
            }
        )
    path.write_text(json.dumps({"sequences": sequences, "categories": [], "split": "val"}))


def _soft_masks(masks: Path, gts: dict[str, list[np.ndarray]], *, objects: bool) -> None:
    """davis16-saliency (``objects`` False): MASKS/<video>/<frame>.png; the referring tasks:
    MASKS/<video>/<object>/<frame>.png for the object and a fixed box, + scores.csv."""
    rng = np.random.default_rng(0)
    for sequence, frames in gts.items():
        for index, gt in enumerate(frames):
            name = f"{index:05d}.png"
            if not objects:
                (masks / sequence).mkdir(parents=True, exist_ok=True)
                Image.fromarray(noisy_saliency(gt, rng)).save(masks / sequence / name)
                continue
            box = np.zeros_like(gt)
            box[20:120, 20:200] = True
            for obj, mask in (("0", gt), ("1", box)):
                (masks / sequence / obj).mkdir(parents=True, exist_ok=True)
                Image.fromarray(soft_from_gt(mask, rng)).save(masks / sequence / obj / name)
        if objects:
            (masks / sequence / "scores.csv").write_text(ref_scores(len(frames)))


def build(scratch: Path) -> list[tuple[str, str, list[object]]]:
    """Write every task's fixture under ``scratch``; (task, input summary, CLI arguments)."""
    images, burst_images = scratch / "images", scratch / "burst_images"
    gts = {s: copy_frames(DAVIS, s, FRAMES, images / s) for s in SEQUENCES}
    for sequence in SEQUENCES:
        shutil.copytree(images / sequence, burst_images / BURST_DATASET / sequence)
        gt = _gt_subset(scratch, sequence)
        write_noisy_detections(gt, scratch / "instances" / sequence, seed=0)
        write_noisy_detections(gt, scratch / "burst_dets" / BURST_DATASET / sequence, seed=0)
    _vipseg(scratch / "panoptic", gts)
    _burst_gt(scratch / "burst_gt.json", gts)
    _soft_masks(scratch / "saliency", gts, objects=False)
    _soft_masks(scratch / "referring", gts, objects=True)
    clips = f"{len(SEQUENCES)} × {FRAMES}"
    return [
        ("vipseg", f"{clips}, 3 segments", [images, "--detections", scratch / "panoptic"]),
        (
            "burst",
            f"{clips}, every 3rd tracked",
            [
                burst_images,
                "--detections",
                scratch / "burst_dets",
                "--subsample-every",
                3,
                "--gt-json",
                scratch / "burst_gt.json",
            ],
        ),  # fmt: skip
        (
            "davis17-unsup",
            f"{clips}, noisy instances",
            [images, "--detections", scratch / "instances"],
        ),
        ("davis16-saliency", f"{clips}, soft maps", [images, "--masks", scratch / "saliency"]),
        ("ref-davis", f"{clips}, 2 objects", [images, "--masks", scratch / "referring"]),
        ("ref-youtube", f"{clips}, 2 expressions", [images, "--masks", scratch / "referring"]),
    ]


# What every run pays before its first frame: the interpreter, deva's CLI, a task module and the
# flow propagator (a process that only does that, timed in the same run).
STARTUP = (
    "import deva.cli; from deva.api import make_propagator; "
    "from deva.tasks.vipseg import run_vipseg; make_propagator('flow')"
)


def startup_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP], cwd=ROOT, check=True)
    return time.perf_counter() - start


def measure() -> dict[str, object]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for task, summary, args in build(scratch):
            out = scratch / "out" / task
            command = [sys.executable, "-m", "deva.cli", "run-task", task, *args, "-o", out]
            start = time.perf_counter()
            done = subprocess.run(
                [str(a) for a in command], cwd=ROOT, capture_output=True, text=True, check=False
            )
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"deva run-task {task} failed:\n{done.stdout}{done.stderr}")
            written = re.search(r"(\d+)\s+frames\s+written", done.stderr)  # its console
            if written is None:
                raise RuntimeError(f"deva run-task {task}: no frame count in {done.stderr!r}")
            rows.append(
                {
                    "task": task,
                    "input": summary,
                    "frames": int(written.group(1)),
                    "seconds": seconds,
                }
            )
    return {"rows": rows, "startup": startup_seconds()}


def table(result: dict[str, object]) -> str:
    rows = result["rows"]
    lines = [
        "| `deva run-task` | input (videos × frames) | frames written | seconds | frames/s |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['task']}` | {row['input']} | {row['frames']} | {row['seconds']:.1f} | "
            f"**{row['frames'] / row['seconds']:.1f}** |"
        )
    lines.append("")
    lines.append(
        f"Included in every row: {result['startup']:.1f} s of process start-up (Python, "
        "`deva.cli`, a task module and the flow propagator, timed alone in the same run)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
