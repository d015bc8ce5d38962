"""The DEVA propagation network behind the ``Propagator`` protocol (spec §2, §3.4).

Images arrive as (H, W, 3) uint8 RGB at the tracker's working resolution; they are normalised
and padded to multiples of 16 here, and every output is unpadded again. Image features are
cached per frame, so a frame encoded while aligning a clip is not encoded again when it is
propagated (spec §2.7).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.errors import DevaError
from deva.propagation.base import check_image
from deva.propagation.network.aggregate import masks_to_probabilities
from deva.propagation.network.inference import prepare_for_inference
from deva.propagation.network.memory import MemoryConfig, MemoryManager
from deva.propagation.network.model import PropagationNetwork
from deva.propagation.network.readout import read_memory

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "float16")
_CACHE_FRAMES = 6  # a clip (default 3 frames, up to detect_every) plus the frame being propagated


@dataclass(frozen=True)
class _Encoded:
    """One frame's network inputs and features (batch of 1, padded)."""

    image: torch.Tensor  # (1, 3, Hp, Wp) normalised
    multi_scale: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    key: torch.Tensor  # (1, CK, h, w)
    shrinkage: torch.Tensor  # (1, 1, h, w)
    selection: torch.Tensor  # (1, CK, h, w)
    pad: tuple[int, int, int, int]  # left, right, top, bottom


