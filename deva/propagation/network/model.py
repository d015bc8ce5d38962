"""The DEVA temporal propagation network: four parts with the official checkpoint's names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deva.errors import DevaError

from .aggregate import aggregate
from .decoder import MaskDecoder
from .encoders import KeyProjection, MaskEncoder, MultiScaleFeatures, PixelEncoder

__all__ = ["PropagationNetwork", "tiny_propagation_network"]


def _object_chunks(num_objects: int, chunk_size: int) -> list[slice]:
    """Slices over objects, ``chunk_size`` at a time (<= 0: all at once)."""
    step = num_objects if chunk_size <= 0 else chunk_size
    return [slice(i, i + step) for i in range(0, num_objects, max(step, 1))]


class PropagationNetwork(nn.Module):
    """Key encoder, key projection, value encoder and decoder (spec §1).

    With the default arguments ``state_dict()`` has exactly the names and shapes of the official
    ``DEVA-propagation.pth``. Smaller widths give a fast model for tests (see
    ``tiny_propagation_network``). BatchNorms always use running statistics, also in train mode.

    Args:
        key_dim: CK, channels of key and selection.
        value_dim: CV, channels of values, readouts and decoder features at 1/16.
        pix_feat_dim: channels of the projected image feature f16 and of the key feature.
        sensory_dim: channels of the sensory (hidden) memory; None = ``value_dim`` as in DEVA.
        pixel_encoder_width: base width of the ResNet-50-style image encoder (64 = ResNet-50).
        pixel_encoder_layers: bottleneck blocks per stage ((3, 4, 6) = ResNet-50).
        mask_encoder_width: base width of the ResNet-18-style mask encoder (64 = ResNet-18).
        mask_encoder_layers: basic blocks per stage ((2, 2, 2) = ResNet-18).
        decoder_dims: channels of the decoder at 1/8 and 1/4.
    """

    def __init__(
        self,
        key_dim: int = 64,
        value_dim: int = 512,
        pix_feat_dim: int = 512,
        *,
        sensory_dim: int | None = None,
        pixel_encoder_width: int = 64,
        pixel_encoder_layers: Sequence[int] = (3, 4, 6),
        mask_encoder_width: int = 64,
        mask_encoder_layers: Sequence[int] = (2, 2, 2),
        decoder_dims: tuple[int, int] = (256, 256),
    ) -> None:
        super().__init__()
        sensory_dim = value_dim if sensory_dim is None else sensory_dim
        self.key_dim, self.value_dim, self.sensory_dim = key_dim, value_dim, sensory_dim
        self.pix_feat_dim = pix_feat_dim
        # Registration order follows the official checkpoint.
        self.pixel_encoder = PixelEncoder(pix_feat_dim, pixel_encoder_width, pixel_encoder_layers)
        self.mask_encoder = MaskEncoder(
            pix_feat_dim, value_dim, sensory_dim, mask_encoder_width, mask_encoder_layers
        )
        self.key_proj = KeyProjection(pix_feat_dim, key_dim)
        self.mask_decoder = MaskDecoder(
            pix_feat_dim,
            value_dim,
            sensory_dim,
            self.pixel_encoder.f8_dim,
            self.pixel_encoder.f4_dim,
            decoder_dims,
        )

    def train(self, mode: bool = True) -> PropagationNetwork:
        """Set train mode but keep every BatchNorm on its running statistics (as in DEVA)."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def encode_image(
        self, image: torch.Tensor
    ) -> tuple[MultiScaleFeatures, torch.Tensor, torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W), ImageNet-normalised, H and W multiples of 16 ->
        ((f16, f8, f4), key (B, CK, H/16, W/16), shrinkage (B, 1, H/16, W/16) >= 1,
        selection (B, CK, H/16, W/16) in (0, 1))."""
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-2] % 16 or image.shape[-1] % 16:
            raise DevaError(
                f"encode_image expects (B, 3, H, W) with H, W multiples of 16 (pad first); "
                f"got {tuple(image.shape)}"
            )
        multi_scale, key_feature = self.pixel_encoder(image)
        key, shrinkage, selection = self.key_proj(key_feature)
        return multi_scale, key, shrinkage, selection

    def encode_mask(
        self,
        image: torch.Tensor,
        f16: torch.Tensor,
        sensory: torch.Tensor,
        masks: torch.Tensor,
        deep_update: bool = True,
        *,
        chunk_size: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Values of N objects for the memory.

        image (B, 3, H, W); f16 (B, pix_feat_dim, H/16, W/16) from ``encode_image``; sensory
        (B, N, S, H/16, W/16) (zeros for new objects); masks (B, N, H, W) in [0, 1], one per
        object. Returns value (B, N, CV, H/16, W/16) and the sensory (deep-updated when
        ``deep_update``). ``chunk_size`` objects are encoded at a time (<= 0: all).
        """
        b, _, height, width = image.shape
        if masks.ndim != 4 or masks.shape[0] != b or tuple(masks.shape[-2:]) != (height, width):
            raise DevaError(
                f"masks must be (B, N, H, W) = ({b}, N, {height}, {width}); "
                f"got {tuple(masks.shape)}"
            )
        if sensory.shape[:2] != masks.shape[:2]:
            raise DevaError(
                f"sensory has {tuple(sensory.shape[:2])} (B, N) but masks {tuple(masks.shape[:2])}"
            )
        values, sensories = [], []
        for part in _object_chunks(masks.shape[1], chunk_size):
            value, new_sensory = self.mask_encoder(
                image, f16, sensory[:, part], masks[:, part], deep_update
            )
            values.append(value)
            sensories.append(new_sensory)
        if len(values) == 1:
            return values[0], sensories[0]
        return torch.cat(values, dim=1), torch.cat(sensories, dim=1)

    def segment(
        self,
        multi_scale: MultiScaleFeatures,
        readout: torch.Tensor,
        sensory: torch.Tensor,
        last_mask: torch.Tensor,
        update_sensory: bool = True,
        *,
        chunk_size: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode N objects and combine them by soft aggregation.

        multi_scale from ``encode_image``; readout (B, N, CV, H/16, W/16); sensory
        (B, N, S, H/16, W/16); last_mask (B, N, H, W) previous object probabilities (no
        background). Returns the sensory (updated when ``update_sensory``), logits
        (B, N+1, H, W) and probabilities (B, N+1, H, W), background first, summing to 1; fp32.
        """
        sensories, object_logits = [], []
        for part in _object_chunks(readout.shape[1], chunk_size):
            new_sensory, logits = self.mask_decoder(
                multi_scale, readout[:, part], sensory[:, part], last_mask[:, part], update_sensory
            )
            sensories.append(new_sensory)
            object_logits.append(logits)
        if len(sensories) == 1:
            new_sensory, logits = sensories[0], object_logits[0]
        else:
            new_sensory, logits = torch.cat(sensories, dim=1), torch.cat(object_logits, dim=1)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = aggregate(torch.sigmoid(logits.float()), dim=1)
            logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
            probs = torch.softmax(logits, dim=1)
        return new_sensory, logits, probs

    def aux_logits(self, f16: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
        """Training-only auxiliary logits (B, N, H/16, W/16) from the incoming sensory."""
        return self.mask_decoder.aux_logits(f16, sensory)


def tiny_propagation_network() -> PropagationNetwork:
    """Same layout with small widths and one block per stage: about 76k parameters, for tests.

    Not compatible with the official checkpoint.
    """
    return PropagationNetwork(
        key_dim=8,
        value_dim=16,
        pix_feat_dim=16,
        pixel_encoder_width=4,
        pixel_encoder_layers=(1, 1, 1),
        mask_encoder_width=4,
        mask_encoder_layers=(1, 1, 1),
        decoder_dims=(8, 8),
    )
