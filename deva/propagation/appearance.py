"""Training-free appearance memory: match pixels to remembered frames by pretrained features.

Every remembered frame keeps its keys (L2-normalised ImageNet MobileNetV2 features at 1/8 of
the image, ``deva.propagation.features``) and the objects' soft masks on the same grid. A new
frame reads each object's probability from its best-matching remembered cells: top-k cosine
affinity within a local window around the same position (``deva.propagation.matching``); the
objects are then combined by the soft aggregation of the DEVA network (spec §1.7) and upsampled
to the image. The memory is the first memorized frame (kept for good, so an object the recent
frames lost can be found again) plus the last ``recent`` frames, merged or propagated: bounded
on any video length.

Optical flow was tried as a partner and left out by default (``flow_weight``): averaging the
readout with the flow propagator's warp of the previous result halves J on fast motion
(breakdance, 30 frames: IoU 0.70 -> 0.48; bmx-trees 0.62 -> 0.39) because the warp drifts and
the drift is written back into the recent memory; on slow clips it changes nothing (blackswan
0.92 either way). See BENCHMARKS.md for the full comparison.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deva.device import resolve_device
from deva.errors import DevaError
from deva.propagation.base import check_image
from deva.propagation.features import FeatureExtractor
from deva.propagation.flow import FlowPropagator
from deva.propagation.matching import Windows, cut_windows, read
from deva.propagation.network.aggregate import aggregate

log = logging.getLogger(__name__)

__all__ = ["AppearancePropagator"]


@dataclass
class _Frame:
    """A remembered frame: windows of its keys, object masks (K, h, w) on the key grid, and
    which objects were known there (K,)."""

    windows: Windows
    masks: torch.Tensor
    valid: torch.Tensor
    confidence: torch.Tensor | None = None  # (h, w) in [0, 1]; None = certain everywhere

    def nbytes(self) -> int:
        return self.windows.nbytes() + self.masks.numel() * 4 + self.valid.numel()


@dataclass
class _Encoded:
    """An image's keys, cached: ``memorize`` right after ``propagate`` on the same frame (every
    merge) and ``align`` onto a frame that is then propagated need not encode it twice."""

    image: np.ndarray
    keys: torch.Tensor  # (C, h, w)


class AppearancePropagator:
    """A ``Propagator`` that remembers appearance: pretrained features, windowed top-k readout.

    Args:
        recent: how many of the latest frames (merged or propagated) are remembered besides
            the permanent first one.
        top_k: memory cells each query cell reads from.
        temperature: softmax temperature over the cosine affinities.
        radius: search window around a query tile in the recent frames, in key cells (8 px
            of the feature image each).
        permanent_radius: the same for the permanent first frame, wider because the object may
            have moved far since.
        tile: query cells per side matched together (bigger: faster, coarser windows).
        feature_size: short side, px, of the image the features are computed at (never
            upscaled); masks keep the input's resolution.
        flow_weight: share of the flow propagator's warp in the result (0 = none, default).
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        max_memory_mb: cap on the remembered frames; the oldest recent frames go first.
    """

    def __init__(
        self,
        *,
        recent: int = 3,
        top_k: int = 20,
        temperature: float = 0.05,
        radius: int = 6,
        permanent_radius: int = 12,
        tile: int = 8,
        confidence: bool = True,
        feature_size: int = 480,
        flow_weight: float = 0.0,
        device: str = "cpu",
        max_memory_mb: float | None = None,
        extractor: FeatureExtractor | None = None,
    ) -> None:
        checks = (
            (recent >= 0, f"recent must be >= 0, got {recent}"),
            (top_k >= 1, f"top_k must be >= 1, got {top_k}"),
            (temperature > 0, f"temperature must be > 0, got {temperature}"),
            (radius >= 0 and permanent_radius >= 0, "radii must be >= 0"),
            (tile >= 1, f"tile must be >= 1, got {tile}"),
            (0.0 <= flow_weight <= 1.0, f"flow_weight must be in [0, 1], got {flow_weight}"),
            (max_memory_mb is None or max_memory_mb > 0, "--max-memory must be > 0"),
        )
        for ok, message in checks:
            if not ok:
                raise DevaError(message)
        self.recent = recent
        self.top_k = top_k
        self.temperature = temperature
        self.radius = radius
        self.permanent_radius = permanent_radius
        self.tile = tile
        self.confidence = confidence
        self.flow_weight = flow_weight
        self.max_memory_bytes = None if max_memory_mb is None else int(max_memory_mb * 2**20)
        self.device = resolve_device(device)
        self.extractor = extractor or FeatureExtractor(device=self.device, short_side=feature_size)
        self._flow = FlowPropagator() if flow_weight > 0 else None
        self._over_budget_said = False
        self.reset()

    # -- the protocol -----------------------------------------------------------------------

    @property
    def object_ids(self) -> list[int]:
        return list(self._ids)

    def reset(self) -> None:
        """Forget the frames, the objects and the cached keys."""
        self._ids: list[int] = []
        self._permanent: _Frame | None = None
        self._recent: deque[_Frame] = deque()
        self._prototypes: dict[int, torch.Tensor] = {}
        self._last: _Encoded | None = None
        self._propagated: _Encoded | None = None  # the frame whose readout ends self._recent
        if self._flow is not None:
            self._flow.reset()

    def propagate(self, image: np.ndarray) -> np.ndarray:
        check_image(image)
        flow = self._flow.propagate(image) if self._flow is not None else None
        encoded = self._encode(image)
        if not self._ids:
            return np.ones((1, *image.shape[:2]), np.float32)
        small = self._read(encoded.keys, self._frames())
        probs = self._finish(small, image.shape[:2], flow)
        if self.recent:
            labels = torch.from_numpy(probs.argmax(axis=0)).to(self.device)
            ids = torch.arange(1, len(self._ids) + 1, device=self.device)
            hard = (labels[None] == ids[:, None, None]).float()
            frame = self._frame(encoded.keys, _on_grid(hard, encoded.keys.shape[-2:]), self.radius)
            if self.confidence:
                top = torch.from_numpy(probs.max(axis=0)).to(self.device)
                second = 1 - top
                margin = _on_grid((top - second).clamp(0, 1)[None], encoded.keys.shape[-2:])[0]
                frame.confidence = margin
            self._push(frame)
            self._propagated = encoded
        if self._flow is not None:
            self._flow.memorize(image, probs[1:], self._ids)
        return probs

    def memorize(self, image: np.ndarray, masks: np.ndarray, object_ids: Sequence[int]) -> None:
        check_image(image)
        ids = [int(i) for i in object_ids]
        masks = np.asarray(masks)
        if masks.shape != (len(ids), *image.shape[:2]):
            raise DevaError(
                f"expected {len(ids)} masks of size {image.shape[:2]}, got shape {masks.shape}"
            )
        encoded = self._encode(image)
        if self._recent and self._propagated is encoded:
            self._recent.pop()  # the merge replaces this frame's own readout
        self._propagated = None
        self._reorder(ids)
        soft = torch.from_numpy(masks.astype(np.float32)).to(self.device)
        small = _on_grid(soft, encoded.keys.shape[-2:])
        self._update_prototypes(encoded.keys, small, ids)
        if self._permanent is None:
            if ids:
                self._permanent = self._frame(encoded.keys, small, self.permanent_radius)
        elif self.recent:
            self._push(self._frame(encoded.keys, small, self.radius))
        if self._flow is not None:
            self._flow.memorize(image, masks, ids)

    def align(
        self, src_image: np.ndarray, src_masks: np.ndarray, dst_image: np.ndarray
    ) -> np.ndarray:
        check_image(src_image)
        check_image(dst_image)
        src_masks = np.asarray(src_masks)
        if src_masks.shape[0] == 0:
            return np.ones((1, *dst_image.shape[:2]), np.float32)
        src = self._keys(src_image)
        dst = self._keys(dst_image)
        soft = torch.from_numpy(src_masks.astype(np.float32)).to(self.device)
        frame = self._frame(src, _on_grid(soft, src.shape[-2:]), self.permanent_radius)
        flow = None
        if self._flow is not None:
            flow = FlowPropagator().align(src_image, src_masks, dst_image)
        return self._finish(self._read(dst, [frame]), dst_image.shape[:2], flow)

    def forget(self, object_ids: Sequence[int]) -> None:
        drop = {int(i) for i in object_ids}
        if drop & set(self._ids):
            self._reorder([i for i in self._ids if i not in drop])
            if self._flow is not None:
                self._flow.forget(sorted(drop))

    # -- appearance prototypes (re-identification) -------------------------------------------

    def prototypes(self, object_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Each known object's mean key over its last memorized mask, (C,) unit vectors."""
        return {i: self._prototypes[i].cpu().numpy() for i in object_ids if i in self._prototypes}

    def describe(
        self, image: np.ndarray, ids: np.ndarray, segment_ids: Sequence[int]
    ) -> np.ndarray:
        """(K, C) prototypes of the segments ``segment_ids`` of the (H, W) id map ``ids`` at
        ``image``; zero rows for absent segments. Works on (segment, key cell) pairs, so the
        cost is O(pixels + segments) however many segments there are."""
        check_image(image)
        keys = self._encode(image).keys
        c, h, w = keys.shape
        wanted = np.asarray(segment_ids, np.int64)
        if ids.shape != image.shape[:2]:
            raise DevaError(f"id map of size {ids.shape} for an image of {image.shape[:2]}")
        if len(wanted) == 0:
            return np.zeros((0, c), np.float32)
        cells = (np.arange(ids.shape[0]) * h // ids.shape[0])[:, None] * w + (
            np.arange(ids.shape[1]) * w // ids.shape[1]
        )[None, :]
        order = np.argsort(wanted)
        position = np.searchsorted(wanted[order], ids.ravel())
        position = np.minimum(position, len(wanted) - 1)
        inside = wanted[order][position] == ids.ravel()
        segment = order[position[inside]]
        pairs, counts = np.unique(segment * (h * w) + cells.ravel()[inside], return_counts=True)
        index = torch.from_numpy(np.stack([pairs // (h * w), pairs % (h * w)]))
        values = torch.from_numpy(counts.astype(np.float32))
        area = torch.sparse_coo_tensor(
            index, values, (len(wanted), h * w), is_coalesced=True, check_invariants=False
        ).to(keys.device)
        sums = torch.sparse.mm(area, keys.flatten(1).T.contiguous())
        return F.normalize(sums, dim=1).cpu().numpy()

    # -- resumable state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, object]:
        """The remembered frames and prototypes (not the settings), for resumable runs."""

        def pack(frame: _Frame) -> dict[str, object]:
            w = frame.windows
            confidence = None if frame.confidence is None else frame.confidence.cpu()
            return {"keys": w.keys.cpu(), "radius": w.radius, "tile": w.tile, "grid": w.grid,
                    "masks": frame.masks.cpu(), "valid": frame.valid.cpu(),
                    "confidence": confidence}  # fmt: skip

        return {
            "object_ids": list(self._ids),
            "permanent": None if self._permanent is None else pack(self._permanent),
            "recent": [pack(frame) for frame in self._recent],
            "prototypes": {i: p.cpu() for i, p in self._prototypes.items()},
            "flow": None if self._flow is None else self._flow.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def unpack(entry: Mapping[str, Any]) -> _Frame:
            windows = Windows(
                entry["keys"].to(self.device),
                int(entry["radius"]),
                int(entry["tile"]),
                tuple(entry["grid"]),  # type: ignore[arg-type]
            )
            confidence = entry.get("confidence")
            return _Frame(
                windows,
                entry["masks"].to(self.device),
                entry["valid"].to(self.device),
                None if confidence is None else confidence.to(self.device),
            )

        self.reset()
        self._ids = [int(i) for i in state["object_ids"]]
        self._permanent = None if state["permanent"] is None else unpack(state["permanent"])
        self._recent.extend(unpack(entry) for entry in state["recent"])
        self._prototypes = {int(i): p.to(self.device) for i, p in state["prototypes"].items()}
        if self._flow is not None and state.get("flow") is not None:
            self._flow.load_state_dict(state["flow"])

    def nbytes(self) -> int:
        """Bytes held by the remembered frames."""
        return sum(frame.nbytes() for frame in self._frames())

    # -- internals --------------------------------------------------------------------------

    def _frames(self) -> list[_Frame]:
        return ([self._permanent] if self._permanent is not None else []) + list(self._recent)

    def _encode(self, image: np.ndarray) -> _Encoded:
        """The image's keys, remembered as the last encoded image."""
        if not self._is_last(image):
            self._last = _Encoded(image.copy(), self.extractor(image).to(self.device))
        return self._last  # type: ignore[return-value]

    def _keys(self, image: np.ndarray) -> torch.Tensor:
        """The image's keys, from the cache when it is the last encoded image (``align`` reads
        frames that ``propagate`` may not reach, so it does not replace the cache)."""
        if self._is_last(image):
            return self._last.keys  # type: ignore[union-attr]
        return self.extractor(image).to(self.device)

    def _is_last(self, image: np.ndarray) -> bool:
        last = self._last
        return (
            last is not None
            and last.image.shape == image.shape
            and np.array_equal(last.image, image)
        )

    def _frame(self, keys: torch.Tensor, small: torch.Tensor, radius: int) -> _Frame:
        valid = torch.ones(small.shape[0], dtype=torch.bool, device=self.device)
        return _Frame(cut_windows(keys, radius, self.tile), small, valid)

    def _remember(self, keys: torch.Tensor, masks: torch.Tensor) -> None:
        self._push(self._frame(keys, _on_grid(masks, keys.shape[-2:]), self.radius))

    def _push(self, frame: _Frame) -> None:
        self._recent.append(frame)
        while len(self._recent) > self.recent:
            self._recent.popleft()
        if self.max_memory_bytes is None:
            return
        while self._recent and self.nbytes() > self.max_memory_bytes:
            self._recent.popleft()
        if self.nbytes() > self.max_memory_bytes and not self._over_budget_said:
            self._over_budget_said = True
            log.warning(
                "memory budget %.0f MiB exceeded: the permanent frame alone takes %.0f MiB "
                "(lower --size)",
                self.max_memory_bytes / 2**20,
                self.nbytes() / 2**20,
            )

    def _reorder(self, ids: list[int]) -> None:
        """Make every frame's channels follow ``ids``: kept objects move, new ones are invalid
        in the frames remembered before they were known, dropped ones go."""
        if ids == self._ids:
            return
        old = {obj: index for index, obj in enumerate(self._ids)}
        source = torch.tensor([old.get(obj, -1) for obj in ids], dtype=torch.long)
        known = (source >= 0).to(self.device)
        pick = source.clamp_min(0).to(self.device)
        for frame in self._frames():
            if frame.masks.shape[0] == 0:
                frame.masks = frame.masks.new_zeros((len(ids), *frame.masks.shape[1:]))
                frame.valid = known.clone()
                continue
            frame.masks = frame.masks[pick] * known[:, None, None]
            frame.valid = frame.valid[pick] & known
        self._ids = ids
        kept = set(ids)
        self._prototypes = {i: p for i, p in self._prototypes.items() if i in kept}

    def _update_prototypes(self, keys: torch.Tensor, small: torch.Tensor, ids: list[int]) -> None:
        for obj, prototype in zip(ids, _mean_keys(keys, small), strict=True):
            if bool(prototype.any()):
                self._prototypes[obj] = prototype

    def _read(self, keys: torch.Tensor, frames: list[_Frame]) -> torch.Tensor:
        memories = [
            (
                f.windows,
                f.masks,
                f.valid if f.confidence is None else f.valid[:, None, None] * f.confidence,
            )
            for f in frames
        ]
        return read(keys, memories, top_k=self.top_k, temperature=self.temperature)

    def _finish(
        self, small: torch.Tensor, shape: tuple[int, int], flow: np.ndarray | None
    ) -> np.ndarray:
        """Upsample object probabilities to the image, mix in the flow, aggregate."""
        objects = F.interpolate(small[None], size=shape, mode="bilinear", align_corners=False)[0]
        if flow is not None and flow.shape[0] == objects.shape[0] + 1:
            warped = torch.from_numpy(flow[1:]).to(objects)
            objects = (1 - self.flow_weight) * objects + self.flow_weight * warped
        probs = torch.softmax(aggregate(objects.clamp(0, 1), dim=0), dim=0)
        return probs.cpu().numpy().astype(np.float32, copy=False)


def _on_grid(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(K, H, W) masks area-averaged onto the key grid."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *grid))
    return F.adaptive_avg_pool2d(masks[None], tuple(grid))[0]


def _mean_keys(keys: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """(K, C) mask-weighted mean keys, normalised; zero for empty masks."""
    weights = small.flatten(1)
    sums = weights @ keys.flatten(1).T
    return F.normalize(sums, dim=1) * (weights.sum(1, keepdim=True) > 0)
