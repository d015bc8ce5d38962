"""The propagation network: names/shapes against the official checkpoint, strict loading, and
block numerics worked out on tiny inputs."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deva.errors import DevaError
from deva.propagation.network import (
    PropagationNetwork,
    aggregate,
    build_network,
    load_propagation_weights,
    masks_to_probabilities,
    read_memory,
    similarity,
    softmax_affinity,
    tiny_propagation_network,
    topk_affinity,
)
from deva.propagation.network.blocks import (
    CBAM,
    DecoderSensoryUpdater,
    FusionBlock,
    GroupResBlock,
    SensoryDeepUpdater,
)
from deva.propagation.network.inference import prepare_for_inference

TSV = (
    Path(__file__).resolve().parents[2] / "shared" / "design" / "official-deva-propagation-keys.tsv"
)
DTYPES = {"float32": torch.float32, "int64": torch.int64}


def official_entries() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """name -> (shape, dtype) of every tensor in DEVA-propagation.pth, from the design TSV."""
    if not TSV.is_file():
        pytest.fail(f"official key list not found at {TSV}")
    entries = {}
    for line in TSV.read_text().splitlines()[1:]:
        name, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.split("x")) if shape else ()
        entries[name] = (dims, DTYPES[dtype])
    return entries


def random_state(entries: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> dict:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, (shape, dtype) in entries.items():
        if dtype == torch.int64:
            state[name] = torch.randint(0, 1000, shape, generator=generator)
        else:
            state[name] = torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def full_model() -> PropagationNetwork:
    torch.manual_seed(0)
    return PropagationNetwork().eval()


@pytest.fixture
def tiny() -> PropagationNetwork:
    torch.manual_seed(0)
    return tiny_propagation_network().eval()


def randomized(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with fresh random values (so a load is observable)."""
    generator = torch.Generator().manual_seed(1)
    out = {}
    for name, value in model.state_dict().items():
        if value.dtype == torch.int64:
            out[name] = torch.randint(0, 100, value.shape, generator=generator)
        else:
            out[name] = torch.randn(value.shape, generator=generator)
    return out


# --- (a) names and shapes ------------------------------------------------------------------


def test_default_state_dict_is_exactly_the_official_one(full_model: PropagationNetwork) -> None:
    expected = official_entries()
    assert len(expected) == 420
    got = {k: (tuple(v.shape), v.dtype) for k, v in full_model.state_dict().items()}
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert wrong == {}


# --- (b) round trip through the loader ------------------------------------------------------


def test_official_layout_checkpoint_loads_every_tensor(tmp_path: Path) -> None:
    state = random_state(official_entries())
    path = tmp_path / "DEVA-propagation.pth"
    torch.save(state, path)
    model = build_network(path, torch.device("cpu"))
    assert not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    differing = [k for k in state if not torch.equal(loaded[k], state[k])]
    assert differing == []


# --- (c) loader errors and accepted wrappers -------------------------------------------------


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_missing_key_is_named(tiny: PropagationNetwork, tmp_path: Path) -> None:
    state = randomized(tiny)
    del state["key_proj.d_proj.bias"]
    with pytest.raises(DevaError, match=r"1 missing: key_proj\.d_proj\.bias \[1\]"):
        load_propagation_weights(tiny, save(state, tmp_path / "w.pth"))


def test_unexpected_key_is_named(tiny: PropagationNetwork, tmp_path: Path) -> None:
    state = randomized(tiny)
    state["mask_decoder.extra.weight"] = torch.zeros(3, 2)
    with pytest.raises(DevaError, match=r"1 unexpected: mask_decoder\.extra\.weight \[3x2\]"):
        load_propagation_weights(tiny, save(state, tmp_path / "w.pth"))


def test_wrong_shape_names_expected_and_found(tiny: PropagationNetwork, tmp_path: Path) -> None:
    state = randomized(tiny)
    state["key_proj.key_proj.weight"] = torch.zeros(4, 16, 3, 3)
    pattern = r"key_proj\.key_proj\.weight \(expected 8x16x3x3, found 4x16x3x3\)"
    with pytest.raises(DevaError, match=pattern):
        load_propagation_weights(tiny, save(state, tmp_path / "w.pth"))


