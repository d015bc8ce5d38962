"""``deva batch`` over short real clips (video files and a frame folder) plus one corrupt video:
per-video isolation, the manifest, resuming, in-process and with Ray."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import deva
from deva.batch import MANIFEST, SUMMARY, discover_inputs, plan_jobs, run_batch
from deva.cli import app
from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.frames import read_image
from deva.io.masks import read_id_png, write_id_png
from deva.io.video import VideoWriter

runner = CliRunner()
FRAMES = 8
OPTIONS = ("--size", "120", "--no-video")
GOOD = ("blackswan", "camel", "dog")


def deva_cli(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def small_frames(davis_root: Path, sequence: str) -> list[np.ndarray]:
    paths = sorted((davis_root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[:FRAMES]
    return [cv2.resize(read_image(p), (214, 120), interpolation=cv2.INTER_AREA) for p in paths]


@pytest.fixture(scope="module")
def clips(davis_root, tmp_path_factory) -> Path:
    """blackswan.mp4, camel.mp4, dog/ (PNG frames), broken.mp4 (garbage), notes.md (ignored)."""
    folder = tmp_path_factory.mktemp("clips")
    for sequence in GOOD[:2]:
        with VideoWriter(folder / f"{sequence}.mp4", 24) as writer:
            for image in small_frames(davis_root, sequence):
                writer.write(image)
    (folder / "dog").mkdir()
    for index, image in enumerate(small_frames(davis_root, "dog")):
        cv2.imwrite(str(folder / "dog" / f"{index:05d}.png"), image[:, :, ::-1])
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (folder / "notes.md").write_text("not a video")
    return folder


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())["videos"]


def stamps(out: Path) -> dict[str, int]:
    return {name: (out / name / "annotations.json").stat().st_mtime_ns for name in GOOD}


def check_first_run(out: Path, clips: Path) -> None:
    videos = manifest(out)
    assert sorted(videos) == ["blackswan", "broken", "camel", "dog"]
    for name in GOOD:
        assert videos[name]["status"] == "ok" and videos[name]["frames"] == FRAMES
        assert len(list((out / name / "masks").glob("*.png"))) == FRAMES
    assert videos["broken"]["status"] == "failed"
    assert "broken.mp4" in videos["broken"]["reason"]
    assert videos["dog"]["input"] == str(clips / "dog")
    summary = (out / SUMMARY).read_text()
    assert "broken" in summary and "## Failures" in summary


def test_batch_in_process_isolates_failures_and_resumes(clips, tmp_path):
    out = tmp_path / "out"
    result = deva_cli("batch", clips, "-o", out, *OPTIONS)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    check_first_run(out, clips)

    # The batch's masks are those of tracking the video alone with the same options.
    alone = deva.track(str(clips / "camel.mp4"), config=TrackerConfig(size=120))
    for frame in alone:
        saved = read_id_png(out / "camel" / "masks" / f"{frame.name}.png")
        assert np.array_equal(saved, frame.ids)

    # Re-run: nothing finished is redone; the failed video is retried (and fails again).
    before = stamps(out)
    report = run_batch(clips, out, config=TrackerConfig(size=120), video=False)
    assert stamps(out) == before
    assert [v.status for v in report.videos] == ["skipped", "failed", "skipped", "skipped"]
    assert report.frames == 0 and not report.ok

    # An output that is no longer complete is redone, and only it.
    (out / "camel" / "annotations.json").unlink()
    report = run_batch(clips, out, config=TrackerConfig(size=120), video=False)
    after = stamps(out)
    assert [n for n in GOOD if after[n] != before[n]] == ["camel"]
    assert {v.name: v.status for v in report.processed} == {"broken": "failed", "camel": "ok"}
    assert manifest(out)["camel"]["status"] == "ok"


def test_batch_with_ray_workers_resumes(clips, tmp_path, monkeypatch):
    """Three batches on one real local Ray instance, started here once (start-up takes seconds)
    and used as is by each: the first run, a re-run that redoes nothing finished, and a re-run
    after one output was deleted. Tracking in this process is forbidden, so every video that
    is processed is processed by a Ray worker."""
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    from deva import batch, batch_ray  # noqa: F401 (batch_ray binds track_video before the patch)

    def in_process(*_: object, **__: object) -> None:
        raise AssertionError("a video was tracked in-process, not by a Ray worker")

    monkeypatch.setattr(batch, "track_video", in_process)  # Ray workers import their own
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        out = tmp_path / "out"
        result = deva_cli("batch", clips, "-o", out, "--workers", "2", *OPTIONS)
        assert result.exit_code == 1, result.output
        check_first_run(out, clips)
        assert (out / SUMMARY).read_text().splitlines()[4].endswith("| 2 |")  # workers column
        assert ray.is_initialized()  # an instance the batch did not start is left running

        # Re-run: nothing finished is redone; the failed video is retried (and fails again).
        options = {"workers": 2, "config": TrackerConfig(size=120), "video": False}
        before = stamps(out)
        report = run_batch(clips, out, **options)
        assert stamps(out) == before
        assert [v.status for v in report.videos] == ["skipped", "failed", "skipped", "skipped"]
        assert report.frames == 0 and not report.ok and report.workers == 2

        # An output that is no longer complete is redone, and only it.
        (out / "camel" / "annotations.json").unlink()
        report = run_batch(clips, out, **options)
        after = stamps(out)
        assert [n for n in GOOD if after[n] != before[n]] == ["camel"]
        assert {v.name: v.status for v in report.processed} == {"broken": "failed", "camel": "ok"}
        assert report.frames == FRAMES and report.workers == 2
        assert manifest(out)["camel"]["status"] == "ok"
        assert len(list((out / "camel" / "masks").glob("*.png"))) == FRAMES
    finally:
        ray.shutdown()


class FakeRef:
    """A task's result, hashable by identity like an object ref."""

    def __init__(self, value: object) -> None:
        self.value = value


