"""``deva web``: track a video from the browser (a Gradio app over ``track_to_folder``).

The work is done by plain functions (``run_job``, ``package_run``, ``WebSettings``) that know
nothing of Gradio, so they are tested without a browser; ``build_app`` only lays out widgets and
maps them onto those functions. Gradio is imported lazily: ``import deva`` never loads it.
"""

from __future__ import annotations

import importlib.util
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deva.config import TrackerConfig
from deva.errors import DevaError, install_hint
from deva.io.atomic import atomic_path
from deva.segmenters.options import LEARNED_SEGMENTERS, ModelOptions, tracker_defaults

if TYPE_CHECKING:
    import gradio as gr

    from deva.io.frames import FrameSource
    from deva.propagation.base import Propagator
    from deva.segmenters.base import ImageSegmenter
    from deva.types import FrameResult

#: Segmentation modes shown in the app: value -> label. ``masks`` runs no image segmenter.
MODES: dict[str, str] = {
    "motion": "Moving objects (no model weights)",
    "auto": "Automatic (segment everything)",
    "text": "Text prompt",
    "panoptic": "Panoptic",
    "precomputed": "Precomputed detections (zip)",
    "masks": "First-frame masks (zip)",
}
#: Modes that need a learned image model (the ``deva-track[models]`` extra).
LEARNED_MODES = LEARNED_SEGMENTERS
#: Finished runs kept in the work folder; older ones are deleted when a new run starts (Gradio
#: has already copied their outputs into its own cache by then).
KEEP_RUNS = 4
ARCHIVE_SUFFIX = "-deva.zip"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: ``deva track`` flag -> the app's field for it: messages shared with the command line name
#: flags, which mean nothing in the app (each name starts its widget's label).
FIELD_NAMES: dict[str, str] = {
    "--model": "Image model",
    "--sam2-model": "Propagator weights",
    "--propagator-model": "Propagator weights",
    "--checkpoint": "Propagator weights",
    "--detector": "Text detector",
    "--prompt": "Text prompt",
    "--points-per-side": "Points per side",
    "--propagator": "Propagator",
    "--mode": "Temporal setting",
    "--detect-every": "Detect every",
    "--clip-size": "Clip size",
    "--max-missed": "Delete after misses",
    "--max-objects": "Max objects",
    "--size": "Resolution",
    "--incremental": "Incremental",
    "--detections": "Detections",
    "--init-masks": "Masks",
    "--segmenter": "How objects are found",
}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class WebSettings:
    """What the user chose in the app, as the widgets give it (numbers may arrive as floats or
    None; ``tracker_config`` and ``model_options`` check them).

    propagator_model: the network's checkpoint or the SAM 2 / EdgeTAM / SAM 3 video model (empty:
    that family's default; ignored by ``flow`` and ``appearance``).
    """

    segmentation: str = "motion"
    prompt: str = ""
    model: str = ""
    detector: str = ""
    points_per_side: float | None = ModelOptions.points_per_side
    propagator: str = "appearance"
    propagator_model: str = ""
    mode: str = TrackerConfig.mode
    detect_every: float | None = TrackerConfig.detect_every
    clip_size: float | None = TrackerConfig.clip_size
    max_missed: float | None = TrackerConfig.max_missed
    max_objects: float | None = TrackerConfig.max_objects
    incremental: bool = TrackerConfig.incremental
    size: float | None = TrackerConfig.size

    @classmethod
    def for_mode(cls, segmentation: str, **changes: Any) -> WebSettings:
        """Settings of ``segmentation`` with the tracker defaults that mode has in ``deva
        track`` too (``tracker_defaults``), then ``changes``."""
        mode_knobs = {k: v for k, v in tracker_defaults(segmentation).items() if k in _FIELDS}
        return replace(cls(segmentation=segmentation, **mode_knobs), **changes)

    def tracker_config(self) -> TrackerConfig:
        """The TrackerConfig of these settings; a DevaError naming the field if one is invalid."""
        return TrackerConfig(
            mode=self.mode,  # type: ignore[arg-type]  # TrackerConfig checks the value
            detect_every=_whole(self.detect_every, "detect every"),
            clip_size=_whole(self.clip_size, "clip size"),
            max_missed=_whole(self.max_missed, "max missed"),
            max_objects=_whole(self.max_objects, "max objects"),
            incremental=bool(self.incremental),
            size=_whole(self.size, "size"),
        )

    def model_options(self) -> ModelOptions:
        """What the learned segmenters get; empty fields mean their defaults."""
        points = _whole(self.points_per_side, "points per side")
        if points < 1:
            raise DevaError(f"points per side must be >= 1, got {points}")
        return ModelOptions(
            model=self.model.strip() or None,
            detector=self.detector.strip() or None,
            prompt=self.prompt.strip() or None,
            points_per_side=points,
        )