def test_full_checkpoint_against_tiny_model_lists_a_few(tiny: PropagationNetwork) -> None:
    # Not via a file: the check itself, on a state dict that disagrees everywhere.
    from deva.propagation.network.checkpoint import _check_fits

    state = random_state(official_entries())
    with pytest.raises(DevaError) as info:
        _check_fits(tiny, state, Path("DEVA-propagation.pth"))
    message = str(info.value)
    assert "DEVA-propagation.pth" in message and "more)" in message
    assert "\n" not in message


def test_truncated_file_is_named(tiny: PropagationNetwork, tmp_path: Path) -> None:
    path = save(randomized(tiny), tmp_path / "cut.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DevaError, match=r"cut\.pth is truncated or corrupt"):
        load_propagation_weights(tiny, path)


def test_missing_file_is_named(tiny: PropagationNetwork, tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="not found"):
        load_propagation_weights(tiny, tmp_path / "nothing.pth")


def test_no_state_dict_inside(tiny: PropagationNetwork, tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="no state dict"):
        load_propagation_weights(tiny, save({"it": 5}, tmp_path / "w.pth"))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda s: {f"module.{k}": v for k, v in s.items()}, id="module-prefix"),
        pytest.param(lambda s: {"state_dict": s}, id="state_dict"),
        pytest.param(lambda s: {"network": s, "optimizer": {}, "it": 3}, id="training-ckpt"),
        pytest.param(lambda s: {"model": {f"module.{k}": v for k, v in s.items()}}, id="both"),
    ],
)
def test_common_wrappers_load(tiny: PropagationNetwork, tmp_path: Path, wrap) -> None:
    state = randomized(tiny)
    load_propagation_weights(tiny, save(wrap(state), tmp_path / "w.pth"))
    loaded = tiny.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_hub_id_without_huggingface_hub(tiny: PropagationNetwork, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import now fails
    with pytest.raises(DevaError, match=r"pip install \"deva-track\[models\]\""):
        load_propagation_weights(tiny, "someone/deva-weights")


def test_hub_offline_names_the_id(tiny: PropagationNetwork, monkeypatch) -> None:
    def offline(repo_id: str, filename: str) -> str:
        raise OSError("cannot reach huggingface.co")

    fake = types.ModuleType("huggingface_hub")
    fake.hf_hub_download = offline  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    with pytest.raises(DevaError) as info:
        load_propagation_weights(tiny, "someone/deva-weights/sub/w.pth")
    message = str(info.value)
    assert "'someone/deva-weights'" in message and "'sub/w.pth'" in message
    assert "pass its path" in message and "\n" not in message


# --- (d) numerics of the blocks ---------------------------------------------------------------


def test_aggregation_of_one_hot_masks_keeps_the_ids() -> None:
    ids = torch.tensor([[0, 1, 1, 2], [0, 0, 2, 2], [1, 1, 0, 0]])
    masks = torch.stack([ids == 1, ids == 2])  # (N=2, H, W) bool
    probs = masks_to_probabilities(masks, dim=0)
    assert probs.shape == (3, 3, 4) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(dim=0), torch.ones(3, 4))
    assert torch.equal(probs.argmax(dim=0), ids)
    assert probs.max(dim=0).values.min() > 0.999


def test_aggregation_by_hand() -> None:
    # p = (0.5, 0.5): background (1-0.5)^2 = 0.25 -> odds 1/3, objects odds 1 -> 1/7, 3/7, 3/7.
    logits = aggregate(torch.tensor([[0.5], [0.5]]), dim=0)
    torch.testing.assert_close(logits[:, 0], torch.tensor([math.log(1 / 3), 0.0, 0.0]))
    probs = masks_to_probabilities(torch.tensor([[0.5], [0.5]]), dim=0)
    torch.testing.assert_close(probs[:, 0], torch.tensor([1 / 7, 3 / 7, 3 / 7]))


def naive_similarity(key, shrinkage, query, selection) -> torch.Tensor:
    """-s_m * sum_c e[c,p] (K[c,m] - q[c,p])^2 / sqrt(CK) by broadcasting, (B, M, P)."""
    diff = key[:, :, :, None] - query[:, :, None, :]  # (B, CK, M, P)
    weighted = (selection[:, :, None, :] * diff**2).sum(dim=1)
    return -shrinkage[:, :, None] * weighted / math.sqrt(key.shape[1])


