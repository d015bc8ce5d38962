"""MobileNetV2 feature extractor (Sandler et al., CVPR 2018), dilated to keep stride 8.

Architecture only, as plain ``nn.Module``s; the ImageNet weights deva ships are loaded by
``deva.propagation.features``. The module and parameter names follow the flat layout of the
widely used PyTorch port (``features.N`` for the stem and each inverted-residual block,
``features.N.conv.M`` inside a block), so a state dict in that layout loads strictly.

The memory propagator matches pixels by appearance, which wants fine positions: the two
downsampling blocks after stride 8 get stride 1 and their depthwise convolutions are dilated
instead (2, then 4), so the receptive field still grows but the feature map stays at 1/8.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BLOCK_SETTINGS", "MobileNetV2Features", "block_channels"]

# (expansion t, output channels c, repeats n, first stride s) of the 17 inverted residual blocks.
BLOCK_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# The full network: the stem (features.0), 17 blocks (features.1-17) and the 1x1 head (features.18).
FULL_DEPTH = 19


def block_channels() -> list[int]:
    """Output channels of ``features.N`` for N in 0..18."""
    channels = [STEM_CHANNELS]
    for _, c, n, _ in BLOCK_SETTINGS:
        channels += [c] * n
    return [*channels, HEAD_CHANNELS]


def _conv_bn(
    inp: int, out: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1
) -> list[nn.Module]:
    padding = dilation * (kernel - 1) // 2
    conv = nn.Conv2d(
        inp, out, kernel, stride, padding, dilation=dilation, groups=groups, bias=False
    )
    return [conv, nn.BatchNorm2d(out)]


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear); residual when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int, dilation: int = 1):
        super().__init__()
        hidden = inp * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*_conv_bn(inp, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [
            *_conv_bn(hidden, hidden, 3, stride, dilation, groups=hidden),
            nn.ReLU6(inplace=True),
            *_conv_bn(hidden, out, 1),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """``features.0`` .. ``features.{depth-1}`` of MobileNetV2 (width 1.0).

    ``output_stride`` 8 or 16 dilates the later stages instead of downsampling (32 = the
    original network). ``forward`` returns the outputs of the layers in ``taps`` (indices into
    ``features``), in that order; the default is the last layer.
    """

    def __init__(self, depth: int = FULL_DEPTH, output_stride: int = 32):
        super().__init__()
        if not 1 <= depth <= FULL_DEPTH:
            raise ValueError(f"depth must be in 1..{FULL_DEPTH}, got {depth}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, STEM_CHANNELS, 3, 2), nn.ReLU6())]
        stride, dilation, inp = 2, 1, STEM_CHANNELS
        for expansion, out, repeats, first_stride in BLOCK_SETTINGS:
            for index in range(repeats):
                block_stride = first_stride if index == 0 else 1
                block_dilation = dilation
                if block_stride == 2 and stride >= output_stride:
                    # Stride 1 instead; this block keeps the rate it had (its depthwise conv
                    # saw the finer grid in the original too), the blocks after it dilate.
                    block_stride = 1
                    dilation *= 2
                stride *= block_stride
                layers.append(InvertedResidual(inp, out, block_stride, expansion, block_dilation))
                inp = out
        layers.append(nn.Sequential(*_conv_bn(inp, HEAD_CHANNELS, 1), nn.ReLU6()))
        self.features = nn.Sequential(*layers[:depth])
        self.channels = block_channels()[:depth]
        self.depth = depth
        self.output_stride = min(stride, output_stride)

    def forward(self, x: torch.Tensor, taps: tuple[int, ...] | None = None) -> list[torch.Tensor]:
        taps = (self.depth - 1,) if taps is None else taps
        if any(not 0 <= tap < self.depth for tap in taps):
            raise ValueError(f"taps must be in 0..{self.depth - 1}, got {taps}")
        outputs: dict[int, torch.Tensor] = {}
        last = max(taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                outputs[index] = x
            if index == last:
                break
        return [outputs[tap] for tap in taps]
