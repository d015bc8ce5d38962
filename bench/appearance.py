"""The appearance propagator against optical flow, side by side in one run.

Quality: the three end-to-end settings of the DAVIS-16 shared clips (semi-supervised from the
first frame's mask, noisy detections semi-online, the motion segmenter default). Parts: what
each setting of the propagator gains, on the semi-supervised task. Speed: propagation alone at
854×480 for 1, 5 and 20 objects, split into feature extraction and readout. Re-identification:
how similar the prototypes of one object are across its clip, and of different objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from bench import tracking
from deva.config import TrackerConfig
from deva.propagation.appearance import AppearancePropagator
from deva.propagation.base import Propagator, propagate_ids
from deva.propagation.flow import FlowPropagator

PROPAGATORS: dict[str, Callable[[], Propagator]] = {
    "flow": FlowPropagator,
    "appearance": AppearancePropagator,
}
SEMI_ONLINE = {"semi-online, clip 3 every 5": TrackerConfig(mode="semionline", clip_size=3)}


def _mean(rows: list[tracking.Row]) -> float:
    return float(np.mean([r.jf for r in rows]))


def quality_table(sequences=tracking.SEQUENCES) -> str:
    """Mean J&F (and per clip) of each propagator in each end-to-end setting."""
    lines = [
        "| setting | propagator | J&F | frames/s | " + " | ".join(sequences) + " |",
        "|---|---|---:|---:|" + "---:|" * len(sequences),
    ]
    for setting in ("semi-supervised", "noisy detections", "motion segmenter (union)"):
        for name, make in PROPAGATORS.items():
            if setting == "semi-supervised":
                rows = tracking.vos_rows(sequences, make_propagator=make, label=name)
            elif setting == "noisy detections":
                rows = tracking.noisy_detection_rows(
                    sequences, methods=SEMI_ONLINE, make_propagator=make
                )
                rows = [r for r in rows if r.method in SEMI_ONLINE]
            else:
                rows = tracking.motion_rows(sequences, make_propagator=make, label=name, raw=False)
                rows = [r for r in rows if r.method.endswith("union")]
            fps = sum(r.frames for r in rows) / sum(r.frames / r.fps for r in rows)
            cells = " | ".join(f"{r.jf:.3f}" for r in rows)
            lines.append(f"| {setting} | {name} | **{_mean(rows):.3f}** | {fps:.2f} | {cells} |")
    return "\n".join(lines)


#: Variants of the propagator, each changing one setting of the default.
PARTS: dict[str, dict[str, object]] = {
    "default (first frame + 3 recent, top-20, windows 24 every 2nd cell / 4 cells, "
    "confidence, anchor 0.6)": {},
    "first frame only (no recent frames)": {"recent": 0},
    "recent frames not weighted by confidence": {"confidence": False},
    "no first-frame anchor": {"anchor_weight": 0.0},
    "first frame's window 12 cells, every cell": {"permanent_radius": 12, "permanent_step": 1},
    "features at 240 px instead of 480": {"feature_size": 240},
    "+ optical flow, 30 % of the result": {"flow_weight": 0.3},
}


def parts_table(sequences=tracking.SEQUENCES) -> str:
    """Semi-supervised J&F of each variant (one setting changed), and its frames/s."""
    lines = ["| variant | J&F | frames/s | " + " | ".join(sequences) + " |"]
    lines.append("|---|---:|---:|" + "---:|" * len(sequences))
    for label, settings in PARTS.items():
        rows = tracking.vos_rows(
            sequences,
            make_propagator=lambda s=settings: AppearancePropagator(**s),  # type: ignore[arg-type]
            label=label,
        )
        fps = sum(r.frames for r in rows) / sum(r.frames / r.fps for r in rows)
        cells = " | ".join(f"{r.jf:.3f}" for r in rows)
        lines.append(f"| {label} | **{_mean(rows):.3f}** | {fps:.2f} | {cells} |")
    return "\n".join(lines)


def _objects(truth: np.ndarray, count: int) -> np.ndarray:
    """(count, H, W) masks: the true object, then grid cells of the rest of the frame."""
    h, w = truth.shape
    masks = [truth]
    rows = int(np.ceil(np.sqrt(count - 1))) if count > 1 else 1
    cols = int(np.ceil((count - 1) / rows)) if count > 1 else 1
    for index in range(count - 1):
        cell = np.zeros_like(truth)
        r, c = divmod(index, cols)
        cell[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols] = True
        masks.append(cell & ~truth)
    return np.stack(masks)


def speed_table(sequence: str = "bmx-trees", frames: int = 30, counts=(1, 5, 20)) -> str:
    """Propagation frames/s at 854×480 (no resizing) for each object count, through the id-map
    verb the tracker calls (``propagate_ids``); for the appearance propagator also the time
    split (features, readout and the rest: labels at full size, the memory update)."""
    images = [f.image for f in tracking.frames_of(sequence)][: frames + 1]
    truth = tracking.ground_truth(sequence)[0] > 0
    lines = [
        "| objects | flow frames/s | appearance frames/s | features ms | readout ms | "
        "labels + memory update ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    times: dict[int, float] = {}
    for count in counts:
        masks = _objects(truth, count)
        fps = {}
        split = {"features": 0.0, "readout": 0.0}
        for name, make in PROPAGATORS.items():
            propagator = make()
            if isinstance(propagator, AppearancePropagator):
                _time_parts(propagator, split)
            propagator.memorize(images[0], masks, list(range(1, count + 1)))
            propagate_ids(propagator, images[1])  # warm-up
            start = time.perf_counter()
            for image in images[2:]:
                propagate_ids(propagator, image)
            fps[name] = (len(images) - 2) / (time.perf_counter() - start)
        per_frame = 1000 / fps["appearance"]
        times[count] = per_frame
        features, readout = (split[k] / (len(images) - 1) * 1000 for k in ("features", "readout"))
        rest = per_frame - features - readout
        lines.append(
            f"| {count} | {fps['flow']:.1f} | **{fps['appearance']:.1f}** | {features:.0f} | "
            f"{readout:.0f} | {rest:.0f} |"
        )
    if 1 in times and 20 in times:
        lines.append(
            f"\n20 objects take **{times[20] / times[1]:.2f}×** the time of 1 (goal ≤ 1.5×). "
            f"torch threads: {torch.get_num_threads()}."
        )
    return "\n".join(lines)


def _time_parts(propagator: AppearancePropagator, split: dict[str, float]) -> None:
    """Wrap the feature extractor and the readout to add their seconds into ``split``."""
    extractor, read = propagator.extractor, propagator._read

    def timed_extract(image: np.ndarray) -> torch.Tensor:
        start = time.perf_counter()
        keys = extractor(image)
        split["features"] += time.perf_counter() - start
        return keys

    def timed_read(*args, **kwargs) -> torch.Tensor:
        start = time.perf_counter()
        out = read(*args, **kwargs)
        split["readout"] += time.perf_counter() - start
        return out

    propagator.extractor = timed_extract  # type: ignore[assignment]
    propagator._read = timed_read  # type: ignore[method-assign]


def reid_table(sequences=tracking.SEQUENCES, samples: int = 4) -> str:
    """Cosine similarity of appearance prototypes: one object at ``samples`` frames spread over
    its clip (same object), and objects of different clips (different objects)."""
    propagator = AppearancePropagator()
    prototypes: dict[tuple[str, int], np.ndarray] = {}
    for sequence in sequences:
        truth = tracking.ground_truth(sequence)
        chosen = set(np.linspace(0, len(truth) - 1, samples).astype(int).tolist())
        for frame in tracking.frames_of(sequence):
            if frame.index in chosen:
                ids = (truth[frame.index] > 0).astype(np.int32)
                prototypes[(sequence, frame.index)] = propagator.describe(frame.image, ids, [1])[0]
    same, different = [], []
    keys = list(prototypes)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            similarity = float(prototypes[a] @ prototypes[b])
            (same if a[0] == b[0] else different).append(similarity)
    threshold = TrackerConfig().reid_threshold
    lines = ["| pairs | count | min | median | max | ≥ threshold |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for label, values in (("same object, other frame", same), ("different objects", different)):
        above = np.mean(np.asarray(values) >= threshold)
        lines.append(
            f"| {label} | {len(values)} | {min(values):.3f} | {np.median(values):.3f} | "
            f"{max(values):.3f} | {above:.0%} |"
        )
    lines.append(f"\nThreshold (`--reid-threshold`): {threshold}.")
    return "\n".join(lines)
