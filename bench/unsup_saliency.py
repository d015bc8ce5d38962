"""Unsupervised DAVIS-16 from saliency-like soft maps: associated consensus (``deva run-task
davis16-saliency``) against thresholding every frame's map at 0.5.

The soft maps are made from the ground truth by a seeded generator: boundary noise (erode or
dilate up to 6 px), random false blobs (Poisson mean 1 per frame, probability 0.5-0.9), blur
(sigma 2-6 px), pixel noise, and 10 % of frames dropped (all zero), as a saliency model that is
right on average but unreliable frame to frame.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from deva.eval.davis import evaluate_davis
from deva.io.masks import read_id_png
from deva.propagation.flow import FlowPropagator
from deva.tasks.saliency import run_davis16_saliency

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"
SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "dog")


def noisy_saliency(gt: np.ndarray, rng: np.random.Generator, drop_prob: float = 0.1) -> np.ndarray:
    """(H, W) uint8 soft map 0..255 from a binary gt mask."""
    height, width = gt.shape
    if rng.random() < drop_prob:
        return np.zeros(gt.shape, np.uint8)
    mask = gt.astype(np.uint8)
    radius = int(rng.integers(-6, 7))  # boundary noise: erode or dilate
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1,) * 2)
        mask = (cv2.dilate if radius > 0 else cv2.erode)(mask, kernel)
    soft = mask.astype(np.float32)
    for _ in range(rng.poisson(1.0)):  # false blobs
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(15, 70)), int(rng.integers(15, 70)))
        blob = np.zeros_like(soft)
        cv2.ellipse(blob, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        soft = np.maximum(soft, blob * rng.uniform(0.5, 0.9))
    soft = cv2.GaussianBlur(soft, (0, 0), float(rng.uniform(2, 6)))
    soft += rng.normal(0, 0.05, soft.shape).astype(np.float32)
    return (np.clip(soft, 0, 1) * 255).astype(np.uint8)


def write_inputs(root: Path, sequences=SEQUENCES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for sequence in sequences:
        folder = root / sequence
        folder.mkdir(parents=True)
        for gt_file in sorted((DAVIS / "Annotations" / "480p" / sequence).glob("*.png")):
            soft = noisy_saliency(read_id_png(gt_file) > 0, rng)
            Image.fromarray(soft).save(folder / gt_file.name)
    return root


def threshold_baseline(masks: Path, out: Path) -> None:
    for folder in sorted(p for p in masks.iterdir() if p.is_dir()):
        (out / folder.name).mkdir(parents=True)
        for file in folder.glob("*.png"):
            soft = np.asarray(Image.open(file))
            Image.fromarray(np.where(soft > 127, 255, 0).astype(np.uint8)).save(
                out / folder.name / file.name
            )


def measure(sequences=SEQUENCES, seed: int = 0) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        masks = write_inputs(scratch / "masks", sequences, seed)
        threshold_baseline(masks, scratch / "threshold")
        start = time.perf_counter()
        frames = run_davis16_saliency(
            DAVIS / "JPEGImages" / "480p", masks, scratch / "deva", propagator=FlowPropagator()
        )
        seconds = time.perf_counter() - start
        reports = {
            name: evaluate_davis(scratch / name, DAVIS, match="union", sequences=list(sequences))
            for name in ("threshold", "deva")
        }
    return {"reports": reports, "frames": frames, "seconds": seconds}


def table(result: dict[str, object]) -> str:
    reports = result["reports"]
    lines = [
        "| method | J&F | J | F |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "threshold": "per-frame saliency > 0.5",
        "deva": "associated consensus (n = 10) + flow propagation",
    }
    for name, label in labels.items():
        report = reports[name]
        lines.append(
            f"| {label} | **{report.jf_mean:.3f}** | {report.j_mean:.3f} | {report.f_mean:.3f} |"
        )
    seconds, frames = result["seconds"], result["frames"]
    lines.append("")
    lines.append(
        f"`run_davis16_saliency` over {frames} frames: {seconds:.1f} s "
        f"({frames / seconds:.1f} frames/s, consensus + propagation + PNG writing)."
    )
    per_sequence = ["", "| sequence | threshold J&F | deva J&F |", "|---|---:|---:|"]
    for base, ours in zip(reports["threshold"].sequences, reports["deva"].sequences, strict=True):
        per_sequence.append(f"| {base.name} | {base.jf_mean:.3f} | {ours.jf_mean:.3f} |")
    return "\n".join(lines + per_sequence)


if __name__ == "__main__":
    print(table(measure()))
