"""The ``deva`` command: a thin layer mapping flags to the Python API and the writers."""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from deva.cli_options import (
    MODEL_DEFAULTS,
    AllowMissing,
    BoxThreshold,
    Categories,
    ClipSize,
    Contours,
    Detector,
    Device,
    DeviceName,
    Incremental,
    Keyframe,
    KeyframeName,
    Labels,
    LabelsName,
    MaxObjects,
    Model,
    ModeName,
    Output,
    OverlayAlpha,
    PlainUsage,
    PointsPerBatch,
    PointsPerSide,
    Precision,
    PrecisionName,
    PredIouThreshold,
    Prompt,
    PropagatorName,
    Reid,
    ReidThreshold,
    Sam2Model,
    SaveName,
    ScoreThreshold,
    SegmenterName,
    Size,
    SuppressSmall,
    Verbose,
    Video,
)
from deva.cli_tasks import task_app
from deva.config import TrackerConfig
from deva.errors import DevaError, OptionError
from deva.segmenters.options import ModelOptions

if TYPE_CHECKING:
    from rich.progress import TaskID

    from deva.io.frames import FrameSource
    from deva.io.visualize import OverlayStyle
    from deva.tracker import GivenMasks, Tracker
    from deva.train.trainer import StepLog
    from deva.types import FrameResult

# Plain (click) help, not rich panels: it wraps to the terminal instead of truncating model ids
# at 80 columns, and shows real flags instead of <bool> placeholders.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="deva: track anything in a video with an image segmenter + temporal propagation.",
)
eval_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Score results against a benchmark."
)
app.add_typer(eval_app, name="eval")
app.add_typer(task_app, name="run-task")
console = Console(stderr=True)
# The default motion segmenter sees nothing on the first frame (no motion yet) and the default
# semi-online vote needs it on two more: shorter videos come out empty (measured on the demo).
MOTION_MIN_FRAMES = 3


class DavisTask(StrEnum):
    unsupervised = "unsupervised"
    semi_supervised = "semi-supervised"


class DavisMatch(StrEnum):
    hungarian = "hungarian"
    union = "union"
    identity = "identity"


class DavisVoid(StrEnum):
    background = "background"
    ignore = "ignore"


class DavisObjects(StrEnum):
    first_frame = "first-frame"
    all = "all"


class BurstIou(StrEnum):
    box = "box"
    mask = "mask"


class VpqShortVideos(StrEnum):
    whole = "whole"
    skip = "skip"


