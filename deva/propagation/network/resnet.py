"""ResNet stages (stem + layer1..3) with torchvision parameter names, written from the spec.

Bottleneck (ResNet-50, stride on the 3x3 conv) feeds the image encoder; BasicBlock (ResNet-18)
feeds the mask encoder. Widths are ``width * (1, 2, 4)`` per stage (times 4 for Bottleneck), so
``width=64`` gives the standard networks and a small width gives a fast test model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "build_stem", "check_layers", "make_stage", "stage_widths"]


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1x1 conv (no bias) + BN on the skip path when the shape changes, else None."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; (B, in, h, w) -> (B, planes, h/stride, w/stride)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here) -> 1x1 with BN; (B, in, h, w) -> (B, 4*planes, h/s, w/s)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + skip)


def make_stage(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    num_blocks: int,
    stride: int,
) -> nn.Sequential:
    """``num_blocks`` blocks; the first carries the stride and any channel change."""
    out_channels = planes * block.expansion
    blocks = [block(in_channels, planes, stride)]
    blocks += [block(out_channels, planes, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def build_stem(in_channels: int, width: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The 7x7 stride-2 conv (no bias) and its BN: (B, in, H, W) -> (B, width, H/2, W/2)."""
    conv = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    return conv, nn.BatchNorm2d(width)


def stage_widths(block: type[BasicBlock] | type[Bottleneck], width: int) -> tuple[int, int, int]:
    """Output channels of the three stages for a base ``width``."""
    e = block.expansion
    return (width * e, 2 * width * e, 4 * width * e)


def check_layers(layers: Sequence[int]) -> tuple[int, int, int]:
    """Validate a three-stage block count such as (3, 4, 6)."""
    if len(layers) != 3 or any(n < 1 for n in layers):
        raise ValueError(f"need three positive block counts, got {tuple(layers)}")
    return (int(layers[0]), int(layers[1]), int(layers[2]))
