"""The web app: its settings, packaging and runs as plain functions, then the real app driven by
headless Chromium (upload a DAVIS clip, Run, wait for the overlay, download the zip)."""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app as cli_app
from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.masks import read_id_png
from deva.io.video import VideoWriter
from deva.segmenters.options import ModelOptions, tracker_defaults
from deva.web import (
    RunOutcome,
    WebInputs,
    WebSettings,
    clean_old_runs,
    package_run,
    run_job,
)

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
FRAMES = 12


def davis_frames(davis_root: Path, sequence: str, count: int) -> list[Path]:
    return sorted((davis_root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))[:count]


@pytest.fixture(scope="module")
def small_video(davis_root, tmp_path_factory) -> Path:
    """The first FRAMES frames of DAVIS camel at 428x240, as an H.264 mp4."""
    path = tmp_path_factory.mktemp("video") / "camel.mp4"
    with VideoWriter(path, fps=24) as video:
        for frame in davis_frames(davis_root, "camel", FRAMES):
            video.write(np.asarray(Image.open(frame).convert("RGB").resize((428, 240))))
    return path


def zipped(folder: Path, archive: Path, *, wrap: str | None = None) -> Path:
    """``folder``'s files in a zip, under the sub-folder ``wrap`` if given."""
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f"{wrap}/{path.name}" if wrap else path.name)
    return archive


def fake_run(folder: Path, frames: int, *, video: bool = True) -> Path:
    (folder / "masks").mkdir(parents=True)
    for i in range(frames):
        Image.new("P", (8, 6), i % 3).save(folder / "masks" / f"{i:05d}.png")
    record = {"frames": [{"frame_index": i} for i in range(frames)], "num_frames": frames}
    (folder / "annotations.json").write_text(json.dumps(record))
    if video:
        (folder / "overlay.mp4").write_bytes(b"\0" * 100)
    return folder


def check_archive(data: bytes, frames: int, *, video: bool = True) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = bundle.namelist()
        masks = sorted(n for n in names if n.startswith("masks/") and n.endswith(".png"))
        assert masks == [f"masks/{i:05d}.png" for i in range(frames)]
        assert ("overlay.mp4" in names) == video
        annotations = json.loads(bundle.read("annotations.json"))
    assert annotations["num_frames"] == frames == len(annotations["frames"])
    return annotations


# ---------------------------------------------------------------------------------------------
# Settings -> TrackerConfig


def test_default_settings_are_the_tracker_defaults():
    assert WebSettings().tracker_config() == TrackerConfig()
    assert WebSettings().model_options() == ModelOptions()


def test_settings_map_onto_tracker_config_fields():
    settings = WebSettings(
        mode="online",
        detect_every=3.0,
        clip_size=2,
        max_missed=7,
        max_objects=9,
        incremental=True,
        size=-1,
    )
    config = settings.tracker_config()
    assert config == TrackerConfig(
        mode="online",
        detect_every=3,
        clip_size=2,
        max_missed=7,
        max_objects=9,
        incremental=True,
        size=-1,
    )
    assert isinstance(config.detect_every, int)


def test_settings_map_onto_model_options():
    settings = WebSettings(
        segmentation="text", prompt=" dog.ball ", model="sam/", detector=" ", points_per_side=8.0
    )
    options = settings.model_options()
    assert (options.prompt, options.model, options.detector) == ("dog.ball", "sam/", None)
    assert options.points_per_side == 8 and isinstance(options.points_per_side, int)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"detect_every": None}, "detect every"),
        ({"detect_every": ""}, "detect every"),
        ({"clip_size": 2.5}, "clip size"),
        ({"max_missed": float("nan")}, "max missed"),
        ({"detect_every": 0}, "detect_every"),
        ({"size": 8}, "size"),
        ({"mode": "sometimes"}, "sometimes"),
    ],
)
def test_invalid_settings_name_the_field(change, needle):
    with pytest.raises(DevaError, match=needle):
        WebSettings(**change).tracker_config()


def test_invalid_points_per_side():
    with pytest.raises(DevaError, match="points per side"):
        WebSettings(points_per_side=0).model_options()


@pytest.mark.parametrize("mode", ["motion", "auto", "text", "panoptic", "precomputed", "masks"])
def test_each_mode_starts_from_the_same_defaults_as_deva_track(mode):
    config = WebSettings.for_mode(mode).tracker_config()
    expected = {**vars(TrackerConfig()), **tracker_defaults(mode)}
    assert vars(config) == expected