@app.command(cls=PlainUsage, epilog=MODEL_DEFAULTS)
def track(
    ctx: typer.Context,
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="Video file, folder of frames, a glob, or live: a camera index (0) or a stream "
            "URL (rtsp://, http://...; Ctrl-C ends it and finishes the outputs).",
        ),
    ],
    output: Output,
    segmenter: Annotated[
        SegmenterName | None,
        typer.Option(
            help="Image segmenter. Default: precomputed if --detections is given, else motion "
            "(weight-free moving-object segmentation). Learned (models extra): auto (SAM "
            "everything, prompted where nothing is tracked), text (--prompt: Grounding DINO + "
            "SAM), panoptic (Mask2Former / OneFormer / EoMT)."
        ),
    ] = None,
    model: Model = None,
    prompt: Prompt = None,
    detector: Detector = None,
    box_threshold: BoxThreshold = ModelOptions.box_threshold,
    score_threshold: ScoreThreshold = ModelOptions.score_threshold,
    points_per_side: PointsPerSide = ModelOptions.points_per_side,
    points_per_batch: PointsPerBatch = ModelOptions.points_per_batch,
    pred_iou_threshold: PredIouThreshold = ModelOptions.pred_iou_threshold,
    suppress_small: SuppressSmall = ModelOptions.suppress_small,
    sam2_model: Sam2Model = None,
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
        typer.Option(
            help="Temporal propagator: appearance (remembers appearance: matches ImageNet "
            "features shipped with deva, no download), flow (optical flow, one-frame memory; "
            "fastest, drifts on fast motion), "
            "network (DEVA network), or a SAM-family video model, sam2 (SAM 2.1), edgetam or "
            "sam3 (SAM 3 tracker); those need the models extra and keep one running session "
            "with bounded memory."
        ),
    ] = PropagatorName.appearance,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            metavar="FILE|ID",
            help="Network weights: DEVA-propagation.pth (see README) or a Hugging Face hub id.",
        ),
    ] = None,
    device: Annotated[
        DeviceName,
        typer.Option(
            help="Where the models run: propagation network and image models (auto = CUDA if "
            "available)."
        ),
    ] = DeviceName.auto,
    precision: Precision = PrecisionName.auto,
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
    keyframe: Keyframe = KeyframeName.first,
    max_missed: Annotated[
        int, typer.Option(help="Delete an object after more than N missed detections in a row.")
    ] = TrackerConfig.max_missed,
    max_objects: MaxObjects = TrackerConfig.max_objects,
    incremental: Incremental = TrackerConfig.incremental,
    reid: Reid = TrackerConfig.reid,
    reid_threshold: ReidThreshold = TrackerConfig.reid_threshold,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    video: Video = True,
    max_memory: Annotated[
        float | None,
        typer.Option(
            help="Cap the propagator's memory at this many MiB; past it the network propagator "
            "cuts long-term, then working memory (logged). Default: the memory policy alone."
        ),
    ] = None,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            help="Save the tracking state about every N frames (0 = never), so --resume can "
            "continue after a crash or a kill."
        ),
    ] = 0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in OUTPUT from its last checkpoint (same input and options); "
            "starts over if there is none.",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="OUTPUT holds an earlier run: remove what deva wrote there (masks/, "
            "annotations, videos, objects/) first; other files stay.",
        ),
    ] = False,
    save: Annotated[
        list[SaveName] | None,
        typer.Option(
            metavar="per-object|cutout",
            help="Extra outputs (repeatable): per-object = objects/<id>/<frame>.png, one "
            "binary mask folder per object; cutout = cutout.webm, the objects on a "
            "transparent background.",
        ),
    ] = None,
    overlay_alpha: OverlayAlpha = 0.5,
    contours: Contours = True,
    labels: Labels = LabelsName.both,
    categories: Categories = None,
    verbose: Verbose = False,
) -> None:
    """Track every object of INPUT; write masks/, annotations.json and overlay.mp4 to OUTPUT."""
    _logging(verbose)
    from deva.api import check_options, choose_segmenter, make_propagator, route_sam2_model
    from deva.io.frames import open_frames
    from deva.io.init_masks import InitMasks
    from deva.tracker import Tracker

    def run() -> None:
        from deva.io.visualize import OverlayStyle

        style = OverlayStyle(alpha=overlay_alpha, contours=contours, labels=labels.value)
        config = _tracker_config(
            ctx,
            segmenter,
            mode=mode,
            clip_size=clip_size,
            keyframe=keyframe,
            size=size,
            detect_every=detect_every,
            max_missed=max_missed,
            max_objects=max_objects,
            incremental=incremental,
            reid=reid,
            reid_threshold=reid_threshold,
        )
        chosen = segmenter.value if segmenter else None
        models, sam2 = route_sam2_model(
            chosen,
            propagator.value,
            ModelOptions(
                model=model,
                detector=detector,
                prompt=prompt,
                device=device.value,
                points_per_side=points_per_side,
                points_per_batch=points_per_batch,
                pred_iou_threshold=pred_iou_threshold,
                suppress_small=suppress_small,
                box_threshold=box_threshold,
                score_threshold=score_threshold,
            ),
            sam2_model,
        )
        check_options(  # before any model is loaded
            chosen,
            propagator.value,
            detections=detections is not None,
            init_masks=init_masks is not None,
            models=models,
            checkpoint=checkpoint,
            sam2_model=sam2,
            precision=precision.value,
        )
        frames = open_frames(input)
        given = (
            InitMasks(init_masks, frame_name=frames.name, num_frames=frames.num_frames)
            if init_masks
            else None
        )
        image_model = choose_segmenter(
            chosen,
            source=frames,
            detections=detections,
            init_masks=given is not None,
            allow_missing=allow_missing,
            models=models,
        )
        temporal = make_propagator(
            propagator.value,
            checkpoint=checkpoint,
            device=device.value,
            max_memory_mb=max_memory,
            sam2_model=sam2,
            precision=precision.value,
        )
        if categories is not None:
            _name_categories(image_model, categories)
        tracker = Tracker(image_model, temporal, config)
        saving = set(save or ())
        try:
            summary = _write_run(
                tracker,
                frames,
                output,
                video=video,
                given_masks=given,
                checkpoint_every=checkpoint_every,
                resume=resume,
                overwrite=overwrite,
                per_object=SaveName.per_object in saving,
                cutout=SaveName.cutout in saving,
                style=style,
                options=_recorded_options(ctx),
            )
        except KeyboardInterrupt:
            _interrupted(ctx, output, checkpoint_every)
            raise typer.Exit(130) from None
        _report(summary, output, tracker, frames, given is not None)

    _guarded(run)


