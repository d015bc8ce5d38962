"""Learned image models on CPU: seconds per frame of each segmenter (tiny random test models,
and SAM ViT-B at its real size with random weights), and how many SAM point prompts the
"prompt only where nothing is tracked" rule saves.

Random weights: speed does not depend on the values, masks do, so the tracker-run figure is
plumbing; the ground-truth figure shows the saving when the tracked objects are the true ones.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.tracking import DAVIS, SEQUENCES
from deva.config import TrackerConfig
from deva.io.frames import open_frames
from deva.propagation.flow import FlowPropagator
from deva.segmenters import hf, tiny_models
from deva.segmenters.grounded import TextDetector, TextPromptSegmenter, TextSettings
from deva.segmenters.mask_ops import grid_points, points_in_unsegmented
from deva.segmenters.panoptic import PanopticSegmenter
from deva.segmenters.sam_auto import AutomaticSegmenter, AutoSettings
from deva.segmenters.sam_prompt import SamPrompter
from deva.tracker import Tracker

CPU = torch.device("cpu")


def _frames(sequence: str, count: int) -> list[np.ndarray]:
    folder = DAVIS / "JPEGImages" / "480p" / sequence
    return [
        np.asarray(Image.open(folder / f"{index:05d}.jpg").convert("RGB")) for index in range(count)
    ]


def _seconds(run: Callable[[], object], repeats: int = 2) -> float:
    run()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def _load(folder: Path, accepted: dict[str, str], **kwargs: object) -> hf.LoadedModel:
    return hf.load_model(folder, accepted=accepted, role="bench", device=CPU, **kwargs)


def segmenter_speed(scratch: Path) -> list[dict[str, object]]:
    """s/frame on one 854×480 DAVIS frame per segmenter / propagator."""
    image = _frames("blackswan", 1)[0]
    sam = SamPrompter(_load(tiny_models.tiny_sam(scratch / "sam"), hf.SAM_TYPES))
    dino = _load(tiny_models.tiny_grounding_dino(scratch / "dino"), hf.DETECTOR_TYPES)
    pan = _load(tiny_models.tiny_mask2former(scratch / "m2f"), hf.PANOPTIC_TYPES)
    rows: list[dict[str, object]] = []
    for side in (16, 64):
        auto = AutomaticSegmenter(sam, AutoSettings(points_per_side=side))
        rows.append(
            {
                "what": f"auto, tiny SAM, {side}×{side} points",
                "seconds": _seconds(lambda a=auto: a.segment(image, frame_index=0), repeats=1),
            }
        )
    text = TextPromptSegmenter(
        TextDetector(dino), sam, "swan.bird", TextSettings(box_threshold=0.0, text_threshold=0.0)
    )
    rows.append(
        {
            "what": "text, tiny Grounding DINO + tiny SAM (every box kept, 20 queries)",
            "seconds": _seconds(lambda: text.segment(image, frame_index=0)),
        }
    )
    panoptic = PanopticSegmenter(pan)
    rows.append(
        {
            "what": "panoptic, tiny Mask2Former",
            "seconds": _seconds(lambda: panoptic.segment(image, frame_index=0)),
        }
    )
    rows.append(_sam2_row(scratch))
    return rows + _real_sam_rows(scratch, image)


def _sam2_row(scratch: Path) -> dict[str, object]:
    from deva.propagation.sam2 import Sam2Propagator

    loaded = _load(
        tiny_models.tiny_sam2_video(scratch / "sam2"), hf.VIDEO_TYPES, with_processor=False
    )
    images = _frames("blackswan", 6)
    mask = np.asarray(Image.open(DAVIS / "Annotations/480p/blackswan/00000.png")) > 0
    propagator = Sam2Propagator(loaded)
    propagator.memorize(images[0], mask[None], [1])
    start = time.perf_counter()
    for image in images[1:]:
        propagator.propagate(image)
    seconds = (time.perf_counter() - start) / (len(images) - 1)
    return {"what": "sam2 propagator, tiny SAM 2 (256² input), 1 object", "seconds": seconds}


def _real_sam_rows(scratch: Path, image: np.ndarray) -> list[dict[str, object]]:
    """SAM ViT-B (SamConfig() defaults) with random weights: the image encoder once per frame,
    then 64-point decoder batches; a full 64×64 grid is 64 batches (estimated from one)."""
    sam = SamPrompter(_load(tiny_models.tiny_sam(scratch / "vitb", real_size=True), hf.SAM_TYPES))
    start = time.perf_counter()
    embedded = sam.embed(image)
    encode = time.perf_counter() - start
    points = grid_points(8, *image.shape[:2])
    batch = _seconds(lambda: sam.predict(embedded, points=points), repeats=1)
    return [
        {"what": "SAM ViT-B (real size, random weights): image encoder", "seconds": encode},
        {"what": "SAM ViT-B: one batch of 64 point prompts (3 masks each)", "seconds": batch},
        {
            "what": "SAM ViT-B: auto frame, 64×64 grid, nothing tracked (encoder + 64 batches, "
            "estimated)",
            "seconds": encode + 64 * batch,
        },
    ]


def prompt_savings_truth(points_per_side: int = 64, step: int = 10) -> list[dict[str, object]]:
    """Grid points left when the tracked objects are exactly the ground truth."""
    rows = []
    grid_size = points_per_side**2
    for sequence in SEQUENCES:
        folder = DAVIS / "Annotations" / "480p" / sequence
        files = sorted(folder.glob("*.png"))[::step]
        kept = []
        for file in files:
            tracked = np.asarray(Image.open(file)) > 0
            grid = grid_points(points_per_side, *tracked.shape)
            kept.append(len(points_in_unsegmented(grid, ~tracked)))
        rows.append({"sequence": sequence, "frames": len(files), "mean_kept": float(np.mean(kept))})
    return [*rows, {"grid": grid_size}]


def prompt_savings_tracker(
    sequence: str = "blackswan", frames: int = 21, points_per_side: int = 32
) -> list[tuple[int, int, float]]:
    """(frame, points prompted, tracked fraction) on each detection frame of a real run: tiny
    SAM + flow propagator, online, auto-mode tracker defaults (detect every 5)."""
    scratch = Path(tempfile.mkdtemp())
    sam = SamPrompter(_load(tiny_models.tiny_sam(scratch / "sam"), hf.SAM_TYPES))
    automatic = AutomaticSegmenter(sam, AutoSettings(points_per_side=points_per_side))
    log: list[tuple[int, int, float]] = []

    class Recording:
        category_names: dict[int, str] = {}

        def segment(self, image, *, frame_index, unsegmented=None):
            result = automatic.segment(image, frame_index=frame_index, unsegmented=unsegmented)
            tracked = 0.0 if unsegmented is None else float(1 - unsegmented.mean())
            log.append((frame_index, automatic.last_num_points, tracked))
            return result

    config = TrackerConfig(mode="online", max_objects=200, incremental=True)
    source = open_frames(_frames(sequence, frames))
    for _ in Tracker(Recording(), FlowPropagator(), config).run(source):
        pass
    return log


def table() -> str:
    with tempfile.TemporaryDirectory() as scratch:
        speed = segmenter_speed(Path(scratch))
    lines = ["| model (CPU, one 854×480 frame) | s/frame |", "|---|---:|"]
    lines += [f"| {row['what']} | **{row['seconds']:.2f}** |" for row in speed]
    truth = prompt_savings_truth()
    grid = truth[-1]["grid"]
    lines += [
        "",
        f"Points prompted when the tracked objects are the ground truth (64×64 = {grid} grid, "
        "every 10th frame):",
        "",
        "| sequence | frames | points prompted (mean) | saved |",
        "|---|---:|---:|---:|",
    ]
    for row in truth[:-1]:
        saved = 1 - row["mean_kept"] / grid
        lines.append(
            f"| {row['sequence']} | {row['frames']} | {row['mean_kept']:.0f} | {saved:.0%} |"
        )
    run = prompt_savings_tracker()
    lines += [
        "",
        "A real run (tiny SAM, random masks, + flow propagator, online, auto-mode defaults, "
        "32×32 grid = 1024 points, DAVIS `blackswan`): points prompted on each detection frame.",
        "",
        "| frame | tracked pixels | points prompted |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {f} | {t:.0%} | {n} |" for f, n, t in run]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
