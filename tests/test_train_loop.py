"""``deva train`` end to end on CPU with the tiny network: it learns, Ctrl-C + resume gives the
same weights bit for bit, checkpoints are atomic, and the exported weights run in deva track."""

from __future__ import annotations

import csv
import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import MovingShapes
from typer.testing import CliRunner

import deva.cli
from deva.cli import app
from deva.errors import DevaError
from deva.io.masks import read_id_png
from deva.train import checkpoint as train_checkpoint
from deva.train.config import ARCHITECTURES, StageConfig, TrainConfig
from deva.train.trainer import StepLog, build_training_network, train

runner = CliRunner()


def tiny_config(**stage: object) -> TrainConfig:
    settings = {
        "iterations": 12,
        "lr": 3e-3,
        "num_frames": 4,
        "num_ref_frames": 1,
        "max_objects": 2,
        "batch_size": 2,
        "size": 64,
        "bootstrap_start": 4,
        "bootstrap_end": 8,
    }
    settings.update(stage)
    return TrainConfig(
        stages="3",
        network="tiny",
        device="cpu",
        workers=0,
        checkpoint_every=4,
        log_every=1,
        deep_update_prob=0.5,
        stage3=StageConfig(**settings),  # type: ignore[arg-type]
    )


def shapes(length: int = 10, num_frames: int = 4):
    return lambda name, stage, config: MovingShapes(length, num_frames)


def weights(path: Path) -> dict[str, torch.Tensor]:
    loaded = torch.load(path, weights_only=True)
    return loaded.get("state_dict", loaded)


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_tiny_network_learns_moving_shapes(tmp_path):
    config = tiny_config(iterations=40, num_frames=3, batch_size=4, bootstrap_start=10**6,
                         bootstrap_end=10**6)  # fmt: skip
    losses: list[float] = []
    result = train(
        config,
        tmp_path / "run",
        dataset_factory=shapes(64, 3),
        on_step=lambda s: losses.append(s.loss),
    )
    assert not result.interrupted and len(losses) == 40
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, (first, last)
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 41))
    assert float(rows[0]["loss"]) == pytest.approx(losses[0], rel=1e-4)
    assert {"ce", "aux", "dice", "lr", "bootstrap", "it_per_s"} <= rows[0].keys()


def test_ctrl_c_then_resume_gives_bit_identical_weights(tmp_path):
    config = tiny_config()
    full = train(config, tmp_path / "full", dataset_factory=shapes())
    assert not full.interrupted and full.iteration == 12

    def interrupt_at_7(step: StepLog) -> None:
        if step.iteration == 7:
            os.kill(os.getpid(), signal.SIGINT)

    run = tmp_path / "resumed"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    stopped = train(config, run, dataset_factory=shapes(), on_step=interrupt_at_7)
    assert stopped.interrupted and stopped.iteration == 7
    assert train_checkpoint.load_checkpoint(run / "checkpoint.pt")["iteration"] == 7
    assert signal.getsignal(signal.SIGINT) == before  # handler restored
    resumed = train(config, run, dataset_factory=shapes(), resume=True)
    assert not resumed.interrupted and resumed.iteration == 12
    assert_identical(weights(full.weights), weights(resumed.weights))
    full_ckpt = train_checkpoint.load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    resumed_ckpt = train_checkpoint.load_checkpoint(run / "checkpoint.pt")
    assert_identical(full_ckpt["network"], resumed_ckpt["network"])
    rows = list(csv.reader((run / "metrics.csv").open()))
    assert [int(r[1]) for r in rows[1:]] == list(range(1, 13))  # no duplicated rows


