"""``deva run-task TASK``: the paper's benchmark protocols over whole datasets (spec §4).

Each command reads one dataset in its official layout and writes the layout its evaluator
reads; the logic lives in ``deva.tasks``. Kept apart from ``deva/cli.py`` only for size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deva.config import TrackerConfig

if TYPE_CHECKING:
    from deva.propagation.base import Propagator
    from deva.tasks.dataset import Progress

task_app = typer.Typer(
    no_args_is_help=True,
    help="Run a benchmark protocol over a whole dataset (VIPSeg, BURST, DAVIS, Ref-VOS) and "
    "write the layout its evaluator reads.",
)


class _Propagator(StrEnum):
    flow = "flow"
    network = "network"


class _Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class _Mode(StrEnum):
    semionline = "semionline"
    online = "online"


Images = Annotated[Path, typer.Argument(help="Dataset image root: <video>/<frame>.jpg.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Output folder.")]
Dets = Annotated[
    Path,
    typer.Option(
        help="Detection root in the official DEVA layout: [pan_pred/]<video>/<frame>.png "
        "(+ <frame>.json or one pred.json for all videos)."
    ),
]
SoftMasks = Annotated[Path, typer.Option(help="Soft mask root (layout in the command help).")]
PropagatorOpt = Annotated[
    _Propagator, typer.Option(help="Temporal propagator: flow (no weights) or network.")
]
Checkpoint = Annotated[
    str | None, typer.Option(help="Network weights: DEVA-propagation.pth or a hub id.")
]
DeviceOpt = Annotated[_Device, typer.Option(help="Where the network runs.")]
ModeOpt = Annotated[
    _Mode, typer.Option(help="semionline: in-clip consensus; online: each detection alone.")
]
DetectEvery = Annotated[int, typer.Option(help="Merge detections every N frames.")]
ClipSize = Annotated[int, typer.Option(help="Frames per clip in semionline mode.")]
MaxMissed = Annotated[int, typer.Option(help="Delete after more than N missed detections.")]
Size = Annotated[int, typer.Option(help="Short side of the working resolution (-1 = native).")]
AllowMissing = Annotated[
    bool, typer.Option(help="A frame without a detection PNG gets an empty detection.")
]
NumFrames = Annotated[int, typer.Option("--n-frames", help="Frames sampled for the consensus.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


@task_app.command("vipseg")
def vipseg(
    images: Images,
    output: Output,
    detections: Dets,
    stuff_merging: Annotated[
        bool,
        typer.Option(
            help="One id per stuff category per video, a new id when a thing changes category "
            "(what VPQ/STQ expect)."
        ),
    ] = True,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    mode: ModeOpt = _Mode.semionline,
    detect_every: DetectEvery = TrackerConfig.detect_every,
    clip_size: ClipSize = TrackerConfig.clip_size,
    max_missed: MaxMissed = TrackerConfig.max_missed,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    verbose: Verbose = False,
) -> None:
    """VIPSeg video panoptic segmentation from precomputed panoptic detections (category
    required per segment). Writes OUT/pan_pred/<video>/<frame>.png (RGB ids) and OUT/pred.json."""
    from deva.tasks.vipseg import run_vipseg

    config = _config(mode, detect_every, clip_size, max_missed, size)
    _run(
        verbose,
        lambda progress: run_vipseg(
            images,
            detections,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            config=config,
            stuff_merging=stuff_merging,
            allow_missing=allow_missing,
            progress=progress,
        ),
        output,
    )


@task_app.command("burst")
def burst(
    images: Annotated[Path, typer.Argument(help="BURST image root: <dataset>/<seq>/<frame>.jpg.")],
    output: Output,
    detections: Annotated[
        Path, typer.Option(help="Detection root: <dataset>/<seq>/<frame>.png + JSON with scores.")
    ],
    subsample_every: Annotated[
        int,
        typer.Option(
            help="Track every N-th image (the paper: 3). 1 = the images are already subsampled."
        ),
    ] = 1,
    gt_json: Annotated[
        Path | None,
        typer.Option(
            help="BURST annotation file: track its sequences and write "
            "OUT/burst_predictions.json (its layout, our tracks) for the BURST toolkit."
        ),
    ] = None,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    mode: ModeOpt = _Mode.semionline,
    detect_every: DetectEvery = TrackerConfig.detect_every,
    clip_size: ClipSize = TrackerConfig.clip_size,
    max_missed: MaxMissed = TrackerConfig.max_missed,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    verbose: Verbose = False,
) -> None:
    """BURST open-world tracking. Writes OUT/<dataset>/<seq>/<frame>.png (RGB ids) and
    OUT/<dataset>/<seq>/pred.json (per frame: id, score, COCO RLE of every track)."""
    from deva.tasks.burst import run_burst

    config = _config(mode, detect_every, clip_size, max_missed, size)
    _run(
        verbose,
        lambda progress: run_burst(
            images,
            detections,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            config=config,
            subsample_every=subsample_every,
            gt_json=gt_json,
            allow_missing=allow_missing,
            progress=progress,
        ),
        output,
    )


@task_app.command("davis17-unsup")
def davis17_unsup(
    images: Images,
    output: Output,
    detections: Dets,
    max_ids: Annotated[int, typer.Option(help="Keep at most N objects per video.")] = 20,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    mode: ModeOpt = _Mode.semionline,
    detect_every: DetectEvery = TrackerConfig.detect_every,
    clip_size: ClipSize = TrackerConfig.clip_size,
    max_missed: MaxMissed = TrackerConfig.max_missed,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    verbose: Verbose = False,
) -> None:
    """Unsupervised DAVIS-2017 from per-frame instance detections. Writes OUT/<video>/<frame>.png
    (palette, ids 1..20: the first objects seen, larger first)."""
    from deva.tasks.unsup_davis17 import run_davis17_unsup

    config = _config(mode, detect_every, clip_size, max_missed, size)
    _run(
        verbose,
        lambda progress: run_davis17_unsup(
            images,
            detections,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            config=config,
            max_ids=max_ids,
            allow_missing=allow_missing,
            progress=progress,
        ),
        output,
    )


@task_app.command("davis16-saliency")
def davis16_saliency(
    images: Images,
    output: Output,
    masks: Annotated[
        Path, typer.Option(help="Saliency root: <video>/<frame>.png, 0..255 = probability.")
    ],
    n_frames: NumFrames = 10,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    size: Size = TrackerConfig.size,
    verbose: Verbose = False,
) -> None:
    """Unsupervised DAVIS-2016 from soft saliency maps by associated consensus. Writes
    OUT/<video>/<frame>.png (0/255)."""
    from deva.tasks.saliency import run_davis16_saliency

    _run(
        verbose,
        lambda progress: run_davis16_saliency(
            images,
            masks,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            num_samples=n_frames,
            size=size,
            progress=progress,
        ),
        output,
    )


@task_app.command("ref-davis")
def ref_davis(
    images: Images,
    output: Output,
    masks: SoftMasks,
    n_frames: NumFrames = 5,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    size: Size = TrackerConfig.size,
    verbose: Verbose = False,
) -> None:
    """Referring DAVIS-2017 from soft masks MASKS/<video>/<object>/<frame>.png (+ optional
    MASKS/<video>/scores.csv: frame,object,score). Writes OUT/<video>/<frame>.png (palette,
    object k = k-th sorted object folder)."""
    from deva.tasks.referring import run_ref_davis

    _run(
        verbose,
        lambda progress: run_ref_davis(
            images,
            masks,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            num_samples=n_frames,
            size=size,
            progress=progress,
        ),
        output,
    )


@task_app.command("ref-youtube")
def ref_youtube(
    images: Images,
    output: Output,
    masks: SoftMasks,
    n_frames: NumFrames = 10,
    videos: Annotated[
        Path | None,
        typer.Option(
            help="Only the videos listed in this text file, one id per line (e.g. the "
            "202-video Ref-YouTube-VOS validation subset). Default: every video in MASKS."
        ),
    ] = None,
    zip_output: Annotated[
        bool,
        typer.Option(
            "--zip/--no-zip",
            help="Also write OUT/submission.zip (Annotations/<video>/<expression>/*.png) for "
            "the evaluation server.",
        ),
    ] = True,
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: DeviceOpt = _Device.auto,
    size: Size = TrackerConfig.size,
    verbose: Verbose = False,
) -> None:
    """Referring YouTube-VOS from soft masks MASKS/<video>/<expression>/<frame>.png (+ optional
    scores.csv), each expression on its own. Writes OUT/Annotations/<video>/<expression>/
    <frame>.png (0/255) and, zipped, OUT/submission.zip."""
    from deva.tasks.referring import read_video_list, run_ref_youtube

    _run(
        verbose,
        lambda progress: run_ref_youtube(
            images,
            masks,
            output,
            propagator=_propagator(propagator, checkpoint, device),
            num_samples=n_frames,
            size=size,
            progress=progress,
            videos=read_video_list(videos) if videos is not None else None,
            zip_output=zip_output,
        ),
        output,
    )


def _config(
    mode: _Mode, detect_every: int, clip_size: int, max_missed: int, size: int
) -> TrackerConfig:
    return TrackerConfig(
        mode=mode.value,
        detect_every=detect_every,
        clip_size=clip_size,
        max_missed=max_missed,
        size=size,
    )


def _propagator(name: _Propagator, checkpoint: str | None, device: _Device) -> Propagator:
    from deva.api import make_propagator

    return make_propagator(name.value, checkpoint=checkpoint, device=device.value)


def _run(verbose: bool, task: Callable[[Progress], int], output: Path) -> None:
    """Run a task with a progress bar; DevaErrors become one line and exit code 2."""
    from deva.cli import _guarded, _logging, console

    _logging(verbose)

    def run() -> None:
        with _progress_bar() as progress:
            frames = task(progress)
        console.print(f"[green]{frames} frames[/green] written -> {output}")

    _guarded(run)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Progress]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from deva.cli import console

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("frames", total=None)

        def advance(video: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=video)

        yield advance
