"""Fuzzing every reader of user files: each one returns a valid value or raises DevaError.

Inputs are random bytes, valid files with bytes flipped, cut or inserted, random JSON values
(biased towards the keys the readers look for) and random arrays saved as PNGs of every mode.
Any exception other than DevaError fails: it would reach the user as a traceback.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deva.errors import DevaError
from deva.io.frames import ImageFilesSource, VideoSource, read_image
from deva.io.init_masks import InitMasks, read_mask
from deva.io.masks import read_id_png, write_id_png
from deva.segmenters.precomputed import PrecomputedSegmenter, parse_segments_info
from deva.types import Frame, Segmentation

# DEVA_FUZZ_SCALE=20 runs 20 times the examples, for a bug hunt outside the test suite.
SCALE = float(os.environ.get("DEVA_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=max(1, round(40 * SCALE)),
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=max(1, round(15 * SCALE)))  # slow inputs (videos, folders)
MANY = settings(FUZZ, max_examples=max(1, round(120 * SCALE)))  # JSON / CSV: milliseconds each
SHAPE = (12, 16)


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh folder per example (hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory(prefix="deva-fuzz-") as name:
        yield Path(name)


def only_deva_errors(read: Callable[[], Any]) -> Any:
    """The reader's value, or None if it raised DevaError; anything else propagates (fails)."""
    try:
        return read()
    except DevaError as err:
        assert str(err).strip(), "a DevaError must say what is wrong"
        return None


# ---------------------------------------------------------------------------------------------
# Strategies

MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")


@st.composite
def png_arrays(draw: st.DrawFn) -> bytes:
    """A random array saved as a PNG in a random mode and size."""
    mode = draw(st.sampled_from(MODES))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = draw(st.sampled_from([1, 3, 255, 65535]))
    values = rng.integers(0, top + 1, (height, width, 4))
    if mode == "I;16":
        image = Image.fromarray(values[..., 0].astype(np.uint16))
    elif mode == "1":
        image = Image.fromarray((values[..., 0] % 2).astype(bool))
    else:
        channels = {"L": 1, "LA": 2, "P": 1, "RGB": 3, "RGBA": 4}[mode]
        pixels = (values[..., :channels] % 256).astype(np.uint8)
        pil_mode = "L" if mode == "P" else mode
        image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=pil_mode)
        if mode == "P":
            image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@cache
