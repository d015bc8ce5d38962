"""Many videos in one run: ``deva batch``. One output folder per video, a resumable manifest.

Each video is tracked on its own (in this process, or as one Ray task per video, see
``deva.batch_ray``); a video that fails is recorded with its reason and the others go on.
``OUT/manifest.json`` is rewritten atomically after every finished video, so an interrupted
batch resumes where it stopped: a re-run skips the videos recorded as ok whose output is still
complete and retries everything else.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.io.atomic import atomic_path, ensure_writable_dir
from deva.io.frames import IMAGE_EXTENSIONS, natural_sort_key
from deva.io.paths import why_missing
from deva.io.run_folder import ANNOTATIONS, clear_earlier_run

if TYPE_CHECKING:
    from deva.segmenters.options import ModelOptions

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SUMMARY = "summary.md"
MANIFEST_FORMAT = "deva-batch-manifest"
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
     ".mts", ".3gp", ".gif"}
)  # fmt: skip
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class TrackOptions:
    """How every video of a batch is tracked; plain values, so Ray can ship them to workers.

    detections / init_masks: root folders holding one sub-folder per video, named like the
    video's output folder (``dets/<video stem>/``); a video without its sub-folder fails.
    models: what the learned segmenters need (``auto``, ``text``, ``panoptic``); each video
    loads its own model. max_memory_mb / sam2_model / precision: as ``make_propagator``.
    """

    config: TrackerConfig = field(default_factory=TrackerConfig)
    segmenter: str | None = None
    propagator: str = "appearance"
    checkpoint: str | None = None
    device: str = "auto"
    detections: Path | None = None
    init_masks: Path | None = None
    allow_missing: bool = False
    video: bool = True
    models: ModelOptions | None = None
    max_memory_mb: float | None = None
    sam2_model: str | None = None
    precision: str = "auto"


@dataclass(frozen=True)
class VideoJob:
    """One input and the folder its results go to (``OUT/<name>``)."""

    name: str
    input: Path
    output: Path


@dataclass(frozen=True)
class VideoRecord:
    """The outcome of one video. ``skipped``: finished ok by an earlier run, not redone."""

    name: str
    input: str
    output: str
    status: Status
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """Every video of the batch in input order, and the wall-clock time of this run."""

    videos: tuple[VideoRecord, ...]
    seconds: float
    workers: int = 1

    @property
    def processed(self) -> tuple[VideoRecord, ...]:
        return tuple(v for v in self.videos if v.status != "skipped")

    @property
    def failed(self) -> tuple[VideoRecord, ...]:
        return tuple(v for v in self.videos if v.status == "failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def frames(self) -> int:
        """Frames tracked by this run (skipped videos not counted)."""
        return sum(v.frames for v in self.processed if v.status == "ok")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_markdown(self) -> str:
        skipped = len(self.videos) - len(self.processed)
        succeeded = sum(v.status == "ok" for v in self.processed)
        lines = [
            "# deva batch summary",
            "",
            "| videos | processed | skipped (done before) | ok | failed | frames | seconds "
            "| frames/s | workers |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {len(self.videos)} | {len(self.processed)} | {skipped} | {succeeded} | "
            f"{len(self.failed)} | {self.frames} | {self.seconds:.1f} | {self.fps:.1f} | "
            f"{self.workers} |",
            "",
            "| video | status | frames | seconds | frames/s |",
            "|---|---|---:|---:|---:|",
        ]
        for v in self.videos:
            rate = f"{v.frames / v.seconds:.1f}" if v.status == "ok" and v.seconds > 0 else "–"
            seconds = f"{v.seconds:.1f}" if v.status != "skipped" else "–"
            lines.append(f"| {_cell(v.name)} | {v.status} | {v.frames} | {seconds} | {rate} |")
        if self.failed:
            lines += ["", "## Failures", "", "| video | input | reason |", "|---|---|---|"]
            for v in self.failed:
                lines.append(f"| {_cell(v.name)} | {_cell(v.input)} | {_cell(v.reason or '')} |")
        return "\n".join(lines) + "\n"


def run_batch(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    workers: int = 1,
    address: str | None = None,
    config: TrackerConfig | None = None,
    segmenter: str | None = None,
    propagator: str = "appearance",
    checkpoint: str | None = None,
    device: str = "auto",
    detections: str | Path | None = None,
    init_masks: str | Path | None = None,
    allow_missing: bool = False,
    video: bool = True,
    models: ModelOptions | None = None,
    max_memory_mb: float | None = None,
    sam2_model: str | None = None,
    precision: str = "auto",
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoRecord], None] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> BatchReport:
    """Track every video of ``inputs`` into ``output/<video stem>/``; never raises for one video.

    inputs: a folder (its video files and frame sub-folders), a text file listing one input per
        line (relative paths are relative to the list; blank lines and ``#`` comments skipped),
        or a sequence of paths.
    workers > 1 or address: one Ray task per video (``pip install "deva-track[cluster]"``) on
        a local Ray instance with ``workers`` CPUs, or on the cluster at ``address``. Without
        Ray, a local batch warns and runs in-process (the same manifest); an address needs Ray.
    on_start(pending, total), on_video(record) after each video, on_frame() after each frame
    (in-process runs only): progress hooks.
    Other options as ``deva.track``. Raises DevaError only for problems with the whole batch,
    such as an option that nothing uses (``deva.api.check_options``).
    """
    from deva.api import check_options, route_sam2_model

    if workers < 1:
        raise DevaError(f"--workers must be >= 1, got {workers}")
    models, sam2_model = route_sam2_model(segmenter, propagator, models, sam2_model)
    check_options(
        segmenter,
        propagator,
        detections=detections is not None,
        init_masks=init_masks is not None,
        models=models,
        checkpoint=checkpoint,
        sam2_model=sam2_model,
        precision=precision,
    )
    options = TrackOptions(
        config=config or TrackerConfig(),
        segmenter=segmenter,
        propagator=propagator,
        checkpoint=checkpoint,
        device=device,
        detections=_existing_dir(detections, "detections"),
        init_masks=_existing_dir(init_masks, "init-masks"),
        allow_missing=allow_missing,
        video=video,
        models=models,
        max_memory_mb=max_memory_mb,
        sam2_model=sam2_model,
        precision=precision,
    )
    out = Path(os.path.abspath(ensure_writable_dir(output)))
    jobs = plan_jobs(discover_inputs(inputs, exclude=out), out)
    manifest = Manifest.load(out / MANIFEST)
    records: dict[str, VideoRecord] = {}
    pending: list[VideoJob] = []
    for job in jobs:
        if manifest.is_done(job):
            entry = manifest.videos[job.name]
            records[job.name] = VideoRecord(
                job.name, str(job.input), str(job.output), "skipped", int(entry.get("frames", 0))
            )
        else:
            pending.append(job)
    if on_start is not None:
        on_start(len(pending), len(jobs))

    def finished(record: VideoRecord) -> None:
        records[record.name] = record
        manifest.record(record)
        manifest.save()
        if on_video is not None:
            on_video(record)

    start = time.perf_counter()
    if pending and workers > 1 and address is None:
        from deva.batch_ray import local_workers

        workers = local_workers(workers)  # 1 without Ray: the in-process loop below
    if pending and (workers > 1 or address is not None):
        from deva.batch_ray import run_with_ray

        run_with_ray(pending, options, workers=workers, address=address, on_done=finished)
    else:
        for job in pending:
            finished(track_video(job, options, on_frame=on_frame))
    report = BatchReport(
        tuple(records[job.name] for job in jobs), time.perf_counter() - start, workers
    )
    with atomic_path(out / SUMMARY) as temp:
        temp.write_text(report.to_markdown(), encoding="utf-8")
    return report


def track_video(
    job: VideoJob, options: TrackOptions, *, on_frame: Callable[[], None] | None = None
) -> VideoRecord:
    """Track one video into ``job.output`` (cleared first); any failure becomes the record."""
    from deva.api import choose_segmenter, make_propagator, track_to_folder
    from deva.io.frames import open_frames
    from deva.io.init_masks import InitMasks
    from deva.tracker import Tracker

    start = time.perf_counter()
    done = 0

    def counted(_: object) -> None:
        nonlocal done
        done += 1
        if on_frame is not None:
            on_frame()

    try:
        clear_earlier_run(job.output)  # stale masks would outlive a shorter re-run
        frames = open_frames(job.input)
        given = None
        if options.init_masks is not None:
            given = InitMasks(
                options.init_masks / job.name, frame_name=frames.name, num_frames=frames.num_frames
            )
        dets = options.detections / job.name if options.detections is not None else None
        if dets is not None and not dets.is_dir():
            raise DevaError(f"no detections for this video: {dets} does not exist")
        segmenter = choose_segmenter(
            options.segmenter,
            source=frames,
            detections=dets,
            init_masks=given is not None,
            allow_missing=options.allow_missing,
            models=options.models,
        )
        propagator = make_propagator(
            options.propagator,
            checkpoint=options.checkpoint,
            device=options.device,
            max_memory_mb=options.max_memory_mb,
            sam2_model=options.sam2_model,
            precision=options.precision,
        )
        tracker = Tracker(segmenter, propagator, options.config)
        written = track_to_folder(
            tracker, frames, job.output, video=options.video, on_result=counted, given_masks=given
        )
    except DevaError as err:
        return _failed(job, start, done, str(err))
    except Exception as err:  # one broken video must not stop the batch
        log.debug("%s failed", job.input, exc_info=True)
        return _failed(job, start, done, f"{type(err).__name__}: {err}")
    return VideoRecord(
        job.name, str(job.input), str(job.output), "ok", written, time.perf_counter() - start
    )


def discover_inputs(inputs: str | Path | Sequence[str | Path], *, exclude: Path) -> list[Path]:
    """The videos of ``inputs`` (see ``run_batch``), in natural order for a folder."""
    if not isinstance(inputs, str | Path):
        paths = [Path(p).expanduser() for p in inputs]
        if not paths:
            raise DevaError("no inputs given")
        return paths
    path = Path(inputs).expanduser()
    if path.is_dir():
        return _scan_folder(path, exclude=exclude)
    if path.is_file():
        if path.suffix.lower() in LIST_EXTENSIONS:
            return _read_list(path)
        raise DevaError(
            f"{path}: give a folder of videos or a text file (.txt) listing one video or frame "
            "folder per line; for a single video use deva track"
        )
    raise DevaError(f"{path}: {why_missing(path)}")


def plan_jobs(inputs: Iterable[Path], out: Path) -> list[VideoJob]:
    """One job per input, its output folder named by the input's stem; names must be unique."""
    jobs: list[VideoJob] = []
    seen: dict[str, Path] = {}
    for given in inputs:
        path = Path(os.path.abspath(given))
        name = path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else path.name
        if not name or name in (MANIFEST, SUMMARY) or name.startswith("."):
            raise DevaError(f"{path}: cannot name an output folder {name!r} after this input")
        if path == out / name or (out / name) in path.parents:
            raise DevaError(
                f"{path}: its output folder {out / name} would overwrite it; choose another -o"
            )
        if name in seen:
            raise DevaError(
                f"{seen[name]} and {path} would both write to {out / name}; rename one "
                "(outputs are named by the input's file or folder name)"
            )
        seen[name] = path
        jobs.append(VideoJob(name, path, out / name))
    return jobs


class Manifest:
    """``OUT/manifest.json``: one entry per video ever finished in this output folder."""

    def __init__(self, path: Path, videos: dict[str, dict] | None = None) -> None:
        self.path = path
        self.videos: dict[str, dict] = videos or {}

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DevaError(
                f"{path}: unreadable batch manifest ({err}); delete it to start the batch over"
            ) from err
        if not (
            isinstance(data, dict)
            and data.get("format") == MANIFEST_FORMAT
            and isinstance(data.get("videos"), dict)
        ):
            raise DevaError(
                f"{path}: not a deva batch manifest; use another output folder or delete it"
            )
        return cls(path, data["videos"])

    def is_done(self, job: VideoJob) -> bool:
        """Finished ok before, from the same input, and its output is still complete."""
        entry = self.videos.get(job.name)
        return (
            isinstance(entry, dict)
            and entry.get("status") == "ok"
            and entry.get("input") == str(job.input)
            and (job.output / ANNOTATIONS).is_file()
        )

    def record(self, record: VideoRecord) -> None:
        entry = asdict(record)
        del entry["name"]
        entry["seconds"] = round(record.seconds, 3)
        if record.reason is None:
            del entry["reason"]
        self.videos[record.name] = entry

    def save(self) -> None:
        data = {"format": MANIFEST_FORMAT, "version": 1, "videos": self.videos}
        with atomic_path(self.path) as temp:
            temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _scan_folder(folder: Path, *, exclude: Path) -> list[Path]:
    """Video files and frame folders directly in ``folder``; other files are ignored."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: natural_sort_key(p.name))
    except OSError as err:
        raise DevaError(f"{folder}: cannot list folder ({err.strerror or err})") from err
    found: list[Path] = []
    images = 0
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if entry.resolve() != exclude.resolve() and _has_images(entry):
                found.append(entry)
        elif entry.suffix.lower() in VIDEO_EXTENSIONS:
            found.append(entry)
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            images += 1
    if not found:
        if images:
            raise DevaError(
                f"{folder}: holds frames of one video, not videos; use deva track for it, or "
                "put each video's frames in its own sub-folder"
            )
        raise DevaError(
            f"{folder}: no videos found (video files {', '.join(sorted(VIDEO_EXTENSIONS))} "
            "or sub-folders of frames)"
        )
    return found


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"{path}: cannot read the list of inputs ({err})") from err
    found = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        item = Path(entry).expanduser()
        found.append(item if item.is_absolute() else path.parent / item)
    if not found:
        raise DevaError(f"{path}: the list of inputs is empty")
    return found


def _has_images(folder: Path) -> bool:
    try:
        return any(
            p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            for p in folder.iterdir()
        )
    except OSError:
        return False


def _existing_dir(path: str | Path | None, what: str) -> Path | None:
    if path is None:
        return None
    folder = Path(path).expanduser()
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else why_missing(folder)
        raise DevaError(f"{what} folder {folder}: {problem}")
    return folder


def _failed(job: VideoJob, start: float, frames: int, reason: str) -> VideoRecord:
    return VideoRecord(
        job.name,
        str(job.input),
        str(job.output),
        "failed",
        frames,
        time.perf_counter() - start,
        " ".join(reason.split()),
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