class FakeRay:
    """Just enough of the Ray API for ``run_with_ray``, run synchronously in this process;
    records whether it was started and shut down."""

    class exceptions:  # noqa: N801 (ray.exceptions)
        RayError = RuntimeError

    def __init__(self, running: bool) -> None:
        self.running, self.calls = running, []

    def is_initialized(self) -> bool:
        return self.running

    def init(self, **settings: object) -> None:
        self.running = True
        self.calls.append(("init", settings["num_cpus"]))

    def shutdown(self) -> None:
        self.running = False
        self.calls.append(("shutdown",))

    def remote(self, **_: object):
        return lambda task: SimpleNamespace(remote=lambda *args: FakeRef(task(*args)))

    def wait(self, refs: list[FakeRef], num_returns: int) -> tuple[list, list]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: FakeRef) -> object:
        return ref.value


@pytest.mark.parametrize("running", [False, True])
def test_batch_shuts_down_only_the_ray_instance_it_started(
    tiny_clips, tmp_path, monkeypatch, running
):
    from deva import batch, batch_ray

    fake = FakeRay(running)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(batch_ray, "_track_in_worker", batch.track_video)  # no thread caps
    result = deva_cli("batch", tiny_clips, "-o", tmp_path / "out", "--workers", "2", *OPTIONS)
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "out")["clip"]["status"] == "ok"
    assert fake.calls == ([] if running else [("init", 2), ("shutdown",)])
    assert fake.running == running


def test_list_file_input_and_a_missing_entry(clips, tmp_path):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two clips\n{clips / 'camel.mp4'}\n\nnowhere.mp4\n")
    report = run_batch(listing, tmp_path / "out", config=TrackerConfig(size=120), video=False)
    assert [(v.name, v.status) for v in report.videos] == [("camel", "ok"), ("nowhere", "failed")]
    assert "no such file" in report.failed[0].reason
    assert report.failed[0].input == str(tmp_path / "nowhere.mp4")


def test_workers_without_ray_run_in_process_after_one_warning(tmp_path, monkeypatch, caplog):
    from deva.batch_ray import NO_RAY_WARNING
    from deva.demo import iter_demo

    videos = tmp_path / "videos"
    for name, seed in (("one", 1), ("two", 2)):
        (videos / name).mkdir(parents=True)
        for index, (image, _) in enumerate(iter_demo(4, height=64, width=96, seed=seed)):
            cv2.imwrite(str(videos / name / f"{index:05d}.png"), image[:, :, ::-1])
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        result = deva_cli("batch", videos, "-o", out, "--workers", "2", *OPTIONS)
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [NO_RAY_WARNING]
    assert 'ray is not installed (pip install "deva-track[cluster]")' in NO_RAY_WARNING
    videos_done = manifest(out)
    assert sorted(videos_done) == ["one", "two"]
    assert all(v["status"] == "ok" and v["frames"] == 4 for v in videos_done.values())
    assert (out / SUMMARY).read_text().splitlines()[4].endswith("| 1 |")  # ran in-process
    # The same manifest: a re-run (still without Ray) skips both.
    report = run_batch(videos, out, workers=2, config=TrackerConfig(size=120), video=False)
    assert [v.status for v in report.videos] == ["skipped", "skipped"]
    # A cluster address cannot be served in-process: the install hint, as before.
    result = deva_cli("batch", videos, "-o", tmp_path / "cluster", "--address", "auto", *OPTIONS)
    assert result.exit_code == 2
    assert 'pip install "deva-track[cluster]"' in result.output


