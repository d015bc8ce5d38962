"""Image (key) encoder, key projection and mask (value) encoder (spec §1.1-§1.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import FusionBlock, SensoryDeepUpdater
from .resnet import BasicBlock, Bottleneck, build_stem, check_layers, make_stage, stage_widths

__all__ = ["KeyProjection", "MaskEncoder", "MultiScaleFeatures", "PixelEncoder"]

MultiScaleFeatures = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(f16, f8, f4): (B, pix_feat_dim, H/16, W/16), (B, f8_dim, H/8, W/8), (B, f4_dim, H/4, W/4)."""


class PixelEncoder(nn.Module):
    """ResNet-50 stem + layer1..3 (layer1 is named ``res2``) and two 1x1 projections.

    ``width=64, layers=(3, 4, 6)`` is ResNet-50: f4 256 ch, f8 512 ch, raw f16 1024 ch.
    """

    def __init__(
        self, pix_feat_dim: int = 512, width: int = 64, layers: Sequence[int] = (3, 4, 6)
    ) -> None:
        super().__init__()
        n1, n2, n3 = check_layers(layers)
        c4, c8, c16 = stage_widths(Bottleneck, width)
        self.f4_dim, self.f8_dim = c4, c8
        self.conv1, self.bn1 = build_stem(3, width)
        self.res2 = make_stage(Bottleneck, width, width, n1, stride=1)
        self.layer2 = make_stage(Bottleneck, c4, 2 * width, n2, stride=2)
        self.layer3 = make_stage(Bottleneck, c8, 4 * width, n3, stride=2)
        self.proj1 = nn.Conv2d(c16, pix_feat_dim, 1)  # f16 for the value encoder and decoder
        self.proj2 = nn.Conv2d(c16, pix_feat_dim, 1)  # input of the key projection

    def forward(self, image: torch.Tensor) -> tuple[MultiScaleFeatures, torch.Tensor]:
        """image: (B, 3, H, W), ImageNet-normalised -> ((f16, f8, f4), key feature at 1/16)."""
        x = F.relu(self.bn1(self.conv1(image)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return (self.proj1(f16), f8, f4), self.proj2(f16)


class KeyProjection(nn.Module):
    """Three 3x3 heads on the key feature: key, shrinkage and selection (spec §1.2)."""

    def __init__(self, in_dim: int = 512, key_dim: int = 64) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(self.key_proj.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, in_dim, h, w) -> key (B, CK, h, w), shrinkage (B, 1, h, w) >= 1,
        selection (B, CK, h, w) in (0, 1)."""
        key = self.key_proj(x)
        shrinkage = self.d_proj(x) ** 2 + 1
        selection = torch.sigmoid(self.e_proj(x))
        return key, shrinkage, selection


class MaskEncoder(nn.Module):
    """Value encoder: 4-channel ResNet-18 to layer3, fusion with f16, optional deep update.

    Each object sees the image plus only its own mask (no "other objects" channel).
    ``width=64, layers=(2, 2, 2)`` is ResNet-18 (layer3: 256 ch).
    """

    def __init__(
        self,
        pix_feat_dim: int = 512,
        value_dim: int = 512,
        sensory_dim: int = 512,
        width: int = 64,
        layers: Sequence[int] = (2, 2, 2),
    ) -> None:
        super().__init__()
        n1, n2, n3 = check_layers(layers)
        c4, c8, c16 = stage_widths(BasicBlock, width)
        self.conv1, self.bn1 = build_stem(4, width)
        self.layer1 = make_stage(BasicBlock, width, width, n1, stride=1)
        self.layer2 = make_stage(BasicBlock, c4, 2 * width, n2, stride=2)
        self.layer3 = make_stage(BasicBlock, c8, 4 * width, n3, stride=2)
        self.fuser = FusionBlock(pix_feat_dim, c16, value_dim, value_dim)
        self.sensory_update = SensoryDeepUpdater(value_dim, sensory_dim)

    def _stem(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """conv1 on concat[image, mask_i] for every object, (B*N, width, H/2, W/2).

        conv1 is linear, so the image's three input channels are convolved once and broadcast
        over objects instead of copying the image N times (its bias, present once a BatchNorm
        is folded in for inference, goes with the image part).
        """
        b, n, h, w = masks.shape
        weight = self.conv1.weight
        image_part = F.conv2d(image, weight[:, :3], self.conv1.bias, stride=2, padding=3)
        mask_part = F.conv2d(masks.reshape(b * n, 1, h, w), weight[:, 3:], stride=2, padding=3)
        out = mask_part.view(b, n, *mask_part.shape[1:]) + image_part[:, None]
        return out.flatten(0, 1)

    def forward(
        self,
        image: torch.Tensor,
        f16: torch.Tensor,
        sensory: torch.Tensor,
        masks: torch.Tensor,
        deep_update: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W); f16 (B, pix_feat_dim, H/16, W/16); sensory (B, N, S, H/16, W/16);
        masks (B, N, H, W) in [0, 1] -> value (B, N, value_dim, H/16, W/16), sensory (updated
        when ``deep_update``, else the input)."""
        b, n = masks.shape[:2]
        x = F.relu(self.bn1(self._stem(image, masks.to(image.dtype))))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layer3(self.layer2(self.layer1(x)))
        value = self.fuser(f16, x.view(b, n, *x.shape[1:]))
        if deep_update:
            sensory = self.sensory_update(value, sensory)
        return value, sensory