def random_memory(generator: torch.Generator, b=2, ck=4, m=5, p=7):
    key = torch.randn(b, ck, m, generator=generator, dtype=torch.float64)
    shrinkage = 1 + torch.rand(b, m, generator=generator, dtype=torch.float64) * 3
    query = torch.randn(b, ck, p, generator=generator, dtype=torch.float64)
    selection = torch.rand(b, ck, p, generator=generator, dtype=torch.float64)
    return key, shrinkage, query, selection


def test_similarity_equals_the_direct_formula() -> None:
    key, shrinkage, query, selection = random_memory(torch.Generator().manual_seed(3))
    got = similarity(key, shrinkage, query, selection)
    torch.testing.assert_close(got, naive_similarity(key, shrinkage, query, selection))
    # (B, 1, M) shrinkage is accepted too
    torch.testing.assert_close(got, similarity(key, shrinkage[:, None], query, selection))


def test_similarity_without_selection_drops_the_query_norm() -> None:
    key, shrinkage, query, _ = random_memory(torch.Generator().manual_seed(4))
    full = naive_similarity(key, shrinkage, query, torch.ones_like(query))
    query_norm = shrinkage[:, :, None] * (query**2).sum(dim=1)[:, None] / math.sqrt(4)
    torch.testing.assert_close(similarity(key, shrinkage, query, None), full + query_norm)


def test_topk_with_k_at_least_m_is_the_full_softmax() -> None:
    sim = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(5))
    for k in (6, 30):
        affinity, usage = topk_affinity(sim, k)
        torch.testing.assert_close(affinity, softmax_affinity(sim))
        torch.testing.assert_close(affinity.sum(dim=1), torch.ones(2, 5))
        torch.testing.assert_close(usage, affinity.sum(dim=2))


def test_topk_keeps_k_per_column_and_survives_large_values() -> None:
    sim = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(6)) * 3 + 1e4
    affinity, usage = topk_affinity(sim, 3)
    assert torch.isfinite(affinity).all()
    assert ((affinity > 0).sum(dim=1) == 3).all()
    torch.testing.assert_close(affinity.sum(dim=1), torch.ones(1, 4))
    top3 = sim.topk(3, dim=1)
    torch.testing.assert_close(affinity.gather(1, top3.indices), torch.softmax(top3.values, 1))
    assert usage.shape == (1, 8)
    torch.testing.assert_close(usage.sum(), torch.tensor(4.0))


def test_read_memory_with_one_position_copies_its_value() -> None:
    # One memory element: every query reads exactly its value.
    key = torch.randn(1, 4, 1)
    value = torch.randn(1, 2, 3, 1)
    readout, usage = read_memory(
        torch.randn(1, 4, 2, 3), torch.rand(1, 4, 2, 3), key, torch.ones(1, 1), value
    )
    assert readout.shape == (1, 2, 3, 2, 3)
    torch.testing.assert_close(readout, value[..., None].expand(1, 2, 3, 2, 3))
    torch.testing.assert_close(usage, torch.tensor([[6.0]]))


def saturate(transform: nn.Conv2d, sensory_dim: int, forget: float, update: float, cand: float):
    with torch.no_grad():
        transform.weight.zero_()
        transform.bias.copy_(torch.tensor([forget, update, cand]).repeat_interleave(sensory_dim))


@pytest.mark.parametrize(
    ("forget", "update", "expected"),
    [
        pytest.param(100.0, 0.0, lambda h, c: 0.5 * h + 0.5 * c, id="f=1,u=0.5"),
        pytest.param(-100.0, 0.0, lambda h, c: 0.5 * c, id="f=0,u=0.5"),
        pytest.param(100.0, 100.0, lambda h, c: c, id="u=1"),
        pytest.param(100.0, -100.0, lambda h, c: h, id="f=1,u=0"),
    ],
)
def test_gru_update_formula(forget: float, update: float, expected) -> None:
    updater = SensoryDeepUpdater(value_dim=2, sensory_dim=3)
    saturate(updater.transform, 3, forget, update, 0.7)
    value, sensory = torch.randn(1, 2, 2, 4, 4), torch.randn(1, 2, 3, 4, 4)
    candidate = torch.full_like(sensory, math.tanh(0.7))
    torch.testing.assert_close(updater(value, sensory), expected(sensory, candidate))


