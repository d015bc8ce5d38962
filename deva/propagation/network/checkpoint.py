"""The one place that opens propagation weights: file or Hugging Face hub id -> strict load."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from deva.errors import DevaError, install_hint
from deva.hub import fetch_file

from .model import PropagationNetwork

__all__ = [
    "ARCHITECTURE_KEY",
    "DEFAULT_HUB_FILENAME",
    "build_network",
    "load_propagation_weights",
    "remap_official_keys",
]

DEFAULT_HUB_FILENAME = "DEVA-propagation.pth"
"""File fetched from a hub id given as just "owner/repo"."""

ARCHITECTURE_KEY = "architecture"
"""Optional entry next to "state_dict": PropagationNetwork keyword arguments of a non-default
network (``deva train`` writes it for e.g. the tiny network); official files have none."""
_ARCHITECTURE_ARGS = (
    "key_dim",
    "value_dim",
    "pix_feat_dim",
    "sensory_dim",
    "pixel_encoder_width",
    "pixel_encoder_layers",
    "mask_encoder_width",
    "mask_encoder_layers",
    "decoder_dims",
)

_WRAPPER_KEYS = ("state_dict", "model", "network")
_MAX_LISTED = 5
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[^\s]+)?$")


def _shape(value: object) -> str:
    if not isinstance(value, torch.Tensor):
        return type(value).__name__
    return "x".join(str(d) for d in value.shape) or "scalar"


def _listing(names: list[str], describe: Callable[[str], str]) -> str:
    """At most a few names, described, and how many more there are."""
    shown = ", ".join(describe(name) for name in names[:_MAX_LISTED])
    more = f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return shown + more


def _looks_like_hub_id(source: str) -> bool:
    if source.startswith(("/", ".", "~")) or "\\" in source or not _HUB_ID.match(source):
        return False
    parts = source.split("/")
    # "dir/file.pth" is a local path that does not exist, not owner/repo.
    return not (len(parts) == 2 and Path(parts[1]).suffix in {".pth", ".pt", ".bin", ".ckpt"})


def _download_from_hub(source: str) -> Path:
    owner, repo, *rest = source.split("/")
    repo_id, filename = f"{owner}/{repo}", "/".join(rest) or DEFAULT_HUB_FILENAME
    try:
        import huggingface_hub  # noqa: F401  (deva.hub needs it)
    except ImportError as err:
        raise DevaError(
            f"'{source}' is not a local file; to fetch it from the Hugging Face hub, "
            f"{install_hint('models')} (or pass the path of a downloaded checkpoint)"
        ) from err
    try:
        return fetch_file(repo_id, filename)  # the cache first, then one request
    except Exception as err:  # offline, unknown repo, missing file, auth ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DevaError(
            f"could not fetch '{filename}' from Hugging Face hub repo '{repo_id}' ({reason}); "
            f"if '{source}' is meant as a local file it does not exist: download the checkpoint "
            "and pass its path"
        ) from err


def _resolve(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise DevaError(f"checkpoint {path} is not a file")
    if isinstance(source, str) and _looks_like_hub_id(source):
        return _download_from_hub(source)
    raise DevaError(f"checkpoint file not found: {path}")


def _read(path: Path) -> object:
    _check_format(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "weights only" in first.lower() or "weights_only" in first.lower():
            raise DevaError(
                f"checkpoint {path} holds objects other than tensors and plain containers; "
                "refusing to unpickle it (re-save it as a plain state dict)"
            ) from err
        raise DevaError(f"checkpoint {path} is truncated or corrupt ({first})") from err
    except Exception as err:  # zip reader / EOF / unpickling errors from a damaged file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DevaError(f"checkpoint {path} is truncated or corrupt ({first})") from err


def _check_format(path: Path) -> None:
    """torch.save writes a zip archive (or, in the legacy format, a pickle starting with the
    protocol byte 0x80); anything else is some other file, which the unpickler would report
    misleadingly as forbidden objects."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError as err:
        raise DevaError(f"checkpoint {path} cannot be read ({err.strerror or err})") from err
    if not head:
        raise DevaError(f"checkpoint {path} is an empty file")
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        raise DevaError(
            f"checkpoint {path} is not a PyTorch checkpoint (it starts with {head!r}; a file "
            "from torch.save is a zip archive), e.g. a download page saved instead of the file"
        )


