"""TrainConfig: every knob of ``deva train`` with the spec's defaults (§7), read from TOML.

A config file holds top-level settings plus one table per stage (``[stage0]`` static-image
pre-training, ``[stage3]`` video training), each with ``[[stageN.data]]`` dataset entries.
Every key is optional; a key the config does not know is an error naming it and the file.
Relative paths are taken relative to the config file. Schedule points (``lr_steps``,
``bootstrap_start`` / ``bootstrap_end``) are absolute iterations of their stage.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from deva.errors import DevaError

__all__ = [
    "ARCHITECTURES",
    "DataRoot",
    "StageConfig",
    "TrainConfig",
    "config_to_toml",
    "load_config",
    "parse_config",
]

STAGES = ("0", "3")
NETWORKS = ("full", "small", "tiny")
LAYOUTS = ("davis", "youtube")
BAD_FILE_POLICIES = ("skip", "stop")
STATIC_DATA_KEYS = ("root", "repeat")

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "full": {},
    "small": {
        "key_dim": 16,
        "value_dim": 32,
        "pix_feat_dim": 32,
        "pixel_encoder_width": 8,
        "pixel_encoder_layers": [1, 1, 1],
        "mask_encoder_width": 8,
        "mask_encoder_layers": [1, 1, 1],
        "decoder_dims": [16, 16],
    },
    "tiny": {
        "key_dim": 8,
        "value_dim": 16,
        "pix_feat_dim": 16,
        "pixel_encoder_width": 4,
        "pixel_encoder_layers": [1, 1, 1],
        "mask_encoder_width": 4,
        "mask_encoder_layers": [1, 1, 1],
        "decoder_dims": [8, 8],
    },
}
"""``network`` name -> PropagationNetwork keyword arguments ("tiny" = tiny_propagation_network;
"small": ~300k parameters, CPU-scale training such as bench/finetune.py)."""


@dataclass(frozen=True)
class DataRoot:
    """One dataset folder of a stage.

    root: the folder (stage 0: static images + masks; stage 3: a DAVIS or YouTube-VOS layout).
    repeat: oversampling factor (spec: DAVIS x5, OVIS x3, BIG/HRSOD x5).
    layout: video only, "davis" or "youtube".
    sequences: video only, the subset of sequence names to use (empty = all).
    """

    root: str
    repeat: int = 1
    layout: str = "davis"
    sequences: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    iterations: optimiser steps of this stage. batch_size: samples per step.
    lr: AdamW learning rate, multiplied by ``lr_gamma`` at each iteration in ``lr_steps``.
    num_frames: frames per training sequence; num_ref_frames: memory frames read per step once
        more than that many previous frames exist; max_objects: objects per sample (N).
    size: square crop side (a multiple of 16).
    bootstrap_start / bootstrap_end: plain cross-entropy before start, then the kept hardest
        fraction falls linearly from 1.0 to ``TrainConfig.bootstrap_final`` at end.
    """

    iterations: int
    lr: float
    num_frames: int
    num_ref_frames: int
    max_objects: int
    batch_size: int = 16
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    size: int = 384
    bootstrap_start: int = 10_000
    bootstrap_end: int = 35_000
    data: tuple[DataRoot, ...] = ()