class NetworkPropagator:
    """XMem-style memory propagation with the DEVA network.

    Args:
        network: a ``PropagationNetwork`` with weights loaded (see ``checkpoint.build_network``).
        memory: memory settings (mem_every, top_k, long-term consolidation).
        device: where the network runs; inputs and outputs stay numpy on the host.
        chunk_size: objects encoded/decoded at a time (-1 = all): memory vs speed.
        max_memory_mb: cap on the memory stores (MiB); past it, long-term then working memory
            is cut (logged once per kind of cut). None = the memory policy alone bounds it.
        optimize: run a copy of ``network`` with its BatchNorms folded into the convs and
            channels-last weights (``inference.prepare_for_inference``): the same outputs up to
            float rounding; 1.2x faster than the plain network on one CPU host, no faster on
            another (BENCHMARKS.md). ``network`` itself is not modified.
        precision: "float32" (default: the reference numerics), "bfloat16" (autocast; CPUs
            with AVX-512 BF16/AMX and GPUs run the convolutions much faster, masks differ from
            float32 at a few boundary pixels) or "float16" (CUDA only). Memory, readout, the
            final logit conv and the aggregation stay float32 either way.
    """

    def __init__(
        self,
        network: PropagationNetwork,
        *,
        memory: MemoryConfig | None = None,
        device: torch.device | str = "cpu",
        chunk_size: int = -1,
        max_memory_mb: float | None = None,
        optimize: bool = True,
        precision: str = "float32",
    ) -> None:
        if precision not in PRECISIONS:
            raise DevaError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if precision == "float16" and torch.device(device).type != "cuda":
            raise DevaError("float16 needs a CUDA device; on the CPU use bfloat16")
        self.precision = precision
        if max_memory_mb is not None and max_memory_mb <= 0:
            raise DevaError(f"max_memory_mb must be > 0, got {max_memory_mb}")
        self.max_memory_bytes = None if max_memory_mb is None else int(max_memory_mb * 2**20)
        self._degraded: set[str] = set()
        self.device = torch.device(device)
        network = network.to(self.device).eval()
        self.network = prepare_for_inference(network) if optimize else network
        self.memory_config = memory or MemoryConfig()
        self.chunk_size = chunk_size
        self.memory = MemoryManager(self.memory_config, sensory_dim=network.sensory_dim)
        self._cache: OrderedDict[int, tuple[np.ndarray, _Encoded]] = OrderedDict()
        self.reset()

    @property
    def object_ids(self) -> list[int]:
        return list(self._ids)

    def reset(self) -> None:
        self.memory.reset()
        self._cache.clear()
        self._ids: list[int] = []
        self._last_mask: torch.Tensor | None = None  # (1, N, Hp, Wp) object probabilities
        self._since_memory = 0

    def state_dict(self) -> dict[str, object]:
        """The memory of this video (not the weights), for resumable runs."""
        return {
            "ids": list(self._ids),
            "last_mask": self._last_mask,
            "since_memory": self._since_memory,
            "memory": self.memory.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reset()
        self._ids = list(state["ids"])
        self._last_mask = state["last_mask"]
        self._since_memory = int(state["since_memory"])
        self.memory.load_state_dict(state["memory"])

    @torch.inference_mode()
    def propagate(self, image: np.ndarray) -> np.ndarray:
        encoded = self._encode(image)
        if not self._ids:
            return np.ones((1, *image.shape[:2]), np.float32)
        key, selection = encoded.key[0], encoded.selection[0]
        readout = self.memory.read(key, selection, self._ids).unsqueeze(0)
        sensory = self.memory.get_sensory(self._ids).unsqueeze(0)
        new_sensory, _, probs = self._run(
            self.network.segment,
            encoded.multi_scale,
            readout,
            sensory,
            self._last_mask,
            chunk_size=self.chunk_size,
        )
        self.memory.set_sensory(self._ids, new_sensory[0])
        self._last_mask = probs[:, 1:]
        self._since_memory += 1
        if self._since_memory >= self.memory_config.mem_every:
            self._write(encoded, self._last_mask, self._ids)
        return self._to_numpy(probs, encoded)

    @torch.inference_mode()
    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        encoded = self._encode(image)
        object_ids = [int(i) for i in object_ids]
        kept = set(object_ids)
        dropped = [i for i in self._ids if i not in kept]
        if dropped:
            self.memory.forget(dropped)
        self._ids = object_ids
        if not object_ids:
            self._last_mask = None
            return
        given = self._pad_masks(masks, encoded)
        if np.issubdtype(masks.dtype, np.floating):  # soft masks: aggregated as given masks are
            given = masks_to_probabilities(given)[:, 1:]
        self._last_mask = given
        self._write(encoded, given, object_ids)

    @torch.inference_mode()
    def align(
        self, src_image: np.ndarray, src_masks: np.ndarray, dst_image: np.ndarray
    ) -> np.ndarray:
        """One-frame memory from src to dst (spec §3.4); the real memory is untouched."""
        if len(src_masks) == 0:
            return np.ones((1, *dst_image.shape[:2]), np.float32)
        src, dst = self._encode(src_image), self._encode(dst_image)
        masks = self._pad_masks(src_masks, src)
        zeros = self._zero_sensory(len(src_masks), src)
        value, sensory = self._run(
            self.network.encode_mask,
            src.image,
            src.multi_scale[0],
            zeros,
            masks,
            True,
            chunk_size=self.chunk_size,
        )
        readout, _ = read_memory(
            dst.key,
            dst.selection,
            src.key.flatten(2),
            src.shrinkage.flatten(1),
            value.flatten(3),
            self.memory_config.top_k,
        )
        _, _, probs = self._run(
            self.network.segment,
            dst.multi_scale,
            readout,
            sensory,
            masks,
            False,
            chunk_size=self.chunk_size,
        )
        return self._to_numpy(probs, dst)

    def forget(self, object_ids: Sequence[int]) -> None:
        drop = {int(i) for i in object_ids}
        kept = [slot for slot, i in enumerate(self._ids) if i not in drop]
        if len(kept) == len(self._ids):
            return
        self.memory.forget([i for i in self._ids if i in drop])
        self._ids = [self._ids[slot] for slot in kept]
        if self._last_mask is not None:
            self._last_mask = self._last_mask[:, kept] if kept else None

    # -- internals ----------------------------------------------------------------------------

    def _write(self, encoded: _Encoded, masks: torch.Tensor, object_ids: list[int]) -> None:
        """Encode the objects' masks at this frame and add them to memory (deep update)."""
        stored_ids = set(self.memory.object_ids)
        slots = [slot for slot, i in enumerate(object_ids) if i in stored_ids]
        sensory = self._zero_sensory(len(object_ids), encoded)
        if slots:
            sensory[0, slots] = self.memory.get_sensory([object_ids[slot] for slot in slots])
        value, new_sensory = self._run(
            self.network.encode_mask,
            encoded.image,
            encoded.multi_scale[0],
            sensory,
            masks,
            True,
            chunk_size=self.chunk_size,
        )
        self.memory.add_memory(
            encoded.key[0], encoded.shrinkage[0], encoded.selection[0], value[0], object_ids
        )
        self.memory.set_sensory(object_ids, new_sensory[0])
        self._since_memory = 0
        if self.max_memory_bytes is not None and self.memory.nbytes > self.max_memory_bytes:
            self._degrade()

    def _degrade(self) -> None:
        """Shrink the memory into the budget; say so once per kind of cut, then at debug."""
        assert self.max_memory_bytes is not None
        for action in self.memory.fit(self.max_memory_bytes):
            kind = action.split(" of ")[0]
            level = logging.DEBUG if kind in self._degraded else logging.WARNING
            self._degraded.add(kind)
            log.log(
                level, "memory budget %.0f MiB reached: %s", self.max_memory_bytes / 2**20, action
            )

    def _run(self, step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One network call in the chosen precision; its tensors come back as float32, so the
        memory and the readout never see reduced precision."""
        if self.precision == "float32":
            return step(*args, **kwargs)
        dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float16
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            return _as_float32(step(*args, **kwargs))

    def _encode(self, image: np.ndarray) -> _Encoded:
        """Features of ``image``, from the cache when this very array was encoded recently."""
        check_image(image)
        hit = self._cache.get(id(image))
        if hit is not None and hit[0] is image:
            self._cache.move_to_end(id(image))
            return hit[1]
        tensor = torch.from_numpy(image.astype(np.float32)).to(self.device)  # a writable copy
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).div_(255)
        tensor = (tensor - MEAN.to(self.device)) / STD.to(self.device)
        tensor, pad = _pad16(tensor)
        multi_scale, key, shrinkage, selection = self._run(self.network.encode_image, tensor)
        encoded = _Encoded(tensor, multi_scale, key, shrinkage, selection, pad)
        self._cache[id(image)] = (image, encoded)
        while len(self._cache) > _CACHE_FRAMES:
            self._cache.popitem(last=False)
        return encoded

    def _pad_masks(self, masks: np.ndarray, encoded: _Encoded) -> torch.Tensor:
        tensor = torch.from_numpy(masks.astype(np.float32)).to(self.device)
        left, right, top, bottom = encoded.pad
        return F.pad(tensor.unsqueeze(0), (left, right, top, bottom))

    def _zero_sensory(self, count: int, encoded: _Encoded) -> torch.Tensor:
        height, width = encoded.key.shape[-2:]
        return torch.zeros(1, count, self.network.sensory_dim, height, width, device=self.device)

    @staticmethod
    def _to_numpy(probs: torch.Tensor, encoded: _Encoded) -> np.ndarray:
        left, right, top, bottom = encoded.pad
        height, width = probs.shape[-2:]
        cropped = probs[0, :, top : height - bottom, left : width - right]
        return cropped.float().cpu().numpy()


def _as_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float()
    if isinstance(value, tuple | list):
        return type(value)(_as_float32(v) for v in value)
    return value


def _pad16(image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad to multiples of 16, split evenly (the extra pixel at bottom/right), zeros."""
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % 16, (-width) % 16
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(image, pad), pad