@app.command("sam3-video", cls=PlainUsage)
def sam3_video(
    input: Annotated[
        str, typer.Argument(metavar="INPUT", help="Video file, folder of frames, or a glob.")
    ],
    output: Output,
    prompt: Annotated[
        str, typer.Option(help='Phrases separated by ".", e.g. "person.dog" (one concept each).')
    ],
    model: Annotated[
        str | None,
        typer.Option(help="SAM 3 video model: hub id or folder. Default: facebook/sam3 (gated)."),
    ] = None,
    device: Device = DeviceName.auto,
    video: Video = True,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="OUTPUT holds an earlier run: replace what deva wrote."),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Baseline: SAM 3's own detector + tracker end to end (no deva fusion), written in deva's
    output format (masks/, annotations.json, overlay.mp4) to compare with deva track."""
    _logging(verbose)

    def run() -> None:
        from deva.io.run_folder import refuse_earlier_run
        from deva.models.sam3_video import run_sam3_video

        if not overwrite:
            refuse_earlier_run(output)
        written = run_sam3_video(
            input, output, prompt=prompt, model=model, device=device.value, video=video
        )
        console.print(
            f"[green]{_count(written, 'frame')}[/green] tracked by SAM 3 video -> {output}"
        )

    _guarded(run)


@app.command()
def demo(output: Output = Path("deva_demo_output")) -> None:
    """Render a short clip of moving textured objects and track it with the defaults."""
    _logging(False)
    from deva.demo import render_demo_clip
    from deva.io.frames import open_frames
    from deva.tracker import Tracker

    def run() -> None:
        from deva.api import make_propagator
        from deva.segmenters.motion import MotionSegmenter

        frames = open_frames(render_demo_clip())
        tracker = Tracker(MotionSegmenter(), make_propagator("appearance"), TrackerConfig())
        summary = _write_run(tracker, frames, output, video=True, overwrite=True)
        console.print(f"{summary.describe()}.")
        console.print(f"overlay video: {output / 'overlay.mp4'}")
        console.print(f"masks: {output / 'masks'}   annotations: {output / 'annotations.json'}")

    _guarded(run)


@app.command(cls=PlainUsage, epilog=MODEL_DEFAULTS)
def batch(
    ctx: typer.Context,
    input: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Folder of videos (video files and sub-folders of frames) or a .txt file "
            "listing one video or frame folder per line.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder: one sub-folder per video.")
    ],
    workers: Annotated[
        int, typer.Option(help="Videos tracked at once; > 1 runs them as Ray tasks.")
    ] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="Run on this Ray cluster (e.g. auto or ray://host:10001)."),
    ] = None,
    segmenter: Annotated[
        SegmenterName | None, typer.Option(help="Image segmenter (as deva track).")
    ] = None,
    model: Model = None,
    prompt: Prompt = None,
    detector: Detector = None,
    box_threshold: BoxThreshold = ModelOptions.box_threshold,
    score_threshold: ScoreThreshold = ModelOptions.score_threshold,
    points_per_side: PointsPerSide = ModelOptions.points_per_side,
    points_per_batch: PointsPerBatch = ModelOptions.points_per_batch,
    pred_iou_threshold: PredIouThreshold = ModelOptions.pred_iou_threshold,
    suppress_small: SuppressSmall = ModelOptions.suppress_small,
    sam2_model: Sam2Model = None,
    detections: Annotated[
        Path | None,
        typer.Option(help="Folder with one sub-folder of precomputed detections per video."),
    ] = None,
    init_masks: Annotated[
        Path | None,
        typer.Option(help="Folder with one sub-folder of given masks per video (VOS)."),
    ] = None,
    propagator: Annotated[
        PropagatorName, typer.Option(help="Temporal propagator.")
    ] = PropagatorName.appearance,
    checkpoint: Annotated[
        str | None, typer.Option(help="Network weights (with --propagator network).")
    ] = None,
    device: Device = DeviceName.auto,
    precision: Precision = PrecisionName.auto,
    mode: Annotated[ModeName, typer.Option(help="semionline or online.")] = ModeName.semionline,
    detect_every: Annotated[
        int, typer.Option(help="Run the image segmenter every N frames.")
    ] = TrackerConfig.detect_every,
    clip_size: ClipSize = TrackerConfig.clip_size,
    keyframe: Keyframe = KeyframeName.first,
    max_missed: Annotated[
        int, typer.Option(help="Delete an object after more than N missed detections.")
    ] = TrackerConfig.max_missed,
    max_objects: MaxObjects = TrackerConfig.max_objects,
    incremental: Incremental = TrackerConfig.incremental,
    reid: Reid = TrackerConfig.reid,
    reid_threshold: ReidThreshold = TrackerConfig.reid_threshold,
    size: Size = TrackerConfig.size,
    allow_missing: AllowMissing = False,
    video: Video = True,
    max_memory: Annotated[
        float | None, typer.Option(help="Cap each propagator's memory at this many MiB.")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Track many videos: OUTPUT/<video>/ each, OUTPUT/manifest.json, OUTPUT/summary.md.

    A failed video is reported and the rest go on (exit code 1 if any failed). Re-running
    skips the videos already done and retries the others.
    """
    _logging(verbose)

    def run() -> None:
        from deva.batch import SUMMARY, run_batch
        from deva.batch_progress import BatchProgress, batch_tables

        config = _tracker_config(
            ctx,
            segmenter,
            mode=mode,
            clip_size=clip_size,
            keyframe=keyframe,
            size=size,
            detect_every=detect_every,
            max_missed=max_missed,
            max_objects=max_objects,
            incremental=incremental,
            reid=reid,
            reid_threshold=reid_threshold,
        )
        models = ModelOptions(
            model=model,
            detector=detector,
            prompt=prompt,
            device=device.value,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_threshold=pred_iou_threshold,
            suppress_small=suppress_small,
            box_threshold=box_threshold,
            score_threshold=score_threshold,
        )
        with BatchProgress(console) as progress:
            report = run_batch(
                input,
                output,
                workers=workers,
                address=address,
                config=config,
                segmenter=segmenter.value if segmenter else None,
                propagator=propagator.value,
                checkpoint=checkpoint,
                device=device.value,
                detections=detections,
                init_masks=init_masks,
                allow_missing=allow_missing,
                video=video,
                models=models,
                max_memory_mb=max_memory,
                sam2_model=sam2_model,
                precision=precision.value,
                on_start=progress.on_start,
                on_video=progress.on_video,
                on_frame=progress.on_frame,
            )
        Console(highlight=False).print(batch_tables(report))
        console.print(f"summary: {output / SUMMARY}   manifest: {output / 'manifest.json'}")
        if not report.ok:
            raise typer.Exit(1)

    _guarded(run)