def test_automatic_mode_defaults_follow_the_spec_demo():
    auto = WebSettings.for_mode("auto", size=360).tracker_config()
    assert (auto.detect_every, auto.max_missed, auto.max_objects, auto.size) == (5, 5, 200, 360)


# ---------------------------------------------------------------------------------------------
# Packaging and cleaning


def test_package_run_zips_masks_annotations_and_overlay(tmp_path):
    run = fake_run(tmp_path / "out", 5)
    (run / "notes.txt").write_text("not part of the result")
    archive = package_run(run, tmp_path / "result.zip")
    check_archive(archive.read_bytes(), 5)
    assert "notes.txt" not in zipfile.ZipFile(archive).namelist()
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["result.zip"]


def test_package_run_without_overlay(tmp_path):
    run = fake_run(tmp_path / "out", 3, video=False)
    check_archive(package_run(run, tmp_path / "r.zip").read_bytes(), 3, video=False)


def test_package_run_refuses_an_unfinished_run(tmp_path):
    run = fake_run(tmp_path / "out", 3)
    (run / "annotations.json").rename(run / "annotations.incomplete.json")
    with pytest.raises(DevaError, match="did not finish"):
        package_run(run, tmp_path / "r.zip")
    assert not (tmp_path / "r.zip").exists()


