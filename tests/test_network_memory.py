"""Memory manager of the DEVA propagation network: readout maths, buckets, consolidation."""

from __future__ import annotations

import math

import pytest
import torch

from deva.errors import DevaError
from deva.propagation.network.memory import (
    MemoryConfig,
    MemoryManager,
    anisotropic_similarity,
    potentiate,
    top_k_softmax,
)

CK, CV = 4, 3


def make_frame(generator: torch.Generator, num_objects: int, spatial=(2, 3), shrinkage=1.0):
    """Random (key, shrinkage, selection, values) of one frame, float64."""
    key = torch.randn(CK, *spatial, generator=generator, dtype=torch.float64)
    shrink = shrinkage * (1 + torch.rand(1, *spatial, generator=generator, dtype=torch.float64))
    selection = torch.rand(CK, *spatial, generator=generator, dtype=torch.float64)
    values = torch.randn(num_objects, CV, *spatial, generator=generator, dtype=torch.float64)
    return key, shrink, selection, values


def reference_readout(frames, rows, query, selection, top_k):
    """Readout written out from the definition: per query position, the top-k memory tokens by
    S[m, p] = -s_m sum_c e[c, p] (K[c, m] - q[c, p])^2 / sqrt(CK), softmax over them, weighted
    sum of values. ``frames`` are (key, shrinkage, selection, values) with spatial dims."""
    keys = torch.cat([f[0].flatten(1) for f in frames], dim=1)
    shrink = torch.cat([f[1].flatten(1) for f in frames], dim=1)[0]
    values = torch.cat([f[3][rows].flatten(2) for f in frames], dim=2)
    q, e = query.flatten(1), selection.flatten(1)
    out = torch.zeros(values.shape[0], CV, q.shape[1], dtype=values.dtype)
    for p in range(q.shape[1]):
        sim = torch.stack(
            [
                -shrink[m] * (e[:, p] * (keys[:, m] - q[:, p]) ** 2).sum() / math.sqrt(CK)
                for m in range(keys.shape[1])
            ]
        )
        top = sorted(range(len(sim)), key=lambda m, sim=sim: -sim[m].item())[:top_k]
        weights = torch.exp(sim[top] - sim[top].max())
        weights = weights / weights.sum()
        for weight, m in zip(weights, top, strict=True):
            out[:, :, p] += weight * values[:, :, m]
    return out.reshape(values.shape[0], CV, *query.shape[1:])


def write(memory: MemoryManager, frame, object_ids) -> None:
    memory.add_memory(*frame, object_ids)


# ---------------------------------------------------------------------------- readout maths
def test_similarity_matches_definition():
    generator = torch.Generator().manual_seed(0)
    key, shrink, _, _ = make_frame(generator, 1, spatial=(5,))
    query, _, selection, _ = make_frame(generator, 1, spatial=(7,))
    expected = (
        -shrink[0][:, None]
        * (selection[:, None, :] * (key[:, :, None] - query[:, None, :]) ** 2).sum(0)
        / math.sqrt(CK)
    )
    result = anisotropic_similarity(key, shrink, query, selection)
    torch.testing.assert_close(result, expected)


def test_readout_equals_direct_top_k_computation():
    generator = torch.Generator().manual_seed(1)
    memory = MemoryManager(MemoryConfig(top_k=4))
    frames = [make_frame(generator, 2) for _ in range(3)]
    for frame in frames:
        write(memory, frame, [7, 9])
    query, _, selection, _ = make_frame(generator, 1)
    readout = memory.read(query, selection)
    assert readout.shape == (2, CV, 2, 3)
    expected = reference_readout(frames, [0, 1], query, selection, top_k=4)
    torch.testing.assert_close(readout, expected)
    swapped = memory.read(query, selection, [9, 7])
    torch.testing.assert_close(swapped, expected[[1, 0]])


