"""The ``deva`` command: a thin layer mapping flags to the Python API and the writers."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from deva.config import TrackerConfig
from deva.errors import DevaError

if TYPE_CHECKING:
    from deva.io.frames import FrameSource
    from deva.tracker import GivenMasks, Tracker

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="deva: track anything in a video with an image segmenter + temporal propagation.",
)
eval_app = typer.Typer(no_args_is_help=True, help="Score results against a benchmark.")
app.add_typer(eval_app, name="eval")
console = Console(stderr=True)


class SegmenterName(StrEnum):
    motion = "motion"
    precomputed = "precomputed"


class PropagatorName(StrEnum):
    flow = "flow"
    network = "network"


class DeviceName(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ModeName(StrEnum):
    semionline = "semionline"
    online = "online"


class KeyframeName(StrEnum):
    first = "first"
    middle = "middle"


class DavisTask(StrEnum):
    unsupervised = "unsupervised"
    semi_supervised = "semi-supervised"


class DavisMatch(StrEnum):
    hungarian = "hungarian"
    union = "union"
    identity = "identity"


@app.command()
def track(
    input: Annotated[str, typer.Argument(help="Video file, folder of frames, or a glob.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    segmenter: Annotated[
        SegmenterName | None,
        typer.Option(
            help="Image segmenter. Default: precomputed if --detections is given, else motion "
            "(weight-free moving-object segmentation)."
        ),
    ] = None,
    detections: Annotated[
        Path | None,
        typer.Option(help="Folder of precomputed detections (official DEVA layout)."),
    ] = None,
    init_masks: Annotated[
        Path | None,
        typer.Option(
            help="Semi-supervised VOS: folder of palette PNGs named like the frames, giving "
            "objects (their ids are kept) on the first frame or where new ones appear. Without "
            "--segmenter/--detections no image segmenter runs."
        ),
    ] = None,
    propagator: Annotated[
        PropagatorName,
        typer.Option(help="Temporal propagator: flow (no weights) or network (DEVA network)."),
    ] = PropagatorName.flow,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="Network weights: DEVA-propagation.pth or a Hugging Face hub id."),
    ] = None,
    device: Annotated[
        DeviceName, typer.Option(help="Where the network runs (auto = CUDA if available).")
    ] = DeviceName.auto,
    mode: Annotated[
        ModeName,
        typer.Option(
            help="semionline: vote an in-clip consensus over --clip-size frames every "
            "--detect-every frames (outputs lag clip-size - 1 frames); online: merge each "
            "detection frame's own segmentation."
        ),
    ] = ModeName.semionline,
    detect_every: Annotated[
        int, typer.Option(help="Start a clip / run the image segmenter every N frames.")
    ] = TrackerConfig.detect_every,
    clip_size: Annotated[
        int, typer.Option(help="Frames per clip in semionline mode (capped at --detect-every).")
    ] = TrackerConfig.clip_size,
    keyframe: Annotated[
        KeyframeName, typer.Option(help="Where in the clip the consensus is merged.")
    ] = KeyframeName.first,
    max_missed: Annotated[
        int, typer.Option(help="Delete an object after more than N missed detections in a row.")
    ] = TrackerConfig.max_missed,
    max_objects: Annotated[
        int, typer.Option(help="At most N tracked objects (0 = unlimited).")
    ] = TrackerConfig.max_objects,
    incremental: Annotated[
        bool, typer.Option(help="Count a miss only if the object also left the propagation.")
    ] = TrackerConfig.incremental,
    size: Annotated[
        int, typer.Option(help="Short side of the working resolution (-1 = native).")
    ] = TrackerConfig.size,
    allow_missing: Annotated[
        bool, typer.Option(help="Treat a frame without a detection PNG as an empty detection.")
    ] = False,
    video: Annotated[bool, typer.Option("--video/--no-video", help="Write overlay.mp4.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Track every object of INPUT; write masks/, annotations.json and overlay.mp4 to OUTPUT."""
    _logging(verbose)
    from deva.api import choose_segmenter, make_propagator
    from deva.io.frames import open_frames
    from deva.io.init_masks import InitMasks
    from deva.tracker import Tracker

    def run() -> None:
        config = TrackerConfig(
            mode=mode.value,
            detect_every=detect_every,
            clip_size=clip_size,
            keyframe=keyframe.value,
            max_missed=max_missed,
            max_objects=max_objects,
            incremental=incremental,
            size=size,
        )
        frames = open_frames(input)
        given = InitMasks(init_masks, frame_name=frames.name) if init_masks else None
        image_model = choose_segmenter(
            segmenter.value if segmenter else None,
            source=frames,
            detections=detections,
            init_masks=given is not None,
            allow_missing=allow_missing,
        )
        temporal = make_propagator(propagator.value, checkpoint=checkpoint, device=device.value)
        tracker = Tracker(image_model, temporal, config)
        written = _write_run(tracker, frames, output, video=video, given_masks=given)
        console.print(f"[green]{written} frames[/green] tracked -> {output}")

    _guarded(run)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path(
        "deva_demo_output"
    ),
) -> None:
    """Render a short clip of moving textured objects and track it with the defaults."""
    _logging(False)
    from deva.demo import render_demo_clip
    from deva.io.frames import open_frames
    from deva.tracker import Tracker

    def run() -> None:
        from deva.api import make_propagator
        from deva.segmenters.motion import MotionSegmenter

        frames = open_frames(render_demo_clip())
        tracker = Tracker(MotionSegmenter(), make_propagator("flow"), TrackerConfig())
        written = _write_run(tracker, frames, output, video=True)
        console.print(f"[green]{written} frames[/green] tracked.")
        console.print(f"overlay video: {output / 'overlay.mp4'}")
        console.print(f"masks: {output / 'masks'}   annotations: {output / 'annotations.json'}")

    _guarded(run)


