"""Memory readout: anisotropic L2 similarity, (top-k) softmax affinity and value read (§1.4).

Shapes: memory keys (B, CK, M), memory shrinkage (B, M) or (B, 1, M) with values >= 1, query
key and selection (B, CK, P) with selection in (0, 1), memory values (B, N, CV, M). M counts
memory positions (frames x h16 x w16), P query positions (h16 x w16).

Similarities and affinities are memory-major (B, M, P) by default, as the spec writes them;
inference uses the query-major layout (B, P, M) because top-k along the contiguous last
dimension is about 3x faster on CPU than along M, with identical results.
"""

from __future__ import annotations

import math

import torch

__all__ = ["read_memory", "read_values", "similarity", "softmax_affinity", "topk_affinity"]


def similarity(
    mem_key: torch.Tensor,
    mem_shrinkage: torch.Tensor | None,
    query_key: torch.Tensor,
    query_selection: torch.Tensor | None,
    *,
    query_major: bool = False,
) -> torch.Tensor:
    """S[b, m, p] = -s_m * sum_c e[c, p] * (K[c, m] - q[c, p])^2 / sqrt(CK); (B, M, P), or
    (B, P, M) with ``query_major``.

    Computed by the expansion -sum e K^2 + 2 sum e K q - sum e q^2 in one batched matmul.
    Without selection (e = 1) the query-norm term, constant over m, is dropped; without
    shrinkage s = 1.
    """
    b, ck, m = mem_key.shape
    if query_selection is None:
        left = torch.cat([mem_key.pow(2).sum(dim=1, keepdim=True), mem_key], dim=1)
        right = torch.cat([-torch.ones_like(query_key[:, :1]), 2 * query_key], dim=1)
    else:
        weighted_query = query_selection * query_key
        query_term = (weighted_query * query_key).sum(dim=1, keepdim=True)  # (B, 1, P)
        ones = torch.ones_like(mem_key[:, :1])
        left = torch.cat([mem_key.pow(2), mem_key, ones], dim=1)  # (B, 2CK+1, M)
        right = torch.cat([-query_selection, 2 * weighted_query, -query_term], dim=1)
    scale = 1 / math.sqrt(ck)
    if mem_shrinkage is None:
        left = left * scale
    else:
        left = left * (mem_shrinkage.reshape(b, 1, m) * scale)
    return right.transpose(1, 2) @ left if query_major else left.transpose(1, 2) @ right


def topk_affinity(
    sim: torch.Tensor, top_k: int, *, query_major: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over memory of the ``top_k`` largest similarities per query position; the rest
    get weight 0. The maximum is subtracted first (safe in fp16).

    sim: (B, M, P) (or (B, P, M) with ``query_major``) -> affinity of the same shape, summing
    to 1 over memory, and usage (B, M): each memory element's affinity summed over query
    positions. ``top_k >= M`` equals the full softmax.
    """
    memory_dim = 2 if query_major else 1
    k = min(top_k, sim.shape[memory_dim])
    values, indices = torch.topk(sim, k=k, dim=memory_dim)
    # topk is sorted, so the first entry along the memory dim holds the maximum.
    weights = torch.exp(values - values.narrow(memory_dim, 0, 1))
    weights = weights / weights.sum(dim=memory_dim, keepdim=True)
    affinity = torch.zeros_like(sim).scatter_(memory_dim, indices, weights)
    return affinity, affinity.sum(dim=3 - memory_dim)


def softmax_affinity(sim: torch.Tensor) -> torch.Tensor:
    """Full softmax over memory (training, consolidation): (B, M, P) -> (B, M, P)."""
    return torch.softmax(sim, dim=1)


def read_values(
    affinity: torch.Tensor, mem_value: torch.Tensor, *, query_major: bool = False
) -> torch.Tensor:
    """Affinity-weighted values: affinity (B, M, P) (or (B, P, M) with ``query_major``),
    values (B, N, CV, M) -> (B, N, CV, P)."""
    b, n, cv, m = mem_value.shape
    out = mem_value.reshape(b, n * cv, m) @ (affinity.transpose(1, 2) if query_major else affinity)
    return out.view(b, n, cv, -1)


def read_memory(
    query_key: torch.Tensor,
    query_selection: torch.Tensor | None,
    mem_key: torch.Tensor,
    mem_shrinkage: torch.Tensor | None,
    mem_value: torch.Tensor,
    top_k: int | None = 30,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One readout from one key memory (one bucket).

    query_key / query_selection: (B, CK, h, w); mem_key (B, CK, M); mem_shrinkage (B, M);
    mem_value (B, N, CV, M). Returns the readout (B, N, CV, h, w) and the usage (B, M), or
    None with ``top_k=None`` (full softmax, as in training).
    """
    b, ck, h, w = query_key.shape
    flat_selection = None if query_selection is None else query_selection.reshape(b, ck, h * w)
    query = query_key.reshape(b, ck, h * w)
    if top_k is None:
        sim = similarity(mem_key, mem_shrinkage, query, flat_selection)
        affinity, usage = softmax_affinity(sim), None
        readout = read_values(affinity, mem_value)
    else:
        sim = similarity(mem_key, mem_shrinkage, query, flat_selection, query_major=True)
        affinity, usage = topk_affinity(sim, top_k, query_major=True)
        readout = read_values(affinity, mem_value, query_major=True)
    return readout.view(*readout.shape[:3], h, w), usage
