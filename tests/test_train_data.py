"""Training datasets and loader: item contract, frame sampling, determinism, bad files."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset

from deva.errors import DevaError
from deva.io.masks import read_id_png, write_id_png
from deva.train.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    StaticImageSequences,
    VideoSequences,
    make_loader,
    max_skip_at,
    sample_frame_indices,
)

SIZE = 64
SEQS = ("blackswan", "camel")


def small_frame(davis: Path, seq: str, index: int) -> tuple[Image.Image, np.ndarray]:
    """A DAVIS frame at 1/4 size, and its object split into three ids by column thirds."""
    image = Image.open(davis / "JPEGImages" / "480p" / seq / f"{index:05d}.jpg")
    ids = read_id_png(davis / "Annotations" / "480p" / seq / f"{index:05d}.png")
    small = image.resize((image.width // 4, image.height // 4), Image.BILINEAR)
    ids = ids[::4, ::4][: small.height, : small.width]
    xs = np.nonzero(ids.any(0))[0]
    thirds = np.digitize(np.arange(ids.shape[1]), np.linspace(xs.min(), xs.max(), 4)[1:3]) + 1
    return small, np.where(ids > 0, thirds[None, :], 0).astype(np.int32)


@pytest.fixture(scope="module")
def multi_davis(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DAVIS layout, 2 sequences × 16 small frames, 3 objects each."""
    root = tmp_path_factory.mktemp("davis3")
    for seq in SEQS:
        (root / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        (root / "Annotations" / "480p" / seq).mkdir(parents=True)
        for i in range(16):
            image, ids = small_frame(davis_root, seq, i)
            image.save(root / "JPEGImages" / "480p" / seq / f"{i:05d}.jpg")
            write_id_png(root / "Annotations" / "480p" / seq / f"{i:05d}.png", ids)
    return root


@pytest.fixture(scope="module")
def youtube(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """YouTube-VOS layout: 40 frames per sequence, annotations on every 5th only."""
    root = tmp_path_factory.mktemp("ytvos")
    for seq in SEQS:
        (root / "JPEGImages" / seq).mkdir(parents=True)
        (root / "Annotations" / seq).mkdir(parents=True)
        for i in range(40):
            image, ids = small_frame(davis_root, seq, i)
            image.save(root / "JPEGImages" / seq / f"{i:05d}.jpg")
            if i % 5 == 0:
                write_id_png(root / "Annotations" / seq / f"{i:05d}.png", ids)
    return root


def make_static(davis_root: Path, root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for seq in ("blackswan", "camel", "dog"):
        image, ids = small_frame(davis_root, seq, 0)
        image.save(root / "images" / f"{seq}.jpg")
        Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8)).save(
            root / "masks" / f"{seq}.png"
        )
    return root


@pytest.fixture(scope="module")
def static(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_static(davis_root, tmp_path_factory.mktemp("static"))


def stems(name: str) -> list[int]:
    return [int(s) for s in re.search(r"frames \[([^\]]*)\]", name).group(1).split(", ")]


def check_item(item: dict, frames: int, objects: int) -> None:
    images, masks, selector = item["images"], item["masks"], item["selector"]
    assert images.shape == (frames, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert masks.shape == (frames, objects, SIZE, SIZE) and masks.dtype == torch.float32
    assert selector.shape == (objects,) and selector.dtype == torch.float32
    pixels = images * torch.tensor(IMAGENET_STD)[:, None, None]
    pixels = pixels + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert pixels.min() > -1e-4 and pixels.max() < 1 + 1e-4
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert masks.sum(1).max() <= 1  # objects never overlap
    real = int(selector.sum())
    assert real >= 1 and selector[:real].eq(1).all() and selector[real:].eq(0).all()
    assert (masks[0, :real].sum((1, 2)) > 0).all()  # every selected object is in frame 0
    assert masks[:, real:].sum() == 0  # padding channels are empty
    assert isinstance(item["name"], str)


def test_davis_layout_on_shared_clips(davis_root: Path) -> None:
    data = VideoSequences(davis_root, size=SIZE, num_frames=4, max_objects=2, seed=0)
    assert len(data) == 6 and data.max_skip == 5
    item = data[3]
    check_item(item, 4, 2)
    assert item["selector"].tolist() == [1.0, 0.0]  # DAVIS-16 has one object per clip
    picked = stems(item["name"])
    assert picked in (sorted(picked), sorted(picked, reverse=True))


def test_multi_object_items_and_random_subset(multi_davis: Path) -> None:
    data = VideoSequences(multi_davis, size=SIZE, num_frames=4, max_objects=2, seed=1)
    counts = set()
    for index in range(len(data)):
        for epoch in range(3):
            item = data.sample(index, epoch=epoch)
            check_item(item, 4, 2)
            counts.add(int(item["selector"].sum()))
    assert 2 in counts and counts <= {1, 2}  # 3 objects (fewer if cropped away), at most 2 picked
    four = VideoSequences(multi_davis, size=SIZE, num_frames=3, max_objects=4, seed=1)
    item = four[0]
    check_item(item, 3, 4)
    assert item["selector"].sum() <= 3 and item["selector"][3] == 0


def test_frame_sampling_windows() -> None:
    for seed in range(300):
        rng = np.random.default_rng(seed)
        length, count, skip = int(rng.integers(8, 40)), 8, int(rng.integers(1, 6))
        picked = sample_frame_indices(rng, length, count, skip)
        assert len(set(picked)) == count and all(0 <= p < length for p in picked)
        assert picked in (sorted(picked), sorted(picked, reverse=True))
        for p in picked:  # the union-of-windows rule: each frame is near another picked one
            assert min(abs(p - q) for q in picked if q != p) <= skip
        if skip == 1:
            assert max(picked) - min(picked) == count - 1
    directions = [
        np.sign(np.diff(sample_frame_indices(np.random.default_rng(s), 30, 4, 3))[0])
        for s in range(200)
    ]
    assert 60 < sum(d > 0 for d in directions) < 140  # time reversed about half the time


def test_dataset_sampling_respects_max_skip(multi_davis: Path) -> None:
    data = VideoSequences(multi_davis, size=SIZE, num_frames=4, max_objects=1, seed=2)
    for skip in (1, 3):
        data.set_max_skip(skip)
        for epoch in range(6):
            picked = sorted(stems(data.sample(epoch % 2, epoch=epoch)["name"]))
            assert all(min(abs(p - q) for q in picked if q != p) <= skip for p in picked)
            if skip == 1:
                assert picked == list(range(picked[0], picked[0] + 4))


def test_youtube_layout_uses_annotated_frames_only(youtube: Path) -> None:
    data = VideoSequences(youtube, layout="youtube", size=SIZE, num_frames=4, seed=0)
    assert data.max_skip_base == 1 and data.max_skip == 1 and len(data) == 2
    for epoch in range(4):
        item = data.sample(epoch % 2, epoch=epoch)
        check_item(item, 4, 3)
        picked = sorted(stems(item["name"]))
        assert all(p % 5 == 0 for p in picked)
        assert np.diff(picked).max() <= 5  # max_skip 1 annotated frame = 5 video frames
    subset = VideoSequences(
        youtube, layout="youtube", size=SIZE, num_frames=4, seed=0, sequences=["camel"], repeat=3
    )
    assert len(subset) == 3 and "camel" in subset[2]["name"]


def test_max_skip_schedule() -> None:
    assert [max_skip_at(p, 5) for p in (0.0, 0.05, 0.1, 0.29, 0.3, 0.79, 0.8, 1.0)] == [
        5,
        5,
        10,
        10,
        15,
        15,
        5,
        5,
    ]
    assert [max_skip_at(p, 1) for p in (0.0, 0.2, 0.5, 0.9)] == [1, 2, 3, 1]


def test_static_sequences(static: Path) -> None:
    data = StaticImageSequences(static, size=SIZE, seed=0, repeat=2)
    assert len(data) == 6
    for index in range(len(data)):
        item = data[index]
        check_item(item, 3, 1)
    assert data[0]["name"].startswith(str(static / "images" / "blackswan.jpg"))
    multi = StaticImageSequences(static, size=SIZE, num_frames=2, max_objects=2, seed=0)
    check_item(multi[1], 2, 2)


def test_static_flat_layout_and_id_masks(multi_davis: Path, tmp_path: Path) -> None:
    src = multi_davis / "JPEGImages" / "480p" / "camel"
    shutil.copy(src / "00003.jpg", tmp_path / "camel.jpg")
    shutil.copy(
        multi_davis / "Annotations" / "480p" / "camel" / "00003.png", tmp_path / "camel.png"
    )
    data = StaticImageSequences(tmp_path, size=SIZE, num_frames=2, max_objects=3, seed=0)
    item = data[0]
    check_item(item, 2, 3)
    assert item["selector"].sum() >= 2  # palette ids are separate objects


def test_determinism(multi_davis: Path, static: Path) -> None:
    for make in (
        lambda: VideoSequences(multi_davis, size=SIZE, num_frames=4, seed=7),
        lambda: StaticImageSequences(static, size=SIZE, seed=7),
    ):
        a, b = make(), make()
        first, again = a.sample(1, epoch=3), b.sample(1, epoch=3)
        for key in ("images", "masks", "selector"):
            assert torch.equal(first[key], again[key])
        assert first["name"] == again["name"]
        assert not torch.equal(first["images"], a.sample(1, epoch=4)["images"])
        b.set_epoch(3)
        assert torch.equal(b[1]["images"], first["images"])


def test_bad_files_are_skipped_with_a_warning_or_stop(
    davis_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_static(davis_root, tmp_path / "static")
    corrupt = root / "images" / "camel.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:300])
    wrong = root / "masks" / "dog.png"
    Image.open(wrong).resize((20, 10)).save(wrong)
    data = StaticImageSequences(root, size=SIZE, seed=0)
    with caplog.at_level(logging.WARNING, logger="deva.train.data"):
        items = [data[i] for i in range(len(data))]
    assert all(item["name"].startswith(str(root / "images" / "blackswan.jpg")) for item in items)
    assert str(corrupt) in caplog.text and str(wrong) in caplog.text
    stop = StaticImageSequences(root, size=SIZE, seed=0, on_bad_file="stop")
    with pytest.raises(DevaError, match=re.escape(str(corrupt))):
        stop[1]
    with pytest.raises(DevaError, match=re.escape(str(wrong))):
        stop[2]


def test_bad_video_frames_and_folders(
    multi_davis: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "davis"
    shutil.copytree(multi_davis, root)
    for frame in (root / "JPEGImages" / "480p" / "camel").glob("*.jpg"):
        frame.write_bytes(b"not a jpeg")
    (root / "JPEGImages" / "480p" / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="deva.train.data"):
        data = VideoSequences(root, size=SIZE, num_frames=4, seed=0)
        assert "camel" not in data[1]["name"]
    assert "empty" in caplog.text and "camel" in caplog.text
    with pytest.raises(DevaError, match="empty"):
        VideoSequences(root, size=SIZE, num_frames=4, seed=0, on_bad_file="stop")
    stop = VideoSequences(
        root, size=SIZE, num_frames=4, seed=0, on_bad_file="stop", sequences=["blackswan", "camel"]
    )
    with pytest.raises(DevaError, match="camel"):
        stop[1]


def test_unusable_roots_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(DevaError, match="not found"):
        VideoSequences(tmp_path / "missing")
    with pytest.raises(DevaError, match="JPEGImages"):
        VideoSequences(tmp_path)
    with pytest.raises(DevaError, match="no image/mask pairs"):
        StaticImageSequences(tmp_path)


def test_loader_is_the_same_with_and_without_workers(multi_davis: Path) -> None:
    data = VideoSequences(multi_davis, size=SIZE, num_frames=3, max_objects=2, seed=4, repeat=2)
    batches = []
    for workers in (0, 1):
        loader = make_loader(data, batch_size=2, workers=workers, seed=9)
        batches.append(next(iter(loader)))
        del loader
    a, b = batches
    assert a["images"].shape == (2, 3, 3, SIZE, SIZE) and a["selector"].shape == (2, 2)
    for key in ("images", "masks", "selector"):
        assert torch.equal(a[key], b[key])
    assert a["name"] == b["name"]


def test_loader_epochs_resume_and_concat(multi_davis: Path, youtube: Path) -> None:
    davis = VideoSequences(multi_davis, size=SIZE, num_frames=3, max_objects=2, seed=4)
    yt = VideoSequences(youtube, layout="youtube", size=SIZE, num_frames=3, max_objects=2, seed=4)
    both = ConcatDataset([davis, yt])
    loader = make_loader(both, batch_size=2, workers=0, seed=3)
    assert len(loader) == 2
    first = [batch["name"] for batch in loader]
    second = [batch["name"] for batch in loader]
    assert loader.sampler.epoch == 1
    names = sum(first, [])
    assert sum("ytvos" in n for n in names) == 2 and len(set(names)) == 4
    assert first != second  # a new epoch: new order or new frames
    resumed = make_loader(both, batch_size=2, workers=0, seed=3, start_iteration=3)
    assert [batch["name"] for batch in resumed] == second[1:]
    yt.set_max_skip(2)
    wide = make_loader(yt, batch_size=2, workers=0, seed=3)
    picked = [sorted(stems(n)) for batch in wide for n in batch["name"]]
    assert all(np.diff(p).max() <= 10 for p in picked)
