"""The DEVA network behind the Propagator protocol, with a tiny randomly initialised network:
everything that must hold whatever the weights (tracking quality needs trained weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deva.demo import render_demo
from deva.errors import DevaError
from deva.propagation.base import Propagator
from deva.propagation.network.memory import MemoryConfig
from deva.propagation.network.model import tiny_propagation_network
from deva.propagation.network.propagator import NetworkPropagator

CLIP = render_demo(num_frames=24, height=60, width=90)  # 60x90: padded to 64x96 inside


def make(seed: int = 0, **memory) -> NetworkPropagator:
    torch.manual_seed(seed)
    return NetworkPropagator(tiny_propagation_network(), memory=MemoryConfig(**memory))


def masks(frame: int) -> np.ndarray:
    return np.stack([CLIP.masks[frame] == 1, CLIP.masks[frame] == 2])


def check(probs: np.ndarray, objects: int) -> None:
    assert probs.shape == (1 + objects, 60, 90) and probs.dtype == np.float32
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)


def test_protocol_empty_memory_and_well_formed_probabilities():
    propagator = make()
    assert isinstance(propagator, Propagator)
    assert np.all(propagator.propagate(CLIP.frames[0]) == 1.0)
    propagator.memorize(CLIP.frames[0], masks(0), [4, 9])
    assert propagator.object_ids == [4, 9]
    for frame in range(1, 8):
        check(propagator.propagate(CLIP.frames[frame]), 2)


def test_memorized_frame_reads_back_its_own_masks_channel_order():
    # Right after memorize, the last mask is the given hard mask; the network's first
    # propagation is random, but swapping the id order must swap the channels.
    a, b = make(), make()
    a.memorize(CLIP.frames[0], masks(0), [1, 2])
    b.memorize(CLIP.frames[0], masks(0)[::-1].copy(), [2, 1])
    pa, pb = a.propagate(CLIP.frames[1]), b.propagate(CLIP.frames[1])
    np.testing.assert_allclose(pa[[0, 2, 1]], pb, atol=1e-5)


def test_align_leaves_memory_untouched():
    used, twin = make(), make()
    for propagator in (used, twin):
        propagator.memorize(CLIP.frames[0], masks(0), [1, 2])
        propagator.propagate(CLIP.frames[1])
    check(used.align(CLIP.frames[3], masks(3)[:1], CLIP.frames[5]), 1)
    for frame in (2, 3):
        np.testing.assert_allclose(
            used.propagate(CLIP.frames[frame]), twin.propagate(CLIP.frames[frame]), atol=1e-5
        )


def test_forget_memorize_and_reset_manage_every_store():
    propagator = make()
    propagator.memorize(CLIP.frames[0], masks(0), [1, 2])
    propagator.propagate(CLIP.frames[1])
    propagator.forget([1, 42])
    assert propagator.object_ids == [2] and propagator.memory.object_ids == [2]
    check(propagator.propagate(CLIP.frames[2]), 1)
    propagator.memorize(CLIP.frames[2], masks(2), [2, 7])  # 7 is new
    assert propagator.memory.object_ids == [2, 7]
    check(propagator.propagate(CLIP.frames[3]), 2)
    propagator.memorize(CLIP.frames[3], np.zeros((0, 60, 90), bool), [])
    assert propagator.object_ids == [] and propagator.memory.object_ids == []
    propagator.reset()
    assert np.all(propagator.propagate(CLIP.frames[4]) == 1.0)


def test_memory_stays_bounded_over_a_long_video():
    propagator = make(
        mem_every=1,
        min_mid_term_frames=2,
        max_mid_term_frames=4,
        num_prototypes=8,
        max_long_term_elements=64,
    )
    propagator.memorize(CLIP.frames[0], masks(0), [1, 2])
    sizes = []
    for step in range(1, 60):
        propagator.propagate(CLIP.frames[step % len(CLIP.frames)])
        sizes.append(propagator.memory.num_tokens)
    tokens_per_frame = 4 * 6  # 64x96 padded input at 1/16
    assert propagator.memory.working_frames < 4
    assert propagator.memory.long_term_tokens <= 64
    assert max(sizes) <= 64 + 4 * tokens_per_frame
    assert propagator.memory.long_term_tokens > 0  # consolidation did run


def test_each_frame_is_encoded_once_across_align_and_propagate(monkeypatch):
    propagator = make()
    calls = []
    original = propagator.network.encode_image
    monkeypatch.setattr(
        propagator.network, "encode_image", lambda image: calls.append(1) or original(image)
    )
    propagator.memorize(CLIP.frames[0], masks(0), [1, 2])
    frame1, frame2 = CLIP.frames[1], CLIP.frames[2]
    propagator.align(frame2, masks(2), frame1)  # a clip's consensus: frames 1 and 2 encoded
    propagator.propagate(frame1)
    propagator.propagate(frame2)
    assert len(calls) == 3  # frame 0, 1, 2: nothing twice


@pytest.mark.parametrize("shape", [(48, 64), (50, 70), (33, 47)])
def test_sizes_that_are_not_multiples_of_16_round_trip(shape):
    propagator = make()
    image = np.ascontiguousarray(CLIP.frames[0][: shape[0], : shape[1]])
    mask = np.ascontiguousarray(CLIP.masks[0][: shape[0], : shape[1]] > 0)[None]
    propagator.memorize(image, mask, [3])
    probs = propagator.propagate(image)
    assert probs.shape == (2, *shape)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)


def test_bfloat16_stays_close_to_float32_and_keeps_memory_in_float32():
    reference = make()
    torch.manual_seed(0)
    reduced = NetworkPropagator(
        tiny_propagation_network(), memory=MemoryConfig(), precision="bfloat16"
    )
    for propagator in (reference, reduced):
        propagator.memorize(CLIP.frames[0], masks(0), [1, 2])
    for frame in range(1, 4):
        expected, probs = (
            reference.propagate(CLIP.frames[frame]),
            reduced.propagate(CLIP.frames[frame]),
        )
        check(probs, 2)
        difference = np.abs(expected - probs).max()
        assert 0 < difference < 0.05  # really ran in bfloat16, and stayed close
    stored = reduced.state_dict()["memory"]
    tensors = [v for v in _leaves(stored) if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert tensors and all(t.dtype == torch.float32 for t in tensors)


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.parametrize(
    ("precision", "message"), [("float16", "float16 needs a CUDA device"), ("half", "unknown")]
)
def test_precision_errors(precision, message):
    with pytest.raises(DevaError, match=message):
        NetworkPropagator(tiny_propagation_network(), precision=precision)
