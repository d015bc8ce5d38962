"""Inference-only rewrites of a ``PropagationNetwork``: the same outputs up to float rounding,
less work per frame.

Kept apart from the architecture (like weight loading) so the modules stay trainable and their
parameter names keep matching the official checkpoint; the propagator runs a rewritten copy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from deva.propagation.network.model import PropagationNetwork

__all__ = ["fold_batchnorm", "prepare_for_inference"]

_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the conv before it (in place): one pass over the
    activation instead of two. BN runs on running statistics in DEVA, so this is exact up to
    rounding."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def prepare_for_inference(
    network: PropagationNetwork, *, channels_last: bool = True
) -> PropagationNetwork:
    """A copy of ``network`` for inference (``network`` itself is left untouched).

    Every conv + BatchNorm pair of the ResNet encoders is folded into one conv, and, with
    ``channels_last``, conv weights use the NHWC layout that oneDNN and cuDNN run fastest. Not for
    training: the BatchNorms are gone, so the copy no longer loads the official checkpoint.
    """
    fused = copy.deepcopy(network).eval()
    for module in list(fused.modules()):
        for conv_name, bn_name in _PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold_batchnorm(conv, bn)
                setattr(module, bn_name, nn.Identity())
        if (
            isinstance(module, nn.Sequential)
            and len(module) == 2
            and isinstance(module[0], nn.Conv2d)
            and isinstance(module[1], nn.BatchNorm2d)
        ):
            fold_batchnorm(module[0], module[1])
            module[1] = nn.Identity()
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused.requires_grad_(False)
