"""Training data of spec §7: static images as synthetic clips (stage 0) and videos (stage 3).

Every item is a dict (the contract the trainer codes against):

* ``images``: (T, 3, H, W) float32, ImageNet-normalised;
* ``masks``: (T, N, H, W) float32 in {0, 1}, one channel per object, never overlapping,
  N = ``max_objects`` (padding channels all zero);
* ``selector``: (N,) float32, 1 for real objects (at least one), 0 for padding;
* ``name``: the source image or video and the frame indices, for logs and errors.

Determinism: ``dataset.sample(index, epoch=e, max_skip=m)`` draws everything from
``numpy.random.default_rng((seed, index, e))``, so a sample depends on nothing else. Plain
``dataset[index]`` uses the dataset's own ``epoch`` (``set_epoch``) and ``max_skip``
(``set_max_skip``). ``make_loader`` does not rely on those attributes reaching worker processes:
its sampler, which runs in the main process, stamps every index with the epoch it belongs to and
the dataset's ``max_skip`` at the time the index is handed out, so persistent workers see updates
and a loader restarted with ``start_iteration=k`` yields exactly the batches from iteration k on.

Files are listed and paired when a dataset is built; pixels are decoded lazily per sample.
"""

from __future__ import annotations

import bisect
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from deva.errors import DevaError
from deva.io.frames import natural_sort_key, read_image
from deva.io.masks import read_id_png
from deva.train.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Frames,
    normalise,
    static_sequence,
    video_sequence,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SampleKey",
    "StaticImageSequences",
    "VideoSequences",
    "make_loader",
    "max_skip_at",
    "sample_frame_indices",
]

log = logging.getLogger(__name__)

OnBadFile = Literal["skip", "stop"]
Item = dict[str, Any]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FIRST_FRAME_TRIES = 5  # spec §7: retry up to 5× if the first frame shows no object
MAX_REDRAWS = 100  # other samples tried in place of an unusable one before giving up


class SampleKey(NamedTuple):
    """What ``make_loader``'s sampler hands a worker: the index and the state it was drawn in."""

    index: int
    epoch: int
    max_skip: int | None = None


def max_skip_at(progress: float, base: int = 5) -> int:
    """Spec §7 max-skip schedule at ``progress`` (fraction of iterations done): ``base`` at the
    start, 2× from 10 %, 3× from 30 %, back to ``base`` from 80 %. DAVIS uses base 5; YouTube-VOS
    (annotations every 5th frame) base 1, i.e. skip // 5 in annotated frames."""
    if progress < 0.1 or progress >= 0.8:
        return base
    return 2 * base if progress < 0.3 else 3 * base


def sample_frame_indices(
    rng: np.random.Generator, length: int, count: int, max_skip: int
) -> list[int]:
    """Spec §7 frame sampling: a random first frame, then each next frame uniformly from the union
    of ±``max_skip`` windows around the frames picked so far; sorted, reversed with p = 0.5."""
    if length < count:
        raise ValueError(f"cannot pick {count} frames from {length}")
    max_skip = max(1, int(max_skip))
    picked = [int(rng.integers(length))]
    allowed: set[int] = set()
    while len(picked) < count:
        last = picked[-1]
        allowed.update(range(max(0, last - max_skip), min(length, last + max_skip + 1)))
        allowed.difference_update(picked)
        picked.append(int(rng.choice(sorted(allowed))))
    picked.sort()
    if rng.random() < 0.5:
        picked.reverse()
    return picked


