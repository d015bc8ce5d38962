"""Accuracy and end-to-end speed of ``deva track`` on the shared DAVIS-16 clips.

* online deva with noisy precomputed detections (our noise generator) vs the plain
  tracking-by-detection baseline on the same detections;
* the weight-free default (motion segmenter + flow propagator), unsupervised.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deva.config import TrackerConfig
from deva.eval.baseline import track_by_detection
from deva.eval.davis import evaluate_sequence
from deva.eval.identity import count_id_switches
from deva.eval.noise import DEFAULT_NOISE, NoiseModel, write_noisy_detections
from deva.io.frames import open_frames
from deva.io.masks import read_id_png
from deva.propagation.base import Propagator
from deva.propagation.flow import FlowPropagator
from deva.segmenters.motion import MotionSegmenter
from deva.segmenters.precomputed import PrecomputedSegmenter
from deva.tracker import Tracker
from deva.types import FrameResult

SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog")
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"


@dataclass(frozen=True)
class Row:
    """One method on one sequence: J&F, J, F (DAVIS definition), id switches, frames/s."""

    method: str
    sequence: str
    jf: float
    j: float
    f: float
    fps: float
    frames: int
    switches: int = 0


def ground_truth(sequence: str, root: Path = DAVIS) -> np.ndarray:
    paths = sorted((root / "Annotations" / "480p" / sequence).glob("*.png"))
    return np.stack([read_id_png(p) for p in paths])


def frames_of(sequence: str, root: Path = DAVIS):
    return open_frames(root / "JPEGImages" / "480p" / sequence)


def timed_ids(results: Iterable[FrameResult]) -> tuple[np.ndarray, float]:
    """Collect id maps from a result stream; frames/s of producing them."""
    start = time.perf_counter()
    ids = [r.ids for r in results]
    return np.stack(ids), len(ids) / (time.perf_counter() - start)


def score(method: str, sequence: str, pred: np.ndarray, gt: np.ndarray, fps: float, match: str):
    s = evaluate_sequence(pred, gt, match=match, name=sequence)
    switches = count_id_switches(pred, gt > 0)
    return Row(method, sequence, s.jf_mean, s.j_mean, s.f_mean, fps, len(pred), switches)


BASELINE = "tracking-by-detection (IoU, no propagation)"
#: label -> TrackerConfig for the detection-driven comparison.
METHODS: dict[str, TrackerConfig] = {
    "deva online, detect every 5": TrackerConfig(mode="online"),
    "deva online, detect every 1": TrackerConfig(mode="online", detect_every=1),
    "deva semi-online, clip 3 every 5": TrackerConfig(mode="semionline", clip_size=3),
    "deva semi-online, clip 5 every 5": TrackerConfig(mode="semionline", clip_size=5),
}


def noisy_detection_rows(
    sequences=SEQUENCES,
    noise: NoiseModel = DEFAULT_NOISE,
    seed: int = 0,
    root: Path = DAVIS,
    methods: dict[str, TrackerConfig] = METHODS,
    make_propagator: Callable[[], Propagator] = FlowPropagator,
) -> list[Row]:
    """deva's schedules vs tracking-by-detection on the same noisy detections (misses,
    splits, false positives, boundary noise, ids shuffled every frame); each ground-truth
    object is matched to its single best predicted id (DAVIS-2017 unsupervised protocol)."""
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for sequence in sequences:
            gt = ground_truth(sequence, root)
            dets = Path(scratch) / sequence
            write_noisy_detections(root / "Annotations" / "480p" / sequence, dets, noise, seed)
            segmenter = PrecomputedSegmenter(dets)
            image = np.zeros((*gt.shape[1:], 3), np.uint8)
            detections = (segmenter.segment(image, frame_index=t) for t in range(len(gt)))
            start = time.perf_counter()
            pred = np.stack(list(track_by_detection(detections)))
            fps = len(pred) / (time.perf_counter() - start)
            rows.append(score(BASELINE, sequence, pred, gt, fps, "hungarian"))
            for label, config in methods.items():
                frames = frames_of(sequence, root)
                segmenter = PrecomputedSegmenter(dets, frame_name=frames.name)
                tracker = Tracker(segmenter, make_propagator(), config)
                pred, fps = timed_ids(tracker.run(frames))
                rows.append(score(label, sequence, pred, gt, fps, "hungarian"))
    return rows


def noise_sweep(
    sequences=SEQUENCES,
    miss_probs=(0.0, 0.15, 0.3),
    false_positive_rates=(0.0, 3.0),
    seed: int = 0,
) -> str:
    """Mean J&F of baseline / online / semi-online as the miss rate and the false-positive rate
    grow (one varied at a time, the other at its default)."""
    methods = {k: v for k, v in METHODS.items() if "every 1" not in k and "clip 5" not in k}
    labels = [BASELINE, *methods]
    settings = [("miss", m, replace(DEFAULT_NOISE, miss_prob=m)) for m in miss_probs]
    settings += [
        ("false positives / frame", r, replace(DEFAULT_NOISE, false_positive_rate=r))
        for r in false_positive_rates
    ]
    lines = [
        "| varied | value | " + " | ".join(labels) + " | semi-online − online |",
        "|---|---:|" + "---:|" * (len(labels) + 1),
    ]
    for name, value, noise in settings:
        rows = noisy_detection_rows(sequences, noise, seed, methods=methods)
        means = [np.mean([r.jf for r in rows if r.method == label]) for label in labels]
        gain = means[-1] - means[-2]
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| {name} | {value:g} | {cells} | {gain:+.3f} |")
    return "\n".join(lines)


def motion_rows(
    sequences=SEQUENCES,
    root: Path = DAVIS,
    make_propagator: Callable[[], Propagator] = FlowPropagator,
    label: str = "motion + flow",
    raw: bool = True,
) -> list[Row]:
    """The weight-free default end to end, scored DAVIS-16 style (all objects = foreground) and
    DAVIS-17 style (best single id); plus the raw per-frame motion segmentation for reference."""
    rows = []
    for sequence in sequences:
        gt = ground_truth(sequence, root)
        tracker = Tracker(MotionSegmenter(), make_propagator(), TrackerConfig())
        pred, fps = timed_ids(tracker.run(frames_of(sequence, root)))
        rows.append(score(f"deva track ({label}), union", sequence, pred, gt, fps, "union"))
        rows.append(score(f"deva track ({label}), best id", sequence, pred, gt, fps, "hungarian"))
        if not raw:
            continue
        segmenter = MotionSegmenter()
        raw = []
        start = time.perf_counter()
        for frame in frames_of(sequence, root):
            segmenter.observe(frame.image, frame_index=frame.index)
            raw.append(segmenter.segment(frame.image, frame_index=frame.index).ids)
        fps = len(raw) / (time.perf_counter() - start)
        rows.append(
            score(
                "motion segmenter alone, every frame, union",
                sequence,
                np.stack(raw),
                gt,
                fps,
                "union",
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    """Per-method mean over sequences, then per sequence: J&F (id switches)."""
    methods = list(dict.fromkeys(r.method for r in rows))
    sequences = list(dict.fromkeys(r.sequence for r in rows))
    head = "| method | J&F | J | F | id switches | frames/s | " + " | ".join(sequences) + " |"
    lines = [head, "|---" + "|---:" * (5 + len(sequences)) + "|"]
    for method in methods:
        mine = [r for r in rows if r.method == method]
        frames = sum(r.frames for r in mine)
        fps = frames / sum(r.frames / r.fps for r in mine)
        cells = [f"{np.mean([getattr(r, k) for r in mine]):.3f}" for k in ("jf", "j", "f")]
        per_seq = [f"{r.jf:.3f} ({r.switches})" for s in sequences for r in mine if r.sequence == s]
        switches = sum(r.switches for r in mine)
        lines.append(
            f"| {method} | **{cells[0]}** | {cells[1]} | {cells[2]} | {switches} | {fps:.1f} | "
            + " | ".join(per_seq)
            + " |"
        )
    return "\n".join(lines)


def vos_rows(
    sequences=SEQUENCES,
    root: Path = DAVIS,
    make_propagator=FlowPropagator,
    label: str = "flow propagator, first-frame mask",
) -> list[Row]:
    """Semi-supervised VOS: the first frame's ground truth given, propagation only; scored as
    DAVIS does (identity ids, first and last frames excluded)."""
    rows = []
    for sequence in sequences:
        gt = ground_truth(sequence, root)

        def first_mask(frame, gt=gt):
            return gt[0] if frame.index == 0 else None

        tracker = Tracker(None, make_propagator(), TrackerConfig())
        pred, fps = timed_ids(tracker.run(frames_of(sequence, root), given_masks=first_mask))
        s = evaluate_sequence(pred, gt, match="identity", skip_first_last=True, name=sequence)
        switches = count_id_switches(pred, gt > 0)
        rows.append(
            Row(
                label,
                sequence,
                s.jf_mean,
                s.j_mean,
                s.f_mean,
                fps,
                len(pred),
                switches,
            )
        )
    return rows
