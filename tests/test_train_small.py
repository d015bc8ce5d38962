"""The "small" training architecture and the generated clips of bench/train_test_weights.py."""

from __future__ import annotations

import numpy as np
import torch

from bench.train_test_weights import GeneratedClips
from deva.propagation.network.checkpoint import build_network
from deva.train.checkpoint import export_weights
from deva.train.config import ARCHITECTURES, parse_config
from deva.train.trainer import build_training_network


def test_small_network_round_trips_through_a_weights_file(tmp_path):
    config = parse_config({"network": "small"})
    network = build_training_network(config)
    parameters = sum(p.numel() for p in network.parameters())
    assert 100_000 < parameters < 375_000  # between tiny and full, weights file < 1.5 MB
    path = tmp_path / "small.pth"
    export_weights(path, network, ARCHITECTURES["small"])
    assert path.stat().st_size < 1.5 * 2**20
    rebuilt = build_network(path, "cpu")
    for key, value in network.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value)


def test_generated_clips_are_deterministic_well_formed_and_moving():
    clips = GeneratedClips(8, num_frames=5, max_objects=3, seed=3)
    first, again = clips[2], clips[2]
    torch.testing.assert_close(first["images"], again["images"])
    assert first["images"].shape == (5, 3, 96, 128)
    masks, selector = first["masks"], first["selector"]
    assert masks.shape == (5, 3, 96, 128) and selector.sum() >= 1
    assert masks.sum(dim=1).max() <= 1  # objects never overlap
    real = selector > 0
    assert torch.all(masks[0, real].flatten(1).sum(1) >= 30)  # every object shows in frame 0
    assert torch.all(masks[:, ~real] == 0)
    clips.set_epoch(1)
    assert not torch.equal(clips[2]["images"], first["images"])
    moved = [
        float(np.abs(item["images"][0].numpy() - item["images"][-1].numpy()).mean())
        for item in (clips[i] for i in range(8))
    ]
    assert max(moved) > 0.05  # something moves between the first and last frame