def test_top_k_at_least_memory_size_is_full_softmax():
    generator = torch.Generator().manual_seed(2)
    frames = [make_frame(generator, 1) for _ in range(2)]
    query, _, selection, _ = make_frame(generator, 1)
    keys = torch.cat([f[0].flatten(1) for f in frames], dim=1)
    shrink = torch.cat([f[1].flatten(1) for f in frames], dim=1)
    values = torch.cat([f[3].flatten(2) for f in frames], dim=2)
    full = values @ torch.softmax(
        anisotropic_similarity(keys, shrink, query.flatten(1), selection.flatten(1)), dim=0
    )
    readouts = {}
    for top_k in (3, 12, 100):  # memory holds 12 tokens
        memory = MemoryManager(MemoryConfig(top_k=top_k))
        for frame in frames:
            write(memory, frame, [1])
        readouts[top_k] = memory.read(query, selection).flatten(2)
    torch.testing.assert_close(readouts[12], full)
    torch.testing.assert_close(readouts[100], full)
    assert not torch.allclose(readouts[3], full)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_top_k_softmax_subtracts_the_maximum(scale):
    similarity = torch.tensor([[0.0, 5.0], [-1.0, 4.0], [-30.0, -30.0]]) + scale
    affinity = top_k_softmax(similarity, 2)
    expected = torch.tensor([[1.0, math.e], [1 / math.e, 1.0], [0.0, 0.0]])
    expected = expected / expected.sum(0)
    torch.testing.assert_close(affinity, expected)


def test_potentiation_hand_worked():
    # two 1-D candidates at 0 and 1, prototype = candidate 0: weights softmax([0, -1])
    key = torch.tensor([[0.0, 1.0]])
    shrink = torch.tensor([[1.0, 3.0]])
    values = torch.tensor([[[2.0, 4.0]]])
    proto_key, proto_shrink, proto_values = potentiate(
        key, shrink, torch.ones(1, 2), values, torch.tensor([0])
    )
    w1 = math.exp(-3.0) / (1 + math.exp(-3.0))  # candidate 1: -3 * (1 - 0)^2 / sqrt(1)
    torch.testing.assert_close(proto_key, torch.tensor([[0.0]]))
    torch.testing.assert_close(proto_shrink, torch.tensor([[1.0 * (1 - w1) + 3.0 * w1]]))
    torch.testing.assert_close(proto_values, torch.tensor([[[2.0 * (1 - w1) + 4.0 * w1]]]))


def test_potentiation_of_identical_candidates_returns_their_value():
    generator = torch.Generator().manual_seed(3)
    key = torch.randn(CK, 1, generator=generator).expand(CK, 6)
    shrink = torch.full((1, 6), 2.5)
    selection = torch.rand(CK, 1, generator=generator).expand(CK, 6)
    value = torch.randn(2, CV, 1, generator=generator)
    _, proto_shrink, proto_values = potentiate(
        key, shrink, selection, value.expand(2, CV, 6), torch.tensor([1, 4])
    )
    torch.testing.assert_close(proto_values, value.expand(2, CV, 2))
    torch.testing.assert_close(proto_shrink, torch.full((1, 2), 2.5))


# ---------------------------------------------------------------------------- buckets
def test_object_added_later_only_attends_to_memory_since_it_was_added():
    generator = torch.Generator().manual_seed(4)
    memory = MemoryManager(MemoryConfig(top_k=5))
    early = [make_frame(generator, 1) for _ in range(3)]
    late = [make_frame(generator, 2) for _ in range(2)]
    for frame in early:
        write(memory, frame, [1])
    write(memory, late[0], [1, 2])  # object 2 first written here
    write(memory, late[1], [2, 1])
    assert memory.num_buckets == 2
    query, _, selection, _ = make_frame(generator, 1)
    readout = memory.read(query, selection, [2, 1])
    # object 2: frames since it was added only; its values are row 1 then row 0
    late_for_2 = [late[0], (*late[1][:3], late[1][3][[1, 0]])]
    expected_2 = reference_readout(late_for_2, [1], query, selection, top_k=5)
    torch.testing.assert_close(readout[:1], expected_2)
    # object 1: everything
    all_for_1 = [*early, (*late[0][:3], late[0][3][:1]), (*late[1][:3], late[1][3][1:])]
    expected_1 = reference_readout(all_for_1, [0], query, selection, top_k=5)
    torch.testing.assert_close(readout[1:], expected_1)


def test_partial_write_of_a_bucket_raises_and_changes_nothing():
    generator = torch.Generator().manual_seed(5)
    memory = MemoryManager()
    write(memory, make_frame(generator, 2), [1, 2])
    key, shrink, selection, values = make_frame(generator, 2)
    with pytest.raises(ValueError, match="missing \\[2\\]"):
        memory.add_memory(key, shrink, selection, values, [1, 3])
    assert memory.object_ids == [1, 2]
    assert memory.working_frames == 1


