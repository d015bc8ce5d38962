"""The one place that picks a torch device, so nothing else guesses or assumes CUDA."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deva.errors import DevaError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name not in DEVICES:
        raise DevaError(f"unknown device {name!r}; available: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DevaError("--device cuda was asked for but no CUDA GPU is available; use auto/cpu")
    return torch.device(name)