def test_inputs_that_cannot_make_a_batch(clips, tmp_path):
    frames_only = clips / "dog"
    with pytest.raises(DevaError, match="frames of one video"):
        discover_inputs(frames_only, exclude=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DevaError, match="no videos found"):
        discover_inputs(tmp_path / "empty", exclude=tmp_path / "out")
    with pytest.raises(DevaError, match="both write to"):
        plan_jobs([Path("a/cam.mp4"), Path("b/cam")], tmp_path)
    with pytest.raises(DevaError, match="would overwrite"):  # -o the input folder itself
        plan_jobs([tmp_path / "cam"], tmp_path)
    with pytest.raises(DevaError, match="text file"):
        discover_inputs(clips / "camel.mp4", exclude=tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text("{not json")
    result = deva_cli("batch", clips, "-o", out, *OPTIONS)
    assert result.exit_code == 2 and "manifest.json" in result.output


def test_per_video_detections(clips, davis_root, tmp_path):
    """--detections DIR holds DIR/<video>/; a video without its sub-folder fails alone."""
    dets = tmp_path / "dets" / "camel"
    dets.mkdir(parents=True)
    gt = sorted((davis_root / "Annotations" / "480p" / "camel").glob("*.png"))[:FRAMES]
    for index, path in enumerate(gt):
        small = cv2.resize(read_id_png(path), (214, 120), interpolation=cv2.INTER_NEAREST)
        write_id_png(dets / f"{index:05d}.png", (small > 0).astype(np.int32))
    report = run_batch(
        [clips / "camel.mp4", clips / "dog"],
        tmp_path / "out",
        detections=tmp_path / "dets",
        config=TrackerConfig(size=120, mode="online"),
        video=False,
    )
    assert [(v.name, v.status) for v in report.videos] == [("camel", "ok"), ("dog", "failed")]
    assert "no detections for this video" in report.failed[0].reason
    masks = [read_id_png(p) for p in sorted((tmp_path / "out" / "camel" / "masks").glob("*.png"))]
    assert len(masks) == FRAMES and all(m.any() for m in masks)


@pytest.fixture
def tiny_clips(tmp_path) -> Path:
    """videos/clip/: four rendered 64x96 frames."""
    from deva.demo import render_demo

    folder = tmp_path / "videos" / "clip"
    folder.mkdir(parents=True)
    for index, image in enumerate(render_demo(num_frames=4, height=64, width=96).frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image[:, :, ::-1])
    return folder.parent


def test_batch_passes_the_model_options(tiny_clips, tmp_path, monkeypatch):
    from deva.models import builders
    from deva.segmenters.motion import MotionSegmenter
    from deva.segmenters.options import ModelOptions

    seen: list[tuple[str, ModelOptions]] = []

    def build(name: str, options: ModelOptions) -> MotionSegmenter:
        seen.append((name, options))
        return MotionSegmenter()

    monkeypatch.setattr(builders, "build_segmenter", build)
    knobs = ["--points-per-side", 8, "--points-per-batch", 16, "--pred-iou-threshold", 0.5]
    args = ["batch", tiny_clips, "-o", tmp_path / "out", "--workers", 1, "--segmenter", "auto"]
    result = deva_cli(*args, "--model", "me/sam", *knobs, "--suppress-small", *OPTIONS)
    assert result.exit_code == 0, result.output
    [(name, options)] = seen
    assert name == "auto" and options.model == "me/sam"
    assert (options.points_per_side, options.points_per_batch) == (8, 16)
    assert (options.pred_iou_threshold, options.suppress_small) == (0.5, True)

    seen.clear()
    args = ["batch", tiny_clips, "-o", tmp_path / "text", "--segmenter", "text", "--prompt", "a"]
    result = deva_cli(*args, "--detector", "me/dino", "--box-threshold", 0.2, *OPTIONS)
    assert result.exit_code == 0, result.output
    [(name, options)] = seen
    assert (name, options.detector, options.box_threshold) == ("text", "me/dino", 0.2)


def test_batch_model_names_the_sam2_video_model(tiny_clips, tmp_path, monkeypatch):
    from deva.models import builders
    from deva.propagation.flow import FlowPropagator

    seen: list[str | None] = []

    def build(
        family: str, model: str | None, device: str = "auto", half: bool = True
    ) -> FlowPropagator:
        seen.append(model)
        return FlowPropagator()

    monkeypatch.setattr(builders, "build_propagator", build)
    args = ["batch", tiny_clips, "-o", tmp_path / "out", "--propagator", "sam2"]
    result = deva_cli(*args, "--model", "me/sam2-video", *OPTIONS)
    assert result.exit_code == 0, result.output
    assert seen == ["me/sam2-video"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--propagator", "flow", "--precision", "bfloat16"],
            "--precision is only used by the network and appearance propagators",
        ),
        (["--points-per-side", "8"], "--points-per-side is only used by the auto segmenter"),
    ],
)
def test_batch_refuses_an_option_nothing_uses(tiny_clips, tmp_path, option, message):
    result = deva_cli("batch", tiny_clips, "-o", tmp_path / "out", *option, *OPTIONS)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any video
