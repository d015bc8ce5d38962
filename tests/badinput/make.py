"""Builders of bad (and good) inputs in a test's tmp_path: nothing binary is committed."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

from deva.io.masks import davis_palette, write_id_png
from deva.io.video import VideoWriter

SHAPE = (32, 48)  # (h, w) of the generated frames: small keeps every run well under a second


def image(shape: tuple[int, int] = SHAPE, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 noise with a bright square, so the motion segmenter has work."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, (*shape, 3), dtype=np.uint8)
    pixels[4 + seed % 8 : 14 + seed % 8, 6:18] = 230
    return pixels


def frames(
    folder: Path,
    count: int = 4,
    *,
    shape: tuple[int, int] = SHAPE,
    mode: str = "RGB",
    ext: str = "png",
    names: Sequence[str | bytes] | None = None,
) -> Path:
    """``count`` frames named ``0.<ext>``, ``1.<ext>``... (or ``names``), in PIL ``mode``."""
    folder.mkdir(parents=True, exist_ok=True)
    stems = list(names) if names is not None else [str(i) for i in range(count)]
    for index, stem in enumerate(stems):
        pil = to_mode(image(shape, seed=index), mode)
        if isinstance(stem, bytes):
            path = Path(os.fsdecode(bytes(folder) + b"/" + stem + b"." + ext.encode()))
        else:
            path = folder / f"{stem}.{ext}"
        pil.save(path)
    return folder


def to_mode(pixels: np.ndarray, mode: str) -> Image.Image:
    """An RGB array as a PIL image of ``mode`` (I;16 gets the 8-bit values scaled to 16 bits)."""
    rgb = Image.fromarray(pixels)
    if mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(gray)
    if mode == "P":
        return rgb.quantize(colors=32)
    return rgb.convert(mode)


def video(
    path: Path, count: int = 8, *, shape: tuple[int, int] = SHAPE, codec: str = "mpeg4"
) -> Path:
    """A real MP4 of ``count`` frames written by deva's own writer."""
    with VideoWriter(path, fps=12, codec=codec) as writer:
        for index in range(count):
            writer.write(image(shape, seed=index))
    return path


def resizing_video(path: Path, count: int = 4) -> Path:
    """An MPEG-TS whose frames change size mid-stream: two streams of different sizes, back to
    back (MPEG-TS can be concatenated byte-wise, and decoders follow the new size)."""
    parts = []
    for shape in ((32, 48), (48, 64)):
        part = path.with_name(f"{path.stem}-{shape[1]}x{shape[0]}.ts")
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("mpeg4", rate=12)
            stream.height, stream.width = shape
            stream.pix_fmt = "yuv420p"
            for index in range(count):
                frame = av.VideoFrame.from_ndarray(image(shape, seed=index), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return path


def audio_only(path: Path) -> Path:
    """A valid WAV file: a container with an audio stream and no video stream."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = np.zeros((1, 800), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def bomb_png(path: Path, width: int = 200_000, height: int = 200_000) -> Path:
    """A PNG whose header claims a gigantic size (a decompression bomb); no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
    path.write_bytes(data + chunk(b"IEND", b""))
    return path


def box_ids(shape: tuple[int, int] = SHAPE, value: int = 1) -> np.ndarray:
    """An id map with one box of id ``value`` (where ``image`` draws its square)."""
    ids = np.zeros(shape, dtype=np.int32)
    ids[4:14, 6:18] = value
    return ids


def detections(
    folder: Path,
    count: int = 4,
    *,
    shape: tuple[int, int] = SHAPE,
    value: int = 1,
    meta: object | None = None,
) -> Path:
    """One id PNG per frame (``0.png``...) with a box of id ``value``; ``meta``, if given, is
    written as every frame's JSON (a value, dumped) or verbatim (a str)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        write_id_png(folder / f"{index}.png", box_ids(shape, value))
        if meta is not None:
            text = meta if isinstance(meta, str) else json.dumps(meta)
            (folder / f"{index}.json").write_text(text)
    return folder


def rgb_id_png(path: Path, ids: np.ndarray) -> Path:
    """Ids in the official RGB encoding: id = R + 256 G + 65536 B."""
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def davis_rgb_png(path: Path, ids: np.ndarray) -> Path:
    """A DAVIS palette mask saved as plain RGB (what many image editors do on export)."""
    Image.fromarray(davis_palette()[ids.astype(np.uint8)]).save(path)
    return path


def davis_root(root: Path, sequence: str = "seq", count: int = 3) -> Path:
    """A minimal DAVIS layout: Annotations/480p/<sequence>/0000k.png with one box object."""
    folder = root / "Annotations" / "480p" / sequence
    folder.mkdir(parents=True)
    for index in range(count):
        write_id_png(folder / f"{index:05d}.png", box_ids())
    return root


def results(root: Path, sequence: str = "seq", count: int = 3, shape=SHAPE) -> Path:
    """deva-style results for ``davis_root``: <root>/<sequence>/masks/0000k.png."""
    folder = root / sequence / "masks"
    folder.mkdir(parents=True)
    for index in range(count):
        ids = np.zeros(shape, dtype=np.int32)
        ids[: shape[0] // 2, : shape[1] // 2] = 1
        write_id_png(folder / f"{index:05d}.png", ids)
    return root