def test_forget_removes_an_object_everywhere_and_others_read_the_same():
    generator = torch.Generator().manual_seed(6)
    memory = MemoryManager(MemoryConfig(top_k=3))
    write(memory, make_frame(generator, 2), [1, 2])
    write(memory, make_frame(generator, 3), [1, 2, 3])
    write(memory, make_frame(generator, 3), [3, 1, 2])
    query, _, selection, _ = make_frame(generator, 1)
    before = memory.read(query, selection, [1, 3])
    tokens_before = memory.num_tokens

    memory.forget([2, 99])
    assert memory.object_ids == [1, 3]
    torch.testing.assert_close(memory.read(query, selection, [1, 3]), before)
    with pytest.raises(ValueError, match="object 2 is not in memory"):
        memory.read(query, selection, [2])
    with pytest.raises(ValueError, match="no sensory memory"):
        memory.get_sensory([2])
    assert memory.num_tokens == tokens_before  # bucket {1} still has its keys

    memory.forget([3])
    assert memory.num_buckets == 1
    assert memory.num_tokens == 3 * 6
    torch.testing.assert_close(memory.read(query, selection), before[:1])

    memory.forget([1])
    assert memory.object_ids == [] and memory.num_tokens == 0
    with pytest.raises(ValueError, match="memory is empty"):
        memory.read(query, selection)


def test_read_with_no_memory_raises():
    with pytest.raises(ValueError, match="memory is empty"):
        MemoryManager().read(torch.zeros(CK, 4), torch.ones(CK, 4))


def test_sensory_is_zero_on_first_write_and_round_trips():
    generator = torch.Generator().manual_seed(7)
    memory = MemoryManager(sensory_dim=5)
    write(memory, make_frame(generator, 2), [4, 8])
    hidden = memory.get_sensory([8, 4])
    assert hidden.shape == (2, 5, 2, 3) and not hidden.any()
    update = torch.randn(2, 5, 2, 3, generator=generator, dtype=torch.float64)
    memory.set_sensory([8, 4], update)
    torch.testing.assert_close(memory.get_sensory([4]), update[1:])
    with pytest.raises(ValueError, match="not stored"):
        memory.set_sensory([5], update[:1])
    memory.reset()
    assert memory.object_ids == []
    with pytest.raises(ValueError):
        memory.get_sensory([4])


# ---------------------------------------------------------------------------- consolidation
SMALL = MemoryConfig(
    top_k=5,
    min_mid_term_frames=3,
    max_mid_term_frames=6,
    max_long_term_elements=40,
    num_prototypes=8,
)


def test_sizes_stay_bounded_over_300_memory_frames():
    generator = torch.Generator().manual_seed(8)
    memory = MemoryManager(SMALL)
    per_frame = 16  # 4x4 positions
    seen_cap = False
    for index in range(300):
        frame = make_frame(generator, 2, spatial=(4, 4))
        write(memory, frame, [1, 2])
        if index == 100:
            write(memory, make_frame(generator, 3, spatial=(4, 4)), [1, 2, 3])
        query, _, selection, _ = make_frame(generator, 1, spatial=(4, 4))
        assert torch.isfinite(memory.read(query, selection)).all()
        assert memory.working_frames < SMALL.max_mid_term_frames
        assert memory.long_term_tokens <= SMALL.max_long_term_elements
        assert memory.num_tokens <= 2 * (
            SMALL.max_long_term_elements + SMALL.max_mid_term_frames * per_frame
        )
        seen_cap |= memory.long_term_tokens == SMALL.max_long_term_elements
    assert seen_cap
    assert memory.num_buckets == 2


def test_without_long_term_working_memory_grows():
    generator = torch.Generator().manual_seed(9)
    config = MemoryConfig(long_term=False, min_mid_term_frames=2, max_mid_term_frames=3)
    memory = MemoryManager(config)
    for _ in range(12):
        write(memory, make_frame(generator, 1), [1])
    assert memory.working_frames == 12 and memory.long_term_tokens == 0


def test_first_frame_survives_consolidation():
    generator = torch.Generator().manual_seed(10)
    memory = MemoryManager(SMALL)
    first = make_frame(generator, 1, spatial=(4, 4), shrinkage=1000.0)
    write(memory, first, [1])
    for _ in range(40):
        write(memory, make_frame(generator, 1, spatial=(4, 4), shrinkage=1000.0), [1])
    assert memory.long_term_tokens == SMALL.max_long_term_elements  # consolidated many times
    _, working = memory.memory_keys(1)
    torch.testing.assert_close(working[:, :16], first[0].flatten(1))
    # a query equal to the first frame reads the first frame's values back
    readout = memory.read(first[0], torch.ones_like(first[0]))
    torch.testing.assert_close(readout, first[3])


