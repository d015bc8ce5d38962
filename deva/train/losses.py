"""Training losses (spec §7): bootstrapped cross-entropy, auxiliary CE and soft Dice.

Pure functions of tensors. Every loss is computed per sample over that sample's real objects
plus background only: padded object channels (selector 0) are dropped before the softmax, so
they neither count as classes nor receive gradient through the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "LossParts",
    "bootstrap_fraction",
    "bootstrapped_cross_entropy",
    "class_targets",
    "dice_loss",
    "sequence_loss",
]


def bootstrap_fraction(iteration: int, start: int, end: int, final: float = 0.3) -> float:
    """Fraction of hardest pixels kept by the CE at ``iteration``: 1.0 (plain CE) before
    ``start``, falling linearly to ``final`` at ``end``, ``final`` afterwards."""
    if iteration < start:
        return 1.0
    if iteration >= end:
        return final
    return 1.0 - (1.0 - final) * (iteration - start) / (end - start)


def bootstrapped_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, fraction: float = 1.0
) -> torch.Tensor:
    """Mean CE over the ``fraction`` of pixels with the highest loss (1.0 = plain mean CE).

    logits (C, H, W) or (B, C, H, W); target class indices (H, W) or (B, H, W). The top-k is
    taken over all given pixels together, at least one pixel is kept.
    """
    if logits.ndim == 3:
        logits, target = logits[None], target[None]
    raw = F.cross_entropy(logits.float(), target, reduction="none").flatten()
    if fraction >= 1.0:
        return raw.mean()
    keep = max(1, int(raw.numel() * fraction))
    return torch.topk(raw, keep, sorted=False).values.mean()


def dice_loss(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft Dice, mean over objects: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1).

    probs and targets (n, H, W), one channel per object (no background); n >= 1.
    """
    p, t = probs.flatten(1).float(), targets.flatten(1).float()
    numerator = 2 * (p * t).sum(dim=1) + 1
    denominator = p.sum(dim=1) + t.sum(dim=1) + 1
    return (1 - numerator / denominator).mean()


def class_targets(masks: torch.Tensor) -> torch.Tensor:
    """Non-overlapping 0/1 object masks (n, H, W) -> class map (H, W): 0 background, i + 1 for
    the i-th object (where masks overlap, the later object)."""
    numbers = torch.arange(1, masks.shape[0] + 1, device=masks.device)[:, None, None]
    if masks.shape[0] == 0:
        return torch.zeros(masks.shape[1:], dtype=torch.long, device=masks.device)
    return ((masks > 0.5) * numbers).amax(dim=0)


@dataclass(frozen=True)
class LossParts:
    """Σ over frames t >= 1 of each part (batch-mean); ``total`` = ce + aux_weight·aux + dice."""

    total: torch.Tensor
    ce: torch.Tensor
    aux: torch.Tensor
    dice: torch.Tensor


def sequence_loss(
    logits: Sequence[torch.Tensor],
    aux_logits: Sequence[torch.Tensor],
    masks: torch.Tensor,
    selector: torch.Tensor,
    *,
    fraction: float = 1.0,
    aux_weight: float = 0.1,
) -> LossParts:
    """The §7 loss of one unrolled batch.

    logits / aux_logits: one (B, N+1, H, W) tensor per frame t = 1..T-1 (background first);
    masks (B, T, N, H, W) ground truth; selector (B, N), 1 = real object. The final logits get
    the bootstrapped CE (``fraction``), the auxiliary logits plain CE, and the softmax object
    probabilities of the final logits a soft Dice against the masks; each is averaged over
    the batch and summed over frames.
    """
    zero = masks.new_zeros(())
    ce, aux, dice = zero, zero, zero
    batch = masks.shape[0]
    for b in range(batch):
        real = torch.nonzero(selector[b] > 0.5).flatten()
        channels = torch.cat([real.new_zeros(1), real + 1])
        for t, (frame_logits, frame_aux) in enumerate(zip(logits, aux_logits, strict=True), 1):
            gt = masks[b, t, real]
            target = class_targets(gt)
            final = frame_logits[b, channels]
            ce = ce + bootstrapped_cross_entropy(final, target, fraction)
            aux = aux + bootstrapped_cross_entropy(frame_aux[b, channels], target, 1.0)
            probs = torch.softmax(final.float(), dim=0)[1:]
            dice = dice + dice_loss(probs, gt)
    ce, aux, dice = ce / batch, aux / batch, dice / batch
    return LossParts(total=ce + aux_weight * aux + dice, ce=ce, aux=aux, dice=dice)
