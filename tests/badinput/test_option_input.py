"""Command-line options: unknown, out of range, contradictory, and weights that are not weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import make
from .harness import deva, fails, usage_error


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make.frames(tmp_path / "frames", count=2)


def test_unknown_option(folder: Path, tmp_path: Path) -> None:
    outcome = deva("track", folder, "-o", tmp_path / "out", "--detect-evrey", "3")
    usage_error(outcome, "--detect-evrey")
    assert not (tmp_path / "out").exists()


def test_missing_output_option(folder: Path) -> None:
    usage_error(deva("track", folder), "--output")


def test_not_a_number(folder: Path, tmp_path: Path) -> None:
    outcome = deva("track", folder, "-o", tmp_path / "o", "--clip-size", "three")
    usage_error(outcome, "--clip-size", "integer")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--detect-every", "-1", "--detect-every must be >= 1"),
        ("--clip-size", "0", "--clip-size must be >= 1"),
        ("--size", "7", "--size must be -1 (native) or >= 16"),
        ("--size", "0", "--size must be -1 (native) or >= 16"),
        ("--max-missed", "-2", "--max-missed must be >= 0"),
        ("--max-objects", "-1", "--max-objects must be >= 0"),
        ("--max-memory", "0", "--max-memory must be > 0"),
    ],
)
def test_value_out_of_range(
    folder: Path, tmp_path: Path, option: str, value: str, needle: str
) -> None:
    out = tmp_path / "out"
    fails(deva("track", folder, "-o", out, option, value), needle, value)
    assert not out.exists()


def test_checkpoint_without_the_network_propagator(folder: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    outcome = deva("track", folder, "-o", tmp_path / "o", "--checkpoint", weights)
    fails(outcome, "--checkpoint", "appearance")


def test_detections_with_another_segmenter(folder: Path, tmp_path: Path) -> None:
    dets = make.detections(tmp_path / "dets", count=2)
    outcome = deva(
        "track", folder, "-o", tmp_path / "o", "--detections", dets, "--segmenter", "motion"
    )
    fails(outcome, "--detections", "motion")


def network(folder: Path, tmp_path: Path, checkpoint: Path):
    out = tmp_path / "out"
    args = ("--propagator", "network", "--checkpoint", checkpoint, "--device", "cpu")
    return deva("track", folder, "-o", out, *args, "--no-video")


def test_text_file_as_a_checkpoint(folder: Path, tmp_path: Path) -> None:
    notes = tmp_path / "weights.pth"
    notes.write_text("download link: https://example.invalid/DEVA-propagation.pth\n")
    fails(network(folder, tmp_path, notes), "weights.pth", "not a PyTorch checkpoint")


def test_empty_checkpoint(folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    fails(network(folder, tmp_path, empty), "empty.pth", "empty file")


def test_checkpoint_of_another_network(folder: Path, tmp_path: Path) -> None:
    import torch

    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 3), "fc.bias": torch.zeros(2)}, other)
    line = fails(network(folder, tmp_path, other), "resnet.pth", "does not fit")
    assert "fc.weight [2x3], fc.bias [2]" in line  # the listing's [shape] is not eaten as markup


def test_checkpoint_holding_no_tensors(folder: Path, tmp_path: Path) -> None:
    import torch

    odd = tmp_path / "config.pth"
    torch.save({"epochs": 3, "lr": [1e-5]}, odd)
    fails(network(folder, tmp_path, odd), "config.pth", "no state dict", "[epochs, lr]")
