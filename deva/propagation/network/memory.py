"""XMem-style memory of the DEVA propagation network (DEVA-SPEC §1.4, §2.2-2.4).

Pure tensor code: the manager receives keys, shrinkage, selection and values as tensors and knows
nothing about the network modules or about when a frame is memorised (that schedule, ``mem_every``,
belongs to the propagator). Tensors stay on the device and in the dtype they come in; the manager
never moves them and detaches everything it stores, so it works under ``torch.inference_mode``,
``torch.no_grad`` or neither.

Shapes (one frame, batch 1): ``CK`` key channels, ``CV`` value channels, ``S`` a spatial shape,
either ``(P,)`` or ``(h, w)``, with ``P = prod(S)`` positions (tokens) per frame.

Design
------
*Object ids vs slots.* Callers only ever see stable object ids; which bucket and which row of a
value tensor an object occupies is private to this module.

*Buckets (spec §2.3), kept for real.* Objects first written in the same ``add_memory`` call form a
bucket that owns its own key / shrinkage / selection / usage tensors (``CK×M_b``); the values of its
objects are one ``N_b×CV×M_b`` tensor. Every later frame is appended to each bucket whose objects it
lists, so the objects of a bucket attend only to frames written since the bucket was created. A
single shared key store with per-object "valid from" masks was considered and rejected: it gives the
same readouts only while nothing is consolidated. With long-term memory on, each bucket keeps its
own permanent first frame, counts usage under its own softmax, reaches ``max_mid_term_frames`` on
its own schedule and builds prototypes only from frames its objects have values for; a shared store
would mix frames from before an object existed into its prototypes. Buckets are the simplest design
that is exact.

*Usage counting.* Working-memory usage is always counted when long-term memory is on (prototypes
are picked by it). Long-term usage is counted when ``count_usage`` is True or None (None = "auto",
which here simply means "whenever long_term is on": counting is cheap, O(M) per read, and makes the
long-term cap always enforceable). The official code decides per video and would fail at the cap
with counting off; here, with ``count_usage=False`` every long-term token scores 0 and the cap
keeps the newest tokens.

*Long-term cap.* Before each consolidation, a bucket whose long-term memory holds at least
``max_long_term_elements - num_prototypes`` tokens drops its least-used tokens (normalised usage
``use / life``) down to exactly that size; among equal scores the older token goes first (the
official code also drops every token tied at the cut). At exactly that size nothing is dropped
(spec Appendix B), so long-term memory never exceeds ``max_long_term_elements``.

*Empty memory.* ``read`` on an empty memory (or for an id that is not stored) raises ``ValueError``;
the propagator checks ``object_ids`` first and never triggers it.

Numerics: similarity is the anisotropic one of spec §1.4; the top-k softmax subtracts the maximum
before exponentiating (Appendix B) via ``torch.softmax``; usage counters are float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from deva.errors import DevaError
from deva.propagation.network.readout import similarity, topk_affinity

__all__ = [
    "MemoryConfig",
    "MemoryManager",
    "anisotropic_similarity",
    "potentiate",
    "top_k_softmax",
]

INITIAL_LIFE = 1e-7
"""Life counter of a fresh memory token (avoids 0/0 in normalised usage)."""


@dataclass(frozen=True)
class MemoryConfig:
    """Memory policy (spec Appendix A defaults).

    top_k: at inference each query position attends to its ``top_k`` most similar memory tokens.
        Higher = smoother, slower; ``top_k >= M`` is a full softmax.
    mem_every: a frame is memorised every this many frames (used by the propagator's schedule, not
        by the manager).
    min_mid_term_frames: T_min; after consolidation a bucket's working memory holds its first frame
        and the most recent ``T_min - 1`` frames.
    max_mid_term_frames: T_max; a bucket consolidates when its working memory reaches this many
        frames. Higher = more exact recent memory, more cost.
    max_long_term_elements: cap on long-term tokens per bucket.
    num_prototypes: prototypes (long-term tokens) made per consolidation.
    long_term: consolidate into long-term memory; False = working memory grows without bound.
    count_usage: count long-term usage (needed to drop the least-used tokens at the cap).
        None = whenever ``long_term`` is on; False = the cap keeps the newest tokens.
    """

    top_k: int = 30
    mem_every: int = 5
    min_mid_term_frames: int = 5
    max_mid_term_frames: int = 10
    max_long_term_elements: int = 10000
    num_prototypes: int = 128
    long_term: bool = True
    count_usage: bool | None = None

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise DevaError(f"top_k must be >= 1, got {self.top_k}")
        if self.mem_every < 1:
            raise DevaError(f"mem_every must be >= 1, got {self.mem_every}")
        if not 1 <= self.min_mid_term_frames < self.max_mid_term_frames:
            raise DevaError(
                "need 1 <= min_mid_term_frames < max_mid_term_frames, got "
                f"{self.min_mid_term_frames} and {self.max_mid_term_frames}"
            )
        if self.num_prototypes < 1:
            raise DevaError(f"num_prototypes must be >= 1, got {self.num_prototypes}")
        if self.max_long_term_elements <= self.num_prototypes:
            raise DevaError(
                "max_long_term_elements must exceed num_prototypes, got "
                f"{self.max_long_term_elements} <= {self.num_prototypes}"
            )

    @property
    def counts_long_term_usage(self) -> bool:
        """Whether reads update the long-term usage counters."""
        return self.long_term and self.count_usage is not False


def anisotropic_similarity(
    memory_key: Tensor,
    memory_shrinkage: Tensor,
    query_key: Tensor,
    query_selection: Tensor,
    *,
    query_major: bool = False,
) -> Tensor:
    """Unbatched ``readout.similarity`` (spec §1.4): K (CK, M), s (1, M) or (M,), q and e
    (CK, P) -> (M, P) similarities ((P, M) with ``query_major``), <= 0 up to rounding."""
    return similarity(
        memory_key[None],
        memory_shrinkage.reshape(1, 1, -1),
        query_key[None],
        query_selection[None],
        query_major=query_major,
    )[0]


def top_k_softmax(similarity_map: Tensor, top_k: int, *, query_major: bool = False) -> Tensor:
    """Unbatched ``readout.topk_affinity``: (M, P) -> (M, P) affinity ((P, M) with
    ``query_major``), summing to 1 over memory on its ``min(top_k, M)`` largest entries."""
    return topk_affinity(similarity_map[None], top_k, query_major=query_major)[0][0]


def potentiate(
    key: Tensor, shrinkage: Tensor, selection: Tensor, values: Tensor, prototype_index: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Turn consolidation candidates into prototypes (spec §2.4 step 3).

    Prototype keys are the candidates' keys at ``prototype_index``. Every candidate is compared to
    every prototype (candidate shrinkage, prototype selection), a full softmax over candidates gives
    the weights, and prototype values and shrinkage are the weighted averages of the candidates'.

    Args:
        key: candidate keys, (CK, M).
        shrinkage: candidate shrinkage, (1, M).
        selection: candidate selection, (CK, M).
        values: candidate values of every object, (N, CV, M).
        prototype_index: (K,) long, candidate positions of the prototypes.

    Returns:
        (key (CK, K), shrinkage (1, K), values (N, CV, K)) of the prototypes.
    """
    prototype_key = key[:, prototype_index]
    similarity = anisotropic_similarity(
        key, shrinkage, prototype_key, selection[:, prototype_index]
    )
    affinity = torch.softmax(similarity, dim=0)  # (M, K), full softmax: no top-k here
    return prototype_key, shrinkage @ affinity, values @ affinity


