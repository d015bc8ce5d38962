"""The optimiser side of ``deva train`` (spec §7): AdamW with weight decay, the learning-rate
schedule (stage 0 constant, stage 3 ×0.1 at the configured steps) and gradient-norm clipping,
checked both on ``learning_rate`` and on what the optimiser sees in a real tiny run."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset
from train_fixtures import MovingShapes

import deva.train.trainer as trainer
from deva.train.config import StageConfig, TrainConfig
from deva.train.trainer import learning_rate, train


def tiny_config(**overrides: object) -> TrainConfig:
    stage = StageConfig(
        iterations=6,
        lr=1e-3,
        num_frames=3,
        num_ref_frames=1,
        max_objects=1,
        batch_size=2,
        size=32,
        lr_steps=(2, 4),
        bootstrap_start=100,
        bootstrap_end=200,
    )
    config = TrainConfig(
        stages="3",
        network="tiny",
        device="cpu",
        workers=0,
        checkpoint_every=100,
        log_every=100,
        stage3=stage,
    )
    return replace(config, **overrides)


def blobs(name: str, stage: StageConfig, config: TrainConfig) -> Dataset:
    return MovingShapes(4, stage.num_frames, max_objects=stage.max_objects, size=stage.size)


@pytest.fixture
def optimiser_steps(monkeypatch):
    """Every AdamW step of the run: its hyper-parameters and the gradient norm it applies."""
    seen: list[dict] = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = [
            p.grad for group in self.param_groups for p in group["params"] if p.grad is not None
        ]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        group = self.param_groups[0]
        seen.append(
            {"lr": group["lr"], "weight_decay": group["weight_decay"], "grad_norm": norm.item()}
        )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return seen


def test_spec_schedule_stage0_constant_stage3_drops_at_120k_and_140k():
    config = TrainConfig()
    for iteration in (0, 1, 50_000, 79_999):
        assert learning_rate(config.stage0, iteration) == pytest.approx(2e-5, rel=1e-12)
    expected = {
        0: 1e-5,
        119_999: 1e-5,
        120_000: 1e-6,
        139_999: 1e-6,
        140_000: 1e-7,
        149_999: 1e-7,
    }
    for iteration, lr in expected.items():
        assert learning_rate(config.stage3, iteration) == pytest.approx(lr, rel=1e-12), iteration


def test_schedule_follows_configured_steps_and_gamma():
    stage = replace(TrainConfig().stage3, lr=0.5, lr_steps=(3, 7, 8), lr_gamma=0.5)
    got = [learning_rate(stage, i) for i in range(10)]
    assert got == pytest.approx([0.5] * 3 + [0.25] * 4 + [0.125] + [0.0625] * 2, rel=1e-12)


def test_run_uses_adamw_with_the_scheduled_lr_and_weight_decay(tmp_path, optimiser_steps):
    config = tiny_config(weight_decay=0.02)
    logged = []
    train(config, tmp_path / "run", dataset_factory=blobs, on_step=logged.append)
    assert len(optimiser_steps) == 6  # every step went through AdamW
    lrs = [step["lr"] for step in optimiser_steps]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rel=1e-9)
    assert [entry.lr for entry in logged] == pytest.approx(lrs, rel=1e-9)
    assert all(step["weight_decay"] == 0.02 for step in optimiser_steps)


def test_gradient_norm_is_clipped_to_the_configured_value(tmp_path, optimiser_steps, monkeypatch):
    original = trainer.sequence_loss

    def huge(*args, **kwargs):  # a loss 10^6 times larger: raw gradient norms far above the clip
        parts = original(*args, **kwargs)
        return replace(parts, total=parts.total * 1e6)

    monkeypatch.setattr(trainer, "sequence_loss", huge)
    config = tiny_config(clip_grad_norm=0.25)
    config = replace(config, stage3=replace(config.stage3, iterations=2))
    train(config, tmp_path / "run", dataset_factory=blobs)
    norms = [step["grad_norm"] for step in optimiser_steps]
    assert len(norms) == 2
    for norm in norms:
        assert math.isfinite(norm)
        assert norm == pytest.approx(0.25, rel=1e-3)  # clipped to exactly the configured norm