@pytest.mark.parametrize("which", ["encoder", "decoder"])
def test_sensory_updaters_put_the_new_input_first(which: str) -> None:
    # candidate_j = input channel (G + j), f = 0, u = 1 -> new h = tanh(channel G + j), which
    # is h_j exactly when the concatenation is [g, h].
    s = 3
    if which == "encoder":
        updater = SensoryDeepUpdater(value_dim=2, sensory_dim=s)
        inputs = (torch.randn(1, 2, 2, 4, 4),)
    else:
        updater = DecoderSensoryUpdater((2, 2, 2), sensory_dim=s)
        inputs = (
            torch.randn(1, 2, 2, 4, 4),
            torch.randn(1, 2, 2, 8, 8),
            torch.randn(1, 2, 2, 16, 16),
        )
    transform = updater.transform
    g_dim = transform.in_channels - s
    saturate(transform, s, -100.0, 100.0, 0.0)
    with torch.no_grad():
        for j in range(s):
            transform.weight[2 * s + j, g_dim + j, 1, 1] = 1.0
    sensory = torch.randn(1, 2, s, 4, 4)
    torch.testing.assert_close(updater(*inputs, sensory), torch.tanh(sensory))


def test_cbam_spatial_gate_reads_max_then_mean() -> None:
    cbam = CBAM(4, reduction=1)
    with torch.no_grad():
        for linear in (cbam.ChannelGate.mlp[1], cbam.ChannelGate.mlp[3]):
            linear.weight.zero_()
        cbam.ChannelGate.mlp[3].bias.fill_(100.0)  # channel gate = 1
        conv = cbam.SpatialGate.spatial.conv
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0, 3, 3] = 1.0  # centre tap of the first pooled map only
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(cbam(x), x * torch.sigmoid(x.amax(dim=1, keepdim=True)))


def test_cbam_channel_gate_sums_both_poolings() -> None:
    cbam = CBAM(4, reduction=1)
    with torch.no_grad():
        for linear in (cbam.ChannelGate.mlp[1], cbam.ChannelGate.mlp[3]):
            linear.weight.copy_(torch.eye(4))
            linear.bias.zero_()
        cbam.SpatialGate.spatial.conv.weight.zero_()
        cbam.SpatialGate.spatial.conv.bias.fill_(100.0)  # spatial gate = 1
    x = torch.randn(2, 4, 5, 5)
    gate = torch.sigmoid(x.mean(dim=(2, 3)).relu() + x.amax(dim=(2, 3)).relu())
    torch.testing.assert_close(cbam(x), x * gate[:, :, None, None])


def test_fusion_block_equals_the_explicit_concatenation() -> None:
    torch.manual_seed(7)
    block = FusionBlock(x_dim=6, g_dim=5, mid_dim=8, out_dim=4)
    x, g = torch.randn(2, 6, 5, 7), torch.randn(2, 3, 5, 5, 7)
    concat = torch.cat([x[:, None].expand(2, 3, 6, 5, 7), g], dim=2)
    mid = block.block1(concat)
    mid = mid + block.attention(mid.flatten(0, 1)).view_as(mid)
    torch.testing.assert_close(block(x, g), block.block2(mid), rtol=1e-4, atol=1e-5)


def test_group_res_block_acts_per_object() -> None:
    torch.manual_seed(8)
    block = GroupResBlock(3, 5)
    g = torch.randn(2, 4, 3, 6, 6)
    single = torch.stack([block(g[:, i : i + 1])[:, 0] for i in range(4)], dim=1)
    torch.testing.assert_close(block(g), single)