def test_a_run_folder_is_not_silently_overwritten_or_resumed_from_nothing(tmp_path):
    config = tiny_config(iterations=2)
    with pytest.raises(DevaError, match="no checkpoint"):
        train(config, tmp_path / "empty", dataset_factory=shapes(), resume=True)
    train(config, tmp_path / "run", dataset_factory=shapes())
    with pytest.raises(DevaError, match="--resume"):
        train(config, tmp_path / "run", dataset_factory=shapes())


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    train_checkpoint.save_checkpoint(path, {"stage": "3", "iteration": 1})
    before = path.read_bytes()
    real_save = torch.save

    def crash_halfway(obj, target, *args, **kwargs):
        real_save(obj, target, *args, **kwargs)
        Path(target).write_bytes(Path(target).read_bytes()[:50])  # a partial file ...
        raise OSError("disk full")  # ... then the failure

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError):
        train_checkpoint.save_checkpoint(path, {"stage": "3", "iteration": 2})
    assert path.read_bytes() == before
    assert train_checkpoint.load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no partial left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    train_checkpoint.save_checkpoint(path, {"stage": "3", "iteration": 1, "x": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DevaError, match="truncated or corrupt"):
        train_checkpoint.load_checkpoint(path)


# --- the real CLI on the real data pipeline (DAVIS clips) -------------------------------------


@pytest.fixture(scope="module")
def davis_config(davis_root, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "train.toml"
    path.write_text(
        f"""
stages = "3"
network = "tiny"
seed = 3
device = "cpu"
workers = 0
checkpoint_every = 2
log_every = 1
[stage3]
iterations = 4
batch_size = 2
lr = 1e-3
num_frames = 3
num_ref_frames = 1
max_objects = 2
size = 64
[[stage3.data]]
root = "{davis_root}"
sequences = ["blackswan", "camel"]
"""
    )
    return path


@pytest.fixture(scope="module")
def davis_runs(davis_config, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """One uninterrupted 4-step CLI run, and one interrupted by Ctrl-C after step 3 and resumed."""
    root = tmp_path_factory.mktemp("runs")
    full = runner.invoke(app, ["train", str(davis_config), "-o", str(root / "full")])
    assert full.exit_code == 0, full.output
    update = deva.cli._TrainProgress.update

    def interrupt_at_3(self, step: StepLog) -> None:
        update(self, step)
        if step.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deva.cli._TrainProgress, "update", interrupt_at_3)
        stopped = runner.invoke(app, ["train", str(davis_config), "-o", str(root / "resumed")])
    resumed = runner.invoke(app, ["train", "--resume", str(root / "resumed")])
    assert resumed.exit_code == 0, resumed.output
    outputs = [" ".join(r.output.split()) for r in (full, stopped, resumed)]
    return root / "full", root / "resumed", [str(stopped.exit_code), *outputs]


def test_cli_ctrl_c_and_resume_on_davis_match_an_uninterrupted_run(davis_runs):
    full, resumed, (stopped_code, _, stopped_output, _) = davis_runs
    assert stopped_code == "130" and "deva train --resume" in stopped_output
    assert_identical(weights(full / "weights.pth"), weights(resumed / "weights.pth"))
    rows = [list(csv.reader((run / "metrics.csv").open())) for run in (full, resumed)]
    assert [r[:-1] for r in rows[0]] == [r[:-1] for r in rows[1]]  # all but it/s
    assert (resumed / "stage3.pth").is_file() and (resumed / "config.toml").is_file()


def test_exported_tiny_weights_run_in_deva_track(davis_runs, davis_root, tmp_path):
    full, _, _ = davis_runs
    frames, init = tmp_path / "frames", tmp_path / "init"
    frames.mkdir()
    init.mkdir()
    for name in ("00000", "00001", "00002", "00003"):
        shutil.copy(davis_root / "JPEGImages" / "480p" / "blackswan" / f"{name}.jpg", frames)
    shutil.copy(davis_root / "Annotations" / "480p" / "blackswan" / "00000.png", init)
    out = tmp_path / "out"
    args = ["track", str(frames), "-o", str(out), "--init-masks", str(init), "--size", "64"]
    args += ["--propagator", "network", "--checkpoint", str(full / "weights.pth")]
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-video"])
    assert result.exit_code == 0, result.output
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 4
    assert set(np.unique(read_id_png(masks[0]))) == {0, 1}
    assert set(np.unique(read_id_png(masks[-1]))) <= {0, 1}


def test_init_checkpoint_fine_tunes_from_exported_weights(davis_runs, tmp_path):
    full, _, _ = davis_runs
    config = replace(tiny_config(iterations=1), init_checkpoint=str(full / "weights.pth"))
    seen: list[float] = []
    train(config, tmp_path / "ft", dataset_factory=shapes(), on_step=lambda s: seen.append(s.loss))
    assert len(seen) == 1
    wrong = replace(config, network="full")
    with pytest.raises(DevaError, match="does not fit"):
        train(wrong, tmp_path / "ft2", dataset_factory=shapes())


def test_weights_files_official_layout_for_full_size_and_described_otherwise(tmp_path):
    from deva.propagation.network.checkpoint import build_network
    from deva.propagation.network.model import PropagationNetwork, tiny_propagation_network

    full = tmp_path / "full.pth"
    train_checkpoint.export_weights(full, PropagationNetwork(), {})
    plain = torch.load(full, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in plain.values())  # what the original loads
    tiny = tmp_path / "tiny.pth"
    train_checkpoint.export_weights(tiny, tiny_propagation_network(), ARCHITECTURES["tiny"])
    assert build_network(tiny, "cpu").key_dim == 8
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": plain, "architecture": {"colour": 3}}, bad)
    with pytest.raises(DevaError, match="architecture"):
        build_network(bad, "cpu")


def test_tiny_config_network_is_tiny_propagation_network():
    from deva.propagation.network.model import tiny_propagation_network

    ours = build_training_network(replace(TrainConfig(), network="tiny")).state_dict()
    reference = tiny_propagation_network().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}