class _BadFile(DevaError):
    """A file a sample needs cannot be used; ``path`` names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class _TrainingDataset(Dataset[Item], ABC):
    """Shared machinery: seeding, epoch / max-skip state, and skipping bad files."""

    root: Path
    max_skip: int | None = None

    def __init__(
        self,
        root: str | Path,
        *,
        size: int,
        num_frames: int,
        max_objects: int,
        seed: int,
        repeat: int,
        on_bad_file: OnBadFile,
    ) -> None:
        if on_bad_file not in ("skip", "stop"):
            raise DevaError(f"on_bad_file must be 'skip' or 'stop', got {on_bad_file!r}")
        for name, value in (
            ("size", size),
            ("num_frames", num_frames),
            ("max_objects", max_objects),
            ("repeat", repeat),
        ):
            if int(value) < 1:
                raise DevaError(f"{name} must be at least 1, got {value}")
        if int(seed) < 0:
            raise DevaError(f"seed must be non-negative, got {seed}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DevaError(f"{self.root}: training data folder not found")
        self.size, self.num_frames, self.max_objects = int(size), int(num_frames), int(max_objects)
        self.seed, self.repeat, self.on_bad_file = int(seed), int(repeat), on_bad_file
        self.epoch = 0
        self._reported: set[Path] = set()

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _build(self, index: int, rng: np.random.Generator, max_skip: int | None) -> Item | None:
        """The item for ``index`` (already reduced modulo the unique count), None if no try gave
        an object in the first frame; raises ``_BadFile``."""

    def __len__(self) -> int:
        return self._count() * self.repeat

    def set_epoch(self, epoch: int) -> None:
        """The epoch plain ``dataset[index]`` uses (``make_loader`` passes it with each index)."""
        self.epoch = int(epoch)

    def __getitem__(self, key: int | SampleKey) -> Item:
        if isinstance(key, tuple):
            key = SampleKey(*key)
            return self.sample(key.index, epoch=key.epoch, max_skip=key.max_skip)
        return self.sample(int(key), epoch=self.epoch)

    def sample(self, index: int, *, epoch: int = 0, max_skip: int | None = None) -> Item:
        """The item for (``index``, ``epoch``): a pure function of them, the seed and max_skip.

        A sample that hits a bad file (``on_bad_file="skip"``) or shows no object after the
        retries is replaced by another index drawn from the same generator.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        rng = np.random.default_rng([self.seed, index, epoch])
        candidate = index
        for _ in range(MAX_REDRAWS):
            try:
                item = self._build(candidate % self._count(), rng, max_skip)
            except _BadFile as bad:
                self._report(bad)
            else:
                if item is not None:
                    return item
            candidate = int(rng.integers(len(self)))
        raise DevaError(
            f"{self.root}: no usable training sample in {MAX_REDRAWS} tries from index {index} "
            "(bad files, or objects that never show in the first frame)"
        )

    def _report(self, bad: _BadFile) -> None:
        if self.on_bad_file == "stop":
            raise DevaError(str(bad)) from None
        if bad.path not in self._reported:
            self._reported.add(bad.path)
            log.warning("%s; skipping it", bad)

    def _bad_at_listing(self, path: Path, message: str) -> None:
        """A problem found while listing: fatal with "stop", a warning (once) with "skip"."""
        if self.on_bad_file == "stop":
            raise DevaError(message)
        self._report(_BadFile(path, message))

    def _item(self, frames: Frames, rng: np.random.Generator, name: str) -> Item | None:
        present = np.unique(frames[0][1])
        present = present[present != 0]
        if present.size == 0:
            return None
        chosen = rng.choice(present, size=min(self.max_objects, present.size), replace=False)
        masks = np.zeros((len(frames), self.max_objects, self.size, self.size), dtype=np.float32)
        for t, (_, ids) in enumerate(frames):
            for k, label in enumerate(chosen):
                masks[t, k] = ids == label
        selector = np.zeros(self.max_objects, dtype=np.float32)
        selector[: chosen.size] = 1.0
        images = np.stack([normalise(image) for image, _ in frames])
        return {
            "images": torch.from_numpy(images),
            "masks": torch.from_numpy(masks),
            "selector": torch.from_numpy(selector),
            "name": name,
        }


# ---------------------------------------------------------------------------------------------
# Stage 0: static images


