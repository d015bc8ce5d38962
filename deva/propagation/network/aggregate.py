"""Soft aggregation: per-object probabilities -> N+1 logits with a background channel (§1.7)."""

from __future__ import annotations

import torch

__all__ = ["EPSILON", "aggregate", "masks_to_probabilities"]

EPSILON = 1e-7
"""Probabilities are clamped to [EPSILON, 1 - EPSILON] before taking logits."""


def aggregate(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Soft aggregation of object probabilities p_i in [0, 1] along ``dim`` (N objects).

    Background p_0 = prod_i (1 - p_i) is prepended, all N+1 are clamped to [1e-7, 1 - 1e-7] and
    turned into logits log(p / (1 - p)). Computed in fp32. E.g. (B, N, H, W) -> (B, N+1, H, W);
    a softmax over ``dim`` then gives probabilities summing to 1.
    """
    probs = probs.float()
    background = torch.prod(1 - probs, dim=dim, keepdim=True)
    stacked = torch.cat([background, probs], dim=dim).clamp(EPSILON, 1 - EPSILON)
    return torch.log(stacked / (1 - stacked))


def masks_to_probabilities(masks: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Given masks (hard 0/1, bool, or soft in [0, 1]; N along ``dim``) -> N+1 probabilities
    (background first) summing to 1 along ``dim``; fp32. Hard one-hot masks keep their argmax.
    """
    return torch.softmax(aggregate(masks, dim=dim), dim=dim)
