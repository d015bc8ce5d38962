"""--max-memory: the network memory is cut into the budget (long-term first) and says so."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deva.demo import render_demo
from deva.errors import DevaError
from deva.propagation.flow import FlowPropagator
from deva.propagation.network.memory import MemoryConfig, MemoryManager
from deva.propagation.network.model import tiny_propagation_network
from deva.propagation.network.propagator import NetworkPropagator

CK, CV = 4, 3


def filled(frames: int, **config) -> MemoryManager:
    generator = torch.Generator().manual_seed(0)
    memory = MemoryManager(
        MemoryConfig(num_prototypes=4, max_long_term_elements=40, **config), sensory_dim=CV
    )
    for _ in range(frames):
        key = torch.randn(CK, 3, 4, generator=generator)
        memory.add_memory(
            key,
            1 + torch.rand(1, 3, 4, generator=generator),
            torch.rand(CK, 3, 4, generator=generator),
            torch.randn(2, CV, 3, 4, generator=generator),
            [1, 2],
        )
        memory.read(key, torch.rand(CK, 3, 4, generator=generator))
    return memory


def test_fit_cuts_long_term_before_working_memory():
    memory = filled(30, min_mid_term_frames=2, max_mid_term_frames=5)
    assert memory.long_term_tokens > 0
    working_before = memory.working_frames
    budget = memory.nbytes - 1
    actions = memory.fit(budget)
    assert memory.nbytes <= budget
    assert actions and all(a.startswith("long-term") for a in actions)
    assert memory.working_frames == working_before


def test_fit_then_cuts_working_memory_down_to_the_first_frame():
    memory = filled(30, min_mid_term_frames=2, max_mid_term_frames=5)
    first_frame_only = filled(1, min_mid_term_frames=2, max_mid_term_frames=5).nbytes
    actions = memory.fit(first_frame_only)
    assert memory.long_term_tokens == 0 and memory.working_frames == 1
    assert memory.nbytes <= first_frame_only
    assert any(a.startswith("working") for a in actions)
    # Still readable after the cuts.
    readout = memory.read(torch.randn(CK, 3, 4), torch.rand(CK, 3, 4))
    assert readout.shape == (2, CV, 3, 4)


def test_fit_reports_when_nothing_is_left_to_cut():
    memory = filled(1)
    assert memory.fit(1) == ["only the first frames are left; cannot shrink further"]


def test_network_propagator_stays_within_budget_and_logs_once(caplog):
    clip = render_demo(num_frames=40, height=48, width=64)
    torch.manual_seed(0)
    budget_mb = 0.05
    propagator = NetworkPropagator(
        tiny_propagation_network(),
        memory=MemoryConfig(mem_every=1, min_mid_term_frames=2, max_mid_term_frames=4),
        max_memory_mb=budget_mb,
    )
    propagator.memorize(clip.frames[0], np.stack([clip.masks[0] == 1, clip.masks[0] == 2]), [1, 2])
    with caplog.at_level(logging.DEBUG, logger="deva.propagation.network.propagator"):
        for frame in clip.frames[1:]:
            propagator.propagate(frame)
            assert propagator.memory.nbytes <= budget_mb * 2**20
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "memory budget" in warnings[0].getMessage()
    assert len(warnings) <= 2  # once per kind of cut, later cuts at debug level
    assert len(caplog.records) > len(warnings)


def test_unbudgeted_propagator_is_unchanged_by_the_option_default():
    clip = render_demo(num_frames=12, height=48, width=64)
    outputs = []
    for budget in (None, 1000.0):  # a budget never reached changes nothing
        torch.manual_seed(0)
        propagator = NetworkPropagator(tiny_propagation_network(), max_memory_mb=budget)
        propagator.memorize(clip.frames[0], clip.masks[0][None] == 1, [1])
        outputs.append([propagator.propagate(f) for f in clip.frames[1:]])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_flow_propagator_reports_it_cannot_shrink(caplog):
    clip = render_demo(num_frames=3, height=48, width=64)
    propagator = FlowPropagator(max_memory_mb=0.001)
    with caplog.at_level(logging.WARNING):
        propagator.memorize(
            clip.frames[0], np.stack([clip.masks[0] == 1, clip.masks[0] == 2]), [1, 2]
        )
        propagator.memorize(
            clip.frames[1], np.stack([clip.masks[1] == 1, clip.masks[1] == 2]), [1, 2]
        )
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "cannot shrink" in messages[0]


@pytest.mark.parametrize("bad", [0, -5])
def test_budget_must_be_positive(bad):
    with pytest.raises(DevaError, match="max_memory_mb"):
        FlowPropagator(max_memory_mb=bad)
    with pytest.raises(DevaError, match="max_memory_mb"):
        NetworkPropagator(tiny_propagation_network(), max_memory_mb=bad)