def _valid_files() -> dict[str, bytes]:
    """Small valid files the mutations start from."""
    files = {}
    ids = np.zeros(SHAPE, np.int32)
    ids[2:8, 3:9] = 2
    for name, largest in (("palette", 2), ("16bit", 300)):
        buffer = io.BytesIO()
        with folder() as where:
            write_id_png(where / "x.png", np.where(ids > 0, largest, 0))
            files[name] = (where / "x.png").read_bytes()
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(np.full((*SHAPE, 3), 90, np.uint8)).save(buffer, format=fmt)
        files[fmt] = buffer.getvalue()
    return files


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` cut short, with bytes flipped, or with random bytes inserted."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "cut":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def image_bytes() -> st.SearchStrategy[bytes]:
    """Any of: random bytes, a mutated valid image, a random array as PNG."""
    bases = st.sampled_from(sorted(_valid_files().values(), key=len))
    return st.one_of(
        st.binary(max_size=512),
        bases.flatmap(mutated),
        png_arrays(),
        png_arrays().flatmap(mutated),
    )


KEYS = ("id", "category_id", "score", "isthing", "segments_info", "annotations", "video_id")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from([math.inf, -math.inf, math.nan, 1.5, -1, 0, 2**63, "2", ""])
)
ids = st.sampled_from([0, 1, 2, -1, 3, math.inf, -math.inf, math.nan, 1.5, "1", None, True])
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=24,
)


def segment_lists() -> st.SearchStrategy[Any]:
    """Mostly-plausible segment lists (so the checks past the first are reached) or anything."""
    entry = st.fixed_dictionaries(
        {},
        optional={
            "id": ids,
            "category_id": st.integers(0, 3) | scalars,
            "score": st.floats(allow_nan=True, allow_infinity=True) | scalars,
            "isthing": st.booleans() | scalars,
        },
    )
    listing = st.lists(entry | json_values, max_size=5)
    return st.one_of(listing, st.fixed_dictionaries({"segments_info": listing}), json_values)


def dump(value: Any) -> str:
    """JSON text as Python writes it: NaN / Infinity literals included, as other tools do."""
    return json.dumps(value, allow_nan=True)


# ---------------------------------------------------------------------------------------------
# Id maps: detections, init masks, results (deva/io/masks.py, deva/io/init_masks.py)


@FUZZ
@given(data=image_bytes())
def test_read_id_png(data: bytes) -> None:
    with folder() as where:
        path = where / "ids.png"
        path.write_bytes(data)
        ids = only_deva_errors(lambda: read_id_png(path))
    if ids is not None:
        assert ids.ndim == 2 and ids.dtype == np.int32 and ids.size > 0
        assert ids.min() >= 0 and ids.max() < 2**32


@FUZZ
@given(data=image_bytes())
def test_read_init_mask(data: bytes) -> None:
    with folder() as where:
        path = where / "00000.png"
        path.write_bytes(data)
        ids = only_deva_errors(lambda: read_mask(path))
        if ids is not None:
            assert ids.ndim == 2 and np.issubdtype(ids.dtype, np.integer) and ids.min() >= 0
            frame = Frame(index=0, name="00000", image=np.zeros((*ids.shape, 3), np.uint8))
            given = InitMasks(where, num_frames=1, frame_name=lambda i: f"{i:05d}")(frame)
            assert given is not None and given.shape == ids.shape


# ---------------------------------------------------------------------------------------------
# Frames (deva/io/frames.py)


@FUZZ
@given(data=image_bytes(), ext=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".webp"]))
def test_read_image(data: bytes, ext: str) -> None:
    with folder() as where:
        path = where / f"frame{ext}"
        path.write_bytes(data)
        pixels = only_deva_errors(lambda: read_image(path))
    if pixels is not None:
        assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8


names = st.binary(min_size=1, max_size=12).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..")
)


@FEW
@given(
    files=st.lists(
        st.tuples(names, st.sampled_from([b".png", b".jpg", b".txt", b""]), image_bytes()),
        max_size=4,
    )
)
def test_frame_folder(files: list[tuple[bytes, bytes, bytes]]) -> None:
    with folder() as where:
        for name, ext, data in files:
            Path(os.fsdecode(bytes(where) + b"/" + name + ext)).write_bytes(data)

        def read() -> list[Frame]:
            return list(ImageFilesSource.from_folder(where))

        frames = only_deva_errors(read)
    if frames is not None:
        assert frames and len({f.image.shape for f in frames}) == 1


@cache
def _video_bytes() -> bytes:
    from deva.io.video import VideoWriter

    with folder() as where:
        path = where / "clip.mp4"
        with VideoWriter(path, fps=8, codec="mpeg4") as writer:
            for value in range(0, 250, 60):
                writer.write(np.full((*SHAPE, 3), value, np.uint8))
        return path.read_bytes()


@FEW
@given(
    data=st.one_of(st.binary(max_size=256), st.just(0).flatmap(lambda _: mutated(_video_bytes())))
)
def test_video_file(data: bytes) -> None:
    with folder() as where:
        path = where / "clip.mp4"
        path.write_bytes(data)
        frames = only_deva_errors(lambda: list(VideoSource(path)))
    if frames is not None:
        assert all(f.image.dtype == np.uint8 and f.image.shape[2] == 3 for f in frames)


# ---------------------------------------------------------------------------------------------
# Detections: per-frame JSON, pred.json, the PNG + JSON pair (deva/segmenters/precomputed.py)


@MANY
@given(raw=segment_lists())
def test_parse_segments_info(raw: Any) -> None:
    infos = only_deva_errors(lambda: parse_segments_info(raw, Path("0.json")))
    if infos is not None:
        assert len({i.id for i in infos}) == len(infos)
        for info in infos:
            assert isinstance(info.id, int) and info.id > 0
            assert info.score is None or math.isfinite(info.score)


@MANY
@given(
    text=st.one_of(
        segment_lists().map(dump),
        st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    ),
    png=st.one_of(st.just(None), image_bytes()),
)
def test_detection_png_and_json(text: str, png: bytes | None) -> None:
    with folder() as where:
        ids = np.zeros(SHAPE, np.int32)
        ids[1:5, 1:5], ids[6:9, 6:12] = 1, 2
        write_id_png(where / "0.png", ids)
        if png is not None:
            (where / "0.png").write_bytes(png)
        (where / "0.json").write_text(text, encoding="utf-8", errors="surrogateescape")

        def segment() -> Segmentation:
            return PrecomputedSegmenter(where, frame_name=str).segment(
                np.zeros((*SHAPE, 3), np.uint8), frame_index=0
            )

        segmentation = only_deva_errors(segment)
    if segmentation is not None:
        assert segmentation.shape == SHAPE


@MANY
@given(
    pred=st.one_of(
        json_values,
        st.fixed_dictionaries({"annotations": st.lists(json_values, max_size=3)}),
        st.fixed_dictionaries(
            {
                "annotations": st.lists(
                    st.fixed_dictionaries(
                        {"video_id": st.just("video") | scalars},
                        optional={"annotations": st.lists(segment_lists(), max_size=3)},
                    ),
                    max_size=3,
                )
            }
        ),
    ),
    frame_index=st.integers(0, 2),
)
def test_pred_json(pred: Any, frame_index: int) -> None:
    with folder() as where:
        video = where / "video"
        video.mkdir()
        write_id_png(video / f"{frame_index}.png", np.ones(SHAPE, np.int32))
        (video / "pred.json").write_text(dump(pred), encoding="utf-8")

        def segment() -> Segmentation:
            segmenter = PrecomputedSegmenter(video, frame_name=str)
            return segmenter.segment(np.zeros((*SHAPE, 3), np.uint8), frame_index=frame_index)

        only_deva_errors(segment)


# ---------------------------------------------------------------------------------------------
# Readers other helpers add (fuzzed if present)


def _optional(module: str, name: str) -> Callable[..., Any]:
    imported = pytest.importorskip(module)
    if not hasattr(imported, name):
        pytest.skip(f"{module}.{name} not present")
    return getattr(imported, name)


def json_files() -> st.SearchStrategy[bytes]:
    """JSON text of random values (NaN literals included), or random / non-UTF-8 bytes."""
    return st.one_of(
        json_values.map(lambda v: dump(v).encode()),
        st.binary(max_size=64),
        st.just(b'{"a": "caf\xe9"}'),
    )


@MANY
@given(
    data=st.one_of(
        json_files(), st.builds(lambda v: dump({"annotations": v}).encode(), json_values)
    )
)
def test_dataset_pred_json(data: bytes) -> None:
    read = _optional("deva.segmenters.precomputed", "read_dataset_meta")
    with folder() as where:
        (where / "pred.json").write_bytes(data)
        meta = only_deva_errors(lambda: read(where / "pred.json"))
    if meta is not None:
        assert all(isinstance(k, str) and isinstance(v, list) for k, v in meta.items())


csv_rows = st.lists(
    st.lists(
        st.text(max_size=6) | st.floats().map(str) | st.sampled_from(["00000.png", "1"]), max_size=4
    ),
    max_size=5,
)


@MANY
@given(
    data=st.one_of(
        csv_rows.map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
        st.binary(max_size=64),
    )
)
def test_referring_scores_csv(data: bytes) -> None:
    read = _optional("deva.tasks.referring", "read_scores")
    with folder() as where:
        (where / "scores.csv").write_bytes(data)
        scores = only_deva_errors(lambda: read(where / "scores.csv"))
    if scores is not None:
        assert all(math.isfinite(v) for v in scores.values())


@FUZZ
@given(data=image_bytes())
def test_referring_soft_mask(data: bytes) -> None:
    read = _optional("deva.tasks.referring", "read_soft_mask")
    with folder() as where:
        (where / "00000.png").write_bytes(data)
        probs = only_deva_errors(lambda: read(where / "00000.png"))
    if probs is not None:
        assert probs.ndim == 2 and float(probs.min()) >= 0 and float(probs.max()) <= 1


@MANY
@given(
    data=st.one_of(
        json_files(),
        st.builds(lambda v: dump({"sequences": v}).encode(), json_values),
    )
)
def test_burst_annotation_json(data: bytes) -> None:
    read = _optional("deva.tasks.burst", "read_gt_sequences")
    with folder() as where:
        (where / "gt.json").write_bytes(data)
        only_deva_errors(lambda: read(where / "gt.json"))


@MANY
@given(
    data=st.one_of(
        json_files(),
        st.builds(
            lambda v: dump({"format": "deva-batch-manifest", "videos": v}).encode(), json_values
        ),
    )
)
def test_batch_manifest(data: bytes) -> None:
    manifest = _optional("deva.batch", "Manifest")
    with folder() as where:
        (where / "manifest.json").write_bytes(data)
        only_deva_errors(lambda: manifest.load(where / "manifest.json"))


vipseg_gt = st.fixed_dictionaries(
    {
        "categories": st.lists(
            st.fixed_dictionaries({"id": ids, "isthing": scalars}),
            max_size=3,
        )
        | json_values,
        "videos": st.lists(
            st.fixed_dictionaries(
                {"video_id": st.just("v") | scalars, "images": st.lists(json_values, max_size=2)}
            ),
            max_size=2,
        )
        | json_values,
        "annotations": st.lists(
            st.fixed_dictionaries(
                {
                    "video_id": st.just("v") | scalars,
                    "annotations": st.lists(json_values, max_size=2),
                }
            ),
            max_size=2,
        )
        | json_values,
    }
)


@MANY
@given(data=st.one_of(json_files(), vipseg_gt.map(lambda v: dump(v).encode())))
def test_vipseg_gt_json(data: bytes) -> None:
    load = _optional("deva.eval.vipseg", "_load_json")
    categories = _optional("deva.eval.vipseg", "_categories")
    videos = _optional("deva.eval.vipseg", "_gt_videos")
    with folder() as where:
        path = where / "panoptic_gt_VIPSeg_val.json"
        path.write_bytes(data)

        def read() -> None:
            gt = load(path)
            categories(gt, path)
            videos(gt, path)

        only_deva_errors(read)


@MANY
@given(
    annotations=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "frames": st.lists(
                    st.fixed_dictionaries(
                        {
                            "frame_index": ids,
                            "file_name": st.sampled_from(["0", "1", "../0", ""]) | scalars,
                            "objects": st.lists(
                                st.fixed_dictionaries(
                                    {"id": ids},
                                    optional={"category_id": ids, "score": scalars},
                                ),
                                max_size=2,
                            )
                            | scalars,
                        }
                    ),
                    max_size=3,
                )
            }
        ),
    ),
    mask=st.one_of(st.just(None), image_bytes()),
)
def test_exported_run_folder(annotations: Any, mask: bytes | None) -> None:
    read_runs = _optional("deva.io.exports", "read_runs")
    with folder() as where:
        (where / "masks").mkdir()
        for name in ("0", "1"):
            write_id_png(where / "masks" / f"{name}.png", np.ones(SHAPE, np.int32))
        if mask is not None:
            (where / "masks" / "1.png").write_bytes(mask)
        (where / "annotations.json").write_text(dump(annotations), encoding="utf-8")

        def read() -> None:
            for run in read_runs(where):
                for frame in run.frames():
                    assert frame.ids.ndim == 2

        only_deva_errors(read)


rle = st.sampled_from(["", "0", "4", "04", "<3", "1>0", "\x7f", "0;"]) | st.text(max_size=6)
burst_sequence = st.fixed_dictionaries(
    {
        "dataset": st.just("d") | scalars,
        "seq_name": st.just("s") | scalars,
        "height": st.just(2) | ids,
        "width": st.just(2) | ids,
        "annotated_image_paths": st.lists(st.sampled_from(["a.jpg", "b.jpg"]) | scalars, max_size=2)
        | scalars,
        "segmentations": st.lists(
            st.dictionaries(
                st.sampled_from(["1", "2", "x"]),
                st.fixed_dictionaries({"rle": rle | scalars}, optional={"score": scalars}),
                max_size=2,
            )
            | scalars,
            max_size=2,
        )
        | scalars,
        "track_category_ids": st.dictionaries(st.sampled_from(["1", "2"]), ids, max_size=2)
        | scalars,
    }
)


@MANY
@given(
    gt=st.one_of(
        json_values, st.fixed_dictionaries({"sequences": st.lists(burst_sequence, max_size=2)})
    ),
    pred=st.one_of(
        json_values, st.fixed_dictionaries({"sequences": st.lists(burst_sequence, max_size=2)})
    ),
)
def test_burst_results_and_ground_truth(gt: Any, pred: Any) -> None:
    evaluate = _optional("deva.eval.burst", "evaluate_burst")
    pytest.importorskip("pycocotools")
    with folder() as where:
        (where / "gt.json").write_text(dump(gt), encoding="utf-8")
        (where / "pred.json").write_text(dump(pred), encoding="utf-8")
        only_deva_errors(lambda: evaluate(where / "pred.json", where / "gt.json"))


@MANY
@given(data=st.one_of(st.binary(max_size=128), st.data()))
def test_training_config(data: Any) -> None:
    config = pytest.importorskip("deva.train.config")
    with folder() as where:
        path = where / "train.toml"
        if isinstance(data, bytes):
            path.write_bytes(data)
            only_deva_errors(lambda: config.load_config(path))
            return
        from dataclasses import fields

        keys = st.sampled_from([f.name for f in fields(config.TrainConfig)]) | st.text(max_size=4)
        stage = st.dictionaries(
            st.sampled_from(["data", "lr_steps", "iterations", "batch_size", "lr", "root"]),
            json_values,
            max_size=4,
        )
        raw = data.draw(st.dictionaries(keys, json_values | stage, max_size=4))
        only_deva_errors(lambda: config.parse_config(raw, source=str(path), base_dir=where))