STAGE0 = StageConfig(iterations=80_000, lr=2e-5, num_frames=3, num_ref_frames=2, max_objects=1)
STAGE3 = StageConfig(
    iterations=150_000,
    lr=1e-5,
    num_frames=8,
    num_ref_frames=3,
    max_objects=3,
    lr_steps=(120_000, 140_000),
)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    stages: which stages run, in order ("03" = static pre-training then video; weights carry
        over). network: "full" (official sizes), "small" (~300k parameters, CPU-scale runs) or
        "tiny" (fast, for tests and smoke runs).
    init_checkpoint: start from these weights (official DEVA-propagation.pth or a deva export);
        None = random init. seed: base of every random stream (data order, augmentation,
        reference frames, deep updates). device: auto | cpu | cuda.
    workers: data-loading processes. checkpoint_every: iterations between full checkpoints.
    log_every: iterations between metrics.csv / TensorBoard rows.
    amp: mixed precision on CUDA (the spec discourages it). weight_decay, clip_grad_norm: AdamW
        weight decay and gradient-norm clipping. deep_update_prob: chance of the deep sensory
        update when a frame is written to memory. aux_weight: weight of the auxiliary CE.
    bootstrap_final: hardest-pixel fraction kept after the bootstrap warm-up.
    on_bad_file: a corrupt or unusable data file is logged and skipped ("skip") or stops the
        run with an error naming it ("stop").
    """

    stages: str = "03"
    network: str = "full"
    init_checkpoint: str | None = None
    seed: int = 14159
    device: str = "auto"
    workers: int = 4
    checkpoint_every: int = 10_000
    log_every: int = 100
    amp: bool = False
    weight_decay: float = 1e-3
    clip_grad_norm: float = 3.0
    deep_update_prob: float = 0.2
    aux_weight: float = 0.1
    bootstrap_final: float = 0.3
    on_bad_file: str = "skip"
    stage0: StageConfig = field(default=STAGE0)
    stage3: StageConfig = field(default=STAGE3)

    def stage(self, name: str) -> StageConfig:
        """The settings of stage "0" or "3"."""
        return self.stage0 if name == "0" else self.stage3

    def with_iterations(self, iterations: int) -> TrainConfig:
        """Every stage set to ``iterations`` (schedule points stay absolute)."""
        if iterations <= 0:
            raise DevaError(f"--iterations must be positive, got {iterations}")
        return replace(
            self,
            stage0=replace(self.stage0, iterations=iterations),
            stage3=replace(self.stage3, iterations=iterations),
        )


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML config; a missing file, bad TOML, unknown key or bad value -> DevaError."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DevaError(f"training config not found: {source}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"cannot read training config {source}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise DevaError(f"training config {source} is not valid TOML: {err}") from None
    return parse_config(raw, source=str(source), base_dir=source.resolve().parent)


def parse_config(
    raw: Mapping[str, Any], *, source: str = "<config>", base_dir: Path | None = None
) -> TrainConfig:
    """Build and validate a TrainConfig from parsed TOML; relative paths join ``base_dir``."""
    top: dict[str, Any] = {}
    stages: dict[str, StageConfig] = {}
    known = {f.name for f in fields(TrainConfig)}
    for key, value in raw.items():
        if key not in known:
            raise DevaError(f"unknown key '{key}' in training config {source}")
        if key in ("stage0", "stage3"):
            if not isinstance(value, Mapping):
                raise DevaError(f"'{key}' in training config {source} must be a table")
            default = STAGE0 if key == "stage0" else STAGE3
            stages[key] = _parse_stage(value, default, key, source, base_dir)
        elif key == "init_checkpoint":
            text = _typed(value, str, key, source)
            top[key] = _path(text, base_dir) if text else None
        else:
            top[key] = _typed(value, type(getattr(TrainConfig, key)), key, source)
    config = TrainConfig(**top, **stages)
    _validate(config, source)
    return config


def _parse_stage(
    raw: Mapping[str, Any], default: StageConfig, name: str, source: str, base_dir: Path | None
) -> StageConfig:
    values: dict[str, Any] = {}
    known = {f.name for f in fields(StageConfig)}
    for key, value in raw.items():
        where = f"{name}.{key}"
        if key not in known:
            raise DevaError(f"unknown key '{where}' in training config {source}")
        if key == "data":
            if not isinstance(value, list):
                raise DevaError(f"'{where}' in training config {source} must be [[{where}]] tables")
            video = name == "stage3"
            values[key] = tuple(
                _parse_data(item, f"{where}[{i}]", video, source, base_dir)
                for i, item in enumerate(value)
            )
        elif key == "lr_steps":
            if not isinstance(value, list):
                raise DevaError(f"'{where}' in training config {source} must be a list")
            values[key] = tuple(_typed(v, int, where, source) for v in value)
        else:
            values[key] = _typed(value, type(getattr(default, key)), where, source)
    return replace(default, **values)


def _parse_data(
    raw: object, where: str, video: bool, source: str, base_dir: Path | None
) -> DataRoot:
    if not isinstance(raw, Mapping):
        raise DevaError(f"'{where}' in training config {source} must be a table")
    known = {f.name for f in fields(DataRoot)} if video else set(STATIC_DATA_KEYS)
    for key in raw:
        if key not in known:
            raise DevaError(f"unknown key '{where}.{key}' in training config {source}")
    if "root" not in raw:
        raise DevaError(f"'{where}' in training config {source} needs a 'root' folder")
    sequences = raw.get("sequences", [])
    if not isinstance(sequences, list):
        raise DevaError(f"'{where}.sequences' in training config {source} must be a list")
    return DataRoot(
        root=_path(_typed(raw["root"], str, f"{where}.root", source), base_dir),
        repeat=_typed(raw.get("repeat", 1), int, f"{where}.repeat", source),
        layout=_typed(raw.get("layout", "davis"), str, f"{where}.layout", source),
        sequences=tuple(_typed(s, str, f"{where}.sequences", source) for s in sequences),
    )


def _typed(value: object, kind: type, where: str, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in (str, type(None)) and isinstance(value, str):
        return value
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise DevaError(
        f"'{where}' in training config {source} must be {kind.__name__}, "
        f"got {type(value).__name__} {value!r}"
    )


def _path(text: str, base_dir: Path | None) -> str:
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return str(path)


def _validate(config: TrainConfig, source: str) -> None:
    def fail(message: str) -> None:
        raise DevaError(f"training config {source}: {message}")

    if not config.stages or any(s not in STAGES for s in config.stages):
        fail(f'stages must be made of {" and ".join(STAGES)} (e.g. "03"), got {config.stages!r}')
    if len(set(config.stages)) != len(config.stages):
        fail(f"stages lists a stage twice: {config.stages!r}")
    if config.network not in NETWORKS:
        fail(f"network must be one of {', '.join(NETWORKS)}, got {config.network!r}")
    if config.device not in ("auto", "cpu", "cuda"):
        fail(f"device must be auto, cpu or cuda, got {config.device!r}")
    if config.on_bad_file not in BAD_FILE_POLICIES:
        fail(f"on_bad_file must be skip or stop, got {config.on_bad_file!r}")
    for name in ("checkpoint_every", "log_every"):
        if getattr(config, name) <= 0:
            fail(f"{name} must be positive")
    if config.workers < 0:
        fail("workers must be >= 0")
    for name in ("deep_update_prob", "bootstrap_final"):
        if not 0 <= getattr(config, name) <= 1:
            fail(f"{name} must be in [0, 1]")
    if not (math.isfinite(config.clip_grad_norm) and config.clip_grad_norm > 0):
        fail("clip_grad_norm must be a positive number")
    for stage_name in ("0", "3"):
        stage, where = config.stage(stage_name), f"stage{stage_name}"
        for name in ("iterations", "batch_size", "num_ref_frames", "max_objects", "size"):
            if getattr(stage, name) <= 0:
                fail(f"{where}.{name} must be positive")
        if stage.num_frames < 2:
            fail(f"{where}.num_frames must be at least 2")
        if stage.size % 16:
            fail(f"{where}.size must be a multiple of 16, got {stage.size}")
        if not 0 <= stage.bootstrap_start <= stage.bootstrap_end:
            fail(f"{where}: need 0 <= bootstrap_start <= bootstrap_end")
        if list(stage.lr_steps) != sorted(stage.lr_steps):
            fail(f"{where}.lr_steps must be increasing")
        for data in stage.data:
            if data.repeat <= 0:
                fail(f"{where}.data root {data.root}: repeat must be positive")
            if data.layout not in LAYOUTS:
                fail(f"{where}.data root {data.root}: layout must be davis or youtube")


def config_to_toml(config: TrainConfig | None = None) -> str:
    """The config as TOML with a comment per key (``load_config`` reads it back unchanged)."""
    config = config or TrainConfig()
    lines = [
        "# deva train configuration (DEVA-SPEC §7 defaults). Every key is optional.",
        "# Relative paths are relative to this file; iterations in schedules are absolute.",
        "",
    ]
    notes = {
        "stages": "stages to run, in order: 0 = static images, 3 = video",
        "network": "full (official sizes) | small (~300k params, CPU-scale) | tiny (smoke tests)",
        "init_checkpoint": "weights to start from ('' = random init)",
        "device": "auto | cpu | cuda",
        "checkpoint_every": "iterations between resumable checkpoints",
        "amp": "mixed precision on CUDA (the original authors discourage it)",
        "on_bad_file": "skip (log a warning) | stop (error) on a corrupt or unusable data file",
    }
    for f in fields(TrainConfig):
        if f.name in ("stage0", "stage3"):
            continue
        value = getattr(config, f.name)
        note = f"  # {notes[f.name]}" if f.name in notes else ""
        lines.append(f"{f.name} = {_toml_value('' if value is None else value)}{note}")
    for name in ("stage0", "stage3"):
        stage: StageConfig = getattr(config, name)
        title = "static-image pre-training" if name == "stage0" else "video training"
        lines += ["", f"[{name}]  # {title}"]
        for f in fields(StageConfig):
            if f.name != "data":
                lines.append(f"{f.name} = {_toml_value(getattr(stage, f.name))}")
        for data in stage.data:
            lines += ["", f"[[{name}.data]]", f"root = {_toml_value(data.root)}"]
            lines.append(f"repeat = {data.repeat}")
            if name == "stage3":
                lines.append(f"layout = {_toml_value(data.layout)}")
                lines.append(f"sequences = {_toml_value(data.sequences)}")
        if not stage.data:
            example = _EXAMPLE_DATA[name]
            lines += ["", f"# [[{name}.data]]", *(f"# {line}" for line in example)]
    return "\n".join(lines) + "\n"


_EXAMPLE_DATA = {
    "stage0": ['root = "data/static/DUTS-TR"', "repeat = 1"],
    "stage3": [
        'root = "data/DAVIS/2017/trainval"',
        'layout = "davis"  # or "youtube"',
        "repeat = 5",
        "sequences = []  # subset of sequence names; [] = all",
    ],
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
