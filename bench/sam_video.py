"""SAM-family models on CPU: per-frame time and peak memory of random models of the released
sizes (built in memory from transformers configs, nothing downloaded: speed does not depend
on the values), and the SAM 2 propagator's session size after 100 to 2,000 frames (one run of
the tiny test model at 64²: it measures growth, not speed).

Each row runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FRAME = (480, 854)
SESSION_SIZE = 64
SESSION_FRAMES = (100, 500, 1000, 2000)
"""The session rows measure growth, not speed: the tiny model at 64² keeps 2,000 frames quick."""
ROWS = (
    ("SAM 2.1 hiera-tiny propagator, 2 objects (`Sam2VideoConfig()`)", "sam2", 1024),
    (
        "EdgeTAM propagator, 2 objects (`EdgeTamVideoConfig()`, hiera-tiny stand-in backbone)",
        "edgetam",
        1024,
    ),
    ("SAM 3 tracker propagator, 2 objects (`Sam3VideoConfig().tracker_config`)", "sam3", 1008),
    ("SAM 3 tracker propagator, 2 objects", "sam3", 560),
    (
        "SAM 3 image model, text mode, 1 phrase (`Sam3VideoConfig().detector_config`)",
        "sam3-image",
        1008,
    ),
    ("SAM 3 image model, text mode, 1 phrase", "sam3-image", 560),
)


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*FRAME, 3), dtype=np.uint8)


def _propagator_row(family: str, size: int, frames: int) -> float:
    import transformers

    from deva.models.loading import LoadedModel
    from deva.propagation.sam_video import SamVideoPropagator

    if family == "sam2":
        model, kind = transformers.Sam2VideoModel(transformers.Sam2VideoConfig()), "sam2_video"
    elif family == "edgetam":
        config = transformers.EdgeTamVideoConfig()
        # its RepViT backbone is a timm model (timm needs torchvision): SAM 2.1's hiera-tiny,
        # with the same channels and feature sizes, stands in; the memory side is EdgeTAM's own
        config.vision_config = transformers.Sam2VideoConfig().vision_config
        model, kind = transformers.EdgeTamVideoModel(config), "edgetam_video"
    else:
        model, kind = transformers.Sam3TrackerVideoModel(_sam3_config(size)), "sam3_tracker_video"
    loaded = LoadedModel(model.eval(), None, kind, torch.device("cpu"), torch.float32, "random")
    propagator = SamVideoPropagator(loaded)
    masks = np.zeros((2, *FRAME), bool)
    masks[0, 100:200, 100:300] = True
    masks[1, 250:400, 500:700] = True
    propagator.memorize(_image(0), masks, [1, 2])
    propagator.propagate(_image(1))  # warm-up
    start = time.perf_counter()
    for index in range(frames):
        propagator.propagate(_image(2 + index))
    return (time.perf_counter() - start) / frames


def _sam3_config(size: int) -> object:
    """The released SAM 3 video config (detector + tracker) at ``size`` pixels: its image_size
    setter resizes every nested config; each model takes its half."""
    import transformers

    config = transformers.Sam3VideoConfig()
    config.image_size = size
    return config


def _image_row(size: int, frames: int) -> float:
    import transformers

    from deva.models.loading import LoadedModel
    from deva.models.tiny import _clip_tokenizer
    from deva.segmenters.concepts import ConceptSegmenter

    model = transformers.Sam3Model(_sam3_config(size)).eval()
    tokenizer = _clip_tokenizer()  # letter-level stand-in: "person" is 6 tokens either way
    loaded = LoadedModel(model, tokenizer, "sam3", torch.device("cpu"), torch.float32, "random")
    segmenter = ConceptSegmenter(loaded, ["person"])
    segmenter.segment(_image(0), frame_index=0)  # warm-up (and the text embedding)
    start = time.perf_counter()
    for index in range(frames):
        segmenter.segment(_image(1 + index), frame_index=1 + index)
    return (time.perf_counter() - start) / frames


def _session_bytes(checkpoints: tuple[int, ...]) -> dict[str, float]:
    """Tensors held by the tiny SAM 2 propagator's session after each of ``checkpoints``
    frames (one run, merging every 5 frames)."""
    from deva.models import loading, tiny
    from deva.propagation.sam_video import SamVideoPropagator

    with tempfile.TemporaryDirectory() as scratch:
        folder = tiny.tiny_video(Path(scratch) / "sam2", "sam2", image_size=SESSION_SIZE)
        loaded = loading.load_model(
            folder,
            accepted=loading.VIDEO_TYPES,
            role="bench",
            device=torch.device("cpu"),
            with_processor=False,
        )
    propagator = SamVideoPropagator(loaded)
    height, width = 48, 64
    masks = np.zeros((2, height, width), bool)
    masks[0, 10:25, 10:25] = True
    masks[1, 30:45, 35:60] = True
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    propagator.memorize(image, masks, [1, 2])
    held: dict[str, float] = {}
    for step in range(1, max(checkpoints) + 1):
        image = np.roll(image, 1, axis=1)
        propagator.propagate(image)
        if step % 5 == 0:
            propagator.memorize(image, masks, [1, 2])
        if step in checkpoints:
            held[str(step)] = float(_tensor_bytes(vars(propagator._session)))
    return held


def _tensor_bytes(value: object, seen: set[int] | None = None) -> int:
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v, seen) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return _tensor_bytes(vars(value), seen)
    return 0


def _child(kind: str, arg: str) -> None:
    torch.set_num_threads(2)
    if kind == "session":
        row: dict[str, Any] = {"bytes": _session_bytes(tuple(int(n) for n in arg.split(",")))}
    else:
        family, size = arg.split(":")
        frames = 2 if int(size) < 1000 else 1
        seconds = (
            _image_row(int(size), frames)
            if family == "sam3-image"
            else _propagator_row(family, int(size), frames)
        )
        row = {"seconds": seconds}
    row["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps(row))


def _run(kind: str, arg: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.sam_video", kind, arg],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure() -> dict[str, list]:
    speed = []
    for name, family, size in ROWS:
        speed.append((name, size, _run("speed", f"{family}:{size}")))
        print(f"  {family} {size}: {speed[-1][2]}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    held = _run("session", ",".join(str(n) for n in SESSION_FRAMES))
    session = [(frames, held["bytes"][str(frames)]) for frames in SESSION_FRAMES]
    return {"speed": speed, "session": session, "load": [max(load, os.getloadavg()[0])]}


def table(result: dict[str, list]) -> str:
    lines = [
        "| model (random weights, real size) | input | s / frame | peak RSS |",
        "|---|---|---|---|",
    ]
    for name, size, row in result["speed"]:
        lines.append(f"| {name} | {size}² | {row['seconds']:.2f} | {row['peak_gb']:.1f} GB |")
    lines += [
        "",
        f"| SAM 2 propagator session (tiny test model at {SESSION_SIZE}², 64×48 frames, 2 "
        "objects, merge every 5 frames: measures growth, not speed) | tensors held |",
        "|---|---|",
    ]
    for frames, held in result["session"]:
        lines.append(f"| after {frames} frames | {held / 1024**2:.2f} MiB |")
    lines += [
        "",
        f"Load average at the end of the timed rows: {result['load'][0]:.1f} "
        f"({os.cpu_count()} cores): above the core count, the times are upper bounds.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