def _unwrap(loaded: object, path: Path) -> Mapping[str, object]:
    """The state dict inside a checkpoint: plain, or under "state_dict" / "model" / "network"."""
    current = loaded
    for _ in range(3):
        if not isinstance(current, Mapping):
            break
        if current and all(isinstance(v, torch.Tensor) for v in current.values()):
            return current
        inner = next((current[k] for k in _WRAPPER_KEYS if k in current), None)
        if inner is None:
            break
        current = inner
    if isinstance(loaded, Mapping):
        keys = ", ".join(sorted(str(k) for k in loaded)[:_MAX_LISTED])
        found = f"a dict with keys [{keys}]"
    else:
        found = type(loaded).__name__
    raise DevaError(
        f"checkpoint {path} holds no state dict of tensors (found {found}; expected a plain "
        f"state dict or one under {' / '.join(repr(k) for k in _WRAPPER_KEYS)})"
    )


def remap_official_keys(state: Mapping[str, object]) -> dict[str, object]:
    """Official names are ours; only the DataParallel prefix "module." is stripped."""
    if state and all(str(k).startswith("module.") for k in state):
        return {str(k)[len("module.") :]: v for k, v in state.items()}
    return {str(k): v for k, v in state.items()}


def _check_fits(model: PropagationNetwork, state: Mapping[str, object], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        k
        for k in expected
        if k in state
        and (
            not isinstance(state[k], torch.Tensor)
            or tuple(state[k].shape) != tuple(expected[k].shape)  # type: ignore[union-attr]
        )
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        text = _listing(missing, lambda k: f"{k} [{_shape(expected[k])}]")
        problems.append(f"{len(missing)} missing: {text}")
    if unexpected:
        text = _listing(unexpected, lambda k: f"{k} [{_shape(state[k])}]")
        problems.append(f"{len(unexpected)} unexpected: {text}")
    if mismatched:
        text = _listing(
            mismatched,
            lambda k: f"{k} (expected {_shape(expected[k])}, found {_shape(state[k])})",
        )
        problems.append(f"{len(mismatched)} with the wrong shape: {text}")
    raise DevaError(
        f"checkpoint {path} does not fit the propagation network "
        f"(key_dim={model.key_dim}, value_dim={model.value_dim}, "
        f"pix_feat_dim={model.pix_feat_dim}): " + "; ".join(problems)
    )


def load_propagation_weights(model: PropagationNetwork, source: str | Path) -> None:
    """Load weights into ``model`` in place, strictly.

    ``source``: a local file (e.g. DEVA-propagation.pth) or a Hugging Face hub id
    "owner/repo[/filename]" (needs huggingface_hub). Read on CPU with ``weights_only=True``;
    a plain state dict or one wrapped under "state_dict" / "model" / "network", optionally with
    "module." prefixes. Any missing or unexpected key, wrong shape, or unreadable file raises
    one DevaError naming the problem.
    """
    path = _resolve(source)
    _load_into(model, _read(path), path)


def _load_into(model: PropagationNetwork, loaded: object, path: Path) -> None:
    state = remap_official_keys(_unwrap(loaded, path))
    _check_fits(model, state, path)
    try:
        model.load_state_dict(state, strict=True)  # type: ignore[arg-type]
    except RuntimeError as err:  # e.g. a dtype that cannot be copied
        first = str(err).strip().splitlines()[0]
        raise DevaError(f"checkpoint {path} could not be loaded ({first})") from err


def _architecture(loaded: object, path: Path) -> dict[str, object]:
    """PropagationNetwork arguments stored in the file (empty: the official architecture)."""
    if not isinstance(loaded, Mapping) or ARCHITECTURE_KEY not in loaded:
        return {}
    spec = loaded[ARCHITECTURE_KEY]
    if not isinstance(spec, Mapping) or any(k not in _ARCHITECTURE_ARGS for k in spec):
        raise DevaError(
            f"checkpoint {path} has an unreadable '{ARCHITECTURE_KEY}' entry (expected keys "
            f"among {', '.join(_ARCHITECTURE_ARGS)})"
        )
    return {str(k): tuple(v) if isinstance(v, list | tuple) else v for k, v in spec.items()}


def build_network(checkpoint: str | Path | None, device: torch.device | str) -> PropagationNetwork:
    """The network of ``checkpoint`` with its weights loaded (None: default size, random
    weights), in eval mode on ``device``. Files without an architecture entry (the official
    one) get the default-size network."""
    if checkpoint is None:
        return PropagationNetwork().eval().to(device)
    path = _resolve(checkpoint)
    loaded = _read(path)
    try:
        model = PropagationNetwork(**_architecture(loaded, path))  # type: ignore[arg-type]
    except (TypeError, ValueError, DevaError) as err:
        raise DevaError(f"checkpoint {path} describes an invalid architecture ({err})") from err
    _load_into(model, loaded, path)
    return model.eval().to(device)
