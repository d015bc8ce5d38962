"""``deva track --propagator network --checkpoint FILE`` end to end, with a randomly initialised
checkpoint in the official layout that the test writes (real weights cannot be downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.demo import render_demo
from deva.io.masks import read_id_png, write_id_png
from deva.propagation.network.model import PropagationNetwork

CLIP = render_demo(num_frames=5, height=64, width=96)
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "DEVA-propagation.pth"
    torch.save(PropagationNetwork().state_dict(), path)
    return str(path)


@pytest.fixture
def clip_folders(tmp_path):
    frames, init = tmp_path / "frames", tmp_path / "init"
    frames.mkdir()
    init.mkdir()
    for index, frame in enumerate(CLIP.frames):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    write_id_png(init / "00000.png", np.where(CLIP.masks[0] > 0, CLIP.masks[0] + 4, 0))
    return frames, init


def test_semi_supervised_run_with_the_network(checkpoint, clip_folders, tmp_path):
    frames, init = clip_folders
    out = tmp_path / "out"
    args = ["track", str(frames), "-o", str(out), "--init-masks", str(init)]
    args += ["--propagator", "network", "--checkpoint", checkpoint, "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-video"])
    assert result.exit_code == 0, result.output
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 5
    first = read_id_png(masks[0])
    np.testing.assert_array_equal(first, np.where(CLIP.masks[0] > 0, CLIP.masks[0] + 4, 0))
    assert set(np.unique(read_id_png(masks[-1]))) <= {0, 5, 6}  # only the given ids


def test_network_needs_a_checkpoint(clip_folders, tmp_path):
    frames, _ = clip_folders
    result = runner.invoke(
        app, ["track", str(frames), "-o", str(tmp_path / "o"), "--propagator", "network"]
    )
    assert result.exit_code == 2 and "--checkpoint" in result.output


def test_truncated_checkpoint_is_one_clear_error(checkpoint, clip_folders, tmp_path):
    frames, _ = clip_folders
    broken = tmp_path / "broken.pth"
    broken.write_bytes(Path(checkpoint).read_bytes()[:100_000])
    args = ["track", str(frames), "-o", str(tmp_path / "o"), "--propagator", "network"]
    result = runner.invoke(app, [*args, "--checkpoint", str(broken)])
    assert result.exit_code == 2
    assert "broken.pth" in " ".join(result.output.split())


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_bfloat16_run_with_the_network(checkpoint, clip_folders, tmp_path):
    frames, init = clip_folders
    out = tmp_path / "out"
    args = ["track", str(frames), "-o", str(out), "--init-masks", str(init), "--no-video"]
    args += ["--propagator", "network", "--checkpoint", checkpoint, "--device", "cpu"]
    result = runner.invoke(app, [*args, "--precision", "bfloat16"])
    assert result.exit_code == 0, result.output
    assert len(list((out / "masks").glob("*.png"))) == 5
    assert (out / "annotations.json").is_file()


def test_precision_only_with_the_network(clip_folders, tmp_path):
    frames, _ = clip_folders
    args = ["track", str(frames), "-o", str(tmp_path / "o"), "--precision", "bfloat16"]
    line = one_line_error(runner.invoke(app, [*args, "--propagator", "flow"]))
    assert "--precision is only used by the network and appearance propagators, not flow" in line
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_float16_needs_cuda(checkpoint, clip_folders, tmp_path):
    frames, _ = clip_folders
    args = ["track", str(frames), "-o", str(tmp_path / "o"), "--propagator", "network"]
    args += ["--checkpoint", checkpoint, "--device", "cpu", "--precision", "float16"]
    assert "float16" in one_line_error(runner.invoke(app, args))


def test_cli_precisions_are_the_propagators():
    from deva.cli_options import PrecisionName
    from deva.propagation.network.propagator import PRECISIONS

    assert tuple(PrecisionName) == ("auto", *PRECISIONS)  # auto: float32 for the network


def test_batch_runs_the_network_in_bfloat16(checkpoint, clip_folders, tmp_path, monkeypatch):
    from deva.propagation.network.propagator import NetworkPropagator

    precisions: list[str] = []
    original = NetworkPropagator.__init__

    def spy(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        precisions.append(self.precision)

    monkeypatch.setattr(NetworkPropagator, "__init__", spy)
    frames, init = clip_folders
    videos, given = tmp_path / "videos", tmp_path / "given"
    videos.mkdir()
    given.mkdir()
    frames.rename(videos / "clip")
    init.rename(given / "clip")
    args = ["batch", str(videos), "-o", str(tmp_path / "out"), "--init-masks", str(given)]
    args += ["--propagator", "network", "--checkpoint", checkpoint, "--device", "cpu"]
    result = runner.invoke(app, [*args, "--precision", "bfloat16", "--no-video"])
    assert result.exit_code == 0, result.output
    assert precisions == ["bfloat16"]
    assert len(list((tmp_path / "out" / "clip" / "masks").glob("*.png"))) == 5
