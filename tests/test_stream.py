"""Live input: stream URLs served from this process (a generated MP4 file, and an endless
MPEG-TS stream encoded as it is sent) and cameras (a stand-in for OpenCV's capture, since the
test machine has none). Ctrl-C on a live stream ends it with complete outputs."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

import deva
from deva.cli import app
from deva.demo import iter_demo
from deva.errors import DevaError
from deva.io import stream
from deva.io.frames import open_frames
from deva.io.masks import read_id_png
from deva.io.video import VideoWriter

REPO = Path(__file__).resolve().parents[1]
SIZE = (96, 128)
CLIP_FRAMES = 12


def demo_frames() -> Iterator[np.ndarray]:
    """Moving textured objects, as long as asked for (the demo's motion is periodic)."""
    for frame, _ in iter_demo(10**9, *SIZE):
        yield frame


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg honours http_proxy; the servers here are local."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler] | functools.partial) -> Iterator[str]:
    """An HTTP server on a free local port in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class LiveTS(BaseHTTPRequestHandler):
    """GET /live.ts: an MPEG-TS stream encoded frame by frame as the client reads it, ending
    after ``limit`` frames (in effect never, for the default). ``sent`` counts the frames.
    With ``hold`` set, sending pauses after ``hold_at`` frames until ``hold`` is set, so a
    test can see what the client did before the stream went on, whatever the machine's load."""

    limit = 100_000
    sent = 0
    hold_at = 0
    hold: threading.Event | None = None

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        with (
            contextlib.suppress(OSError, av.error.FFmpegError, ValueError),
            av.open(self.wfile, "w", format="mpegts") as out,
        ):
            video = out.add_stream("mpeg4", rate=10)
            video.height, video.width = SIZE
            video.pix_fmt = "yuv420p"
            for index, image in enumerate(demo_frames()):
                if index >= self.limit:
                    break
                if self.hold is not None and index == self.hold_at:
                    self.hold.wait(timeout=600)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                out.mux(video.encode(frame))
                self.wfile.flush()
                type(self).sent = index + 1
            out.mux(video.encode(None))

    def log_message(self, *args: object) -> None:
        pass


def live_handler(limit: int, hold_at: int = 0, hold: threading.Event | None = None) -> type[LiveTS]:
    return type("Live", (LiveTS,), {"limit": limit, "sent": 0, "hold_at": hold_at, "hold": hold})


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    frames = iter(demo_frames())
    with VideoWriter(folder / "clip.mp4", fps=10) as video:
        for _ in range(CLIP_FRAMES):
            video.write(next(frames))
    return folder / "clip.mp4"


def track(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["track", *map(str, args)])
    return result.exit_code, result.output


def masks_of(out: Path) -> list[np.ndarray]:
    return [read_id_png(p) for p in sorted((out / "masks").glob("*.png"))]


def video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ---------------------------------------------------------------------------------------------


def test_what_counts_as_live(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in (
        "0",
        " 2 ",
        "rtsp://cam/1",
        "RTSP://cam",
        "http://h/v.mp4",
        "https://h/x",
        "udp://@:1",
    ):
        assert stream.is_live(text), text
    (tmp_path / "3").mkdir()
    for text in ("3", "video.mp4", "frames/*.jpg", "file:///x.mp4", "C:/x.mp4", "-1"):
        assert not stream.is_live(text), text


def test_passwords_stay_out_of_messages():
    assert (
        stream.redact("rtsp://admin:s3cret@10.0.0.2:554/live")
        == "rtsp://admin:***@10.0.0.2:554/live"
    )
    assert stream.redact("http://host/v.mp4") == "http://host/v.mp4"
    code, output = track("rtsp://admin:s3cret@127.0.0.1:1/live", "-o", "unused-out")
    assert code == 2 and "s3cret" not in output and "admin:***@127.0.0.1:1" in output


def test_a_video_url_gives_the_same_results_as_the_file(clip, tmp_path):
    with serve(functools.partial(QuietFiles, directory=str(clip.parent))) as base:
        code, output = track(f"{base}/clip.mp4", "-o", tmp_path / "url", "--size", -1)
    assert code == 0, output
    code, output = track(clip, "-o", tmp_path / "file", "--size", -1)
    assert code == 0, output
    from_url, from_file = masks_of(tmp_path / "url"), masks_of(tmp_path / "file")
    assert len(from_url) == CLIP_FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(from_url, from_file, strict=True))
    assert any(m.any() for m in from_url)  # the moving objects were found
    annotations = json.loads((tmp_path / "url" / "annotations.json").read_text())
    assert annotations["complete"] and annotations["num_frames"] == CLIP_FRAMES
    assert video_frames(tmp_path / "url" / "overlay.mp4") == CLIP_FRAMES


def test_results_stream_out_while_the_stream_is_still_sending(tmp_path):
    # The server pauses after 150 of its 400 frames until the results are in: without the
    # pause, a loaded machine could let it send everything first and fail the test by timing.
    hold = threading.Event()
    handler = live_handler(limit=400, hold_at=150, hold=hold)
    with serve(handler) as base:
        try:
            results = deva.track(f"{base}/live.ts")
            first = [next(results) for _ in range(3)]
            sent_then = handler.sent
        finally:
            hold.set()
        results.close()  # ends the live input
    assert [r.frame_index for r in first] == [0, 1, 2]
    assert first[0].ids.shape == SIZE
    assert sent_then <= 150 < handler.limit  # results came before the stream ended


def test_ctrl_c_ends_a_live_stream_with_complete_outputs(tmp_path):
    out = tmp_path / "live"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with serve(live_handler(limit=100_000)) as base:
        command = [sys.executable, "-m", "deva.cli", "track", f"{base}/live.ts", "-o", str(out)]
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _wait_for_masks(out / "masks", count=8, process=process)
            assert not (out / "overlay.mp4").exists()  # no overlay until the stream ends
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, stderr
    assert "Ctrl-C" in stderr and "Traceback" not in stderr
    annotations = json.loads((out / "annotations.json").read_text())
    written = len(list((out / "masks").glob("*.png")))
    assert annotations["complete"] and annotations["num_frames"] == written >= 8
    assert video_frames(out / "overlay.mp4") == written
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "masks", "overlay.mp4"]


