"""Run-folder files of ``deva train``: resumable checkpoints and exported weights.

A run folder holds ``config.toml`` (the resolved config), ``checkpoint.pt`` (the latest full
training state, replaced atomically), ``weights.pth`` (the latest network weights, loadable by
``deva track --propagator network --checkpoint``), ``stage<S>.pth`` after each finished stage,
and ``metrics.csv``. Everything is written to a temporary name and renamed, so a file under its
final name is always complete; files are read with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deva.errors import DevaError
from deva.io.atomic import atomic_path
from deva.propagation.network.checkpoint import ARCHITECTURE_KEY
from deva.propagation.network.model import PropagationNetwork

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "WEIGHTS_NAME",
    "export_weights",
    "load_checkpoint",
    "restore_rng_state",
    "rng_state",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "weights.pth"
FORMAT = "deva-train-checkpoint/1"


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write a full training state atomically (a crash leaves the previous file intact)."""
    with atomic_path(path) as temp:
        torch.save({"format": FORMAT, **state}, temp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; anything else -> DevaError."""
    path = Path(path)
    if not path.is_file():
        raise DevaError(f"no checkpoint to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DevaError(f"checkpoint {path} is truncated or corrupt ({first})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DevaError(f"{path} is not a deva train checkpoint (format {FORMAT})")
    return state


def export_weights(
    path: str | Path, network: PropagationNetwork, architecture: Mapping[str, Any]
) -> None:
    """Write the network's weights for ``deva track``: a plain state dict (the official
    format) for the default architecture, else {"state_dict", "architecture"} so the track
    side can rebuild the same network."""
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    payload: dict[str, Any] = state
    if architecture:
        payload = {"state_dict": state, ARCHITECTURE_KEY: dict(architecture)}
    with atomic_path(path) as temp:
        torch.save(payload, temp)


def rng_state() -> dict[str, Any]:
    """Global torch / CUDA / numpy / python random states, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo ``rng_state``: the global generators continue where they were saved."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