@dataclass
class _Tokens:
    """Memory tokens of one bucket at one level (working or long-term)."""

    key: Tensor  # (CK, M)
    shrinkage: Tensor  # (1, M)
    selection: Tensor | None  # (CK, M); None where it is never needed
    values: Tensor  # (N_b, CV, M), rows in bucket object order
    use: Tensor  # (M,) float32, summed affinity
    life: Tensor  # (M,) float32, reads seen (+ INITIAL_LIFE)

    @classmethod
    def fresh(
        cls, key: Tensor, shrinkage: Tensor, selection: Tensor | None, values: Tensor
    ) -> _Tokens:
        """New tokens with zero usage."""
        use = torch.zeros(key.shape[1], dtype=torch.float32, device=key.device)
        return cls(key, shrinkage, selection, values, use, torch.full_like(use, INITIAL_LIFE))

    @property
    def size(self) -> int:
        return self.key.shape[1]

    def take(self, index: Tensor | slice) -> _Tokens:
        """Tokens at ``index`` (positions along M)."""
        selection = None if self.selection is None else self.selection[:, index]
        return _Tokens(
            self.key[:, index],
            self.shrinkage[:, index],
            selection,
            self.values[:, :, index],
            self.use[index],
            self.life[index],
        )

    @property
    def nbytes(self) -> int:
        parts = (self.key, self.shrinkage, self.selection, self.values, self.use, self.life)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only these object rows of the values."""
        self.values = self.values[rows]

    def count(self, usage: Tensor) -> None:
        """Record one read: ``use += usage`` (M,), ``life += 1``. Not in place on purpose, so
        counters made under inference mode can be updated outside it and vice versa."""
        self.use = self.use + usage.float()
        self.life = self.life + 1

    @staticmethod
    def cat(first: _Tokens | None, second: _Tokens) -> _Tokens:
        """``first`` followed by ``second`` along M."""
        if first is None:
            return second
        selection = None
        if first.selection is not None and second.selection is not None:
            selection = torch.cat([first.selection, second.selection], dim=1)
        return _Tokens(
            torch.cat([first.key, second.key], dim=1),
            torch.cat([first.shrinkage, second.shrinkage], dim=1),
            selection,
            torch.cat([first.values, second.values], dim=2),
            torch.cat([first.use, second.use]),
            torch.cat([first.life, second.life]),
        )


@dataclass
class _Bucket:
    """Objects first written together, with their own key memory (spec §2.3)."""

    object_ids: list[int]
    tokens_per_frame: int
    working: _Tokens  # first frame (permanent) + later frames
    working_frames: int = 1
    long_term: _Tokens | None = None

    @property
    def stores(self) -> list[_Tokens]:
        """[long-term, working], the reading order; long-term left out while empty."""
        return [self.working] if self.long_term is None else [self.long_term, self.working]


@dataclass
class _Frame:
    """One frame to write, flattened: key (CK, P), shrinkage (1, P), selection (CK, P),
    values (N, CV, P) in the order of ``object_ids``."""

    key: Tensor
    shrinkage: Tensor
    selection: Tensor
    values: Tensor
    object_ids: list[int]
    spatial: tuple[int, ...]


class MemoryManager:
    """Working, long-term and sensory memory of one video, by object id.

    Usage (one frame)::

        memory = MemoryManager(MemoryConfig())
        memory.add_memory(key, shrinkage, selection, values, [1, 2])   # first memory frame
        readout = memory.read(query_key, query_selection)              # (2, CV, *S)
        hidden = memory.get_sensory([1, 2])                            # (2, C_h, *S)
    """

    def __init__(self, config: MemoryConfig | None = None, *, sensory_dim: int | None = None):
        """
        Args:
            config: memory policy; defaults to ``MemoryConfig()``.
            sensory_dim: channels of the sensory (hidden) memory; None = the value dim CV of the
                first write (spec: hidden dim = value dim).
        """
        self.config = config if config is not None else MemoryConfig()
        self.sensory_dim = sensory_dim
        self._buckets: list[_Bucket] = []
        self._sensory: dict[int, Tensor] = {}

    # ------------------------------------------------------------------ inspection
    @property
    def object_ids(self) -> list[int]:
        """Ids of the stored objects, in order of first write (buckets in creation order)."""
        return [object_id for bucket in self._buckets for object_id in bucket.object_ids]

    @property
    def num_buckets(self) -> int:
        """Number of buckets (groups of objects with their own key memory)."""
        return len(self._buckets)

    @property
    def working_frames(self) -> int:
        """Frames in the largest working memory over buckets (0 when empty)."""
        return max((bucket.working_frames for bucket in self._buckets), default=0)

    @property
    def long_term_tokens(self) -> int:
        """Tokens in the largest long-term memory over buckets (0 when empty)."""
        return max((self._long_term_size(bucket) for bucket in self._buckets), default=0)

    @property
    def num_tokens(self) -> int:
        """Key tokens stored over all buckets, working plus long-term."""
        return sum(b.working.size + self._long_term_size(b) for b in self._buckets)

    def memory_keys(self, object_id: int) -> tuple[Tensor, Tensor]:
        """Keys the object attends to: (long-term (CK, M_l), working (CK, M_w)); M_l may be 0."""
        bucket, _ = self._locate(object_id)
        working = bucket.working.key
        long_term = working[:, :0] if bucket.long_term is None else bucket.long_term.key
        return long_term, working

    @property
    def nbytes(self) -> int:
        """Bytes held by every store: keys, values, usage and sensory memory."""
        stores = sum(store.nbytes for bucket in self._buckets for store in bucket.stores)
        sensory = sum(t.numel() * t.element_size() for t in self._sensory.values())
        return stores + sensory

    def fit(self, budget: int) -> list[str]:
        """Degrade until the stores take at most ``budget`` bytes: long-term memory first (its
        least-used tokens go, halving the largest store at a time), then working memory
        (consolidated early, down to its first frame). Returns what was done, for the log;
        the permanent first frames and the sensory memory are never dropped."""
        done: list[str] = []
        while self.nbytes > budget:
            with_long_term = [b for b in self._buckets if self._long_term_size(b) > 0]
            if with_long_term:
                bucket = max(with_long_term, key=self._long_term_size)
                assert bucket.long_term is not None
                keep = bucket.long_term.size // 2
                bucket.long_term = _drop_least_used(bucket.long_term, keep) if keep else None
                done.append(f"long-term memory of objects {bucket.object_ids} cut to {keep}")
                continue
            with_history = [b for b in self._buckets if b.working_frames > 1]
            if not with_history:
                done.append("only the first frames are left; cannot shrink further")
                break
            bucket = max(with_history, key=lambda b: b.working_frames)
            bucket.working = bucket.working.take(slice(0, bucket.tokens_per_frame))
            bucket.working_frames = 1
            done.append(f"working memory of objects {bucket.object_ids} cut to its first frame")
        return done

    # ------------------------------------------------------------------ writing
    def add_memory(
        self,
        key: Tensor,
        shrinkage: Tensor,
        selection: Tensor,
        values: Tensor,
        object_ids: Sequence[int],
    ) -> None:
        """Write one memory frame.

        Objects not yet stored form a new bucket whose first (permanent) frame is this one, and
        get zero sensory memory. Every existing bucket whose objects are all listed gets this frame
        appended (and consolidates if its working memory reaches T_max); a bucket none of whose
        objects is listed is left as it is. An empty ``object_ids`` writes nothing.

        Args:
            key: (CK, *S) query/memory key of the frame.
            shrinkage: (1, *S), >= 0.
            selection: (CK, *S), in [0, 1].
            values: (N, CV, *S), one value per listed object.
            object_ids: N distinct object ids, the order of ``values``.

        Raises:
            ValueError: on inconsistent shapes, repeated ids, or a bucket only partly listed.
        """
        frame = self._flatten_frame(key, shrinkage, selection, values, list(object_ids))
        if not frame.object_ids:
            return
        targets = self._buckets_to_extend(frame)
        row_of = {object_id: row for row, object_id in enumerate(frame.object_ids)}
        for bucket in targets:
            rows = [row_of[object_id] for object_id in bucket.object_ids]
            bucket.working = _Tokens.cat(bucket.working, self._frame_tokens(frame, rows))
            bucket.working_frames += 1
            if self.config.long_term and bucket.working_frames >= self.config.max_mid_term_frames:
                self._consolidate(bucket)
        stored = set(self.object_ids)
        new_ids = [object_id for object_id in frame.object_ids if object_id not in stored]
        if new_ids:
            self._add_bucket(frame, new_ids, [row_of[object_id] for object_id in new_ids])

    def _add_bucket(self, frame: _Frame, new_ids: list[int], rows: list[int]) -> None:
        tokens = self._frame_tokens(frame, rows)
        self._buckets.append(_Bucket(new_ids, frame.key.shape[1], tokens))
        channels = self.sensory_dim if self.sensory_dim is not None else frame.values.shape[1]
        for object_id in new_ids:
            self._sensory[object_id] = frame.values.new_zeros((channels, *frame.spatial))

    def _frame_tokens(self, frame: _Frame, rows: list[int]) -> _Tokens:
        selection = frame.selection if self.config.long_term else None
        values = frame.values if rows == list(range(len(frame.object_ids))) else frame.values[rows]
        return _Tokens.fresh(frame.key, frame.shrinkage, selection, values)

    def _buckets_to_extend(self, frame: _Frame) -> list[_Bucket]:
        """Buckets that receive this frame; checks everything before anything is written."""
        listed = set(frame.object_ids)
        targets = []
        for bucket in self._buckets:
            present = [object_id in listed for object_id in bucket.object_ids]
            if not any(present):
                continue
            if not all(present):
                missing = [i for i, p in zip(bucket.object_ids, present, strict=True) if not p]
                raise ValueError(
                    f"objects {bucket.object_ids} were first written together and share a key "
                    f"memory; write all of them or none (missing {missing})"
                )
            if bucket.tokens_per_frame != frame.key.shape[1]:
                raise ValueError(
                    f"frame has {frame.key.shape[1]} positions but memory holds "
                    f"{bucket.tokens_per_frame} per frame; call reset() for a new video"
                )
            targets.append(bucket)
        return targets

    @staticmethod
    def _flatten_frame(
        key: Tensor, shrinkage: Tensor, selection: Tensor, values: Tensor, object_ids: list[int]
    ) -> _Frame:
        spatial = tuple(key.shape[1:])
        if key.dim() < 2 or selection.shape != key.shape:
            raise ValueError(
                f"key and selection must both be (CK, *S); got {tuple(key.shape)} and "
                f"{tuple(selection.shape)}"
            )
        if tuple(shrinkage.shape) != (1, *spatial):
            raise ValueError(f"shrinkage must be {(1, *spatial)}, got {tuple(shrinkage.shape)}")
        if values.dim() != key.dim() + 1 or tuple(values.shape[2:]) != spatial:
            raise ValueError(f"values must be (N, CV, *{spatial}), got {tuple(values.shape)}")
        if values.shape[0] != len(object_ids) or len(set(object_ids)) != len(object_ids):
            raise ValueError(
                f"need {values.shape[0]} distinct object ids for the values, got {object_ids}"
            )
        return _Frame(
            key.detach().flatten(1),
            shrinkage.detach().flatten(1),
            selection.detach().flatten(1),
            values.detach().flatten(2),
            object_ids,
            spatial,
        )

    # ------------------------------------------------------------------ consolidation
    def _consolidate(self, bucket: _Bucket) -> None:
        """Working memory (T_max frames) -> first frame + last T_min - 1 frames; the frames in
        between become ``num_prototypes`` long-term prototypes (spec §2.4)."""
        config = self.config
        cap = config.max_long_term_elements - config.num_prototypes
        if bucket.long_term is not None and bucket.long_term.size >= cap:
            bucket.long_term = _drop_least_used(bucket.long_term, cap)

        frame_size = bucket.tokens_per_frame
        end = bucket.working.size - (config.min_mid_term_frames - 1) * frame_size
        candidates = bucket.working.take(slice(frame_size, end))
        assert candidates.selection is not None  # stored whenever long_term is on
        num_prototypes = min(config.num_prototypes, candidates.size)
        score = candidates.use / candidates.life
        prototype_index = score.topk(num_prototypes).indices.sort().values
        prototype_key, prototype_shrinkage, prototype_values = potentiate(
            candidates.key,
            candidates.shrinkage,
            candidates.selection,
            candidates.values,
            prototype_index,
        )
        prototypes = _Tokens.fresh(prototype_key, prototype_shrinkage, None, prototype_values)

        first = bucket.working.take(slice(0, frame_size))
        recent = bucket.working.take(slice(end, None))
        bucket.working = _Tokens.cat(first, recent)
        bucket.working_frames = config.min_mid_term_frames
        bucket.long_term = _Tokens.cat(bucket.long_term, prototypes)

    # ------------------------------------------------------------------ reading
    def read(
        self, query_key: Tensor, query_selection: Tensor, object_ids: Sequence[int] | None = None
    ) -> Tensor:
        """Memory readout of the query frame for each object (spec §1.4).

        Per bucket: similarity of [long-term, working] keys to the query, one top-k softmax over
        both, readout = values @ affinity; usage counters are updated (when long-term is on).

        Args:
            query_key: (CK, *S) key of the query frame.
            query_selection: (CK, *S) selection of the query frame.
            object_ids: objects to read, in output order; None = ``self.object_ids``.

        Returns:
            (N, CV, *S) readouts in the order of ``object_ids``.

        Raises:
            ValueError: if the memory is empty or an id is not stored.
        """
        if not self._buckets:
            raise ValueError("memory is empty: call add_memory before read")
        ids = self.object_ids if object_ids is None else list(object_ids)
        slots = [self._locate(object_id) for object_id in ids]
        if query_selection.shape != query_key.shape or query_key.dim() < 2:
            raise ValueError(
                f"query key and selection must both be (CK, *S); got {tuple(query_key.shape)} "
                f"and {tuple(query_selection.shape)}"
            )
        query = query_key.flatten(1)
        selection = query_selection.flatten(1)
        first = self._buckets[0].working
        out = first.values.new_empty((len(ids), first.values.shape[1], query.shape[1]))
        for bucket in self._buckets:
            positions = [n for n, (owner, _) in enumerate(slots) if owner is bucket]
            if positions:
                rows = [slots[n][1] for n in positions]
                out[positions] = self._read_bucket(bucket, query, selection, rows)
        return out.reshape(len(ids), out.shape[1], *query_key.shape[1:])

    def _read_bucket(
        self, bucket: _Bucket, query: Tensor, selection: Tensor, rows: list[int]
    ) -> Tensor:
        """(len(rows), CV, P) readout of one bucket; updates its usage."""
        stores = bucket.stores
        if query.shape[0] != stores[0].key.shape[0]:
            raise ValueError(
                f"query has {query.shape[0]} key channels, memory {stores[0].key.shape[0]}"
            )
        # One similarity over the stores' keys (small) instead of joining big similarity maps;
        # query-major (P, M) because top-k along the contiguous dimension is much faster.
        keys = stores[0].key if len(stores) == 1 else torch.cat([s.key for s in stores], dim=1)
        shrinkage = (
            stores[0].shrinkage
            if len(stores) == 1
            else torch.cat([s.shrinkage for s in stores], dim=1)
        )
        similarity = anisotropic_similarity(keys, shrinkage, query, selection, query_major=True)
        affinity = top_k_softmax(similarity, self.config.top_k, query_major=True)
        parts = affinity.split([s.size for s in stores], dim=1)
        all_rows = rows == list(range(len(bucket.object_ids)))
        readout = sum(
            (s.values if all_rows else s.values[rows]) @ part.T
            for s, part in zip(stores, parts, strict=True)
        )
        if self.config.long_term:
            bucket.working.count(parts[-1].sum(dim=0))
            if bucket.long_term is not None and self.config.counts_long_term_usage:
                bucket.long_term.count(parts[0].sum(dim=0))
        return readout

    # ------------------------------------------------------------------ sensory
    def get_sensory(self, object_ids: Sequence[int]) -> Tensor:
        """(N, C_h, *S) sensory memory of these stored objects, in this order."""
        missing = [object_id for object_id in object_ids if object_id not in self._sensory]
        if missing:
            raise ValueError(f"no sensory memory for {missing}; stored: {self.object_ids}")
        return torch.stack([self._sensory[object_id] for object_id in object_ids])

    def set_sensory(self, object_ids: Sequence[int], sensory: Tensor) -> None:
        """Replace the sensory memory of these stored objects with ``sensory`` (N, C_h, *S)."""
        ids = list(object_ids)
        if sensory.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {sensory.shape[0]} sensory tensors")
        for object_id, hidden in zip(ids, sensory.detach(), strict=True):
            stored = self._sensory.get(object_id)
            if stored is None:
                raise ValueError(f"object {object_id} is not stored; stored: {self.object_ids}")
            if stored.shape != hidden.shape:
                raise ValueError(
                    f"sensory of object {object_id} is {tuple(stored.shape)}, got "
                    f"{tuple(hidden.shape)}"
                )
            self._sensory[object_id] = hidden

    # ------------------------------------------------------------------ forgetting
    def forget(self, object_ids: Sequence[int]) -> None:
        """Remove these objects from every store (values, sensory); a bucket left without objects
        disappears with its keys. Unknown ids are ignored."""
        gone = set(object_ids)
        kept_buckets = []
        for bucket in self._buckets:
            rows = [row for row, i in enumerate(bucket.object_ids) if i not in gone]
            if not rows:
                continue
            if len(rows) < len(bucket.object_ids):
                bucket.object_ids = [bucket.object_ids[row] for row in rows]
                for store in bucket.stores:
                    store.keep_rows(rows)
            kept_buckets.append(bucket)
        self._buckets = kept_buckets
        for object_id in gone:
            self._sensory.pop(object_id, None)

    def reset(self) -> None:
        """Forget everything (new video)."""
        self._buckets = []
        self._sensory = {}

    def state_dict(self) -> dict[str, object]:
        """Every store of this video (not the policy), for resumable runs."""
        return {"buckets": self._buckets, "sensory": self._sensory}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        self._buckets = list(state["buckets"])  # type: ignore[call-overload]
        self._sensory = dict(state["sensory"])  # type: ignore[call-overload]

    # ------------------------------------------------------------------ helpers
    def _locate(self, object_id: int) -> tuple[_Bucket, int]:
        """(bucket, value row) of a stored object."""
        for bucket in self._buckets:
            if object_id in bucket.object_ids:
                return bucket, bucket.object_ids.index(object_id)
        raise ValueError(f"object {object_id} is not in memory; stored: {self.object_ids}")

    @staticmethod
    def _long_term_size(bucket: _Bucket) -> int:
        return 0 if bucket.long_term is None else bucket.long_term.size


def _drop_least_used(tokens: _Tokens, size: int) -> _Tokens:
    """Keep the ``size`` tokens of highest normalised usage (ties: newer first), in order."""
    if tokens.size <= size:
        return tokens
    score = (tokens.use / tokens.life).flip(0)  # newest first, so a stable sort favours it
    order = torch.argsort(score, descending=True, stable=True)[:size]
    keep = (tokens.size - 1 - order).sort().values
    return tokens.take(keep)