def test_package_run_leaves_no_zip_when_writing_fails(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "out", 4)
    real_write = zipfile.ZipFile.write

    def failing_write(self, filename, *args, **kwargs):
        if str(filename).endswith("00002.png"):
            raise OSError("disk full")
        return real_write(self, filename, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        package_run(run, tmp_path / "r.zip")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_clean_old_runs_keeps_the_newest(tmp_path):
    for i in range(5):
        (tmp_path / f"run-{i}").mkdir()
        (tmp_path / f"run-{i}" / "x").write_text("x")
        os.utime(tmp_path / f"run-{i}", (1000 + i, 1000 + i))
    (tmp_path / "other").mkdir()
    clean_old_runs(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "run-3", "run-4"]


# ---------------------------------------------------------------------------------------------
# Runs without the browser


def test_run_with_zipped_frames_and_first_frame_masks(davis_root, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in davis_frames(davis_root, "blackswan", 8):
        shutil.copy(path, frames)
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(davis_root / "Annotations" / "480p" / "blackswan" / "00000.png", masks)
    progress: list[tuple[int, int | None]] = []
    outcome = run_job(
        WebInputs(
            frames_zip=zipped(frames, tmp_path / "swan.zip", wrap="blackswan"),
            masks_zip=zipped(masks, tmp_path / "masks.zip"),
        ),
        WebSettings(segmentation="masks", size=120),
        tmp_path / "runs",
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert isinstance(outcome, RunOutcome)
    assert progress == [(i, 8) for i in range(1, 9)]
    assert outcome.num_frames == 8 and outcome.object_ids == (1,)
    assert outcome.archive.name == "swan-deva.zip" and outcome.overlay is not None
    annotations = check_archive(outcome.archive.read_bytes(), 8)
    assert all([o["id"] for o in f["objects"]] == [1] for f in annotations["frames"])
    last = read_id_png(outcome.run_dir / "output" / "masks" / "00007.png")
    truth = read_id_png(davis_root / "Annotations" / "480p" / "blackswan" / "00007.png") > 0
    iou = ((last == 1) & truth).sum() / ((last == 1) | truth).sum()
    assert iou > 0.7


def test_run_with_a_video_and_the_default_mode(small_video, tmp_path):
    outcome = run_job(WebInputs(video=small_video), WebSettings(size=120), tmp_path / "runs")
    check_archive(outcome.archive.read_bytes(), FRAMES)
    assert "12 frames" in outcome.summary()


@pytest.mark.parametrize(
    ("inputs", "settings", "needle"),
    [
        ({}, {}, "upload a video"),
        ({"video": "v.mp4", "frames_zip": "f.zip"}, {}, "not both"),
        ({"frames_zip": "bad.zip"}, {}, "not a readable zip"),
        ({"frames_zip": "empty.zip"}, {}, "zip is empty"),
        ({"frames_zip": "f.zip"}, {"segmentation": "precomputed"}, "detections as a zip"),
        ({"frames_zip": "f.zip"}, {"segmentation": "masks"}, "zip of palette PNGs"),
        ({"frames_zip": "f.zip"}, {"segmentation": "text"}, "enter what to track"),
        ({"frames_zip": "f.zip"}, {"propagator": "network"}, "checkpoint"),
        ({"frames_zip": "f.zip"}, {"size": 3}, "size"),
    ],
)
def test_bad_requests_are_one_clear_error(tmp_path, inputs, settings, needle):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (32, 24)).save(frames / "00000.png")
    zipped(frames, tmp_path / "f.zip")
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip")
    zipfile.ZipFile(tmp_path / "empty.zip", "w").close()
    (tmp_path / "v.mp4").write_bytes(b"")
    paths = {key: tmp_path / name for key, name in inputs.items()}
    with pytest.raises(DevaError, match=needle):
        run_job(WebInputs(**paths), WebSettings(**settings), tmp_path / "runs")


def test_learned_mode_passes_the_model_fields_to_the_segmenter(small_video, tmp_path, monkeypatch):
    """The web's fields reach deva.api's learned-model factory (the models themselves are tested
    with tiny random models in their own suite); a motion segmenter stands in for speed."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("the models extra is not installed")
    from deva.models import builders
    from deva.segmenters.motion import MotionSegmenter

    built: list[tuple[str, ModelOptions]] = []

    def build(name: str, options: ModelOptions):
        built.append((name, options))
        return MotionSegmenter()

    monkeypatch.setattr(builders, "build_segmenter", build)
    settings = WebSettings.for_mode(
        "text", prompt="camel.person", model="my-sam", detector="my-dino", size=120
    )
    outcome = run_job(WebInputs(video=small_video), settings, tmp_path / "runs")
    assert outcome.num_frames == FRAMES
    [(name, options)] = built
    assert name == "text"
    assert (options.prompt, options.model, options.detector) == (
        "camel.person",
        "my-sam",
        "my-dino",
    )


def test_learned_mode_without_the_models_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "transformers" else real(n, *a)
    )
    frames = tmp_path / "f"
    frames.mkdir()
    Image.new("RGB", (32, 24)).save(frames / "0.png")
    with pytest.raises(DevaError, match=r'pip install "deva-track\[models\]"'):
        run_job(
            WebInputs(frames_zip=zipped(frames, tmp_path / "f.zip")),
            WebSettings(segmentation="auto"),
            tmp_path / "runs",
        )


def one_frame_zip(tmp_path: Path) -> Path:
    frames = tmp_path / "one-frame"
    frames.mkdir()
    Image.new("RGB", (32, 24)).save(frames / "00000.png")
    return zipped(frames, tmp_path / "one-frame.zip")


def test_errors_name_the_apps_fields_not_the_command_lines_flags(tmp_path):
    with pytest.raises(DevaError) as info:
        run_job(
            WebInputs(frames_zip=one_frame_zip(tmp_path)),
            WebSettings(propagator="network"),
            tmp_path / "runs",
        )
    assert '"Propagator weights"' in str(info.value) and "--" not in str(info.value)


def test_an_offline_hub_id_names_the_image_model_field(tmp_path, monkeypatch):
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("the models extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DevaError) as info:
        run_job(
            WebInputs(frames_zip=one_frame_zip(tmp_path)),
            WebSettings.for_mode("auto", model="nobody/no-such-sam"),
            tmp_path / "runs",
        )
    message = str(info.value)
    assert message.startswith('"Image model" (SAM)') and "'nobody/no-such-sam'" in message
    assert "--" not in message


def app_parts(tmp_path: Path):
    """The app's components by label, and the Run button's handler (no server, no browser)."""
    pytest.importorskip("gradio", reason="the web extra is not installed")
    from deva.web import build_app

    app = build_app(tmp_path / "runs")
    labels = [getattr(b, "label", None) for b in app.blocks.values()]
    [run] = [
        fn
        for fn in app.fns.values()
        if any(getattr(o, "elem_id", None) == "deva-status" for o in fn.outputs)
    ]
    return [label for label in labels if label], run


def test_field_names_in_messages_are_the_apps_labels(tmp_path):
    from deva.web import FIELD_NAMES

    labels, _ = app_parts(tmp_path)
    for name in FIELD_NAMES.values():
        assert any(label.startswith(name) for label in labels), name


def test_a_run_clears_the_last_message_before_its_progress_shows(tmp_path):
    """The Run handler's first update empties the status, overlay and download, so an old
    error does not stay on screen under the new run's progress bar."""
    _, run = app_parts(tmp_path)
    assert inspect.isgeneratorfunction(run.fn)
    values = {component: component.value for component in run.inputs}  # nothing uploaded
    updates = list(run.fn(values))
    assert updates[0] == (None, None, "")
    assert len(updates) == 2 and updates[-1][2].startswith("**Error:**")
    assert "upload a video" in updates[-1][2]


# ---------------------------------------------------------------------------------------------
# Import hygiene and the command


def test_import_deva_does_not_load_gradio():
    code = "import sys, deva, deva.cli, deva.web; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_deva_web_without_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail
    result = CliRunner().invoke(cli_app, ["web", "--port", "1"])
    assert result.exit_code == 2
    assert 'pip install "deva-track[web]"' in " ".join(result.output.split())


# ---------------------------------------------------------------------------------------------
# The real app in headless Chromium


LOADED_MACHINE_MS = 120_000
"""Upper bound of each browser wait (Playwright's default is 30 s)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas deprecations in gradio
def test_web_app_end_to_end_in_chromium(small_video, tmp_path):
    pytest.importorskip("gradio", reason="the web extra is not installed")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (make browser installs it as root)")
    from deva.web import launch_app

    app, url, _ = launch_app(tmp_path / "runs", port=free_port())
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            # Waits are upper bounds, not timings: generous so a loaded machine cannot fail them.
            page.set_default_timeout(LOADED_MACHINE_MS)
            page.goto(url)
            page.get_by_text("Propagation and tracking").click()
            max_objects = page.locator("#deva-max-objects input")
            # Choosing a mode shows its fields and applies its defaults (automatic: <= 200).
            page.get_by_label("Text prompt", exact=True).check()
            page.get_by_placeholder("person.dog.ball").wait_for(state="visible")
            page.get_by_label("Automatic (segment everything)").check()
            page.get_by_label("Points per side").wait_for(state="visible")
            page.get_by_placeholder("person.dog.ball").wait_for(state="hidden")
            page.wait_for_function(
                "() => document.querySelector('#deva-max-objects input').value === '200'"
            )
            page.get_by_label("Moving objects (no model weights)").check()
            page.get_by_label("Points per side").wait_for(state="hidden")
            assert max_objects.input_value() == "0"

            # A user error is a message in the page, not a stack trace.
            page.click("#deva-run")
            status = page.locator("#deva-status")
            status.get_by_text("upload a video").wait_for()
            assert "Error" in status.inner_text() and "Traceback" not in page.content()

            page.locator("#deva-video input[type=file]").set_input_files(small_video)
            page.wait_for_selector("#deva-video video")  # upload finished
            page.locator("#deva-size input").fill("120")
            page.click("#deva-run")
            page.wait_for_selector("#deva-overlay video[src]", timeout=3 * LOADED_MACHINE_MS)
            assert "12 frames" in status.inner_text()

            with page.expect_download() as started:
                page.locator("#deva-download a[download]").click()
            download = Path(started.value.path())
            assert started.value.suggested_filename == "camel-deva.zip"
            annotations = check_archive(download.read_bytes(), FRAMES)
            assert annotations["complete"]

            _show_last_frame(page)
            shots = [tmp_path / "web.png"]
            if os.environ.get("DEVA_ARTIFACTS"):
                shots.append(REPO / "test-artifacts" / "web.png")
            for shot in shots:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=shot, full_page=True)
            assert Image.open(shots[0]).size[0] == 1280
            browser.close()
    finally:
        app.close()


def _show_last_frame(page) -> None:
    """Seek the overlay video near its end so the screenshot shows tracked masks (best effort:
    a Chromium build without H.264 cannot decode it, which the test does not depend on)."""
    page.evaluate(
        """() => new Promise((done) => {
            const video = document.querySelector('#deva-overlay video');
            if (!video || !(video.duration > 0)) return done();
            video.addEventListener('seeked', () => done(), {once: true});
            video.currentTime = video.duration * 0.9;
            setTimeout(done, 3000);
        })"""
    )
    time.sleep(0.2)
