"""``deva run-task TASK``: the paper's benchmark protocols over whole datasets (spec §4).

Each command reads one dataset in its official layout and writes the layout its evaluator
reads; the logic lives in ``deva.tasks``. Kept apart from ``deva/cli.py`` only for size.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deva.cli_options import (
    ClipSize,
    Device,
    DeviceName,
    ModeName,
    Output,
    PlainUsage,
    Size,
    Verbose,
)
from deva.config import TrackerConfig

if TYPE_CHECKING:
    from deva.tasks.dataset import Progress

task_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Run a benchmark protocol over a whole dataset (VIPSeg, BURST, DAVIS, Ref-VOS) and "
    "write the layout its evaluator reads.",
)


class _Propagator(StrEnum):
    """The propagators the task runners take (no SAM 2 video model here)."""

    appearance = "appearance"
    flow = "flow"
    network = "network"


Images = Annotated[
    Path, typer.Argument(metavar="IMAGES", help="Dataset image root: <video>/<frame>.jpg.")
]
Dets = Annotated[
    Path,
    typer.Option(
        help="Detection root in the official DEVA layout: [pan_pred/]<video>/<frame>.png "
        "(+ <frame>.json or one pred.json for all videos)."
    ),
]
SoftMasks = Annotated[Path, typer.Option(help="Soft mask root (layout in the command help).")]
PropagatorOpt = Annotated[
    _Propagator,
    typer.Option(
        help="Temporal propagator: flow (optical flow), appearance (shipped features) or network."
    ),
]
Checkpoint = Annotated[
    str | None, typer.Option(help="Network weights: DEVA-propagation.pth or a hub id.")
]
ModeOpt = Annotated[
    ModeName, typer.Option(help="semionline: in-clip consensus; online: each detection alone.")
]
DetectEvery = Annotated[int, typer.Option(help="Merge detections every N frames.")]
MaxMissed = Annotated[int, typer.Option(help="Delete after more than N missed detections.")]
AllowMissing = Annotated[
    bool,
    typer.Option(
        help="A frame without a detection PNG gets an empty detection.", show_default="off"
    ),
]
NumFrames = Annotated[int, typer.Option("--n-frames", help="Frames sampled for the consensus.")]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="OUTPUT holds an earlier run: remove what deva wrote there (PNGs, pred.json, "
        "burst_predictions.json, submission.zip) first; other files stay.",
    ),
]


@dataclass(frozen=True)
class _Shared:
    """The options every task command takes, parsed once (see ``_with``); ``runner_args`` are
    the keyword arguments they give the task runner."""

    propagator: _Propagator
    checkpoint: str | None
    device: DeviceName
    verbose: bool
    overwrite: bool
    runner_args: dict[str, object]

    def run(
        self,
        runner: Callable[..., int],
        images: Path,
        source: Path,
        output: Path,
        *,
        propagator_options: dict[str, Any] | None = None,
        **args: object,
    ) -> None:
        """``runner(images, source, output, ...)`` with a progress bar; DevaErrors become one
        line and exit code 2. ``propagator_options``: extra ``make_propagator`` arguments."""
        from deva.cli import _count, _guarded, _logging, console

        _logging(self.verbose)

        def run() -> None:
            from deva.api import make_propagator

            _check_output(output, overwrite=self.overwrite)
            with _progress_bar() as progress:
                propagator = make_propagator(
                    self.propagator.value,
                    checkpoint=self.checkpoint,
                    device=self.device.value,
                    **(propagator_options or {}),
                )
                frames = runner(
                    images,
                    source,
                    output,
                    propagator=propagator,
                    progress=progress,
                    **self.runner_args,
                    **args,
                )
            console.print(f"[green]{_count(frames, 'frame')}[/green] written -> {output}")

        _guarded(run)


def _detection_options(
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: Device = DeviceName.auto,
    mode: ModeOpt = ModeName.semionline,
    detect_every: DetectEvery = TrackerConfig.detect_every,
    clip_size: ClipSize = TrackerConfig.clip_size,
    max_missed: MaxMissed = TrackerConfig.max_missed,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> _Shared:
    """The options of the tasks that merge per-frame detections."""
    from deva.cli import clip_warnings, console

    config = TrackerConfig(
        mode=mode.value,
        detect_every=detect_every,
        clip_size=clip_size,
        max_missed=max_missed,
        size=size,
    )
    given = clip_size != TrackerConfig.clip_size
    for warning in clip_warnings(config, clip_size_given=given):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    runner_args = {"config": config, "allow_missing": allow_missing}
    return _Shared(propagator, checkpoint, device, verbose, overwrite, runner_args)


def _soft_mask_options(
    propagator: PropagatorOpt = _Propagator.flow,
    checkpoint: Checkpoint = None,
    device: Device = DeviceName.auto,
    size: Size = TrackerConfig.size,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> _Shared:
    """The options of the tasks that vote a consensus over soft masks."""
    return _Shared(propagator, checkpoint, device, verbose, overwrite, {"size": size})


def _check_output(output: Path, *, overwrite: bool) -> None:
    """Refuse an output folder holding an earlier run's results (its extra frames or videos
    would be scored with this run's), or with --overwrite remove exactly those first."""
    from deva.errors import DevaError
    from deva.io.run_folder import clear_task_outputs, task_outputs

    earlier = next(task_outputs(output), None)
    if earlier is None:
        return
    if not overwrite:
        raise DevaError(
            f"{output}: already holds an earlier run's results (e.g. {earlier}); add "
            "--overwrite to replace them, or choose another --output"
        )
    clear_task_outputs(output)


