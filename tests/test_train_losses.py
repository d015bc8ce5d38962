"""Training losses on hand-worked tensors (spec §7), and the unroll's handling of padding."""

from __future__ import annotations

import math

import pytest
import torch

from deva.propagation.network.model import tiny_propagation_network
from deva.train.losses import (
    bootstrap_fraction,
    bootstrapped_cross_entropy,
    class_targets,
    dice_loss,
    sequence_loss,
)
from deva.train.unroll import choose_references, unroll

LN3 = math.log(3)


def two_pixels(*columns: list[float]) -> torch.Tensor:
    """Logits (C, 1, len(columns)) from one list of class logits per pixel."""
    return torch.tensor(columns, dtype=torch.float32).T[:, None, :]


def test_plain_cross_entropy_is_the_pixel_mean():
    # pixel A: logits (0, 0) -> p(bg) = 1/2; pixel B: (ln 3, 0) -> p(bg) = 3/4; both background.
    logits, target = two_pixels([0.0, 0.0], [LN3, 0.0]), torch.zeros(1, 2, dtype=torch.long)
    expected = (math.log(2) + math.log(4 / 3)) / 2
    assert bootstrapped_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_bootstrapping_keeps_only_the_hardest_pixels():
    logits, target = two_pixels([0.0, 0.0], [LN3, 0.0]), torch.zeros(1, 2, dtype=torch.long)
    hardest = bootstrapped_cross_entropy(logits, target, fraction=0.5)
    assert hardest.item() == pytest.approx(math.log(2), rel=1e-6)
    tiny = bootstrapped_cross_entropy(logits, target, fraction=0.01)  # still at least 1 pixel
    assert tiny.item() == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize(
    ("iteration", "expected"),
    [(0, 1.0), (99, 1.0), (100, 1.0), (150, 0.65), (200, 0.3), (10_000, 0.3)],
)
def test_bootstrap_fraction_schedule(iteration, expected):
    assert bootstrap_fraction(iteration, 100, 200, 0.3) == pytest.approx(expected)


def test_soft_dice_with_smoothing():
    probs = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # 2·1.5 + 1 = 4 over 1.5 + 2 + 1 = 4.5
    assert dice_loss(probs, target).item() == pytest.approx(1 - 4 / 4.5, rel=1e-6)
    assert dice_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    empty = torch.zeros(1, 2, 2)  # an absent object predicted absent costs nothing
    assert dice_loss(empty, empty).item() == pytest.approx(0.0)


def test_class_targets_number_objects_from_one():
    masks = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]])  # (2 objects, 1, 3)
    assert class_targets(masks).tolist() == [[1, 0, 2]]


def test_sequence_loss_ignores_padding_objects():
    # B=1, T=2 (one predicted frame), N=2 with object 2 a padding slot, image 1x2.
    # Final logits (bg, obj1, pad): pixel A (0, 0, 100), pixel B (0, ln 3, 100); the padding
    # channel is dropped, so A -> p(bg) = 1/2 (target bg), B -> p(obj1) = 3/4 (target obj1).
    logits = torch.tensor([[0.0, 0.0], [0.0, LN3], [100.0, 100.0]])[None, :, None, :]
    aux = torch.zeros(1, 3, 1, 2)
    masks = torch.zeros(1, 2, 2, 1, 2)
    masks[0, :, 0, 0, 1] = 1.0
    selector = torch.tensor([[1.0, 0.0]])
    parts = sequence_loss([logits], [aux], masks, selector, fraction=1.0, aux_weight=0.1)
    ce = (math.log(2) + math.log(4 / 3)) / 2
    dice = 1 - (2 * 0.75 + 1) / (0.5 + 0.75 + 1 + 1)
    assert parts.ce.item() == pytest.approx(ce, rel=1e-6)
    assert parts.aux.item() == pytest.approx(math.log(2), rel=1e-6)
    assert parts.dice.item() == pytest.approx(dice, rel=1e-6)
    assert parts.total.item() == pytest.approx(ce + 0.1 * math.log(2) + dice, rel=1e-6)


def test_sequence_loss_sums_frames_and_averages_the_batch():
    torch.manual_seed(0)
    logits = [torch.randn(2, 3, 4, 4) for _ in range(2)]
    aux = [torch.randn(2, 3, 4, 4) for _ in range(2)]
    masks = torch.zeros(2, 3, 2, 4, 4)
    masks[:, :, 0, :2] = 1
    masks[:, :, 1, 3:] = 1
    selector = torch.ones(2, 2)
    both = sequence_loss(logits, aux, masks, selector)
    singles = [
        sequence_loss([lg[b : b + 1]], [ax[b : b + 1]], masks[b : b + 1, [0, t]], selector[:1])
        for b in range(2)
        for t, (lg, ax) in enumerate(zip(logits, aux, strict=True), 1)
    ]
    expected = sum(s.total.item() for s in singles) / 2
    assert both.total.item() == pytest.approx(expected, rel=1e-5)


def test_references_all_previous_frames_until_n_ref_then_random_subsets():
    generator = torch.Generator().manual_seed(0)
    assert choose_references(2, 3, 2, generator).tolist() == [[0, 1], [0, 1]]
    picks = choose_references(7, 3, 64, generator)
    assert picks.shape == (64, 3)
    assert all(len(set(row)) == 3 and row == sorted(row) for row in picks.tolist())
    assert picks.min() >= 0 and picks.max() <= 6
    assert len({tuple(row) for row in picks.tolist()}) > 10  # per sample, not one shared choice


def test_unroll_gives_padding_objects_no_pixels_and_is_seeded():
    torch.manual_seed(0)
    network = tiny_propagation_network().train()
    images = torch.randn(2, 4, 3, 32, 32)
    masks = torch.zeros(2, 4, 2, 32, 32)
    masks[:, :, 0, 8:20, 8:20] = 1
    masks[0, :, 1, 24:, 24:] = 1  # sample 0 has two objects, sample 1 one (slot 2 padding)
    selector = torch.tensor([[1.0, 1.0], [1.0, 0.0]])

    def run(seed: int):
        generator = torch.Generator().manual_seed(seed)
        return unroll(
            network, images, masks, selector, num_ref_frames=1, deep_update_prob=0.5,
            generator=generator,
        )  # fmt: skip

    out = run(1)
    assert len(out.logits) == len(out.aux_logits) == 3
    assert out.logits[0].shape == out.aux_logits[0].shape == (2, 3, 32, 32)
    assert out.probs[-1][1, 2].max() < 1e-5  # the padding slot of sample 1
    assert out.probs[-1][0, 2].max() > 1e-3  # a real second object does get probability
    torch.testing.assert_close(out.probs[-1].sum(dim=1), torch.ones(2, 32, 32))
    again = run(1)
    assert all(torch.equal(a, b) for a, b in zip(out.logits, again.logits, strict=True))