def test_consolidation_at_exactly_the_target_size_drops_nothing():
    generator = torch.Generator().manual_seed(11)
    config = MemoryConfig(
        top_k=3,
        min_mid_term_frames=2,
        max_mid_term_frames=3,
        num_prototypes=2,
        max_long_term_elements=6,  # target before consolidating: 6 - 2 = 4
    )
    memory = MemoryManager(config)
    sizes, long_term_keys = [], []
    for _ in range(6):
        write(memory, make_frame(generator, 1, spatial=(2, 2)), [1])
        query, _, selection, _ = make_frame(generator, 1, spatial=(2, 2))
        memory.read(query, selection)
        sizes.append(memory.long_term_tokens)
        long_term_keys.append(memory.memory_keys(1)[0])
    assert sizes == [0, 0, 2, 4, 6, 6]
    # the fifth frame consolidated with 4 = target long-term tokens: all 4 kept, 2 appended
    torch.testing.assert_close(long_term_keys[4][:, :4], long_term_keys[3])
    assert memory.working_frames == 2


@pytest.mark.parametrize("used", [[1, 3], [0, 2], [2, 3]])
def test_prototypes_are_the_most_used_candidates(used):
    generator = torch.Generator().manual_seed(12)
    config = MemoryConfig(top_k=1, min_mid_term_frames=2, max_mid_term_frames=3, num_prototypes=2)
    memory = MemoryManager(config)
    first = make_frame(generator, 1, spatial=(4,))
    write(memory, first, [1])  # permanent, never a candidate however much it is used
    candidate = make_frame(generator, 1, spatial=(4,))
    write(memory, candidate, [1])  # the frame that will be consolidated
    query = torch.cat([candidate[0][:, used], first[0]], dim=1)
    for _ in range(3):
        memory.read(query, torch.ones_like(query))  # top-1 lands on the tokens themselves
    memory.read(first[0], torch.ones_like(first[0]))
    write(memory, make_frame(generator, 1, spatial=(4,)), [1])  # third frame: consolidate
    long_term, _ = memory.memory_keys(1)
    torch.testing.assert_close(long_term, candidate[0][:, used])


def test_without_usage_counting_the_cap_keeps_the_newest_long_term_tokens():
    generator = torch.Generator().manual_seed(13)
    config = MemoryConfig(
        top_k=3,
        min_mid_term_frames=2,
        max_mid_term_frames=3,
        num_prototypes=2,
        max_long_term_elements=6,
        count_usage=False,
    )
    memory = MemoryManager(config)
    previous = None
    for index in range(8):
        write(memory, make_frame(generator, 1, spatial=(2, 2)), [1])
        query, _, selection, _ = make_frame(generator, 1, spatial=(2, 2))
        memory.read(query, selection)
        long_term, _ = memory.memory_keys(1)
        if index >= 5:  # full: each consolidation drops the two oldest tokens
            torch.testing.assert_close(long_term[:, :4], previous[:, 2:])
        previous = long_term


def test_works_under_inference_mode_and_outside_it():
    generator = torch.Generator().manual_seed(14)
    memory = MemoryManager(SMALL)
    with torch.inference_mode():
        for _ in range(8):
            write(memory, make_frame(generator, 1, spatial=(4, 4)), [1])
            query, _, selection, _ = make_frame(generator, 1, spatial=(4, 4))
            memory.read(query, selection)
    for _ in range(8):  # counters made in inference mode are updated outside it
        write(memory, make_frame(generator, 1, spatial=(4, 4)), [1])
        query, _, selection, _ = make_frame(generator, 1, spatial=(4, 4))
        memory.read(query, selection)
    assert memory.long_term_tokens > 0


@pytest.mark.parametrize(
    "changes",
    [
        {"top_k": 0},
        {"min_mid_term_frames": 5, "max_mid_term_frames": 5},
        {"min_mid_term_frames": 0},
        {"num_prototypes": 10, "max_long_term_elements": 10},
    ],
)
def test_config_rejects_impossible_values(changes):
    with pytest.raises(DevaError):
        MemoryConfig(**changes)
