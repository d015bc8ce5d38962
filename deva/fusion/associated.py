"""Associated consensus (spec §3.8): when each object's identity is known in every frame (one
soft mask per object or expression, e.g. referring or saliency segmentation), the noisy per-frame
masks of a few sampled frames are averaged at a keyframe instead of matched by an integer program.

Pure functions; the alignment of each sampled frame onto the keyframe (which needs a propagator)
happens before ``combine`` and is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deva.errors import DevaError, OptionError

__all__ = [
    "SALIENT_PROBABILITY",
    "choose_keyframe",
    "combine",
    "consensus_weights",
    "probabilities",
    "sample_indices",
]

SALIENT_PROBABILITY = 0.8
"""Without scores, the keyframe is the sampled frame with the most pixels above this."""

SCORE_TEMPERATURE = 2.0
"""Weights are softmax(SCORE_TEMPERATURE · score), as in the released code (the paper: 1)."""


def sample_indices(num_frames: int, num_samples: int) -> list[int]:
    """``num_samples`` frame indices spread evenly over the video: i·T//n + T//(2n).

    n is capped at T first, so a short video uses each frame once.
    """
    if num_frames < 1:
        raise DevaError(f"a video needs at least one frame, got {num_frames}")
    if num_samples < 1:
        raise OptionError("num_samples", f"(voting frames) must be >= 1, got {num_samples}")
    n = min(num_samples, num_frames)
    return [i * num_frames // n + num_frames // (2 * n) for i in range(n)]


def consensus_weights(scores: Sequence[float] | None, num_samples: int) -> np.ndarray:
    """(n,) weights summing to 1: softmax(2 · score) of the sampled frames, uniform without."""
    if scores is None:
        return np.full(num_samples, 1.0 / num_samples)
    values = np.asarray(scores, dtype=np.float64) * SCORE_TEMPERATURE
    if values.shape != (num_samples,):
        raise DevaError(f"expected {num_samples} scores, got {len(values)}")
    exp = np.exp(values - values.max())
    return exp / exp.sum()


def choose_keyframe(masks: Sequence[np.ndarray], scores: Sequence[float] | None) -> int:
    """Position (in the sampled list) of the keyframe; the first one wins ties.

    With scores: the most confident frame. Without (saliency): the frame whose masks, all
    objects together, have the largest fraction of pixels above ``SALIENT_PROBABILITY``.
    """
    if not masks:
        raise DevaError("choose_keyframe needs at least one sampled frame")
    if scores is not None:
        return int(np.argmax(np.asarray(scores, dtype=np.float64)))
    fractions = [float(np.mean(np.asarray(m) > SALIENT_PROBABILITY)) for m in masks]
    return int(np.argmax(fractions))


def combine(projected: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Σ_i w_i · P_i: (K, H, W) float32 soft masks at the keyframe, from each sampled frame's
    object probabilities there (the keyframe's own masks, the others aligned onto it)."""
    if len(projected) != len(weights):
        raise DevaError(f"{len(projected)} projected masks for {len(weights)} weights")
    total = np.zeros(np.shape(projected[0]), dtype=np.float64)
    for masks, weight in zip(projected, weights, strict=True):
        if np.shape(masks) != total.shape:
            raise DevaError(f"projected masks differ in shape: {np.shape(masks)} vs {total.shape}")
        total += weight * np.asarray(masks, dtype=np.float64)
    return np.clip(total, 0.0, 1.0).astype(np.float32)


def probabilities(masks: np.ndarray) -> np.ndarray:
    """(1 + K, H, W) probabilities, background first, from (K, H, W) soft object masks.

    Background = Π(1 − p_i) as in soft aggregation (spec §1.7), then normalised; the argmax is
    that of the aggregated logits, so one object is foreground where p > 0.5.
    """
    masks = np.clip(np.asarray(masks, dtype=np.float32), 0.0, 1.0)
    background = np.prod(1.0 - masks, axis=0, keepdims=True)
    stacked = np.concatenate([background, masks], axis=0)
    return stacked / np.maximum(stacked.sum(axis=0, keepdims=True), 1e-7)
