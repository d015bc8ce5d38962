"""Pixels to key grid and back: pooling an id map equals pooling its one-hot stack, and the
stack-free argmax of the upsampled probabilities equals the dense one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deva.propagation.grid import pool_ids, pool_masks, upsample, upsample_argmax


@pytest.mark.parametrize(
    ("shape", "grid"), [((97, 131), (13, 17)), ((480, 854), (60, 107)), ((32, 48), (30, 45))]
)
def test_pool_ids_is_adaptive_pooling_of_the_one_hot_stack(shape, grid) -> None:
    index = np.random.default_rng(0).integers(0, 5, shape)
    stack = torch.from_numpy(np.stack([index == k + 1 for k in range(4)]))
    expected = F.adaptive_avg_pool2d(stack[None].float(), grid)[0]
    torch.testing.assert_close(pool_ids(index, 4, grid), expected)
    torch.testing.assert_close(pool_masks(stack, grid), expected)
    assert pool_ids(np.zeros(shape, np.int64), 0, grid).shape == (0, *grid)
    assert pool_masks(stack[:0], grid).shape == (0, *grid)


def smooth_probabilities(channels: int, grid: tuple[int, int], seed: int) -> torch.Tensor:
    """Probabilities like a readout's: smooth regions with boundaries between them."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, channels, grid[0] // 6 + 2, grid[1] // 6 + 2, generator=generator)
    logits = F.interpolate(coarse * 4, size=grid, mode="bilinear")[0]
    return logits.softmax(0)


@pytest.mark.parametrize("channels", [2, 4, 13])
def test_upsample_argmax_is_the_argmax_of_the_upsampled_probabilities(channels) -> None:
    probs = smooth_probabilities(channels, (60, 107), seed=channels)
    for shape in ((480, 854), (481, 853), (60, 107)):
        dense = upsample(probs, shape).argmax(0)
        fast = upsample_argmax(probs, shape)
        assert fast.shape == shape
        # differs only where a channel largest at none of a pixel's four cells wins there
        assert (fast == dense).float().mean() > 0.995
        best = probs.argmax(0)
        assert set(fast.unique().tolist()) <= set(best.unique().tolist())


def test_upsample_argmax_of_one_label_everywhere() -> None:
    probs = torch.zeros(3, 5, 7)
    probs[2] = 1
    assert (upsample_argmax(probs, (40, 56)) == 2).all()