def tiny_inputs(model: PropagationNetwork, num_objects: int, size=(64, 96), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    image = torch.randn(1, 3, h, w, generator=generator)
    masks = (torch.rand(1, num_objects, h, w, generator=generator) > 0.7).float()
    sensory = torch.randn(1, num_objects, model.sensory_dim, h // 16, w // 16, generator=generator)
    readout = torch.randn(1, num_objects, model.value_dim, h // 16, w // 16, generator=generator)
    return image, masks, sensory, readout


def test_network_is_permutation_equivariant_in_objects(tiny: PropagationNetwork) -> None:
    image, masks, sensory, readout = tiny_inputs(tiny, 3)
    order = torch.tensor([2, 0, 1])
    with torch.inference_mode():
        multi_scale, *_ = tiny.encode_image(image)
        value, new_sensory = tiny.encode_mask(image, multi_scale[0], sensory, masks)
        value_p, new_sensory_p = tiny.encode_mask(
            image, multi_scale[0], sensory[:, order], masks[:, order]
        )
        out = tiny.segment(multi_scale, readout, sensory, masks)
        out_p = tiny.segment(multi_scale, readout[:, order], sensory[:, order], masks[:, order])
    torch.testing.assert_close(value_p, value[:, order])
    torch.testing.assert_close(new_sensory_p, new_sensory[:, order])
    torch.testing.assert_close(out_p[0], out[0][:, order])
    background_first = torch.cat([torch.zeros(1, dtype=torch.long), order + 1])
    torch.testing.assert_close(out_p[1], out[1][:, background_first])
    torch.testing.assert_close(out_p[2], out[2][:, background_first])


def test_chunking_gives_the_same_result(tiny: PropagationNetwork) -> None:
    image, masks, sensory, readout = tiny_inputs(tiny, 3, seed=1)
    with torch.inference_mode():
        multi_scale, *_ = tiny.encode_image(image)
        whole = tiny.encode_mask(image, multi_scale[0], sensory, masks)
        chunked = tiny.encode_mask(image, multi_scale[0], sensory, masks, chunk_size=2)
        decoded = tiny.segment(multi_scale, readout, sensory, masks)
        decoded_chunked = tiny.segment(multi_scale, readout, sensory, masks, chunk_size=1)
    for a, b in zip(whole + decoded, chunked + decoded_chunked, strict=True):
        torch.testing.assert_close(a, b)


def test_inference_copy_folds_batchnorm_to_the_same_outputs(tiny: PropagationNetwork) -> None:
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in tiny.modules():  # BN statistics far from identity, so folding matters
            if isinstance(module, nn.BatchNorm2d):
                for tensor in (module.weight, module.bias, module.running_mean):
                    tensor.copy_(torch.randn(tensor.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator))
                module.running_var.add_(0.2)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    fast = prepare_for_inference(tiny)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.pixel_encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for name, value in tiny.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[name]), name
    image, masks, sensory, readout = tiny_inputs(tiny, 3, seed=2)
    with torch.inference_mode():
        outputs = []
        for net in (tiny, fast):
            multi_scale, key, shrinkage, selection = net.encode_image(image)
            value, new_sensory = net.encode_mask(image, multi_scale[0], sensory, masks)
            decoded = net.segment(multi_scale, readout, sensory, masks)
            outputs.append((*multi_scale, key, shrinkage, selection, value, new_sensory, *decoded))
    assert outputs[0][0].abs().max() > 0.1  # features are not trivially small
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_decoder_works_at_a_quarter_and_output_is_upsampled(tiny: PropagationNetwork) -> None:
    image, masks, sensory, readout = tiny_inputs(tiny, 2, size=(48, 80))
    with torch.inference_mode():
        multi_scale, *_ = tiny.encode_image(image)
        kept, object_logits = tiny.mask_decoder(
            multi_scale, readout, sensory, masks, update_sensory=False
        )
        new_sensory, logits, probs = tiny.segment(multi_scale, readout, sensory, masks)
        aux = tiny.aux_logits(multi_scale[0], sensory)
    assert kept is sensory
    assert object_logits.shape == (1, 2, 12, 20) and object_logits.dtype == torch.float32
    assert new_sensory.shape == sensory.shape and not torch.equal(new_sensory, sensory)
    assert logits.shape == probs.shape == (1, 3, 48, 80)
    assert aux.shape == (1, 2, 3, 5)


def test_decoder_adds_the_compressed_sensory_and_mask_to_the_readout(
    tiny: PropagationNetwork,
) -> None:
    image, masks, sensory, readout = tiny_inputs(tiny, 2, seed=2)
    decoder = tiny.mask_decoder
    compress = decoder.sensory_compress
    with torch.inference_mode():
        multi_scale, *_ = tiny.encode_image(image)
        compress.weight[:, :-1] = 0  # only the last input channel, the 1/16 mask, counts
        _, logits = decoder(multi_scale, readout, sensory, masks, update_sensory=False)
        mask16 = F.interpolate(masks, size=(4, 6), mode="area")[:, :, None]
        column = compress.weight[:, -1, 0, 0][:, None, None]
        shifted = readout + column * mask16 + compress.bias[:, None, None]
        compress.weight.zero_()
        compress.bias.zero_()
        _, expected = decoder(multi_scale, shifted, sensory + 5, masks, update_sensory=False)
    torch.testing.assert_close(logits, expected)


def test_full_size_shapes_at_a_small_input(full_model: PropagationNetwork) -> None:
    image = torch.randn(1, 3, 64, 96)
    masks = torch.zeros(1, 2, 64, 96)
    masks[0, 0, :32], masks[0, 1, 32:, 48:] = 1, 1
    with torch.inference_mode():
        (f16, f8, f4), key, shrinkage, selection = full_model.encode_image(image)
        sensory = torch.zeros(1, 2, 512, 4, 6)
        value, sensory = full_model.encode_mask(image, f16, sensory, masks)
        readout, _ = read_memory(
            key, selection, key.flatten(2), shrinkage.flatten(2), value.flatten(3)
        )
        sensory, logits, probs = full_model.segment((f16, f8, f4), readout, sensory, masks)
    assert (f4.shape, f8.shape, f16.shape) == ((1, 256, 16, 24), (1, 512, 8, 12), (1, 512, 4, 6))
    assert (key.shape, shrinkage.shape, selection.shape) == (
        (1, 64, 4, 6),
        (1, 1, 4, 6),
        (1, 64, 4, 6),
    )
    assert shrinkage.min() >= 1 and selection.min() > 0 and selection.max() < 1
    assert value.shape == sensory.shape == readout.shape == (1, 2, 512, 4, 6)
    assert probs.shape == logits.shape == (1, 3, 64, 96)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, 64, 96))