class StaticImageSequences(_TrainingDataset):
    """Images with object masks, each turned into a ``num_frames`` synthetic clip (stage 0).

    Layouts (the first that applies):

    * ``root/images/<name>.<jpg|png|...>`` with ``root/masks/<name>.png`` (sub-folders allowed,
      mirrored under ``masks/``);
    * otherwise any ``<name>.jpg`` (or ``.jpeg``) anywhere under ``root`` with ``<name>.png`` next
      to it (FSS-1000 / DUTS after the usual preparation).

    A mask is a palette PNG (pixel index = object id, 0 = background) or a grayscale / binary
    PNG (values ≥ 128 are the object; soft saliency edges are thresholded); a grayscale PNG
    whose values are all below 128 is read as an id map. Several ids → several objects, of which
    up to ``max_objects`` present in the first frame are picked. ``repeat`` oversamples the set.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        size: int = 384,
        num_frames: int = 3,
        max_objects: int = 1,
        seed: int = 0,
        repeat: int = 1,
        on_bad_file: OnBadFile = "skip",
    ) -> None:
        super().__init__(
            root,
            size=size,
            num_frames=num_frames,
            max_objects=max_objects,
            seed=seed,
            repeat=repeat,
            on_bad_file=on_bad_file,
        )
        self.pairs = self._list_pairs()
        if not self.pairs:
            raise DevaError(
                f"{self.root}: no image/mask pairs found (expected images/<name>.jpg with "
                "masks/<name>.png, or <name>.jpg next to <name>.png)"
            )

    def _list_pairs(self) -> list[tuple[Path, Path]]:
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        if images_dir.is_dir() and masks_dir.is_dir():
            images = _files(images_dir, IMAGE_SUFFIXES)
            candidates = [
                (i, masks_dir / i.relative_to(images_dir).with_suffix(".png")) for i in images
            ]
        else:
            images = _files(self.root, (".jpg", ".jpeg"))
            candidates = [(i, i.with_suffix(".png")) for i in images]
        pairs = []
        for image, mask in candidates:
            if mask.is_file():
                pairs.append((image, mask))
            else:
                self._bad_at_listing(image, f"{image}: no mask {mask}")
        return pairs

    def _count(self) -> int:
        return len(self.pairs)

    def _build(self, index: int, rng: np.random.Generator, max_skip: int | None) -> Item | None:
        image_path, mask_path = self.pairs[index]
        image = _read_rgb(image_path)
        ids = _read_static_mask(mask_path)
        _check_same_size(image, image_path, ids, mask_path)
        if not ids.any():
            raise _BadFile(mask_path, f"{mask_path}: mask has no object")
        for _ in range(FIRST_FRAME_TRIES):
            frames = static_sequence(rng, image, ids, size=self.size, num_frames=self.num_frames)
            item = self._item(frames, rng, f"{image_path} (synthetic clip of {self.num_frames})")
            if item is not None:
                return item
        return None


# ---------------------------------------------------------------------------------------------
# Stage 3: videos


@dataclass(frozen=True)
class _Video:
    name: str
    frames: tuple[tuple[Path, Path], ...]  # (image, annotation) of every usable frame, in order


class VideoSequences(_TrainingDataset):
    """Annotated videos sampled as ``num_frames`` clips with up to ``max_objects`` objects.

    ``layout="davis"``: ``root/JPEGImages/480p/<seq>/*.jpg`` with ``root/Annotations/480p/<seq>/
    *.png`` (palette PNGs, every frame annotated). ``layout="youtube"`` (YouTube-VOS, OVIS
    converted to VOS): ``root/JPEGImages/<seq>/*.jpg`` with ``root/Annotations/<seq>/*.png``;
    only frames with an annotation are used (every 5th there), so max skip counts annotated frames
    (``max_skip_base`` 1 instead of 5). ``sequences`` restricts to a subset (e.g. the DAVIS train
    list); ``repeat`` oversamples (×5 DAVIS, ×3 OVIS in the spec). ``max_skip`` is in the layout's
    own units; the trainer updates it with ``set_max_skip(max_skip_at(p, ds.max_skip_base))``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        layout: Literal["davis", "youtube"] = "davis",
        size: int = 384,
        num_frames: int = 8,
        max_objects: int = 3,
        seed: int = 0,
        sequences: Sequence[str] | None = None,
        repeat: int = 1,
        max_skip: int | None = None,
        on_bad_file: OnBadFile = "skip",
    ) -> None:
        super().__init__(
            root,
            size=size,
            num_frames=num_frames,
            max_objects=max_objects,
            seed=seed,
            repeat=repeat,
            on_bad_file=on_bad_file,
        )
        if layout not in ("davis", "youtube"):
            raise DevaError(f"layout must be 'davis' or 'youtube', got {layout!r}")
        self.layout = layout
        self.max_skip_base = 5 if layout == "davis" else 1
        self.set_max_skip(self.max_skip_base if max_skip is None else max_skip)
        sub = ("480p",) if layout == "davis" else ()
        self.images_dir = self.root.joinpath("JPEGImages", *sub)
        self.annotations_dir = self.root.joinpath("Annotations", *sub)
        for folder in (self.images_dir, self.annotations_dir):
            if not folder.is_dir():
                raise DevaError(f"{folder}: not found ({layout} layout expected under {self.root})")
        self.videos = self._list_videos(sequences)
        if not self.videos:
            raise DevaError(
                f"{self.root}: no usable sequences (each needs at least {self.num_frames} frames "
                "with both an image and an annotation)"
            )

    def set_max_skip(self, value: int) -> None:
        """Largest gap between neighbouring sampled frames, in this layout's frame units."""
        if int(value) < 1:
            raise DevaError(f"max_skip must be at least 1, got {value}")
        self.max_skip = int(value)

    def _list_videos(self, sequences: Sequence[str] | None) -> list[_Video]:
        if sequences is None:
            names = sorted(
                (p.name for p in self.images_dir.iterdir() if p.is_dir()), key=natural_sort_key
            )
        else:
            names = list(dict.fromkeys(sequences))
        videos = []
        for name in names:
            folder = self.images_dir / name
            if not folder.is_dir():
                self._bad_at_listing(folder, f"{folder}: sequence folder not found")
                continue
            images = {p.stem: p for p in _files(folder, (".jpg", ".jpeg"), recursive=False)}
            if not images:
                self._bad_at_listing(folder, f"{folder}: sequence folder has no frames")
                continue
            annotations = {
                p.stem: p for p in _files(self.annotations_dir / name, (".png",), recursive=False)
            }
            stems = sorted(set(images) & set(annotations), key=natural_sort_key)
            if not stems:
                self._bad_at_listing(
                    folder, f"{folder}: no frame has an annotation in {self.annotations_dir / name}"
                )
                continue
            if len(stems) < self.num_frames:
                log.warning(
                    "%s: only %d annotated frames (< %d); left out",
                    folder,
                    len(stems),
                    self.num_frames,
                )
                continue
            videos.append(_Video(name, tuple((images[s], annotations[s]) for s in stems)))
        return videos

    def _count(self) -> int:
        return len(self.videos)

    def _build(self, index: int, rng: np.random.Generator, max_skip: int | None) -> Item | None:
        video = self.videos[index]
        skip = self.max_skip if max_skip is None else max_skip
        decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for _ in range(FIRST_FRAME_TRIES):
            picked = sample_frame_indices(rng, len(video.frames), self.num_frames, skip)
            for i in picked:
                if i not in decoded:
                    decoded[i] = self._load(video.frames[i])
            shape = decoded[picked[0]][0].shape
            for i in picked:
                if decoded[i][0].shape != shape:
                    path = video.frames[i][0]
                    raise _BadFile(
                        path,
                        f"{path}: frame size {_size(decoded[i][0])} differs from "
                        f"{_size(decoded[picked[0]][0])} of the sequence",
                    )
            frames = video_sequence(rng, [decoded[i] for i in picked], size=self.size)
            stems = ", ".join(video.frames[i][0].stem for i in picked)
            item = self._item(frames, rng, f"{self.images_dir / video.name} frames [{stems}]")
            if item is not None:
                return item
        return None

    @staticmethod
    def _load(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = pair
        image = _read_rgb(image_path)
        try:
            ids = read_id_png(mask_path)
        except DevaError as err:
            raise _BadFile(mask_path, str(err)) from None
        _check_same_size(image, image_path, ids, mask_path)
        if int(ids.max(initial=0)) > 65535:
            raise _BadFile(mask_path, f"{mask_path}: object ids above 65535 are not supported")
        return image, ids.astype(np.uint16)


# ---------------------------------------------------------------------------------------------
# Loader


class EpochSampler(Sampler[SampleKey]):
    """Shuffled indices, epoch after epoch, each stamped with its epoch and the current max_skip.

    An epoch is ``max(1, len // batch_size)`` full batches, drawn from permutations seeded by
    (seed, epoch). ``start_iteration`` skips that many batches, so a resumed run continues with
    exactly the batches an uninterrupted one would have seen. Every ``iter()`` starts the next
    epoch; ``epoch`` is the one last started.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int,
        seed: int,
        start_iteration: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.length = len(dataset)  # type: ignore[arg-type]
        if self.length == 0:
            raise DevaError("training dataset is empty")
        self.batches_per_epoch = max(1, self.length // batch_size)
        self._next_epoch, self._offset = divmod(int(start_iteration), self.batches_per_epoch)
        self.epoch = self._next_epoch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self._offset) * self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        """The indices of ``epoch``, in the order they are handed out."""
        count = self.batches_per_epoch * self.batch_size
        rng = np.random.default_rng([self.seed, epoch])
        runs, total = [], 0
        while total < count:
            run = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
            runs.append(run)
            total += run.size
        return np.concatenate(runs)[:count]

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch, offset = self._next_epoch, self._offset
        self._next_epoch, self._offset, self.epoch = epoch + 1, 0, epoch
        for index in self.order(epoch)[offset * self.batch_size :]:
            leaf, _ = _leaf(self.dataset, int(index))
            yield SampleKey(int(index), epoch, getattr(leaf, "max_skip", None))


class _Keyed(Dataset[Item]):
    """Routes a ``SampleKey`` through (nested) ConcatDatasets to the dataset that owns it."""

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> Item:
        leaf, local = _leaf(self.dataset, key.index)
        if isinstance(leaf, _TrainingDataset):
            return leaf.sample(local, epoch=key.epoch, max_skip=key.max_skip)
        return leaf[local]


def _leaf(dataset: Dataset[Any], index: int) -> tuple[Dataset[Any], int]:
    while isinstance(dataset, ConcatDataset):
        which = bisect.bisect_right(dataset.cumulative_sizes, index)
        if which:
            index -= dataset.cumulative_sizes[which - 1]
        dataset = dataset.datasets[which]
    return dataset, index


def _seed_worker(worker_id: int) -> None:
    """Give each worker one thread and RNGs seeded from the loader's generator (its base seed +
    worker id, as torch hands it over), for any code that still reads global RNG state."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed if info is not None else worker_id
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def make_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    workers: int,
    seed: int,
    start_iteration: int = 0,
    shuffle: bool = True,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """A DataLoader of full batches, reproducible from ``seed`` whatever ``workers`` is.

    ``dataset`` is one of this module's datasets or a (nested) ``ConcatDataset`` of them (other
    datasets are indexed plainly). Iterating the loader runs one epoch; iterate again for the
    next (``loader.sampler.epoch`` says which). ``start_iteration`` resumes after that many
    batches. The dataset's ``max_skip`` is read when each index is handed out, so call
    ``set_max_skip`` on the datasets in this process; with workers > 0 a change reaches batches
    already queued (2 × workers) one queue later, the same way on every run.
    """
    if batch_size < 1:
        raise DevaError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise DevaError(f"workers must be non-negative, got {workers}")
    sampler = EpochSampler(
        dataset,
        batch_size=batch_size,
        seed=seed,
        start_iteration=start_iteration,
        shuffle=shuffle,
    )
    return DataLoader(
        _Keyed(dataset),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        # fresh worker processes: a forked child inherits OpenCV's and torch's thread pools
        # without their threads and can deadlock on its first parallel call
        multiprocessing_context="spawn" if workers > 0 else None,
        worker_init_fn=_seed_worker if workers > 0 else None,
        generator=torch.Generator().manual_seed(int(seed)),
        pin_memory=pin_memory,
    )


# ---------------------------------------------------------------------------------------------
# Files


def _files(folder: Path, suffixes: Sequence[str], *, recursive: bool = True) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [
        p
        for p in found
        if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_sort_key(str(p)))


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except DevaError as err:
        raise _BadFile(path, str(err)) from None


def _read_static_mask(path: Path) -> np.ndarray:
    """(H, W) uint16 ids of a stage-0 mask (see ``StaticImageSequences`` for the rules)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "1"):
                ids = np.asarray(image, dtype=np.uint16)
            else:
                values = np.asarray(image.convert("L"))
                ids = (values >= 128) if values.max(initial=0) >= 128 else values
                ids = ids.astype(np.uint16)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise _BadFile(path, f"{path}: unreadable or corrupt mask ({err})") from None
    return ids


def _check_same_size(image: np.ndarray, image_path: Path, ids: np.ndarray, mask_path: Path) -> None:
    if image.shape[:2] != ids.shape[:2]:
        raise _BadFile(
            mask_path,
            f"{mask_path}: mask is {_size(ids)} but its image {image_path} is {_size(image)}",
        )


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
