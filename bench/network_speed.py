"""Seconds per frame of the DEVA network propagator on CPU at 480×854 (official architecture,
random weights: speed does not depend on the values), split into its stages."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import torch

from bench.flow_speed import load_clip, make_masks
from deva.propagation.network.model import PropagationNetwork
from deva.propagation.network.propagator import NetworkPropagator


def _timed(store: dict[str, float], name: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        store[name] += time.perf_counter() - start
        return result

    return wrapper


def measure_network_speed(
    num_objects_list: tuple[int, ...] = (1, 5, 20), frames: int = 6, sequence: str = "bmx-trees"
) -> list[dict[str, float]]:
    """Per object count: s/frame in total and per stage (image encoding, memory readout,
    decoding, mask encoding averaged over all frames), memorizing every 5th frame (mem_every)."""
    torch.manual_seed(0)
    network = PropagationNetwork().eval()
    images, mask = load_clip(sequence, frames + 1)
    rows = []
    for num_objects in num_objects_list:
        propagator = NetworkPropagator(network)
        stages: dict[str, float] = defaultdict(float)
        net, memory = propagator.network, propagator.memory
        net.encode_image = _timed(stages, "encode", net.encode_image)
        net.segment = _timed(stages, "decode", net.segment)
        net.encode_mask = _timed(stages, "mask encoding", net.encode_mask)
        memory.read = _timed(stages, "readout", memory.read)
        masks = make_masks(mask, num_objects, "tiles")
        propagator.memorize(images[0], masks, list(range(1, num_objects + 1)))
        stages.clear()
        start = time.perf_counter()
        for image in images[1:]:
            propagator.propagate(image)
        total = (time.perf_counter() - start) / frames
        row = {"objects": num_objects, "total": total}
        row.update({name: seconds / frames for name, seconds in stages.items()})
        rows.append(row)
        del net.encode_image, net.segment, net.encode_mask, memory.read
        print(num_objects, {k: round(v, 3) for k, v in row.items()}, flush=True)
    return rows


def table(rows: list[dict[str, float]]) -> str:
    stages = ("encode", "readout", "decode", "mask encoding")
    lines = [
        "| objects | s/frame | " + " | ".join(stages) + " |",
        "|---:|---:|" + "---:|" * len(stages),
    ]
    for row in rows:
        cells = " | ".join(f"{row.get(s, 0.0):.3f}" for s in stages)
        lines.append(f"| {row['objects']} | **{row['total']:.2f}** | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure_network_speed()))
