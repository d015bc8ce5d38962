"""Mask decoder with sensory update and the auxiliary linear head (spec §1.5, §1.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DecoderSensoryUpdater, FusionBlock, GroupConv2d, GroupResBlock
from .encoders import MultiScaleFeatures

__all__ = ["DecoderFeatureProcessor", "MaskDecoder", "SensoryLinearPredictor", "UpsampleBlock"]


class DecoderFeatureProcessor(nn.Module):
    """1x1 convs on the image skip features: ``transforms.0`` for f8, ``transforms.1`` for f4."""

    def __init__(self, in_dims: tuple[int, int], out_dims: tuple[int, int]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(
            [nn.Conv2d(c_in, c_out, 1) for c_in, c_out in zip(in_dims, out_dims, strict=True)]
        )

    def forward(self, f8: torch.Tensor, f4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transforms[0](f8), self.transforms[1](f4)


class UpsampleBlock(nn.Module):
    """Bilinear x2 of a group tensor, add the (image) skip feature, GroupRes block.

    skip: (B, in_dim, 2h, 2w); g: (B, N, in_dim, h, w) -> (B, N, out_dim, 2h, 2w).
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_conv = GroupResBlock(in_dim, out_dim)

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        b, n = g.shape[:2]
        up = F.interpolate(
            g.flatten(0, 1), size=skip.shape[-2:], mode="bilinear", align_corners=False
        )
        up = up.view(b, n, *up.shape[1:]) + skip[:, None]
        return self.out_conv(up)


class SensoryLinearPredictor(nn.Module):
    """Auxiliary head (training only): per pixel, the sensory gives the weights and bias of a
    linear classifier on f16. f16 (B, C, h, w), sensory (B, N, S, h, w) -> logits (B, N, h, w).
    """

    def __init__(self, sensory_dim: int, pix_feat_dim: int) -> None:
        super().__init__()
        self.projection = GroupConv2d(sensory_dim, pix_feat_dim + 1, 1)

    def forward(self, f16: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
        weights = self.projection(sensory)
        return (f16[:, None] * weights[:, :, :-1]).sum(dim=2) + weights[:, :, -1]


class MaskDecoder(nn.Module):
    """Readout + sensory + image features -> one logit map per object at 1/4 resolution."""

    def __init__(
        self,
        pix_feat_dim: int = 512,
        value_dim: int = 512,
        sensory_dim: int = 512,
        f8_dim: int = 512,
        f4_dim: int = 256,
        decoder_dims: tuple[int, int] = (256, 256),
    ) -> None:
        super().__init__()
        d8, d4 = decoder_dims
        self.fuser = FusionBlock(pix_feat_dim, value_dim, value_dim, value_dim)
        self.sensory_compress = GroupConv2d(sensory_dim + 1, value_dim, 1)
        self.sensory_update = DecoderSensoryUpdater((value_dim, d8, d4 + 1), sensory_dim)
        self.decoder_feat_proc = DecoderFeatureProcessor((f8_dim, f4_dim), (value_dim, d8))
        self.up_16_8 = UpsampleBlock(value_dim, d8)
        self.up_8_4 = UpsampleBlock(d8, d4)
        self.pred = nn.Conv2d(d4, 1, 3, padding=1)
        self.sensory_linear_pred = SensoryLinearPredictor(sensory_dim, pix_feat_dim)

    def forward(
        self,
        multi_scale: MultiScaleFeatures,
        readout: torch.Tensor,
        sensory: torch.Tensor,
        last_mask: torch.Tensor,
        update_sensory: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """multi_scale (f16, f8, f4); readout (B, N, value_dim, H/16, W/16); sensory
        (B, N, S, H/16, W/16); last_mask (B, N, H, W) object probabilities of the previous frame
        (no background) -> (sensory, updated if ``update_sensory``; logits (B, N, H/4, W/4), fp32).
        """
        f16, f8, f4 = multi_scale
        b, n = readout.shape[:2]
        mask16 = F.interpolate(last_mask.to(sensory.dtype), size=f16.shape[-2:], mode="area")
        p16 = readout + self.sensory_compress(torch.cat([sensory, mask16[:, :, None]], dim=2))
        p16 = self.fuser(f16, p16)
        f8, f4 = self.decoder_feat_proc(f8, f4)
        p8 = self.up_16_8(f8, p16)
        p4 = self.up_8_4(f4, p8)
        with torch.autocast(device_type=p4.device.type, enabled=False):
            logits = self.pred(F.relu(p4.flatten(0, 1).float()))
        logits = logits.view(b, n, *logits.shape[1:])  # (B, N, 1, H/4, W/4)
        if update_sensory:
            p4 = torch.cat([p4, logits.to(p4.dtype)], dim=2)
            sensory = self.sensory_update(p16, p8, p4, sensory)
        return sensory, logits[:, :, 0]

    def aux_logits(self, f16: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
        """Auxiliary logits (B, N, H/16, W/16) from the incoming sensory (training only)."""
        return self.sensory_linear_pred(f16, sensory)