class ExportFormat(StrEnum):
    coco = "coco"
    mots = "mots"
    cvat = "cvat"


@app.command(cls=PlainUsage)
def export(
    results: Annotated[
        Path,
        typer.Argument(
            metavar="RESULTS", help="A deva track output folder (coco: also a deva batch output)."
        ),
    ],
    format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="coco: YouTube-VIS style COCO-RLE JSON; mots: KITTI-MOTS / MOTSChallenge txt; "
            "cvat: CVAT for video 1.1 XML (mask tracks).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default RESULTS/coco.json, mots.txt, cvat.xml)."
        ),
    ] = None,
) -> None:
    """Convert tracking results to a format other tools read."""
    _logging(False)

    def run() -> None:
        from deva.io.exports import export_results

        written, videos = export_results(results, format.value, output)
        console.print(f"[green]{format.value}[/green]: {_count(videos, 'video')} -> {written}")

    _guarded(run)


@app.command()
def web(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 = every network interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    share: Annotated[
        bool, typer.Option("--share/--no-share", help="Also open a temporary public gradio link.")
    ] = False,
) -> None:
    """Open the web app: upload a video, choose a mode, watch the overlay, download the results
    (needs gradio, the web extra)."""
    _logging(False)

    def run() -> None:
        from deva.web import serve

        serve(host=host, port=port, share=share)

    _guarded(run)


@app.command("train", cls=PlainUsage)
def train_command(
    config: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG",
            help="Training config (TOML; write one with deva train-config). With --resume it "
            "may be left out or be the run folder itself.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (checkpoints, weights).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run folder from its last checkpoint.")
    ] = False,
    device: Annotated[DeviceName | None, typer.Option(help="Override the config's device.")] = None,
    iterations: Annotated[
        int | None, typer.Option(help="Override every stage's iterations.")
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the default config and exit.")
    ] = False,
) -> None:
    """Train the propagation network (static-image then video stages, spec §7)."""
    _logging(False)
    if print_config:
        from deva.train.config import config_to_toml

        typer.echo(config_to_toml(), nl=False)
        return

    def run() -> None:
        from dataclasses import replace

        from deva.train.config import load_config
        from deva.train.trainer import train

        config_path, run_dir = config, output
        if config_path is not None and config_path.is_dir():
            if run_dir is not None and run_dir.resolve() != config_path.resolve():
                raise DevaError(f"{config_path} is a folder, not a TOML training config")
            run_dir, config_path = config_path, None
        if run_dir is None:
            raise DevaError("give the run folder: deva train CONFIG.toml -o RUN_DIR")
        if config_path is None:
            if not resume:
                raise DevaError("give a training config (deva train-config writes the default)")
            config_path = run_dir / "config.toml"
        settings = load_config(config_path)
        if iterations is not None:
            settings = settings.with_iterations(iterations)
        if device is not None:
            settings = replace(settings, device=device.value)
        try:
            with _TrainProgress() as progress:
                result = train(settings, run_dir, resume=resume, on_step=progress.update)
        except KeyboardInterrupt:
            console.print(
                "[yellow]stopped[/yellow] at once (second Ctrl-C); deva train --resume "
                f"{run_dir} continues from the last saved checkpoint"
            )
            raise typer.Exit(130) from None
        if result.interrupted:
            console.print(
                f"[yellow]interrupted[/yellow]: checkpoint saved at stage {result.stage} "
                f"iteration {result.iteration}; continue with: deva train --resume {run_dir}"
            )
            raise typer.Exit(130)
        console.print(f"[green]trained[/green] -> {result.weights}")
        console.print(
            f"use it: deva track VIDEO -o OUT --propagator network --checkpoint {result.weights}"
        )

    _guarded(run)


