"""VideoWriter round trips through open_frames, atomic output, and damaged-video errors."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

import deva.io.video as video_module
from deva.errors import DevaError
from deva.io.frames import open_frames
from deva.io.video import VideoWriter


def _clip(num_frames: int = 12, height: int = 96, width: int = 128) -> list[np.ndarray]:
    """Smooth moving content: compresses well, so decoded frames stay close to the originals."""
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(num_frames):
        r = (xs * 2 + t * 6) % 256
        g = (ys * 2) % 256
        b = np.full_like(xs, 60)
        image = np.stack([r, g, b], axis=-1).astype(np.uint8)
        image[20:50, 10 + 4 * t : 40 + 4 * t] = (250, 250, 30)
        frames.append(image)
    return frames


def _write(path: Path, frames: list[np.ndarray], fps: float = 10.0, **kwargs: object) -> Path:
    with VideoWriter(path, fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_round_trip(tmp_path: Path) -> None:
    frames = _clip()
    path = _write(tmp_path / "clip.mp4", frames, fps=12.5, crf=18)
    assert _leftovers(tmp_path) == ["clip.mp4"]
    source = open_frames(path)
    assert source.num_frames == 12
    assert source.fps == pytest.approx(12.5)
    decoded = list(source)
    assert len(decoded) == 12
    assert [f.name for f in decoded[:2]] == ["00000", "00001"]
    for original, frame in zip(frames, decoded, strict=True):
        assert frame.image.shape == (96, 128, 3) and frame.image.dtype == np.uint8
        assert np.abs(frame.image.astype(int) - original).mean() < 4.0
    # The moving square is where it was written, i.e. frames are not reordered or shifted.
    assert decoded[11].image[35, 60:80, :2].mean() > 200


@pytest.mark.parametrize(
    ("name", "codec"),
    [("odd.mp4", "vp9"), ("odd.mkv", "vp9"), ("odd.mov", "h264")],
)
def test_odd_sizes_keep_their_size(tmp_path: Path, name: str, codec: str) -> None:
    frames = _clip(3, height=45, width=63)
    path = _write(tmp_path / name, frames)
    decoded = [f.image for f in open_frames(path)]
    assert len(decoded) == 3 and decoded[0].shape == (45, 63, 3)
    assert np.abs(decoded[1].astype(int) - frames[1]).mean() < 6.0
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == codec


def test_timed_frames_keep_their_times_and_the_end(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 1.2, 2.0]  # variable frame rate; the last lasts 0.25 s
    frames = _clip(len(times))
    for extension in ("mp4", "mkv"):
        path = tmp_path / f"vfr.{extension}"
        with VideoWriter(path, fps=3.5) as writer:
            for index, (image, time) in enumerate(zip(frames, times, strict=True)):
                writer.write(image, time=time, duration=0.25 if index == len(times) - 1 else None)
        with av.open(str(path)) as container:
            decoded = [f.time for f in container.decode(video=0)]
            assert decoded == pytest.approx(times, abs=1e-3)
            assert container.duration / 1e6 == pytest.approx(2.25, abs=1e-3)


def test_mkv_and_frame_objects(tmp_path: Path) -> None:
    frames = list(open_frames(_clip(4)))
    path = _write(tmp_path / "clip.mkv", frames)  # type: ignore[arg-type]
    source = open_frames(path)
    assert source.num_frames is None  # Matroska does not store a frame count
    assert len(list(source)) == 4


def test_no_file_when_block_raises(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, 10) as writer:
        for frame in _clip(3):
            writer.write(frame)
        raise RuntimeError("stop")
    assert _leftovers(tmp_path) == []


def test_no_file_when_no_frames(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "empty.mp4", 10):
        pass
    assert _leftovers(tmp_path) == []


def test_frame_size_change_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(DevaError, match="frame 1 is 64x32") as err, VideoWriter(path, 10) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
        w.write(np.zeros((32, 64, 3), np.uint8))
    assert str(path) in str(err.value)
    assert _leftovers(tmp_path) == []


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="uint8"), VideoWriter(tmp_path / "a.mp4", 10) as writer:
        writer.write(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(DevaError, match="extension"):
        VideoWriter(tmp_path / "a.xyz", 10)
    with pytest.raises(DevaError, match="frame rate"):
        VideoWriter(tmp_path / "a.mp4", 0)
    with pytest.raises(DevaError, match="not available"):
        VideoWriter(tmp_path / "a.mp4", 10, codec="no-such-codec")
    assert _leftovers(tmp_path) == []


def test_falls_back_to_mpeg4_without_libx264(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = video_module.codec_available
    monkeypatch.setattr(
        video_module, "codec_available", lambda name: name != "libx264" and real(name)
    )
    with pytest.warns(UserWarning, match="mpeg4"):
        writer = VideoWriter(tmp_path / "clip.mp4", 10)
    assert writer.codec == "mpeg4"
    frames = _clip(5)
    with writer:
        for frame in frames:
            writer.write(frame)
    decoded = list(open_frames(tmp_path / "clip.mp4"))
    assert len(decoded) == 5
    assert np.abs(decoded[2].image.astype(int) - frames[2]).mean() < 8.0


# --- damaged videos ---------------------------------------------------------------------------


def test_text_file_as_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("definitely not a video\n" * 20)
    with pytest.raises(DevaError, match="cannot open as a video") as err:
        open_frames(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_truncated_mp4(tmp_path: Path, fraction: float) -> None:
    path = _write(tmp_path / "clip.mp4", _clip(40))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    # Empty: open fails. Half: the writer puts the index first (faststart), so the file opens
    # and reading stops with an error naming the frame reached.
    with pytest.raises(DevaError) as err:
        list(open_frames(path))
    assert str(path) in str(err.value)
    if fraction == 0.5:
        assert re.search(r"at frame \d+", str(err.value))


def test_video_without_frames(tmp_path: Path) -> None:
    path = _write(tmp_path / "clip.mkv", _clip(3))
    data = path.read_bytes()
    # Keep the header and the start of the first Cluster, but no complete frame.
    first_cluster = data.index(b"\x1f\x43\xb6\x75")
    path.write_bytes(data[: first_cluster + 8])
    with pytest.raises(DevaError, match="no decodable frames") as err:
        open_frames(path)
    assert str(path) in str(err.value)
