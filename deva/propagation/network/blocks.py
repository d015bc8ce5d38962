"""Group building blocks of the propagation network (spec §1.6, §1.8).

Group tensors carry an object axis, (B, N, C, h, w). Every group layer applies one 2-D layer to
the flattened (B*N, C, h, w) view, so weights are shared across objects and the result is
permutation-equivariant in N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CBAM",
    "DecoderSensoryUpdater",
    "FusionBlock",
    "GroupConv2d",
    "GroupResBlock",
    "SensoryDeepUpdater",
    "area_resize",
    "gru_update",
]


def _ungroup(x: torch.Tensor, batch: int, num_objects: int) -> torch.Tensor:
    """(B*N, C, h, w) -> (B, N, C, h, w)."""
    return x.view(batch, num_objects, *x.shape[1:])


def area_resize(g: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Area (average) down-sampling of a group tensor (B, N, C, h, w) to spatial ``size``."""
    b, n = g.shape[:2]
    if tuple(g.shape[-2:]) == tuple(size):
        return g
    out = F.interpolate(g.flatten(0, 1), size=tuple(size), mode="area")
    return _ungroup(out, b, n)


class GroupConv2d(nn.Conv2d):
    """``nn.Conv2d`` over every object: (B, N, C_in, h, w) -> (B, N, C_out, h', w')."""

    def forward(self, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = super().forward(g.flatten(0, 1))
        return _ungroup(out, g.shape[0], g.shape[1])


class GroupResBlock(nn.Module):
    """Pre-activation residual block: ReLU, 3x3 conv, ReLU, 3x3 conv, plus skip.

    The skip is the identity when ``in_dim == out_dim``, else a 1x1 conv (``downsample``); all
    convs have a bias. (B, N, in_dim, h, w) -> (B, N, out_dim, h, w).
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        # Registered first so that state_dict order follows the official checkpoint.
        self.downsample = nn.Conv2d(in_dim, out_dim, 1) if in_dim != out_dim else None
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1)

    def forward_flat(self, x: torch.Tensor) -> torch.Tensor:
        """The same block on a flattened (B*N, in_dim, h, w) tensor."""
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = x if self.downsample is None else self.downsample(x)
        return out + skip

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return _ungroup(self.forward_flat(g.flatten(0, 1)), g.shape[0], g.shape[1])


class _ChannelGate(nn.Module):
    """x * sigmoid(MLP(avg-pool x) + MLP(max-pool x)); MLP = Linear, ReLU, Linear."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        # Flatten sits at index 0 so the linears are mlp.1 and mlp.3 as in the checkpoint.
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        peak = self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(avg + peak)[:, :, None, None]


class _SpatialConv(nn.Module):
    """Holder giving the 7x7 conv the checkpoint name ``spatial.conv``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _SpatialGate(nn.Module):
    """x * sigmoid(conv7x7([max over channels, mean over channels]))."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """Channel then spatial attention on (B*N, C, h, w); same shape out.

    Attribute names ``ChannelGate`` / ``SpatialGate`` are the checkpoint's.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.ChannelGate = _ChannelGate(channels, reduction)
        self.SpatialGate = _SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


class FusionBlock(nn.Module):
    """Fuse an image feature into every object's feature (spec §1.8).

    ``g = block1(concat[x broadcast to all objects, g])``, then ``block2(g + CBAM(g))``.
    x: (B, x_dim, h, w); g: (B, N, g_dim, h, w) -> (B, N, out_dim, h, w).
    """

    def __init__(self, x_dim: int, g_dim: int, mid_dim: int, out_dim: int) -> None:
        super().__init__()
        self.x_dim = x_dim
        self.block1 = GroupResBlock(x_dim + g_dim, mid_dim)
        self.attention = CBAM(mid_dim)
        self.block2 = GroupResBlock(mid_dim, out_dim)

    def _first_block(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """block1 on concat[x, g] without copying x N times.

        The first conv and the 1x1 skip are linear and the ReLU acts channel-wise, so the image
        part of each is computed once per batch item and broadcast over objects.
        Returns (B*N, mid_dim, h, w).
        """
        b, n = g.shape[:2]
        c = self.x_dim
        block = self.block1
        w1 = block.conv1.weight
        image_part = F.conv2d(F.relu(x), w1[:, :c], block.conv1.bias, padding=1)
        object_part = F.conv2d(F.relu(g.flatten(0, 1)), w1[:, c:], None, padding=1)
        out = (_ungroup(object_part, b, n) + image_part[:, None]).flatten(0, 1)
        out = block.conv2(F.relu(out))
        if block.downsample is None:  # only when g_dim == 0; kept for completeness
            skip = torch.cat([x[:, None].expand(b, n, *x.shape[1:]), g], dim=2).flatten(0, 1)
        else:
            wd = block.downsample.weight
            skip_image = F.conv2d(x, wd[:, :c], block.downsample.bias)
            skip_object = F.conv2d(g.flatten(0, 1), wd[:, c:], None)
            skip = (_ungroup(skip_object, b, n) + skip_image[:, None]).flatten(0, 1)
        return out + skip

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        b, n = g.shape[:2]
        out = self._first_block(x, g)
        out = self.block2.forward_flat(out + self.attention(out))
        return _ungroup(out, b, n)


def gru_update(gates: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
    """DEVA's GRU-style sensory update (spec §1.6), reproduced exactly.

    gates: (B, N, 3S, h, w) pre-activations, thirds in the order [forget, update, candidate];
    sensory: (B, N, S, h, w). Returns ``f * h * (1 - u) + u * c`` with f = sigmoid(forget),
    u = sigmoid(update), c = tanh(candidate). (Not the textbook GRU: no reset gate, and the old
    state is scaled by both f and 1 - u.)
    """
    s = sensory.shape[2]
    forget = torch.sigmoid(gates[:, :, :s])
    update = torch.sigmoid(gates[:, :, s : 2 * s])
    candidate = torch.tanh(gates[:, :, 2 * s :])
    return forget * sensory * (1 - update) + update * candidate


class SensoryDeepUpdater(nn.Module):
    """Encoder-side ("deep") sensory update: 3x3 conv on concat[value, sensory] -> gates.

    value: (B, N, value_dim, h, w); sensory: (B, N, S, h, w) -> new sensory (B, N, S, h, w).
    """

    def __init__(self, value_dim: int, sensory_dim: int) -> None:
        super().__init__()
        self.transform = GroupConv2d(value_dim + sensory_dim, 3 * sensory_dim, 3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, value: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
        gates = self.transform(torch.cat([value, sensory], dim=2))
        return gru_update(gates, sensory)


class DecoderSensoryUpdater(nn.Module):
    """Decoder-side sensory update from the three decoder scales (spec §1.6).

    g16 (B, N, d16, h, w), g8 (B, N, d8, 2h, 2w), g4 (B, N, d4, 4h, 4w) are projected by 1x1
    convs to S channels after area down-sampling to (h, w) and summed; a 3x3 conv on
    concat[sum, sensory] gives the gates. Returns the new sensory (B, N, S, h, w).
    """

    def __init__(self, in_dims: tuple[int, int, int], sensory_dim: int) -> None:
        super().__init__()
        d16, d8, d4 = in_dims
        self.g16_conv = GroupConv2d(d16, sensory_dim, 1)
        self.g8_conv = GroupConv2d(d8, sensory_dim, 1)
        self.g4_conv = GroupConv2d(d4, sensory_dim, 1)
        self.transform = GroupConv2d(2 * sensory_dim, 3 * sensory_dim, 3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(
        self, g16: torch.Tensor, g8: torch.Tensor, g4: torch.Tensor, sensory: torch.Tensor
    ) -> torch.Tensor:
        size = g16.shape[-2:]
        g = self.g16_conv(g16)
        g = g + self.g8_conv(area_resize(g8, size))
        g = g + self.g4_conv(area_resize(g4, size))
        gates = self.transform(torch.cat([g, sensory], dim=2))
        return gru_update(gates, sensory)
