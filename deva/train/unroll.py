"""The per-sample training forward of spec §7: memory built frame by frame, full softmax.

Padding objects (selector 0) are handled by zeroing: their given mask at frame 0 is zero, their
decoded probability is multiplied by 0 before soft aggregation (so they never take pixels from
real objects), and their fed-back mask stays zero. The losses then drop their channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deva.propagation.network.aggregate import aggregate
from deva.propagation.network.model import PropagationNetwork
from deva.propagation.network.readout import read_memory

__all__ = ["UnrollOutput", "choose_references", "unroll"]


@dataclass(frozen=True)
class UnrollOutput:
    """Per predicted frame t = 1..T-1 (list index t - 1): aggregated logits (B, N+1, H, W) of
    the decoder and of the auxiliary head (upsampled x16), and the probabilities (B, N+1, H, W)."""

    logits: list[torch.Tensor]
    aux_logits: list[torch.Tensor]
    probs: list[torch.Tensor]


def choose_references(
    num_previous: int, num_ref: int, batch: int, generator: torch.Generator
) -> torch.Tensor:
    """Memory frame indices (B, k) per sample: all previous frames while ``num_previous <=
    num_ref``, else ``num_ref`` distinct random ones (sorted) per sample."""
    if num_previous <= num_ref:
        return torch.arange(num_previous).expand(batch, num_previous)
    picks = [torch.randperm(num_previous, generator=generator)[:num_ref] for _ in range(batch)]
    return torch.stack(picks).sort(dim=1).values


def _aggregate_selected(object_logits: torch.Tensor, selector: torch.Tensor) -> torch.Tensor:
    """Object logits (B, N, h, w) -> aggregated N+1 logits with padded objects at probability 0."""
    with torch.autocast(device_type=object_logits.device.type, enabled=False):
        probs = torch.sigmoid(object_logits.float()) * selector[:, :, None, None]
        return aggregate(probs, dim=1)


def unroll(
    network: PropagationNetwork,
    images: torch.Tensor,
    masks: torch.Tensor,
    selector: torch.Tensor,
    *,
    num_ref_frames: int,
    deep_update_prob: float,
    generator: torch.Generator,
) -> UnrollOutput:
    """Run ``network`` over a batch of sequences as in training (spec §7).

    images (B, T, 3, H, W) normalised, H and W multiples of 16; masks (B, T, N, H, W) (only
    frame 0 is read); selector (B, N). ``generator`` (CPU) draws the reference frames and the
    deep updates, so a run is reproducible from its seed.
    """
    b, t_total = images.shape[:2]
    num_objects = masks.shape[2]
    selector = selector.to(images.dtype)
    multi_scale, keys, shrinkages, selections = network.encode_image(images.flatten(0, 1))

    def frame(x: torch.Tensor, t: int) -> torch.Tensor:
        return x.view(b, t_total, *x.shape[1:])[:, t]

    h16, w16 = keys.shape[-2:]
    sensory = images.new_zeros(b, num_objects, network.sensory_dim, h16, w16)
    last_mask = masks[:, 0] * selector[:, :, None, None]
    value, sensory = network.encode_mask(
        images[:, 0], frame(multi_scale[0], 0), sensory, last_mask, deep_update=True
    )
    mem_keys, mem_shrinkages, mem_values = [frame(keys, 0)], [frame(shrinkages, 0)], [value]
    logits_out, aux_out, probs_out = [], [], []
    for t in range(1, t_total):
        scales = tuple(frame(x, t) for x in multi_scale)
        refs = choose_references(t, num_ref_frames, b, generator).to(images.device)
        rows = torch.arange(b, device=images.device)[:, None]
        mem_key = torch.stack(mem_keys, dim=2)[rows, :, refs]  # (B, k, CK, h, w)
        mem_key = mem_key.permute(0, 2, 1, 3, 4).flatten(2)  # (B, CK, k*h*w)
        mem_shrinkage = torch.stack(mem_shrinkages, dim=2)[rows, :, refs].flatten(1)
        mem_value = torch.stack(mem_values, dim=3)[rows, :, :, refs]  # (B, k, N, CV, h, w)
        mem_value = mem_value.permute(0, 2, 3, 1, 4, 5).flatten(3)  # (B, N, CV, k*h*w)
        readout, _ = read_memory(
            frame(keys, t), frame(selections, t), mem_key, mem_shrinkage, mem_value, top_k=None
        )
        aux = _aggregate_selected(network.aux_logits(scales[0], sensory), selector)
        aux_out.append(F.interpolate(aux, scale_factor=16, mode="bilinear", align_corners=False))
        sensory, object_logits = network.mask_decoder(
            scales, readout, sensory, last_mask, update_sensory=True
        )
        logits = _aggregate_selected(object_logits, selector)
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        probs = torch.softmax(logits, dim=1)
        logits_out.append(logits)
        probs_out.append(probs)
        last_mask = probs[:, 1:] * selector[:, :, None, None]
        if t < t_total - 1:
            deep = bool(torch.rand((), generator=generator) < deep_update_prob)
            value, sensory = network.encode_mask(
                images[:, t], scales[0], sensory, last_mask.to(images.dtype), deep_update=deep
            )
            mem_keys.append(frame(keys, t))
            mem_shrinkages.append(frame(shrinkages, t))
            mem_values.append(value)
    return UnrollOutput(logits=logits_out, aux_logits=aux_out, probs=probs_out)