def _wait_for_masks(folder: Path, *, count: int, process: subprocess.Popen[str]) -> None:
    """Until ``count`` masks exist (the run is streaming), or the process has ended."""
    for _ in range(3000):
        if process.poll() is not None:
            pytest.fail(f"deva track ended early: {process.communicate()[1]}")
        if folder.is_dir() and len(list(folder.glob("*.png"))) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"no {count} masks in {folder} after 5 minutes")


def test_a_live_input_cannot_be_resumed(tmp_path):
    with serve(live_handler(limit=50)) as base:
        code, output = track(f"{base}/live.ts", "-o", tmp_path / "o", "--checkpoint-every", 5)
    assert code == 2 and "live input" in output and "--checkpoint-every" in output


# ---------------------------------------------------------------------------------------------
# Cameras


class FakeCapture:
    """cv2.VideoCapture's read loop over generated BGR frames; presses Ctrl-C at one read."""

    ctrl_c_at = 5

    def __init__(self, index: int) -> None:
        self.index, self.reads, self.frames = index, 0, demo_frames()

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        if self.reads == self.ctrl_c_at:
            signal.raise_signal(signal.SIGINT)
        return True, next(self.frames)[:, :, ::-1].copy()

    def get(self, prop: int) -> float:
        return 15.0

    def release(self) -> None:
        pass


def test_a_camera_index_is_read_until_ctrl_c(monkeypatch):
    monkeypatch.setattr(stream.cv2, "VideoCapture", FakeCapture)
    before = signal.getsignal(signal.SIGINT)
    source = open_frames("0")
    assert isinstance(source, stream.CameraSource) and source.fps == 15.0
    frames = list(source)  # no KeyboardInterrupt: Ctrl-C ended the input
    assert len(frames) == FakeCapture.ctrl_c_at
    assert frames[0].image.shape == (*SIZE, 3)
    assert np.array_equal(frames[0].image, next(demo_frames()))  # BGR from OpenCV -> RGB
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(DevaError, match="only once"):
        list(source)


def test_a_second_ctrl_c_aborts():
    with stream._StopOnCtrlC("camera 0") as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def test_a_missing_camera_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = track("9", "-o", tmp_path / "o")
    assert code == 2
    assert output.count("\n") == 1 and "camera 9" in output and "./9" in output
