"""Fuzzing every reader of user files: each one returns a valid value or raises DevaError.

Inputs are random bytes, valid files with bytes flipped, cut or inserted, random JSON values
(biased towards the keys the readers look for) and random arrays saved as PNGs of every mode.
Any exception other than DevaError fails: it would reach the user as a traceback.

Every reader is imported at the top, never looked up at run time: a reader that moves or is
renamed breaks this module (every test errors) instead of leaving its fuzz test skipped.
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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from deva.batch import Manifest
from deva.errors import DevaError
from deva.eval.burst import evaluate_burst
from deva.eval.davis import DavisReport, evaluate_davis
from deva.eval.vipseg import _categories, _gt_videos
from deva.io.exports import read_runs
from deva.io.frames import ImageFilesSource, VideoSource, read_image
from deva.io.init_masks import InitMasks, read_mask
from deva.io.json_file import read_json
from deva.io.masks import encode_id_image, read_id_png, write_id_png
from deva.io.rle import mask_api
from deva.segmenters.precomputed import (
    PrecomputedSegmenter,
    parse_segments_info,
    read_dataset_meta,
)
from deva.tasks.burst import read_gt_sequences
from deva.tasks.dataset import Detections, open_video, video_folders
from deva.tasks.referring import (
    SoftMaskVideo,
    _listed,
    read_scores,
    read_soft_mask,
    read_video_list,
)
from deva.train.config import TrainConfig, load_config, parse_config
from deva.train.data import StaticImageSequences, VideoSequences
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
    """The reader's value, or None if it raised DevaError; anything else propagates (fails).

    ``pytest --hypothesis-show-statistics`` shows how many examples each test got through.
    """
    try:
        value = read()
    except DevaError as err:
        assert str(err).strip(), "a DevaError must say what is wrong"
        event("DevaError")
        return None
    event("read")
    return value


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
# Dataset and benchmark files: JSON, CSV, soft masks, manifests, exported runs


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
    with folder() as where:
        (where / "pred.json").write_bytes(data)
        meta = only_deva_errors(lambda: read_dataset_meta(where / "pred.json"))
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
    with folder() as where:
        (where / "scores.csv").write_bytes(data)
        scores = only_deva_errors(lambda: read_scores(where / "scores.csv"))
    if scores is not None:
        assert all(math.isfinite(v) for v in scores.values())


@FUZZ
@given(data=image_bytes())
def test_referring_soft_mask(data: bytes) -> None:
    with folder() as where:
        (where / "00000.png").write_bytes(data)
        probs = only_deva_errors(lambda: read_soft_mask(where / "00000.png"))
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
    with folder() as where:
        (where / "gt.json").write_bytes(data)
        only_deva_errors(lambda: read_gt_sequences(where / "gt.json"))


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
    with folder() as where:
        (where / "manifest.json").write_bytes(data)
        only_deva_errors(lambda: Manifest.load(where / "manifest.json"))


vipseg_segment = st.fixed_dictionaries(
    {}, optional={"id": ids, "category_id": ids, "iscrowd": st.booleans() | scalars}
)
vipseg_frame = st.fixed_dictionaries(
    {}, optional={"segments_info": st.lists(vipseg_segment | json_values, max_size=3) | scalars}
)
vipseg_gt = st.fixed_dictionaries(
    {
        "categories": st.lists(
            st.fixed_dictionaries({"id": ids, "isthing": scalars}),
            max_size=3,
        )
        | json_values,
        "videos": st.lists(
            st.fixed_dictionaries(
                {
                    "video_id": st.just("v") | scalars,
                    "images": st.lists(
                        st.fixed_dictionaries({"file_name": st.just("0.jpg") | scalars})
                        | json_values,
                        max_size=2,
                    ),
                }
            ),
            max_size=2,
        )
        | json_values,
        "annotations": st.lists(
            st.fixed_dictionaries(
                {
                    "video_id": st.just("v") | scalars,
                    "annotations": st.lists(vipseg_frame | json_values, max_size=2),
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
    with folder() as where:
        path = where / "panoptic_gt_VIPSeg_val.json"
        path.write_bytes(data)

        def read() -> tuple[dict, dict]:  # what evaluate_vipseg does with it before any PNG
            gt = read_json(path)
            return _categories(gt, path), _gt_videos(gt, path)

        read_back = only_deva_errors(read)
    if read_back is not None:
        categories, videos = read_back
        assert categories and all(isinstance(c, int) and c >= 0 for c in categories)
        for files, frames in videos.values():
            assert len(files) == len(frames)
            for info in frames:
                assert all(isinstance(s["id"], int) for s in info)


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
    mask_api("BURST fuzzing", extra="eval")  # a DevaError here: the dev install lacks it
    with folder() as where:
        (where / "gt.json").write_text(dump(gt), encoding="utf-8")
        (where / "pred.json").write_text(dump(pred), encoding="utf-8")
        only_deva_errors(lambda: evaluate_burst(where / "pred.json", where / "gt.json"))


@MANY
@given(data=st.one_of(st.binary(max_size=128), st.data()))
def test_training_config(data: Any) -> None:
    with folder() as where:
        path = where / "train.toml"
        if isinstance(data, bytes):
            path.write_bytes(data)
            only_deva_errors(lambda: load_config(path))
            return
        from dataclasses import fields

        keys = st.sampled_from([f.name for f in fields(TrainConfig)]) | st.text(max_size=4)
        stage = st.dictionaries(
            st.sampled_from(["data", "lr_steps", "iterations", "batch_size", "lr", "root"]),
            json_values,
            max_size=4,
        )
        raw = data.draw(st.dictionaries(keys, json_values | stage, max_size=4))
        only_deva_errors(lambda: parse_config(raw, source=str(path), base_dir=where))


# ---------------------------------------------------------------------------------------------
# Dataset folder layouts: DAVIS results and ground truth (deva/eval/davis.py), task datasets
# (deva/tasks/dataset.py, deva/tasks/referring.py), training data (deva/train/data.py).
# Each example is a mostly valid tree (one frame size, most files present and readable) with a
# few files missing, damaged, resized or random, so the readers get past their first checks.

FOLDERS = settings(FUZZ, max_examples=max(1, round(30 * SCALE)))  # a folder tree per example
SHAPES = ((12, 16), (6, 8), (24, 32), (12, 12))  # SHAPE, two of its aspect ratio, another
ID_VALUES = ((0, 1, 2, 255), (0, 1), (0, 255), (0, 300, 70000), (0,))


@st.composite
def id_pngs(draw: st.DrawFn, shape: tuple[int, int] | None = None) -> bytes:
    """A valid id map (DAVIS palette values, 16-bit or RGB ids) as the PNG deva writes."""
    shape = shape or draw(st.sampled_from(SHAPES))
    values = draw(st.sampled_from(ID_VALUES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    buffer = io.BytesIO()
    encode_id_image(rng.choice(values, size=shape)).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def rgb_images(draw: st.DrawFn, shape: tuple[int, int] | None = None) -> bytes:
    """A valid frame: a random-coloured image, as JPEG or PNG."""
    shape = shape or draw(st.sampled_from(SHAPES))
    colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
    buffer = io.BytesIO()
    image = Image.fromarray(np.full((*shape, 3), colour, np.uint8))
    image.save(buffer, format=draw(st.sampled_from(["JPEG", "PNG"])))
    return buffer.getvalue()


@st.composite
def slot(
    draw: st.DrawFn,
    valid: Callable[[tuple[int, int] | None], st.SearchStrategy[bytes]],
    shape: tuple[int, int],
    odds: int = 20,
) -> bytes | None:
    """One file of a layout: ``valid`` at the layout's ``shape`` but one time in ``odds`` each
    missing (None), valid at a random size, or any image bytes."""
    roll = draw(st.integers(0, odds - 1))  # small rolls (what failures shrink to): valid
    if roll == odds - 1:
        return None
    if roll == odds - 2:
        return draw(image_bytes())
    return draw(valid(None if roll == odds - 3 else shape))


def put(path: Path, data: bytes | None) -> None:
    """Write ``data`` at ``path`` (parents made); None leaves the file out."""
    if data is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def put_all(root: Path, files: dict[str, bytes | None]) -> None:
    """``put`` every ``relative path -> data`` of ``files`` under ``root``."""
    for relative, data in files.items():
        put(root / relative, data)


@st.composite
def davis_layouts(draw: st.DrawFn) -> tuple[list[bytes | None], list[bytes | None]]:
    """(gt PNGs, result PNGs) of one sequence, frame by frame."""
    shape = draw(st.sampled_from(SHAPES))
    count = draw(st.sampled_from([3, 4, 1, 2, 0]))
    gt = [draw(slot(id_pngs, shape)) for _ in range(count)]
    results = [draw(slot(id_pngs, shape)) for _ in range(count + draw(st.integers(-1, 1)))]
    return gt, results


@FOLDERS
@given(
    layout=davis_layouts(),
    in_masks=st.booleans(),
    task=st.sampled_from(["unsupervised", "semi-supervised"]),
    match=st.sampled_from([None, "identity", "hungarian", "union"]),
    sequences=st.sampled_from([None, None, None, ["seq"], ["other"]]),
)
def test_davis_results_and_ground_truth(
    layout: tuple[list[bytes | None], list[bytes | None]],
    in_masks: bool,
    task: str,
    match: str | None,
    sequences: list[str] | None,
) -> None:
    """What ``deva eval davis`` reads: Annotations/480p/<seq>/ and <results>/<seq>[/masks]/."""
    gt, results = layout
    with folder() as where:
        annotations = where / "davis" / "Annotations" / "480p" / "seq"
        annotations.mkdir(parents=True)
        for t, data in enumerate(gt):
            put(annotations / f"{t:05d}.png", data)
        seq = where / "results" / "seq" / ("masks" if in_masks else "")
        seq.mkdir(parents=True)
        for t, data in enumerate(results):
            put(seq / f"{t:05d}.png", data)

        def evaluate() -> DavisReport:
            return evaluate_davis(
                where / "results",
                where / "davis",
                task=task,  # type: ignore[arg-type]
                match=match,  # type: ignore[arg-type]
                sequences=sequences,
            )

        report = only_deva_errors(evaluate)
    if report is not None:
        assert [s.name for s in report.sequences] == ["seq"]
        for score in report.sequences[0].objects:
            assert 0 <= score.j <= 1 and 0 <= score.f <= 1
        assert "seq" in report.to_markdown()


VIDEO_DIRS = ("a", "b", "a/x", "b/y/z", ".hidden")
FRAME_NAMES = ("00000.jpg", "00001.png", "00002.JPG", "00010.jpeg", "notes.txt", ".00003.jpg")


@st.composite
def task_datasets(draw: st.DrawFn) -> dict[str, bytes | None]:
    """Relative path → contents of an images/ + dets/ tree as ``deva run-task`` reads it."""
    shape = draw(st.sampled_from(SHAPES))
    files: dict[str, bytes | None] = {}
    prefix = draw(st.sampled_from(["dets/", "dets/pan_pred/"]))
    global_meta: dict[str, list[Any]] = {}
    for video in draw(st.lists(st.sampled_from(VIDEO_DIRS), min_size=1, max_size=3, unique=True)):
        names = draw(st.lists(st.sampled_from(FRAME_NAMES), min_size=1, max_size=3, unique=True))
        for name in sorted(names):
            files[f"images/{video}/{name}"] = draw(slot(rgb_images, shape))
            stem = name.rsplit(".", 1)[0]
            files[f"{prefix}{video}/{stem}.png"] = draw(slot(id_pngs, shape))
            plain = st.just([{"id": 1, "category_id": 3}])
            meta = draw(st.one_of(st.none(), plain, plain, segment_lists()))
            files[f"{prefix}{video}/{stem}.json"] = None if meta is None else dump(meta).encode()
            global_meta.setdefault(video, []).append(meta or [])
    listing = {"annotations": [{"video_id": v, "annotations": m} for v, m in global_meta.items()]}
    choice = draw(st.sampled_from(["none", "none", "listing", "listing", "random"]))
    if choice == "listing":
        files["dets/pred.json"] = dump(listing).encode()
    elif choice == "random":
        files["dets/pred.json"] = draw(json_files())
    return files


@FOLDERS
@given(
    files=task_datasets(),
    depth=st.sampled_from([1, 1, 1, 2, 0]),
    every=st.sampled_from([1, 1, 1, 2, 0]),
    allow_missing=st.booleans(),
)
def test_task_dataset_folders(
    files: dict[str, bytes | None], depth: int, every: int, allow_missing: bool
) -> None:
    """What ``deva run-task`` reads: video folders, their frames and their detections."""
    with folder() as where:
        (where / "dets").mkdir()
        put_all(where, files)

        def read() -> list[tuple[str, int]]:
            found = Detections(where / "dets", allow_missing=allow_missing)
            done = []
            for name in video_folders(where / "images", depth):
                video = open_video(where / "images", name, every=every)
                segmenter = found.segmenter(video)
                for frame in video.frames:
                    segmentation = segmenter.segment(frame.image, frame_index=frame.index)
                    assert segmentation.shape == frame.image.shape[:2]
                    done.append((name, frame.index))
            return done

        done = only_deva_errors(read)
    if done is not None:
        assert done and not any(n.startswith(".") or "/." in n for n, _ in done)


@MANY
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.lists(
            st.sampled_from(["dog", "  camel ", "# a comment", "", "dog # again", "#", "\t"])
            | st.text(max_size=8),
            max_size=5,
        ).map(lambda lines: "\n".join(lines).encode("utf-8", errors="surrogatepass")),
    )
)
def test_referring_video_list(data: bytes) -> None:
    with folder() as where:
        (where / "valid.txt").write_bytes(data)
        names = only_deva_errors(lambda: read_video_list(where / "valid.txt"))
    if names is not None:
        assert names and len(set(names)) == len(names)
        assert all(n == n.strip() and n and "#" not in n for n in names)


@st.composite
def referring_datasets(draw: st.DrawFn) -> dict[str, bytes | None]:
    """Relative path → contents of images/ + masks/ (+ scores.csv, valid.txt) of the Ref tasks."""
    shape = draw(st.sampled_from(SHAPES))
    files: dict[str, bytes | None] = {}
    videos = draw(st.lists(st.sampled_from(["dog", "cat"]), min_size=1, max_size=2, unique=True))
    for video in videos:
        count = draw(st.integers(1, 3))
        objects = draw(st.lists(st.sampled_from(["0", "1"]), min_size=1, max_size=2, unique=True))
        rows = []
        for t in range(count):
            files[f"images/{video}/{t:05d}.jpg"] = draw(slot(rgb_images, shape))
            for obj in objects:
                soft = slot(lambda s: st.one_of(rgb_images(s), rgb_images(s), png_arrays()), shape)
                files[f"masks/{video}/{obj}/{t:05d}.png"] = draw(soft)
                rows.append(f"{t:05d}.png,{obj},{draw(st.sampled_from(['0.5', '1', '-2']))}")
        scores = draw(st.sampled_from(["all", "none", "all", "some", "bytes"]))
        if scores == "all":
            files[f"masks/{video}/scores.csv"] = "\n".join(rows).encode()
        elif scores == "some":
            kept = draw(st.lists(st.sampled_from(rows), max_size=len(rows)))
            files[f"masks/{video}/scores.csv"] = "\n".join(kept).encode()
        elif scores == "bytes":
            files[f"masks/{video}/scores.csv"] = draw(st.binary(max_size=32))
    listed = draw(
        st.one_of(
            st.none(),
            st.none(),
            st.just(videos),
            st.lists(st.sampled_from(["dog", "cat", "bird", "#", " "]), max_size=3),
        )
    )
    files["valid.txt"] = None if listed is None else "\n".join(listed).encode()
    return files


@FOLDERS
@given(files=referring_datasets())
def test_referring_dataset_folders(files: dict[str, bytes | None]) -> None:
    """What ``deva run-task ref-davis / ref-youtube`` read, up to the propagator."""
    with folder() as where:
        (where / "masks").mkdir()
        put_all(where, files)

        def read() -> None:
            masks_root = where / "masks"
            if files["valid.txt"] is None:
                names = video_folders(masks_root, depth=1)
            else:
                names = _listed(masks_root, read_video_list(where / "valid.txt"))
            for name in names:
                video = open_video(where / "images", name)
                soft = SoftMaskVideo.open(masks_root, name)
                for frame in video.frames:
                    probs = soft.masks(frame.name, soft.objects)
                    assert probs.ndim == 3 and probs.shape[0] == len(soft.objects)
                    if soft.scores is not None:
                        assert math.isfinite(soft.score(frame.name, soft.objects))

        only_deva_errors(read)


def check_training_item(item: dict[str, Any], num_frames: int, max_objects: int) -> None:
    assert item["images"].shape == (num_frames, 3, 16, 16)
    assert item["masks"].shape == (num_frames, max_objects, 16, 16)
    assert set(np.unique(item["masks"].numpy())) <= {0.0, 1.0}
    assert float(item["selector"].sum()) >= 1


@st.composite
def training_videos(draw: st.DrawFn, sub: tuple[str, ...]) -> dict[str, bytes | None]:
    """Relative path → contents of JPEGImages/ + Annotations/ (DAVIS or YouTube-VOS layout)."""
    files: dict[str, bytes | None] = {}
    for seq in draw(st.lists(st.sampled_from(["s1", "s2"]), min_size=1, max_size=2, unique=True)):
        shape = draw(st.sampled_from(SHAPES))
        for t in range(draw(st.integers(3, 6))):
            image = draw(slot(rgb_images, shape, odds=40))
            files["/".join(("JPEGImages", *sub, seq, f"{t:05d}.jpg"))] = image
            if draw(st.integers(0, 5)) != 5:  # YouTube-VOS: not every frame is annotated
                mask = draw(slot(id_pngs, shape, odds=40))
                files["/".join(("Annotations", *sub, seq, f"{t:05d}.png"))] = mask
    return files


@FOLDERS
@given(
    layout=st.sampled_from(["davis", "youtube"]).flatmap(
        lambda name: st.tuples(st.just(name), training_videos(("480p",) if name == "davis" else ()))
    ),
    num_frames=st.integers(1, 3),
    sequences=st.one_of(st.none(), st.none(), st.none(), st.lists(st.sampled_from(["s1", "s3"]))),
    on_bad_file=st.sampled_from(["skip", "stop"]),
)
def test_training_video_sequences(
    layout: tuple[str, dict[str, bytes | None]],
    num_frames: int,
    sequences: list[str] | None,
    on_bad_file: str,
) -> None:
    name, files = layout
    with folder() as where:
        put_all(where, files)

        def sample() -> dict[str, Any]:
            data = VideoSequences(
                where,
                layout=name,  # type: ignore[arg-type]
                size=16,
                num_frames=num_frames,
                max_objects=2,
                sequences=sequences,
                on_bad_file=on_bad_file,  # type: ignore[arg-type]
            )
            return data.sample(len(data) - 1, epoch=1)

        item = only_deva_errors(sample)
    if item is not None:
        check_training_item(item, num_frames, 2)


@st.composite
def static_images(draw: st.DrawFn) -> dict[str, bytes | None]:
    """images/<name>.<ext> + masks/<name>.png, or <name>.jpg next to <name>.png."""
    split = draw(st.booleans())
    files: dict[str, bytes | None] = {}
    for name in draw(st.lists(st.sampled_from(["a", "b", "sub/c"]), min_size=1, unique=True)):
        shape = draw(st.sampled_from(SHAPES))
        ext = draw(st.sampled_from([".jpg", ".jpeg", ".png"] if split else [".jpg", ".jpeg"]))
        mask = slot(lambda s: st.one_of(id_pngs(s), png_arrays()), shape)
        image_path, mask_path = (
            (f"images/{name}{ext}", f"masks/{name}.png") if split else (name + ext, name + ".png")
        )
        files[image_path] = draw(slot(rgb_images, shape))
        files[mask_path] = draw(mask)
    return files


@FOLDERS
@given(files=static_images(), on_bad_file=st.sampled_from(["skip", "stop"]))
def test_training_static_images(files: dict[str, bytes | None], on_bad_file: str) -> None:
    with folder() as where:
        put_all(where, files)

        def sample() -> dict[str, Any]:
            data = StaticImageSequences(
                where,
                size=16,
                num_frames=2,
                max_objects=2,
                on_bad_file=on_bad_file,  # type: ignore[arg-type]
            )
            return data.sample(0)

        item = only_deva_errors(sample)
    if item is not None:
        check_training_item(item, 2, 2)