def _with(
    options: Callable[..., _Shared],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the parameters of ``options`` after its own (so in its help too); the
    command receives them parsed, as ``shared``."""
    shared = list(inspect.signature(options, eval_str=True).parameters.values())

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        mine = [p for p in own.parameters.values() if p.name != "shared"]

        def wrapper(**values: object) -> None:
            from deva.cli import _guarded

            picked = {p.name: values.pop(p.name) for p in shared}
            parsed: list[_Shared] = []
            _guarded(lambda: parsed.append(options(**picked)))  # a bad value: one line, exit 2
            command(**values, shared=parsed[0])

        wrapper.__signature__ = own.replace(parameters=[*mine, *shared])  # type: ignore[attr-defined]
        wrapper.__name__, wrapper.__doc__ = command.__name__, command.__doc__
        return wrapper

    return decorate


@task_app.command("vipseg", cls=PlainUsage)
@_with(_detection_options)
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
    fill: Annotated[
        bool | None,
        typer.Option(
            "--fill/--no-fill",
            help="Flow propagator: pixels without a flow source (disoccluded, entering the view) "
            "take the nearest segment's label instead of none (panoptic: every pixel is labelled)."
            " Default: on with the flow propagator.",
        ),
    ] = None,
    *,
    shared: _Shared,
) -> None:
    """VIPSeg video panoptic segmentation from precomputed panoptic detections (category
    required per segment). Writes OUT/pan_pred/<video>/<frame>.png (RGB ids) and OUT/pred.json."""
    from deva.tasks.vipseg import run_vipseg

    fill_unknown = shared.propagator == _Propagator.flow if fill is None else fill
    shared.run(
        run_vipseg,
        images,
        detections,
        output,
        propagator_options={"fill_unknown": fill_unknown},
        stuff_merging=stuff_merging,
    )


@task_app.command("burst", cls=PlainUsage)
@_with(_detection_options)
def burst(
    images: Annotated[
        Path,
        typer.Argument(metavar="IMAGES", help="BURST image root: <dataset>/<seq>/<frame>.jpg."),
    ],
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
    *,
    shared: _Shared,
) -> None:
    """BURST open-world tracking. Writes OUT/<dataset>/<seq>/<frame>.png (RGB ids) and
    OUT/<dataset>/<seq>/pred.json (per frame: id, score, COCO RLE of every track)."""
    from deva.tasks.burst import run_burst

    shared.run(
        run_burst, images, detections, output, subsample_every=subsample_every, gt_json=gt_json
    )


@task_app.command("davis17-unsup", cls=PlainUsage)
@_with(_detection_options)
def davis17_unsup(
    images: Images,
    output: Output,
    detections: Dets,
    max_ids: Annotated[int, typer.Option(help="Keep at most N objects per video.")] = 20,
    *,
    shared: _Shared,
) -> None:
    """Unsupervised DAVIS-2017 from per-frame instance detections. Writes OUT/<video>/<frame>.png
    (palette, ids 1..20: the first objects seen, larger first)."""
    from deva.tasks.unsup_davis17 import run_davis17_unsup

    shared.run(run_davis17_unsup, images, detections, output, max_ids=max_ids)


@task_app.command("davis16-saliency", cls=PlainUsage)
@_with(_soft_mask_options)
def davis16_saliency(
    images: Images,
    output: Output,
    masks: Annotated[
        Path, typer.Option(help="Saliency root: <video>/<frame>.png, 0..255 = probability.")
    ],
    n_frames: NumFrames = 10,
    *,
    shared: _Shared,
) -> None:
    """Unsupervised DAVIS-2016 from soft saliency maps by associated consensus. Writes
    OUT/<video>/<frame>.png (0/255)."""
    from deva.tasks.saliency import run_davis16_saliency

    shared.run(run_davis16_saliency, images, masks, output, num_samples=n_frames)


@task_app.command("ref-davis", cls=PlainUsage)
@_with(_soft_mask_options)
def ref_davis(
    images: Images,
    output: Output,
    masks: SoftMasks,
    n_frames: NumFrames = 5,
    *,
    shared: _Shared,
) -> None:
    """Referring DAVIS-2017 from soft masks MASKS/<video>/<object>/<frame>.png (+ optional
    MASKS/<video>/scores.csv: frame,object,score). Writes OUT/<video>/<frame>.png (palette,
    object k = k-th sorted object folder)."""
    from deva.tasks.referring import run_ref_davis

    shared.run(run_ref_davis, images, masks, output, num_samples=n_frames)


@task_app.command("ref-youtube", cls=PlainUsage)
@_with(_soft_mask_options)
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
    *,
    shared: _Shared,
) -> None:
    """Referring YouTube-VOS from soft masks MASKS/<video>/<expression>/<frame>.png (+ optional
    scores.csv), each expression on its own. Writes OUT/Annotations/<video>/<expression>/
    <frame>.png (0/255) and, zipped, OUT/submission.zip."""
    from deva.tasks.referring import read_video_list, run_ref_youtube

    shared.run(
        lambda *args, **kwargs: run_ref_youtube(  # the list is read inside the error guard
            *args, videos=read_video_list(videos) if videos is not None else None, **kwargs
        ),
        images,
        masks,
        output,
        num_samples=n_frames,
        zip_output=zip_output,
    )


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