@app.command("train-config")
def train_config(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the default training config (TOML, every key commented) to edit for deva train."""
    from deva.train.config import config_to_toml

    def run() -> None:
        if output is None:
            typer.echo(config_to_toml(), nl=False)
            return
        from deva.io.atomic import atomic_path

        try:
            with atomic_path(output) as temp:
                temp.write_text(config_to_toml(), encoding="utf-8")
        except OSError as err:
            raise DevaError(f"cannot write {output}: {err.strerror or err}") from err
        console.print(f"default training config -> {output}")

    _guarded(run)


class _TrainProgress:
    """A rich progress bar per training stage showing loss and it/s (silent off a terminal)."""

    def __enter__(self) -> _TrainProgress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]stage {task.fields[stage]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.2f} it/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, TaskID] = {}
        self._progress.__enter__()
        return self

    def update(self, step: StepLog) -> None:
        if step.stage not in self._tasks:
            self._tasks[step.stage] = self._progress.add_task(
                "train", total=step.total, stage=step.stage, loss=0.0, rate=0.0
            )
        self._progress.update(
            self._tasks[step.stage], completed=step.iteration, loss=step.loss, rate=step.it_per_s
        )

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]


@eval_app.command("davis")
def eval_davis(
    results: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="Folder with one sub-folder of masks per sequence (RESULTS/<sequence>/[masks/]"
            "<frame>.png), or one deva track output with --sequence.",
        ),
    ],
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
    image_set: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="Sequence list: NAME of ImageSets/2017/NAME.txt (or ImageSets/<res>/) or a "
            "file (default: val where that list exists, as the official tool; else every "
            "annotated sequence).",
        ),
    ] = None,
    subset: Annotated[
        bool,
        typer.Option(
            "--subset",
            help="Score only the listed sequences that have results (the header names the "
            "rest); without it a missing or misnamed results folder is an error.",
        ),
    ] = False,
    void: Annotated[
        DavisVoid | None,
        typer.Option(
            help="Void pixels (255): background (official semi-supervised default) or ignore "
            "(official unsupervised default)."
        ),
    ] = None,
    objects: Annotated[
        DavisObjects | None,
        typer.Option(
            help="Gt objects: first-frame = ids 1..max of the first frame (official default) "
            "or all = every id of any frame."
        ),
    ] = None,
    sequence: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="RESULTS is one deva track output folder, of this DAVIS sequence (e.g. "
            "blackswan).",
        ),
    ] = None,
) -> None:
    """J (region IoU) and F (boundary) per sequence and their means, as davis2017-evaluation."""
    _logging(False)
    from deva.eval.davis import evaluate_davis

    def run() -> None:
        with _davis_results(results, sequence) as (root, sequences):
            report = evaluate_davis(
                root,
                davis_root,
                task=task.value,
                match=match.value if match else None,
                resolution=resolution,
                sequences=sequences,
                image_set=image_set,
                subset=subset,
                void=void.value if void else None,
                objects=objects.value if objects else None,
            )
        typer.echo(report.to_markdown())

    _guarded(run)


@contextlib.contextmanager
def _davis_results(results: Path, sequence: str | None) -> Iterator[tuple[Path, list[str] | None]]:
    """The results root and sequences evaluate_davis reads. One ``deva track`` output (masks/
    inside) is scored as ``sequence`` through a temporary ``<sequence>`` link to it; without
    --sequence it is one clear error saying the layout, not "no sequence matches"."""
    from deva.io.run_folder import ANNOTATIONS, MASKS

    single = (results / MASKS).is_dir() or (results / ANNOTATIONS).is_file()
    if sequence is None:
        if single:
            raise DevaError(
                f"{results}: one deva track output; name its DAVIS sequence with --sequence NAME, "
                "or give a folder with one sub-folder per sequence (RESULTS/<sequence>/[masks/]"
                "<frame>.png)"
            )
        yield results, None
        return
    if not results.is_dir():
        raise DevaError(f"{results}: results folder not found")
    if not sequence or "/" in sequence or sequence.startswith("."):
        raise DevaError(f"--sequence must be a DAVIS sequence name, got {sequence!r}")
    with tempfile.TemporaryDirectory(prefix="deva-eval-") as temp:
        link = Path(temp) / sequence
        link.symlink_to(results.resolve(), target_is_directory=True)
        try:
            yield Path(temp), [sequence]
        except DevaError as err:  # name the user's folder, not the link
            raise DevaError(str(err).replace(str(link), str(results))) from err


@eval_app.command("vipseg")
def eval_vipseg(
    results: Annotated[Path, typer.Option(help="Folder with pred.json and pan_pred/<video>/.")],
    gt: Annotated[
        Path, typer.Option(help="VIPSeg_720P folder (with panomasksRGB/) or the masks folder.")
    ],
    gt_json: Annotated[
        Path | None,
        typer.Option(
            help="Panoptic gt JSON (default: the panoptic_gt_VIPSeg_*.json next to --gt)."
        ),
    ] = None,
    video: Annotated[
        list[str] | None, typer.Option(help="Score only this video (repeatable; default all).")
    ] = None,
    windows: Annotated[
        str, typer.Option(help="VPQ window lengths in frames, comma-separated (999 = whole clip).")
    ] = "1,2,4,6,8,10,999",
    subset: Annotated[
        bool,
        typer.Option(
            "--subset",
            help="Score only the gt videos that have predictions (the header names the rest); "
            "without it a missing or misnamed video is an error.",
        ),
    ] = False,
    short_videos: Annotated[
        VpqShortVideos,
        typer.Option(
            help="Per-window VPQ^k of a video shorter than k frames: whole = one whole-clip "
            "window (DEVA's script), skip = left out (VIPSeg's)."
        ),
    ] = VpqShortVideos.whole,
) -> None:
    """VPQ (DEVA paper and VIPSeg toolkit summaries, per window, thing / stuff) and STQ."""
    _logging(False)
    from deva.eval.vipseg import evaluate_vipseg

    def run() -> None:
        try:
            sizes = [int(k) for k in windows.split(",") if k.strip()]
        except ValueError as err:
            raise DevaError(f"--windows must be comma-separated integers, got {windows!r}") from err
        report = evaluate_vipseg(
            results,
            gt,
            gt_json=gt_json,
            videos=video or None,
            subset=subset,
            windows=sizes,
            short_videos=short_videos.value,
        )
        typer.echo(report.to_markdown())

    _guarded(run)


@eval_app.command("burst")
def eval_burst(
    results: Annotated[Path, typer.Option(help="Results JSON in the BURST annotation layout.")],
    gt: Annotated[Path, typer.Option(help="BURST ground-truth JSON (e.g. val/all_classes.json).")],
    max_detections: Annotated[
        int, typer.Option(help="Most predictions kept per frame, by score (0 = all).")
    ] = 300,
    iou: Annotated[
        BurstIou,
        typer.Option(
            help="box: IoU of the masks' bounding boxes, as the BURST toolkit computes every "
            "published number; mask: the intended mask IoU."
        ),
    ] = BurstIou.box,
    subset: Annotated[
        bool,
        typer.Option(
            "--subset",
            help="Score only the gt sequences present in the results (the header names the "
            "rest); without it a missing or misnamed sequence is an error.",
        ),
    ] = False,
) -> None:
    """OWTA / HOTA / DetRe / AssA over all, common and uncommon categories (open-world BURST)."""
    _logging(False)
    from deva.eval.burst import evaluate_burst

    def run() -> None:
        report = evaluate_burst(
            results, gt, max_detections=max_detections, iou=iou.value, subset=subset
        )
        typer.echo(report.to_markdown())

    _guarded(run)


@dataclass(frozen=True)
class _RunSummary:
    """What a ``deva track`` run did: frames written, distinct objects, seconds."""

    frames: int
    objects: int
    seconds: float

    def describe(self) -> str:
        rate = f", {self.frames / self.seconds:.1f} frames/s" if self.seconds > 0 else ""
        return f"tracked {_count(self.objects, 'object')} in {_count(self.frames, 'frame')}{rate}"


def _write_run(
    tracker: Tracker,
    frames: FrameSource,
    output: Path,
    *,
    video: bool,
    given_masks: GivenMasks | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    per_object: bool = False,
    cutout: bool = False,
    style: OverlayStyle | None = None,
    options: dict[str, object] | None = None,
) -> _RunSummary:
    """Track ``frames`` into ``output`` with a progress bar (frames/s, this session's frames);
    returns what was written (frames in all, objects seen in this session)."""
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
    objects: set[int] = set()
    start = time.perf_counter()
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("track", total=frames.num_frames, fps=0.0)

        def advance(result: FrameResult) -> None:
            objects.update(result.object_ids)
            done = progress.tasks[0].completed + 1
            progress.update(task, completed=done, fps=done / (progress.tasks[0].elapsed or 1e-9))

        written = track_to_folder(
            tracker,
            frames,
            output,
            video=video,
            on_result=advance,
            given_masks=given_masks,
            checkpoint_every=checkpoint_every,
            resume=resume,
            overwrite=overwrite,
            per_object=per_object,
            cutout=cutout,
            style=style,
            options=options,
        )
    if resume:  # this session saw only the frames after the checkpoint
        objects = _objects_in(output)
    return _RunSummary(written, len(objects), time.perf_counter() - start)


def _objects_in(output: Path) -> set[int]:
    """The object ids of a finished run's annotations.json, read one frame record (one line)
    at a time."""
    import json

    from deva.io.run_folder import ANNOTATIONS

    found: set[int] = set()
    with (output / ANNOTATIONS).open(encoding="utf-8") as lines:
        next(lines)  # '{"frames": ['
        for line in lines:
            if line.startswith("]"):
                break
            if not line.strip():
                continue
            found.update(o["id"] for o in json.loads(line.rstrip().removesuffix(","))["objects"])
    return found


def _report(
    summary: _RunSummary, output: Path, tracker: Tracker, frames: FrameSource, given: bool
) -> None:
    """The one-line summary of a track run, and a warning saying why when nothing was found."""
    from deva.io.run_folder import CUTOUT, OBJECTS, OVERLAY

    written = ["masks/", "annotations.json"]
    written += [name for name in (OVERLAY, CUTOUT) if (output / name).is_file()]
    written += [f"{OBJECTS}/"] if (output / OBJECTS).is_dir() else []
    console.print(
        f"[green]{summary.describe()}[/green] -> {escape(str(output))}/ ({', '.join(written)})",
        highlight=False,
        soft_wrap=True,
    )
    if summary.objects == 0 and summary.frames > 0:
        reason = _why_nothing(tracker, frames.num_frames or summary.frames, given)
        console.print(f"[yellow]warning:[/yellow] no objects found: {reason}", soft_wrap=True)


def _why_nothing(tracker: Tracker, frames: int, given: bool) -> str:
    """Why a run found no object, in terms of what the user can change."""
    from deva.segmenters.motion import MotionSegmenter
    from deva.segmenters.precomputed import PrecomputedSegmenter

    segmenter = tracker.segmenter
    if isinstance(segmenter, MotionSegmenter):
        if frames < MOTION_MIN_FRAMES:
            return (
                f"the default motion segmenter sees objects by their motion between frames and "
                f"needs at least {MOTION_MIN_FRAMES} frames; this video has {frames}. Track a "
                "longer video, or name the objects: --init-masks, --detections or --segmenter "
                "auto/text"
            )
        return (
            f"nothing moved against the background in {_count(frames, 'frame')} (motion is "
            "the default segmenter's only cue); for still objects use --segmenter auto/text, "
            "--detections or --init-masks"
        )
    if isinstance(segmenter, PrecomputedSegmenter):
        return (
            "the detections hold no segment on the frames read (one every "
            f"{_count(tracker.config.detect_every, 'frame')}, --detect-every); check the "
            "detection PNGs are not all 0"
        )
    if segmenter is None and given:
        return "the --init-masks PNGs hold no object (all 0) on frames named like the video's"
    return (
        f"the image segmenter found nothing (--segmenter {type(segmenter).__name__}); try a "
        "lower threshold or another model"
    )


def _interrupted(ctx: typer.Context, output: Path, checkpoint_every: int) -> None:
    """Ctrl-C during a track run: what was kept, and the command that continues it."""
    from deva.io.run_folder import CHECKPOINT, MASKS

    kept = len(list((output / MASKS).glob("*.png"))) if (output / MASKS).is_dir() else 0
    command = _command_line(ctx, drop=("resume", "overwrite"))
    head = f"[yellow]interrupted[/yellow] after {_count(kept, 'frame')} (kept in {output})"
    if (output / CHECKPOINT).is_file():
        advice = "; continue where it stopped with:"
        tail = f"{command} --resume"
    elif checkpoint_every > 0:
        advice = " before its first checkpoint; --resume starts it over:"
        tail = f"{command} --resume"
    else:
        advice = (
            "; the run saved no checkpoint, so it starts over (--checkpoint-every N lets "
            "--resume continue where a run stopped):"
        )
        command = _command_line(ctx, drop=("resume", "overwrite", "checkpoint_every"))
        tail = f"{command} --checkpoint-every 100 --resume"
    console.print(head + escape(advice), highlight=False, soft_wrap=True)
    console.print(f"  {escape(tail)}", highlight=False, soft_wrap=True)


def _command_line(ctx: typer.Context, *, drop: tuple[str, ...] = ()) -> str:
    """The ``deva`` command as the user gave it (options set on the command line only), for
    messages that say how to rerun it."""
    names, node = [], ctx
    while node.parent is not None:  # the root's name is how Python was called: say deva
        names.insert(0, node.info_name or "")
        node = node.parent
    words = ["deva", *names]
    for param in ctx.command.params:
        name = param.name or ""
        if name in drop or _source(ctx, name) != "COMMANDLINE":
            continue
        value = ctx.params.get(name)
        if param.param_type_name != "option":
            words.append(_word(value))
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool) and getattr(param, "is_flag", False):
                flags = param.opts if item else (param.secondary_opts or param.opts)
                words.append(_long(flags))
            else:
                words += [_long(param.opts), _word(item)]
    return shlex.join(words)


def _long(flags: list[str]) -> str:
    return next((f for f in flags if f.startswith("--")), flags[0])


def _word(value: object) -> str:
    return str(value.value if isinstance(value, StrEnum) else value)


def _source(ctx: typer.Context, name: str) -> str:
    return getattr(ctx.get_parameter_source(name), "name", "DEFAULT")


def _recorded_options(ctx: typer.Context) -> dict[str, object]:
    """The track options as used (for annotations.json), minus those that only steer the run
    (output, resume, overwrite, logging): a resumed run records the same as an uninterrupted
    one."""
    skipped = {"input", "output", "resume", "overwrite", "verbose", "checkpoint_every"}
    recorded: dict[str, object] = {}
    for name, value in ctx.params.items():
        if name in skipped:
            continue
        if isinstance(value, list | tuple):
            value = [_word(v) for v in value]
        elif isinstance(value, StrEnum | Path):
            value = _word(value)
        recorded[name] = value
    return recorded


def _name_categories(segmenter: object, path: Path) -> None:
    """Give ``segmenter`` the category names of the JSON file ``path`` (--categories)."""
    from deva.io.json_file import read_json

    data = read_json(path)
    try:
        if isinstance(data, dict):
            names = {int(k): str(v) for k, v in data.items()}
        else:
            names = {int(c["id"]): str(c["name"]) for c in data}
    except (TypeError, ValueError, KeyError) as err:
        raise DevaError(
            f'{path}: category names must be {{"1": "person", ...}} or [{{"id": 1, "name": '
            f'"person"}}, ...] ({err!r})'
        ) from err
    if segmenter is None:
        raise DevaError("--categories names the image segmenter's categories, but none runs")
    current = getattr(segmenter, "category_names", None) or {}
    segmenter.category_names = {**current, **names}  # type: ignore[attr-defined]


def _count(number: int, noun: str) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _tracker_config(
    ctx: typer.Context,
    segmenter: SegmenterName | None,
    *,
    mode: ModeName,
    clip_size: int,
    keyframe: KeyframeName,
    size: int,
    **tunable: object,
) -> TrackerConfig:
    """The tracker settings of track/batch: the ``tunable`` options the user did not set take
    the segmenter mode's defaults (e.g. auto: max 200 objects, incremental)."""
    from deva.segmenters.options import tracker_defaults

    for name, value in tracker_defaults(segmenter.value if segmenter else None).items():
        source = ctx.get_parameter_source(name)  # typer may ship its own click: compare names
        if getattr(source, "name", "DEFAULT") in ("DEFAULT", "DEFAULT_MAP"):
            tunable[name] = value
    config = TrackerConfig(
        mode=mode.value,
        clip_size=clip_size,
        keyframe=keyframe.value,
        size=size,
        **tunable,  # type: ignore[arg-type]
    )
    for warning in clip_warnings(config, clip_size_given=_source(ctx, "clip_size") != "DEFAULT"):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    return config


def clip_warnings(config: TrackerConfig, *, clip_size_given: bool) -> list[str]:
    """--clip-size that does not take effect as given: capped at --detect-every (a clip ends
    where the next one starts) or unused in online mode."""
    if config.mode == "online":
        if clip_size_given:
            return ["--clip-size is not used in online mode (each detection is merged alone)"]
        return []
    if config.clip_size > config.detect_every:
        return [
            f"--clip-size {config.clip_size} is above --detect-every {config.detect_every}: "
            f"clips hold {_count(config.detect_every, 'frame')} (a clip ends where the next one "
            "starts)"
        ]
    return []


def _guarded(run: object) -> None:
    """Run; a DevaError becomes one line on stderr and exit code 2 (an option named by its
    flag, not its Python name)."""
    try:
        run()
    except DevaError as err:
        text = _printable(err.command_line() if isinstance(err, OptionError) else str(err))
        console.print(f"[red]error:[/red] {text}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished frames were kept.")
        raise typer.Exit(130) from None


def _printable(text: str) -> str:
    """The message as one line of literal text: rich markup in paths (``[x]``) escaped, bytes
    of non-UTF-8 file names shown as ``\\xff``, line breaks flattened."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte (from JSON, say)
        raw = text.encode("utf-8", "backslashreplace")
    return escape(" ".join(raw.decode("utf-8", "backslashreplace").splitlines()))


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    app()
