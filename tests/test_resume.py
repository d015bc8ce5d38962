"""Interrupted runs resume from their checkpoint to outputs identical to an uninterrupted run."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deva.api import track_to_folder
from deva.config import TrackerConfig
from deva.demo import render_demo
from deva.errors import DevaError
from deva.io.frames import open_frames
from deva.propagation.flow import FlowPropagator
from deva.propagation.network.memory import MemoryConfig
from deva.propagation.network.model import tiny_propagation_network
from deva.propagation.network.propagator import NetworkPropagator
from deva.resume import CHECKPOINT
from deva.segmenters.motion import MotionSegmenter
from deva.tracker import Tracker
from deva.types import Segmentation, SegmentInfo

CLIP = render_demo(num_frames=80, height=72, width=128)


class ShuffledTruth:
    """Stateless detections: the true objects under ids that change every frame, with scores."""

    def segment(self, image, *, frame_index, unsegmented=None) -> Segmentation:
        truth = CLIP.masks[frame_index]
        perm = np.random.default_rng(frame_index).permutation(10) + 1
        ids = np.where(truth > 0, perm[truth], 0).astype(np.int32)
        present = sorted(int(i) for i in np.unique(ids) if i)
        return Segmentation(
            ids, tuple(SegmentInfo(i, category_id=i % 3, score=0.5) for i in present)
        )


class Interrupt(Exception):
    pass


def run(
    out: Path,
    make: Callable[[], Tracker],
    *,
    stop_at: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> None:
    def stop(result) -> None:
        if stop_at is not None and result.frame_index >= stop_at:
            raise Interrupt

    frames = open_frames(list(CLIP.frames))
    with contextlib.suppress(Interrupt):
        track_to_folder(
            make(),
            frames,
            out,
            on_result=stop,
            checkpoint_every=7,
            resume=resume,
            overwrite=overwrite,
        )


def same_outputs(a: Path, b: Path) -> None:
    names = sorted(os.listdir(a / "masks"))
    assert names == sorted(os.listdir(b / "masks")) and len(names) == len(CLIP.frames)
    for name in names:
        assert filecmp.cmp(a / "masks" / name, b / "masks" / name, shallow=False), name
    assert filecmp.cmp(a / "annotations.json", b / "annotations.json", shallow=False)
    assert filecmp.cmp(a / "overlay.mp4", b / "overlay.mp4", shallow=False)
    assert not (b / CHECKPOINT).exists()


def motion_flow() -> Tracker:
    return Tracker(MotionSegmenter(), FlowPropagator(), TrackerConfig())


def truth_flow_online() -> Tracker:
    return Tracker(ShuffledTruth(), FlowPropagator(), TrackerConfig(mode="online", max_missed=1))


def truth_network() -> Tracker:
    torch.manual_seed(0)
    memory = MemoryConfig(mem_every=2, min_mid_term_frames=2, max_mid_term_frames=4)
    propagator = NetworkPropagator(tiny_propagation_network(), memory=memory)
    return Tracker(ShuffledTruth(), propagator, TrackerConfig(detect_every=4))


@pytest.mark.parametrize("make", [motion_flow, truth_flow_online, truth_network])
def test_interrupted_twice_then_resumed_equals_uninterrupted(tmp_path, make):
    run(tmp_path / "full", make)
    part = tmp_path / "part"
    run(part, make, stop_at=23)
    assert (part / CHECKPOINT).is_file() and not (part / "annotations.json").exists()
    assert not (part / "overlay.mp4").exists()
    incomplete = json.loads((part / "annotations.incomplete.json").read_text())
    assert incomplete["complete"] is False and incomplete["num_frames"] >= 20
    assert not list(part.glob(".*.partial"))  # the stream was moved, not copied
    run(part, make, stop_at=51, resume=True)
    run(part, make, resume=True)
    same_outputs(tmp_path / "full", part)


def test_resume_with_other_settings_is_refused(tmp_path):
    run(tmp_path, motion_flow, stop_at=20)

    def other() -> Tracker:
        return Tracker(MotionSegmenter(), FlowPropagator(), TrackerConfig(clip_size=2))

    with pytest.raises(DevaError, match="other settings") as refused:
        run(tmp_path, other, resume=True)
    # only the key that differs, named as its flag, with both values; not two whole configs
    assert "(--clip-size: was 3, now 2)" in str(refused.value)
    assert "detect_every" not in str(refused.value) and "{" not in str(refused.value)


def test_resume_without_checkpoint_starts_over(tmp_path, caplog):
    run(tmp_path / "part", truth_flow_online, resume=True)
    assert "starting from the first frame" in caplog.text
    run(tmp_path / "full", truth_flow_online)
    same_outputs(tmp_path / "full", tmp_path / "part")


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    run(tmp_path, motion_flow, stop_at=20)
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(DevaError, match="not a readable deva checkpoint"):
        run(tmp_path, motion_flow, resume=True)


def test_propagator_without_state_cannot_checkpoint(tmp_path):
    class Plain(FlowPropagator):
        state_dict = None  # type: ignore[assignment]

    with pytest.raises(DevaError, match="cannot be checkpointed"):
        run(tmp_path, lambda: Tracker(ShuffledTruth(), Plain(), TrackerConfig()))


def test_a_fresh_run_is_refused_or_replaces_the_previous_results(tmp_path):
    run(tmp_path, truth_flow_online)
    assert (tmp_path / "annotations.json").is_file()
    with pytest.raises(DevaError, match="already holds a finished deva run.*--overwrite"):
        run(tmp_path, truth_flow_online, stop_at=10)
    assert len(list((tmp_path / "masks").glob("*.png"))) == len(CLIP.frames)  # untouched
    run(tmp_path, truth_flow_online, stop_at=10, overwrite=True)
    assert not (tmp_path / "annotations.json").exists()  # no stale "complete" result
    assert not (tmp_path / "overlay.mp4").exists()
    assert len(list((tmp_path / "masks").glob("*.png"))) == 11  # frames 0..10, none stale


def test_cli_killed_three_times_resumes_to_identical_outputs(tmp_path):
    frames = tmp_path / "frames"
    clip = render_demo(num_frames=300, height=72, width=128)
    frames.mkdir()
    for index, image in enumerate(clip.frames):
        cv2.imwrite(str(frames / f"{index:05d}.png"), image[..., ::-1])
    base = [sys.executable, "-m", "deva.cli", "track", str(frames), "--checkpoint-every", "20"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*base, "-o", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    rng = np.random.default_rng(7)
    masks = tmp_path / "part" / "masks"

    def written() -> int:
        return len(list(masks.glob("*.png"))) if masks.is_dir() else 0

    kills = 0
    for attempt in range(3):
        # Kill after a random number of new frames, not after a random time: on a fast machine a
        # timed kill can land after the run has already finished.
        target = written() + int(rng.integers(25, 60))
        process = subprocess.Popen(
            [*base, "-o", str(tmp_path / "part"), "--resume"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # A suite run in the background ignores SIGINT, and children inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        while process.poll() is None and written() < target:
            time.sleep(0.005)
        if process.poll() is None:
            # The first interruption is Ctrl-C (finish cleanly, exit 130), the others SIGKILL.
            process.send_signal(signal.SIGINT if attempt == 0 else signal.SIGKILL)
            kills += 1
        process.wait()
        if attempt == 0:
            assert process.returncode == 130
            assert not (tmp_path / "part" / "annotations.json").exists()
            assert (tmp_path / "part" / "annotations.incomplete.json").is_file()
    result = subprocess.run(
        [*base, "-o", str(tmp_path / "part"), "--resume"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert kills == 3
    names = sorted(os.listdir(tmp_path / "full" / "masks"))
    assert len(names) == 300
    for name in names:
        assert filecmp.cmp(tmp_path / "full/masks" / name, tmp_path / "part/masks" / name, False)
    assert filecmp.cmp(
        tmp_path / "full/annotations.json", tmp_path / "part/annotations.json", False
    )
    assert filecmp.cmp(tmp_path / "full/overlay.mp4", tmp_path / "part/overlay.mp4", False)