@eval_app.command("davis")
def eval_davis(
    results: Annotated[Path, typer.Option(help="Folder with one sub-folder of masks per video.")],
    davis_root: Annotated[Path, typer.Option(help="DAVIS root (with Annotations/<res>/).")],
    task: Annotated[DavisTask, typer.Option(help="Protocol.")] = DavisTask.unsupervised,
    match: Annotated[
        DavisMatch | None,
        typer.Option(
            help="Object matching: hungarian (DAVIS-17 unsupervised, default there), union "
            "(DAVIS-16: all objects = foreground), identity (semi-supervised default)."
        ),
    ] = None,
    resolution: Annotated[str, typer.Option(help="Annotation resolution folder.")] = "480p",
) -> None:
    """J (region IoU) and F (boundary) per sequence and their means, as the DAVIS toolkit."""
    _logging(False)
    from deva.eval.davis import evaluate_davis

    def run() -> None:
        report = evaluate_davis(
            results,
            davis_root,
            task=task.value,
            match=match.value if match else None,
            resolution=resolution,
        )
        typer.echo(report.to_markdown())

    _guarded(run)


def _write_run(
    tracker: Tracker,
    frames: FrameSource,
    output: Path,
    *,
    video: bool,
    given_masks: GivenMasks | None = None,
) -> int:
    """Track ``frames`` into ``output`` with a progress bar (frames/s); returns frames written."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from deva.api import track_to_folder

    columns = (
        TextColumn("[bold]tracking"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} frames/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("track", total=frames.num_frames, fps=0.0)

        def advance(_: object) -> None:
            done = progress.tasks[0].completed + 1
            progress.update(task, completed=done, fps=done / (progress.tasks[0].elapsed or 1e-9))

        return track_to_folder(
            tracker, frames, output, video=video, on_result=advance, given_masks=given_masks
        )


def _guarded(run: object) -> None:
    """Run; a DevaError becomes one line on stderr and exit code 2."""
    try:
        run()
    except DevaError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished frames were kept.")
        raise typer.Exit(130) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    app()
