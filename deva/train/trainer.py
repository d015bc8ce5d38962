"""The training loop of ``deva train`` (spec §7): stages, AdamW, schedules, clipping, AMP,
metrics, checkpoints and exact resume.

Every random choice comes from a generator seeded from (seed, stage, purpose, counter): the data
order from (epoch), the reference frames and deep updates from (iteration), the augmentation
inside the datasets from their own (seed, index, epoch). So the data a step sees is a function
of its position only, and ``resume=True`` continues to bit-identical weights on CPU.
"""

from __future__ import annotations

import csv
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from deva.device import resolve_device
from deva.errors import DevaError
from deva.io.atomic import atomic_path, ensure_writable_dir
from deva.propagation.network.checkpoint import load_propagation_weights
from deva.propagation.network.model import PropagationNetwork

from .checkpoint import (
    CHECKPOINT_NAME,
    WEIGHTS_NAME,
    export_weights,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from .config import ARCHITECTURES, StageConfig, TrainConfig, config_to_toml
from .losses import bootstrap_fraction, sequence_loss
from .unroll import unroll

__all__ = [
    "METRICS_COLUMNS",
    "DatasetFactory",
    "StepLog",
    "TrainResult",
    "build_training_network",
    "derive_seed",
    "learning_rate",
    "train",
]

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.csv"
METRICS_COLUMNS = ("stage", "iteration", "lr", "loss", "ce", "aux", "dice", "bootstrap", "it_per_s")
MAX_SKIP_CHANGES = (0.1, 0.3, 0.8)
"""Training progress where the video datasets' max skip changes (spec §7)."""

DatasetFactory = Callable[[str, StageConfig, TrainConfig], Dataset]
"""(stage name, its settings, the whole config) -> the stage's training dataset."""

_DATA_ORDER, _STEP_RANDOM, _LOADER = 1, 2, 3


@dataclass(frozen=True)
class StepLog:
    """One finished optimiser step: ``iteration`` steps of ``total`` done in ``stage``."""

    stage: str
    iteration: int
    total: int
    lr: float
    loss: float
    ce: float
    aux: float
    dice: float
    bootstrap: float
    it_per_s: float


@dataclass(frozen=True)
class TrainResult:
    """Where a run stopped: ``interrupted`` (Ctrl-C, checkpoint written) or finished."""

    run_dir: Path
    weights: Path
    stage: str
    iteration: int
    interrupted: bool


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, so each random stream is independent and positional."""
    return int(
        np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def learning_rate(stage: StageConfig, iteration: int) -> float:
    """lr of 0-based ``iteration``: ``lr`` x ``lr_gamma`` per passed step of ``lr_steps``."""
    passed = sum(1 for step in stage.lr_steps if iteration >= step)
    return stage.lr * stage.lr_gamma**passed


def build_training_network(config: TrainConfig) -> PropagationNetwork:
    """The configured architecture, seeded init, then ``init_checkpoint`` if any (strict)."""
    torch.manual_seed(config.seed)
    arguments = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in ARCHITECTURES[config.network].items()
    }
    network = PropagationNetwork(**arguments)
    if config.init_checkpoint:
        load_propagation_weights(network, config.init_checkpoint)
    return network


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    dataset_factory: DatasetFactory | None = None,
    on_step: Callable[[StepLog], None] | None = None,
) -> TrainResult:
    """Train the propagation network as ``config`` says, writing into ``run_dir``.

    ``resume`` continues from ``run_dir/checkpoint.pt``. ``dataset_factory`` replaces the
    datasets named in the config (tests, custom data); items follow the ``deva.train.data``
    contract. ``on_step`` is called after every step (progress bars). Ctrl-C (SIGINT) finishes
    the current step, writes a checkpoint and returns with ``interrupted=True``; a second
    Ctrl-C stops at once.
    """
    run = ensure_writable_dir(run_dir)
    checkpoint_path = run / CHECKPOINT_NAME
    state: dict[str, Any] | None = None
    if resume:
        state = load_checkpoint(checkpoint_path)
        if state["stage"] not in config.stages:
            raise DevaError(
                f"{checkpoint_path} is from stage {state['stage']}, which the config's stages "
                f"{config.stages!r} do not include"
            )
    elif checkpoint_path.exists():
        raise DevaError(
            f"{run} already holds a training run ({CHECKPOINT_NAME}); continue it with --resume "
            "or choose another output folder"
        )
    with atomic_path(run / "config.toml") as temp:
        temp.write_text(config_to_toml(config), encoding="utf-8")

    device = resolve_device(config.device)
    network = build_training_network(config)
    if state is not None:
        network.load_state_dict(state["network"])
    network.to(device).train()
    use_amp = config.amp and device.type == "cuda"
    if config.amp and not use_amp:
        log.warning("amp = true needs a CUDA device; training in fp32 on %s", device)
    factory = dataset_factory or default_datasets
    metrics = _Metrics(run, config)
    if state is not None:
        metrics.truncate(state["stage"], state["iteration"])
    stop = _StopFlag()
    architecture = ARCHITECTURES[config.network]
    stage_name, done = config.stages[0], 0
    try:
        with stop:
            for stage_name in config.stages:
                stage = config.stage(stage_name)
                start, stage_state = 0, None
                if state is not None:
                    order = config.stages.index(state["stage"])
                    if config.stages.index(stage_name) < order:
                        continue
                    if stage_name == state["stage"]:
                        start, stage_state = state["iteration"], state
                done = start
                if start >= stage.iterations:
                    continue
                trainer = _StageTrainer(
                    network, config, stage_name, stage, device, use_amp, stage_state
                )
                if stage_state is not None:
                    restore_rng_state(stage_state["rng"])
                dataset = factory(stage_name, stage, config)
                for done, parts in trainer.run(dataset, start):
                    metrics.step(parts, on_step)
                    at_end = done == stage.iterations
                    if stop.requested or (done % config.checkpoint_every == 0 and not at_end):
                        trainer.save(checkpoint_path, done)
                        export_weights(run / WEIGHTS_NAME, network, architecture)
                    if stop.requested:
                        return TrainResult(run, run / WEIGHTS_NAME, stage_name, done, True)
                trainer.save(checkpoint_path, stage.iterations)
                export_weights(run / f"stage{stage_name}.pth", network, architecture)
                done = stage.iterations
        export_weights(run / WEIGHTS_NAME, network, architecture)
        return TrainResult(run, run / WEIGHTS_NAME, stage_name, done, False)
    finally:
        metrics.close()


def default_datasets(stage_name: str, stage: StageConfig, config: TrainConfig) -> Dataset:
    """The datasets listed under ``[[stageN.data]]``, concatenated with their repeat factors."""
    from deva.train import data

    if not stage.data:
        raise DevaError(
            f"stage {stage_name} has no datasets: add [[stage{stage_name}.data]] entries with a "
            "root folder to the training config"
        )
    parts: list[Dataset] = []
    for index, entry in enumerate(stage.data):
        seed = derive_seed(config.seed, int(stage_name), index)
        common = {
            "size": stage.size,
            "num_frames": stage.num_frames,
            "max_objects": stage.max_objects,
            "seed": seed,
            "repeat": entry.repeat,
            "on_bad_file": config.on_bad_file,
        }
        if stage_name == "0":
            parts.append(data.StaticImageSequences(entry.root, **common))
        else:
            sequences = list(entry.sequences) or None
            parts.append(
                data.VideoSequences(entry.root, layout=entry.layout, sequences=sequences, **common)
            )
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


class _StageTrainer:
    """Optimiser, scaler and step function of one stage."""

    def __init__(
        self,
        network: PropagationNetwork,
        config: TrainConfig,
        stage_name: str,
        stage: StageConfig,
        device: torch.device,
        use_amp: bool,
        state: dict[str, Any] | None,
    ) -> None:
        self.network, self.config, self.device = network, config, device
        self.stage_name, self.stage, self.use_amp = stage_name, stage, use_amp
        self.optimizer = torch.optim.AdamW(
            network.parameters(), lr=stage.lr, weight_decay=config.weight_decay
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])

    def run(self, dataset: Dataset, start: int) -> Iterator[tuple[int, StepLog]]:
        """Steps ``start`` .. iterations - 1; yields (steps done, log) after each."""
        begun, first = time.perf_counter(), start
        for iteration, batch in _batches(dataset, self.stage, self.config, self.stage_name, start):
            parts = self._step(iteration, batch)
            done = iteration + 1
            rate = (done - first) / max(time.perf_counter() - begun, 1e-9)
            yield (
                done,
                StepLog(self.stage_name, done, self.stage.iterations, it_per_s=rate, **parts),
            )

    def _step(self, iteration: int, batch: dict[str, Any]) -> dict[str, float]:
        stage, config = self.stage, self.config
        lr = learning_rate(stage, iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        fraction = bootstrap_fraction(
            iteration, stage.bootstrap_start, stage.bootstrap_end, config.bootstrap_final
        )
        generator = torch.Generator().manual_seed(
            derive_seed(config.seed, int(self.stage_name), _STEP_RANDOM, iteration)
        )
        images = batch["images"].to(self.device, non_blocking=True)
        masks = batch["masks"].to(self.device, non_blocking=True)
        selector = batch["selector"].to(self.device, non_blocking=True)
        _check_batch(images, masks, selector, stage)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            out = unroll(
                self.network,
                images,
                masks,
                selector,
                num_ref_frames=stage.num_ref_frames,
                deep_update_prob=config.deep_update_prob,
                generator=generator,
            )
            parts = sequence_loss(
                out.logits,
                out.aux_logits,
                masks,
                selector,
                fraction=fraction,
                aux_weight=config.aux_weight,
            )
        if not torch.isfinite(parts.total):
            raise DevaError(
                f"training loss became {parts.total.item()} at stage {self.stage_name} "
                f"iteration {iteration} (batch {batch.get('name')}); lower lr or disable amp"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(parts.total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {
            "lr": lr,
            "loss": parts.total.item(),
            "ce": parts.ce.item(),
            "aux": parts.aux.item(),
            "dice": parts.dice.item(),
            "bootstrap": fraction,
        }

    def save(self, path: Path, done: int) -> None:
        """Full state after ``done`` steps of this stage."""
        save_checkpoint(
            path,
            {
                "stage": self.stage_name,
                "iteration": done,
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.use_amp else None,
                "rng": rng_state(),
                "data": {"next_iteration": done},  # data order is a function of it
                "config": config_to_toml(self.config),
            },
        )


def _check_batch(
    images: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor, stage: StageConfig
) -> None:
    if images.ndim != 5 or masks.ndim != 5 or selector.ndim != 2:
        raise DevaError(
            "training batches must hold images (B, T, 3, H, W), masks (B, T, N, H, W) and "
            f"selector (B, N); got {tuple(images.shape)}, {tuple(masks.shape)}, "
            f"{tuple(selector.shape)}"
        )
    if images.shape[-2] % 16 or images.shape[-1] % 16:
        raise DevaError(f"training frames must be multiples of 16; got {tuple(images.shape[-2:])}")
    if masks.shape[1] < 2:
        raise DevaError(f"training sequences need at least 2 frames; got {masks.shape[1]}")


def _epoch_order(size: int, seed: int, stage_name: str, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(
        derive_seed(seed, int(stage_name), _DATA_ORDER, epoch)
    )
    return torch.randperm(size, generator=generator).tolist()


def _skip_boundaries(iterations: int) -> list[int]:
    return sorted({math.ceil(fraction * iterations) for fraction in MAX_SKIP_CHANGES})


def _video_parts(dataset: Dataset) -> list[Any]:
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    return [part for part in parts if hasattr(part, "set_max_skip")]


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    for part in parts:
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def _batches(
    dataset: Dataset, stage: StageConfig, config: TrainConfig, stage_name: str, start: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(iteration, batch) from ``start`` on. Each epoch is a seeded permutation cut into full
    batches; a fresh loader starts at every epoch and max-skip change, so workers always see
    the current epoch and skip, and any iteration can be the first."""
    size = len(dataset)  # type: ignore[arg-type]
    per_epoch = size // stage.batch_size
    if per_epoch == 0:
        raise DevaError(
            f"stage {stage_name} has {size} training samples, fewer than batch_size "
            f"{stage.batch_size}"
        )
    videos = _video_parts(dataset)
    boundaries = _skip_boundaries(stage.iterations) if videos else []
    iteration = start
    while iteration < stage.iterations:
        epoch, offset = divmod(iteration, per_epoch)
        end = min((epoch + 1) * per_epoch, stage.iterations)
        end = min([end, *(b for b in boundaries if b > iteration)])
        order = _epoch_order(size, config.seed, stage_name, epoch)
        first = offset * stage.batch_size
        plan = [
            order[first + i * stage.batch_size : first + (i + 1) * stage.batch_size]
            for i in range(end - iteration)
        ]
        _set_epoch(dataset, epoch)
        if videos:
            from deva.train.data import max_skip_at

            for part in videos:
                part.set_max_skip(max_skip_at(iteration / stage.iterations, _base_skip(part)))
        loader = DataLoader(
            dataset,
            batch_sampler=plan,
            num_workers=config.workers,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=_worker_init if config.workers > 0 else None,
            # fork copies OpenCV's and torch's thread pools without their threads and can hang.
            multiprocessing_context="spawn" if config.workers > 0 else None,
            generator=torch.Generator().manual_seed(
                derive_seed(config.seed, int(stage_name), _LOADER, iteration)
            ),
        )
        for batch in loader:
            yield iteration, batch
            iteration += 1


def _base_skip(part: Any) -> int:
    return int(getattr(part, "max_skip_base", 5))


def _worker_init(worker_id: int) -> None:
    """One thread per loader worker (the processes already run in parallel); Ctrl-C is left to
    the main process, which finishes its step and checkpoints while workers keep serving."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


class _StopFlag:
    """While entered: the first SIGINT sets ``requested``; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C keeps its default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Metrics:
    """metrics.csv (appended and flushed every row) and TensorBoard when it imports."""

    def __init__(self, run: Path, config: TrainConfig) -> None:
        self.path, self.config = run / METRICS_NAME, config
        self._window_start: float | None = None
        self._writer = _tensorboard(run)
        self._offsets: dict[str, int] = {}
        total = 0
        for name in config.stages:
            self._offsets[name] = total
            total += config.stage(name).iterations
        new = not self.path.exists()
        self._file = self.path.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(METRICS_COLUMNS)
            self._file.flush()

    def truncate(self, stage: str, iteration: int) -> None:
        """Drop rows after (stage, iteration): a resumed run writes them again."""
        self._file.close()
        with self.path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        order = self.config.stages
        keep = [rows[0]] if rows else [list(METRICS_COLUMNS)]
        for row in rows[1:]:
            if (
                row
                and row[0] in order
                and (
                    order.index(row[0]) < order.index(stage)
                    or (row[0] == stage and int(row[1]) <= iteration)
                )
            ):
                keep.append(row)
        with atomic_path(self.path) as temp, temp.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(keep)
        self._file = self.path.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)

    def step(self, entry: StepLog, on_step: Callable[[StepLog], None] | None) -> None:
        if on_step is not None:
            on_step(entry)
        if entry.iteration % self.config.log_every and entry.iteration != entry.total:
            return
        self._csv.writerow(
            [entry.stage, entry.iteration, f"{entry.lr:.6g}", f"{entry.loss:.6f}",
             f"{entry.ce:.6f}", f"{entry.aux:.6f}", f"{entry.dice:.6f}",
             f"{entry.bootstrap:.4f}", f"{entry.it_per_s:.4f}"]
        )  # fmt: skip
        self._file.flush()
        if self._writer is not None:
            step = self._offsets.get(entry.stage, 0) + entry.iteration
            for name in ("loss", "ce", "aux", "dice", "lr", "bootstrap", "it_per_s"):
                self._writer.add_scalar(f"train/{name}", getattr(entry, name), step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def _tensorboard(run: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed (or broken): metrics.csv only
        return None
    return SummaryWriter(str(run / "tensorboard"))