_FIELDS = frozenset(f.name for f in fields(WebSettings))


@dataclass(frozen=True)
class WebInputs:
    """The uploaded files of one run (paths on the server); one of video / frames_zip."""

    video: Path | None = None
    frames_zip: Path | None = None
    detections_zip: Path | None = None
    masks_zip: Path | None = None


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: the overlay video (None if not written), the zip to download, counts."""

    run_dir: Path
    overlay: Path | None
    archive: Path
    num_frames: int
    object_ids: tuple[int, ...]

    def summary(self) -> str:
        ids = ", ".join(map(str, self.object_ids)) or "none"
        count = len(self.object_ids)
        frames = f"{self.num_frames} frame{'s' * (self.num_frames != 1)}"
        return f"Tracked {frames}: {count} object{'s' * (count != 1)} (ids: {ids})."


def mode_available(segmentation: str) -> str | None:
    """None if ``segmentation`` can run in this installation, else the message saying why."""
    from deva.api import SEGMENTER_NAMES

    if segmentation not in LEARNED_MODES:
        return None
    if importlib.util.find_spec("transformers") is None:
        return (
            f"{MODES[segmentation]} mode needs the learned image models: {install_hint('models')}"
        )
    if segmentation not in SEGMENTER_NAMES:
        return f"{MODES[segmentation]} mode is not available in this version of deva"
    return None


def run_job(
    inputs: WebInputs,
    settings: WebSettings,
    runs_dir: str | Path,
    *,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> RunOutcome:
    """Track the uploaded video with ``settings`` in a fresh folder under ``runs_dir`` and pack
    masks/, annotations.json and overlay.mp4 into one zip. Older runs are cleaned first.

    on_progress(done, total): called after each frame is written (total None if unknown).
    A DevaError names the app's fields, not the command line's flags.
    """
    try:
        return _run_job(inputs, settings, runs_dir, on_progress)
    except DevaError as err:
        raise DevaError(field_names(str(err))) from err


def field_names(message: str) -> str:
    """``message`` with each ``deva track`` flag replaced by the quoted name of its field."""
    return _FLAG.sub(
        lambda m: f'"{FIELD_NAMES[m.group(0)]}"' if m.group(0) in FIELD_NAMES else m.group(0),
        message,
    )


def _run_job(
    inputs: WebInputs,
    settings: WebSettings,
    runs_dir: str | Path,
    on_progress: Callable[[int, int | None], None] | None,
) -> RunOutcome:
    from deva.api import track_to_folder
    from deva.io.frames import open_frames
    from deva.io.init_masks import InitMasks
    from deva.tracker import Tracker

    if settings.segmentation not in MODES:
        raise DevaError(f"unknown mode {settings.segmentation!r}; available: {', '.join(MODES)}")
    config = settings.tracker_config()
    runs = Path(runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    clean_old_runs(runs, keep=KEEP_RUNS - 1)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))

    source, name = _frames_of(inputs, run_dir)
    frames = open_frames(source)
    given = None
    if settings.segmentation == "masks":
        if inputs.masks_zip is None:
            raise DevaError(
                "first-frame masks mode: upload a zip of palette PNGs named like the frames"
            )
        masks = _unzip(inputs.masks_zip, run_dir / "masks", "masks zip")
        given = InitMasks(masks, frame_name=frames.name, num_frames=frames.num_frames)
    segmenter = _segmenter(settings, frames, inputs, run_dir)
    propagator = _propagator(settings)
    tracker = Tracker(segmenter, propagator, config)

    seen: set[int] = set()
    done = 0

    def advance(result: FrameResult) -> None:
        nonlocal done
        done += 1
        seen.update(o.id for o in result.objects)
        if on_progress is not None:
            on_progress(done, frames.num_frames)

    output = run_dir / "output"
    written = track_to_folder(tracker, frames, output, on_result=advance, given_masks=given)
    archive = package_run(output, run_dir / f"{name}{ARCHIVE_SUFFIX}")
    overlay = output / "overlay.mp4"
    return RunOutcome(
        run_dir=run_dir,
        overlay=overlay if overlay.is_file() else None,
        archive=archive,
        num_frames=written,
        object_ids=tuple(sorted(seen)),
    )


def package_run(output: str | Path, archive: str | Path) -> Path:
    """Zip a finished run folder (masks/*.png, annotations.json, overlay.mp4 if present) into
    ``archive``, which appears only when complete. Paths inside are relative to ``output``."""
    output, archive = Path(output), Path(archive)
    annotations = output / "annotations.json"
    if not annotations.is_file():
        raise DevaError(f"{output}: no annotations.json, the run did not finish")
    members = sorted((output / "masks").glob("*.png")) + [annotations]
    if (output / "overlay.mp4").is_file():
        members.append(output / "overlay.mp4")
    with atomic_path(archive) as temp, zipfile.ZipFile(temp, "w") as bundle:
        for path in members:
            # PNG and MP4 are compressed already; deflating them again only costs time.
            method = zipfile.ZIP_DEFLATED if path.suffix == ".json" else zipfile.ZIP_STORED
            bundle.write(path, path.relative_to(output).as_posix(), compress_type=method)
    return archive


def clean_old_runs(runs_dir: str | Path, *, keep: int) -> None:
    """Delete all but the ``keep`` newest ``run-*`` folders of ``runs_dir``."""
    runs = sorted(Path(runs_dir).glob("run-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[max(keep, 0) :]:
        shutil.rmtree(old, ignore_errors=True)


def build_app(runs_dir: str | Path | None = None) -> gr.Blocks:
    """The Gradio app; runs go to ``runs_dir`` (default: <temp>/deva-web)."""
    gr = _gradio()
    from deva.api import PROPAGATOR_NAMES

    runs = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    defaults = WebSettings()
    # delete_cache: Gradio's copies of uploads and results older than 6 h go, checked hourly.
    with gr.Blocks(title="deva", analytics_enabled=False, delete_cache=(3600, 6 * 3600)) as app:
        gr.Markdown(
            "# deva — track anything in a video\n"
            "Upload a video (or a zip of frames), choose how objects are found, press **Run**. "
            "You get the overlay video and a zip of `masks/`, `annotations.json` and `overlay.mp4`."
        )
        with gr.Row():
            with gr.Column():
                uploads = {
                    "video": gr.Video(label="Video", sources=["upload"], elem_id="deva-video"),
                    "frames_zip": gr.File(label="…or a zip of frames", file_types=[".zip"]),
                }
                segmentation = gr.Radio(
                    [(label, value) for value, label in MODES.items()],
                    value=defaults.segmentation,
                    label="How objects are found",
                )
                mode_note = gr.Markdown()
                prompt = gr.Textbox(
                    label="Text prompt", placeholder="person.dog.ball", visible=False
                )
                model = gr.Textbox(
                    label="Image model: Hugging Face id or local folder (empty = default; "
                    "a SAM 3 model such as facebook/sam3 works for Automatic and Text prompt)",
                    visible=False,
                )
                detector = gr.Textbox(
                    label="Text detector: Grounding DINO / OWLv2 id or folder (empty = default)",
                    visible=False,
                )
                points = _number(gr, "Points per side", defaults.points_per_side, visible=False)
                uploads["detections_zip"] = gr.File(
                    label="Detections (zip, official DEVA layout: <frame>.png [+ .json])",
                    file_types=[".zip"],
                    visible=False,
                )
                uploads["masks_zip"] = gr.File(
                    label="Masks (zip of palette PNGs named like the frames: 00000.png …)",
                    file_types=[".zip"],
                    visible=False,
                )
                with gr.Accordion("Propagation and tracking", open=False):
                    propagator = gr.Radio(
                        list(PROPAGATOR_NAMES),
                        value=defaults.propagator,
                        label="Propagator (appearance: shipped features, no download; "
                        "flow: optical flow, fastest; sam2 / edgetam / sam3: SAM-family "
                        "video models)",
                    )
                    propagator_model = gr.Textbox(
                        label="Propagator weights: network checkpoint (DEVA-propagation.pth "
                        "or hub id) or SAM 2 / EdgeTAM / SAM 3 model id / folder (empty = "
                        "that family's default)"
                    )
                    track_mode = gr.Radio(
                        ["semionline", "online"], value=defaults.mode, label="Temporal setting"
                    )
                    with gr.Row():
                        detect_every = _number(gr, "Detect every (frames)", defaults.detect_every)
                        clip_size = _number(gr, "Clip size (semionline)", defaults.clip_size)
                        max_missed = _number(gr, "Delete after misses", defaults.max_missed)
                    with gr.Row():
                        max_objects = _number(
                            gr, "Max objects (0 = no cap)", defaults.max_objects, "deva-max-objects"
                        )
                        size = _number(
                            gr, "Resolution: short side (-1 = native)", defaults.size, "deva-size"
                        )
                    incremental = gr.Checkbox(
                        value=defaults.incremental,
                        label="Incremental: count a miss only if the propagation lost it too",
                    )
                run = gr.Button("Run", variant="primary", elem_id="deva-run")
            with gr.Column():
                status = gr.Markdown(elem_id="deva-status")
                overlay = gr.Video(label="Overlay", interactive=False, elem_id="deva-overlay")
                download = gr.File(
                    label="Masks + annotations.json + overlay (zip)",
                    interactive=False,
                    elem_id="deva-download",
                )

        # WebSettings field -> widget; the run handler receives {widget: value}.
        settings_widgets = {
            "segmentation": segmentation,
            "prompt": prompt,
            "model": model,
            "detector": detector,
            "points_per_side": points,
            "propagator": propagator,
            "propagator_model": propagator_model,
            "mode": track_mode,
            "detect_every": detect_every,
            "clip_size": clip_size,
            "max_missed": max_missed,
            "max_objects": max_objects,
            "incremental": incremental,
            "size": size,
        }
        mode_knobs = ("detect_every", "max_missed", "max_objects", "incremental")

        def choose_mode(chosen: str) -> list[Any]:
            knobs = WebSettings.for_mode(chosen)
            note = mode_available(chosen)
            return [
                f"**Not available:** {_escape(note)}" if note else "",
                gr.update(visible=chosen == "text"),
                gr.update(visible=chosen in LEARNED_MODES),
                gr.update(visible=chosen == "text"),
                gr.update(visible=chosen == "auto"),
                gr.update(visible=chosen == "precomputed"),
                gr.update(visible=chosen == "masks"),
                *(getattr(knobs, name) for name in mode_knobs),
            ]

        segmentation.change(
            choose_mode,
            inputs=segmentation,
            outputs=[
                mode_note,
                prompt,
                model,
                detector,
                points,
                uploads["detections_zip"],
                uploads["masks_zip"],
                *(settings_widgets[name] for name in mode_knobs),
            ],
        )

        def track(
            values: dict[Any, Any],
            progress: gr.Progress = gr.Progress(),  # noqa: B008  (Gradio's injection idiom)
        ) -> Iterator[tuple[str | None, str | None, str]]:
            # A generator: this first update clears the last run's message and results, so
            # they do not stay on screen under this run's progress.
            yield None, None, ""
            settings = WebSettings(
                **{name: _text_or(values[w]) for name, w in settings_widgets.items()}
            )
            inputs = WebInputs(**{name: _path(values[w]) for name, w in uploads.items()})
            progress(0, desc="reading the video")

            def advance(done: int, total: int | None) -> None:
                progress((done, total), desc="tracking", unit="frames")

            try:
                outcome = run_job(inputs, settings, runs, on_progress=advance)
            except DevaError as err:
                yield None, None, f"**Error:** {_escape(str(err))}"
                return
            overlay_path = str(outcome.overlay) if outcome.overlay else None
            yield overlay_path, str(outcome.archive), outcome.summary()

        run.click(
            track,
            inputs={*settings_widgets.values(), *uploads.values()},
            outputs=[overlay, download, status],
            concurrency_limit=1,  # one CPU-heavy run at a time; clean_old_runs relies on it
        )
    return app


def launch_app(
    runs_dir: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
) -> tuple[gr.Blocks, str, str | None]:
    """Build the app and serve it in the background: (app, local URL, public share URL or
    None). ``app.close()`` stops it."""
    runs = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    app = build_app(runs)
    try:
        _, url, share_url = app.launch(
            server_name=host,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            allowed_paths=[str(runs)],
            quiet=True,
        )
    except OSError as err:
        raise DevaError(f"cannot serve the web app on {host}:{port}: {err}") from err
    return app, url, share_url


def serve(*, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """``deva web``: serve the app until Ctrl-C."""
    app, url, share_url = launch_app(host=host, port=port, share=share)
    print(f"deva web app: {url}" + (f"  public link: {share_url}" if share_url else ""))
    print("press Ctrl-C to stop", flush=True)
    app.block_thread()


def default_runs_dir() -> Path:
    return Path(tempfile.gettempdir()) / "deva-web"


def _gradio() -> Any:
    try:
        import gradio
    except ImportError as err:
        raise DevaError(f"the web app needs gradio: {install_hint('web')}") from err
    return gradio


def _number(
    gr: Any, label: str, value: float | None, elem_id: str | None = None, *, visible: bool = True
) -> Any:
    return gr.Number(
        value=value, label=label, precision=0, elem_id=elem_id, min_width=120, visible=visible
    )


def _text_or(value: Any) -> Any:
    """A widget value as WebSettings takes it: an empty textbox comes as None or ""."""
    return "" if value is None else value


def _segmenter(
    settings: WebSettings, frames: FrameSource, inputs: WebInputs, run_dir: Path
) -> ImageSegmenter | None:
    """The image segmenter of the chosen mode (None for first-frame masks)."""
    from deva.api import make_segmenter

    chosen = settings.segmentation
    if chosen == "masks":
        return None
    if chosen == "precomputed":
        if inputs.detections_zip is None:
            raise DevaError("precomputed mode: upload the detections as a zip")
        detections = _unzip(inputs.detections_zip, run_dir / "detections", "detections zip")
        return make_segmenter("precomputed", source=frames, detections=detections)
    note = mode_available(chosen)
    if note:
        raise DevaError(note)
    if chosen == "text" and not settings.prompt.strip():
        raise DevaError("text prompt mode: enter what to track, e.g. person.dog.ball")
    return make_segmenter(chosen, source=frames, models=settings.model_options())


def _propagator(settings: WebSettings) -> Propagator:
    """The chosen propagator; the one weights field goes to whichever propagator takes one."""
    from deva.api import SAM_VIDEO, make_propagator

    weights = settings.propagator_model.strip() or None
    if settings.propagator == "network":
        return make_propagator("network", checkpoint=weights)
    if settings.propagator in SAM_VIDEO:
        return make_propagator(settings.propagator, sam2_model=weights)
    return make_propagator(settings.propagator)


def _frames_of(inputs: WebInputs, run_dir: Path) -> tuple[Path, str]:
    """The video file or unzipped frame folder to read, and a name for the download."""
    if inputs.video is not None and inputs.frames_zip is not None:
        raise DevaError("give either a video or a zip of frames, not both (clear one of them)")
    if inputs.video is not None:
        return inputs.video, _safe_name(inputs.video.stem)
    if inputs.frames_zip is not None:
        folder = _unzip(inputs.frames_zip, run_dir / "frames", "frames zip")
        return folder, _safe_name(inputs.frames_zip.stem)
    raise DevaError("upload a video (or a zip of frames) first")


def _unzip(archive: Path, dest: Path, what: str) -> Path:
    """Extract ``archive`` into ``dest``; returns the folder holding its content (a single
    wrapping folder, as made by zipping a folder, is stepped into)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(dest)  # zipfile drops absolute paths and ".." components
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DevaError(f"{what} {archive.name}: not a readable zip file ({err})") from err
    root = dest
    while True:
        entries = [e for e in root.iterdir() if not e.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
            continue
        if not entries:
            raise DevaError(f"{what} {archive.name}: the zip is empty")
        return root


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _safe_name(stem: str) -> str:
    return _UNSAFE_NAME.sub("_", stem).strip("._") or "video"


def _escape(text: str) -> str:
    """``text`` shown literally in Markdown (paths with _ or * would otherwise be formatted)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~-])", r"\\\1", text)


def _whole(value: object, name: str) -> int:
    """A number field's value as an int; empty, non-numeric and fractional values are errors."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DevaError(f"{name}: enter a whole number")
    if number != int(number):
        raise DevaError(f"{name}: must be a whole number, got {value}")
    return int(number)
