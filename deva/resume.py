"""Resumable runs: the whole tracking state between clips, saved atomically every N frames.

A checkpoint is taken only at a quiet point: no frame waits for a clip's consensus and every
result so far is written. It then holds everything that changes while a video is tracked:
objects, ids and votes, the propagator's memory, the segmenter's frame history and how far the
outputs got. Resuming restores it, skips the frames already written and continues, so the
outputs equal those of an uninterrupted run. The file is a pickle of our own objects: only
resume from output folders you wrote.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from deva.errors import DevaError
from deva.fusion.dormant import DormantStore
from deva.io.atomic import atomic_path, write_errors
from deva.io.run_folder import CHECKPOINT, INCOMPLETE_ANNOTATIONS
from deva.io.writer import WriterPosition
from deva.segmenters.base import SequentialSegmenter
from deva.tracker import GivenMasks, Tracker, TrackerState

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT", "RunCheckpoint", "load_checkpoint", "save_checkpoint"]
_VERSION = 1


@runtime_checkable
class Stateful(Protocol):
    """A component whose per-video state can be saved and restored (propagators, segmenters)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class RunCheckpoint:
    fingerprint: dict[str, Any]
    every: int
    tracker: dict[str, Any]
    propagator: dict[str, Any]
    segmenter: dict[str, Any] | None
    writer: WriterPosition

    @property
    def frames_seen(self) -> int:
        """Input frames consumed by the tracker (all of them written: the point is quiet)."""
        return int(self.tracker["frame_index"]) + 1


def run_fingerprint(tracker: Tracker, source: str) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "source": source,
        "config": dataclasses.asdict(tracker.config),
        "segmenter": type(tracker.segmenter).__name__,
        "propagator": type(tracker.propagator).__name__,
    }


def is_quiet(state: TrackerState) -> bool:
    """No frame of an open clip is waiting for its consensus."""
    return not state.clip


def snapshot(
    tracker: Tracker,
    state: TrackerState,
    *,
    fingerprint: dict[str, Any],
    every: int,
    writer: WriterPosition,
) -> RunCheckpoint:
    """The run's state at a quiet point."""
    if not is_quiet(state):
        raise DevaError("internal: a checkpoint needs a quiet point (no open clip)")
    return RunCheckpoint(
        fingerprint=fingerprint,
        every=every,
        tracker={
            "frame_index": state.frame_index,
            "native_size": state.native_size,
            "registry": state.registry,
            "last_ids": state.last_ids,
            "dormant": state.dormant,
        },
        propagator=_stateful(tracker.propagator, "propagator").state_dict(),
        segmenter=_segmenter_state(tracker),
        writer=writer,
    )


def restore(
    tracker: Tracker, checkpoint: RunCheckpoint, given_masks: GivenMasks | None = None
) -> TrackerState:
    """Load the checkpoint into the tracker's components; the state to continue with."""
    tracker.propagator.reset()
    _stateful(tracker.propagator, "propagator").load_state_dict(checkpoint.propagator)
    if checkpoint.segmenter is not None:
        _stateful(tracker.segmenter, "segmenter").load_state_dict(checkpoint.segmenter)
    saved = checkpoint.tracker
    return TrackerState(
        frame_index=saved["frame_index"],
        native_size=saved["native_size"],
        registry=saved["registry"],
        last_ids=saved["last_ids"],
        given_masks=given_masks,
        dormant=saved.get("dormant") or DormantStore(threshold=tracker.config.reid_threshold),
    )


def save_checkpoint(directory: Path, checkpoint: RunCheckpoint) -> None:
    """Write atomically: a kill at any moment leaves the previous checkpoint or this one."""
    payload = {"version": _VERSION}
    payload.update({f.name: getattr(checkpoint, f.name) for f in dataclasses.fields(checkpoint)})
    with write_errors(directory / CHECKPOINT), atomic_path(directory / CHECKPOINT) as temp:
        torch.save(payload, temp)


def load_checkpoint(directory: Path, fingerprint: dict[str, Any]) -> RunCheckpoint | None:
    """The folder's checkpoint, None if there is none; an error if it is from another run."""
    path = directory / CHECKPOINT
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise DevaError(f"{path}: not a readable deva checkpoint ({err}); delete it") from err
    if not isinstance(payload, dict) or payload.get("version") != _VERSION:
        raise DevaError(f"{path}: not a deva checkpoint of this version; delete it to start over")
    changed = fingerprint_changes(payload["fingerprint"], fingerprint)
    if changed:
        raise DevaError(
            f"{path} belongs to a run with other settings ({'; '.join(changed)}); rerun with "
            "the same input and options, or use --overwrite to start over"
        )
    fields = {f.name for f in dataclasses.fields(RunCheckpoint)}
    return RunCheckpoint(**{k: v for k, v in payload.items() if k in fields})


def fingerprint_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``--detect-every: was 5, now 3`` for each setting that differs (config keys one by one,
    named as flags; the input as ``input``), so a refusal names the key, not two dicts."""
    flat_saved, flat_now = _flatten(saved), _flatten(now)
    keys = sorted(set(flat_saved) | set(flat_now))
    return [
        f"{_flag(k)}: was {flat_saved.get(k)!r}, now {flat_now.get(k)!r}"
        for k in keys
        if flat_saved.get(k) != flat_now.get(k)
    ]


def _flatten(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in fingerprint.items() if k != "config"}
    flat.update(fingerprint.get("config") or {})
    return flat


def _flag(key: str) -> str:
    """The command-line name of a fingerprint key."""
    from deva.errors import flag_name

    return "input" if key == "source" else flag_name(key)


def stream_exists(directory: Path, position: WriterPosition) -> bool:
    """Whether the checkpoint's annotation stream is still there to continue: the hidden stream
    (after a kill) or annotations.incomplete.json (the stream moved there by a clean stop)."""
    return (directory / position.partial_name).is_file() or (
        directory / INCOMPLETE_ANNOTATIONS
    ).is_file()


def remove_checkpoint(directory: Path) -> None:
    (directory / CHECKPOINT).unlink(missing_ok=True)


def _stateful(component: object, role: str) -> Stateful:
    if not isinstance(component, Stateful):
        raise DevaError(
            f"the {role} {type(component).__name__} cannot be checkpointed: it needs "
            "state_dict() and load_state_dict() for --checkpoint-every / --resume"
        )
    return component


def _segmenter_state(tracker: Tracker) -> dict[str, Any] | None:
    """A segmenter's history; None for stateless (per-frame) segmenters."""
    segmenter = tracker.segmenter
    if isinstance(segmenter, Stateful):
        return segmenter.state_dict()
    if isinstance(segmenter, SequentialSegmenter):
        _stateful(segmenter, "segmenter")  # raises: it has history we cannot save
    return None
