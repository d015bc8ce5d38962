"""The windowed top-k readout against a cell-by-cell reference written from its definition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deva.propagation.matching import OBJECT_CHUNK, cut_windows, read


def reference(
    query, memories, radii, tile, top_k, temperature, steps=None, first_share=None, holes=None,
    first_memories=1,
):  # fmt: skip
    """Each query cell: the memory cells within ``radius`` of its tile in every frame (every
    ``step``-th from the window's corner, none within ``hole`` of the tile), its top-k cosines
    softmaxed, each object averaged over the frames where it is valid; ``first_share`` mixes in
    the average over the top-k cells of the first ``first_memories`` alone, where there are
    any."""
    c, h, w = query.shape
    k = memories[0][0].shape[0]
    out = torch.zeros(k, h, w)
    for y in range(h):
        for x in range(w):
            top, left = (y // tile) * tile, (x // tile) * tile
            sims, values, valid, frame = [], [], [], []
            for number, ((masks, ok, keys), radius, step, hole) in enumerate(
                zip(
                    memories,
                    radii,
                    steps or [1] * len(radii),
                    holes or [None] * len(radii),
                    strict=True,
                )  # fmt: skip
            ):
                ys = [y for y in range(top - radius, top + tile + radius, step) if 0 <= y < h]
                xs = [x for x in range(left - radius, left + tile + radius, step) if 0 <= x < w]
                for my in ys:
                    for mx in xs:
                        if hole is not None and (
                            top - hole <= my < top + tile + hole
                            and left - hole <= mx < left + tile + hole
                        ):
                            continue
                        sims.append(float(query[:, y, x] @ keys[:, my, mx]))
                        values.append(masks[:, my, mx])
                        valid.append(ok.float())
                        frame.append(number)
            sims_t = torch.tensor(sims)
            best, index = sims_t.topk(min(top_k, len(sims)))
            weight = torch.softmax(best / temperature, 0)[None] * torch.stack(valid)[index].T
            picked = torch.stack(values)[index].T
            out[:, y, x] = (weight * picked).sum(1) / weight.sum(1).clamp_min(1e-6)
            if first_share is not None:
                first = weight * (torch.tensor(frame)[index] < first_memories)[None]
                alone = (first * picked).sum(1) / first.sum(1).clamp_min(1e-6)
                share = first_share * (first.sum(1) > 1e-6)
                out[:, y, x] = (1 - share) * out[:, y, x] + share * alone
    return out


def test_read_matches_the_cell_by_cell_definition() -> None:
    """Two frames with different windows, more objects than one chunk, an object unknown in
    the first frame, a grid that tiles unevenly."""
    generator = torch.Generator().manual_seed(0)
    c, h, w, k, tile = 8, 9, 10, OBJECT_CHUNK + 3, 4

    def keys() -> torch.Tensor:
        return F.normalize(torch.randn(c, h, w, generator=generator), dim=0)

    query = keys()
    frames = []
    for known_first in (False, True):
        masks = torch.rand(k, h, w, generator=generator)
        ok = torch.ones(k, dtype=torch.bool)
        ok[-1] = known_first
        frames.append((masks, ok, keys()))
    radii = (3, 1)
    memories = [
        (cut_windows(frame_keys, radius, tile), masks, ok)
        for (masks, ok, frame_keys), radius in zip(frames, radii, strict=True)
    ]
    got = read(query, memories, top_k=5, temperature=0.1)
    expected = reference(query, frames, radii, tile, top_k=5, temperature=0.1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    share = torch.linspace(0, 1, k)
    got = read(query, memories, top_k=5, temperature=0.1, first_share=share)
    expected = reference(query, frames, radii, tile, top_k=5, temperature=0.1, first_share=share)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_a_stepped_window_with_a_dense_centre_reads_the_cells_it_names() -> None:
    """The permanent frame's wide window read every 2nd cell around a hole, plus a dense window
    of the hole's radius (fewer candidates, detail kept near the query), beside a recent frame,
    with the first frame's share: exactly the definition, cell by cell."""
    generator = torch.Generator().manual_seed(1)
    c, h, w, k, tile = 8, 13, 11, 3, 4

    def keys() -> torch.Tensor:
        return F.normalize(torch.randn(c, h, w, generator=generator), dim=0)

    query = keys()
    first, recent = ((torch.rand(k, h, w, generator=generator), torch.ones(k, dtype=torch.bool),
                      keys()) for _ in range(2))  # fmt: skip
    frames = [first, first, recent]
    radii, steps, holes = (1, 5, 1), (1, 2, 1), (None, 1, None)
    memories = [
        (cut_windows(frame_keys, radius, tile, step, hole), masks, ok)
        for (masks, ok, frame_keys), radius, step, hole in zip(
            frames, radii, steps, holes, strict=True
        )
    ]
    share = torch.tensor([0.0, 0.5, 1.0])
    got = read(query, memories, top_k=6, temperature=0.1, first_share=share, first_memories=2)
    expected = reference(query, frames, radii, tile, top_k=6, temperature=0.1, steps=steps,
                         first_share=share, holes=holes, first_memories=2)  # fmt: skip
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