def test_batchnorm_stays_in_eval_mode_when_training(tiny: PropagationNetwork) -> None:
    tiny.train()
    assert tiny.mask_decoder.training and tiny.pixel_encoder.training
    assert not any(m.training for m in tiny.modules() if isinstance(m, nn.BatchNorm2d))


def test_unpadded_image_is_refused(tiny: PropagationNetwork) -> None:
    with pytest.raises(DevaError, match="multiples of 16"):
        tiny.encode_image(torch.zeros(1, 3, 60, 64))


# --- (e) end to end ---------------------------------------------------------------------------


def test_one_frame_memory_end_to_end(tiny: PropagationNetwork) -> None:
    h, w = 64, 64
    image = torch.rand(1, 3, h, w)
    ids = torch.zeros(h, w, dtype=torch.long)
    ids[8:30, 8:30], ids[36:60, 30:62] = 1, 2
    masks = torch.stack([ids == 1, ids == 2])[None].float()  # (1, 2, H, W)
    first = masks_to_probabilities(masks)
    assert torch.equal(first.argmax(dim=1)[0], ids)
    with torch.inference_mode():
        multi_scale, key, shrinkage, selection = tiny.encode_image(image)
        sensory = torch.zeros(1, 2, tiny.sensory_dim, h // 16, w // 16)
        value, sensory = tiny.encode_mask(image, multi_scale[0], sensory, masks)
        # the next frame: a slightly changed image read against the one-frame memory
        next_image = image + 0.05 * torch.randn_like(image)
        multi_scale, query, _, query_selection = tiny.encode_image(next_image)
        readout, usage = read_memory(
            query, query_selection, key.flatten(2), shrinkage.flatten(2), value.flatten(3)
        )
        sensory, logits, probs = tiny.segment(multi_scale, readout, sensory, first[:, 1:])
    assert usage is not None and usage.shape == (1, (h // 16) * (w // 16))
    torch.testing.assert_close(usage.sum(), torch.tensor(16.0))
    assert probs.shape == (1, 3, h, w) and probs.dtype == torch.float32
    assert torch.isfinite(logits).all() and probs.min() >= 0
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, h, w))
    assert sensory.shape == (1, 2, tiny.sensory_dim, 4, 4)
