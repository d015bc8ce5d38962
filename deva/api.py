"""The one-call Python API: ``deva.track(video)`` as a notebook would use it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from deva.config import TrackerConfig
from deva.errors import DevaError, OptionError
from deva.io.frames import FrameSource, IterableSource, open_frames
from deva.io.init_masks import InitMasks
from deva.io.objects import write_object_masks
from deva.io.run_folder import (
    ANNOTATIONS,
    CUTOUT,
    OVERLAY,
    find_earlier_run,
    refuse_earlier_run,
)
from deva.io.visualize import OverlayStyle
from deva.propagation.base import Propagator
from deva.segmenters.base import ImageSegmenter
from deva.segmenters.options import (
    LEARNED_SEGMENTERS,
    ModelOptions,
    tracker_defaults,
    unused_model_option,
)
from deva.tracker import GivenMasks, Tracker
from deva.types import Frame, FrameResult

log = logging.getLogger(__name__)

Source = str | Path | Iterable[np.ndarray]


def make_segmenter(
    name: str,
    *,
    source: FrameSource,
    detections: str | Path | None = None,
    allow_missing: bool = False,
    models: ModelOptions | None = None,
) -> ImageSegmenter:
    """A segmenter by name; ``precomputed`` needs ``detections`` (a folder); the learned
    ``auto`` / ``text`` / ``panoptic`` take their model ids and settings from ``models``."""
    factories: dict[str, Callable[[], ImageSegmenter]] = {
        "motion": _motion,
        "precomputed": lambda: _precomputed(detections, source, allow_missing),
        "auto": lambda: _learned("auto", models),
        "text": lambda: _learned("text", models),
        "panoptic": lambda: _learned("panoptic", models),
    }
    if name not in factories:
        raise DevaError(f"unknown segmenter {name!r}; available: {', '.join(factories)}")
    if models is not None and name != "text" and models.prompt:
        raise DevaError(f"--prompt is only used by the text segmenter, not {name}")
    return factories[name]()


def make_propagator(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    max_memory_mb: float | None = None,
    sam2_model: str | None = None,
    precision: str = "auto",
    fill_unknown: bool = False,
) -> Propagator:
    """A propagator by name: ``appearance`` (feature matching on the ImageNet MobileNetV2
    that deva ships; no download, no training), ``flow`` (optical flow, no weights),
    ``network`` (the DEVA propagation network; needs ``checkpoint``, a file such as
    DEVA-propagation.pth or a Hugging Face hub id; runs in ``precision``, see
    ``NetworkPropagator``) or a SAM-family video model, ``sam2`` / ``edgetam`` / ``sam3`` (hub
    id or folder ``sam2_model``, None: the family's default; see ``deva.models.builders``).
    ``max_memory_mb`` caps the propagator's memory (see README); ``fill_unknown``: see
    ``FlowPropagator``."""
    factories: dict[str, Callable[[], Propagator]] = {
        "flow": lambda: _flow(max_memory_mb, fill_unknown),
        "appearance": lambda: _appearance(device, max_memory_mb, precision),
        "network": lambda: _network(checkpoint, device, max_memory_mb, precision),
        "sam2": lambda: _sam_video("sam2", sam2_model, device),
        "edgetam": lambda: _sam_video("edgetam", sam2_model, device),
        "sam3": lambda: _sam_video("sam3", sam2_model, device),
    }
    if name not in factories:
        raise DevaError(f"unknown propagator {name!r}; available: {', '.join(factories)}")
    _check_propagator_options(
        name, checkpoint=checkpoint, sam2_model=sam2_model, precision=precision
    )
    if fill_unknown and name != "flow":
        raise DevaError(f"--fill is only used by the flow propagator, not {name}")
    if max_memory_mb is not None and not max_memory_mb > 0:
        raise OptionError("max_memory_mb", f"must be > 0 (MiB), got {max_memory_mb}")
    return factories[name]()


def route_sam2_model(
    segmenter: str | ImageSegmenter | None,
    propagator: str | Propagator,
    models: ModelOptions | None,
    sam2_model: str | None,
) -> tuple[ModelOptions | None, str | None]:
    """``(models, sam2_model)`` of a run: with a SAM-family propagator (``SAM_VIDEO``) and no
    learned segmenter (auto / text / panoptic) to take it, ``models.model`` (``--model``) names
    the video model; otherwise both are returned as they are."""
    if models is None or models.model is None:
        return models, sam2_model
    if propagator not in SAM_VIDEO or segmenter in LEARNED_SEGMENTERS:
        return models, sam2_model
    if sam2_model is not None:
        raise DevaError(
            "--model and --propagator-model both name the video model (no learned segmenter "
            "takes --model); give one of them"
        )
    return replace(models, model=None), models.model


def check_options(
    segmenter: str | None,
    propagator: str,
    *,
    detections: bool = False,
    init_masks: bool = False,
    models: ModelOptions | None = None,
    checkpoint: str | Path | None = None,
    sam2_model: str | None = None,
    precision: str = "auto",
) -> None:
    """A DevaError for an option that neither the run's segmenter nor its propagator uses, so
    nothing is silently ignored; loads nothing (``models`` / ``sam2_model`` as routed by
    ``route_sam2_model``; ``detections`` / ``init_masks``: whether the run has them)."""
    name = _segmenter_name(segmenter, detections=detections, init_masks=init_masks)
    _check_segmenter_options(name, detections=detections, models=models)
    _check_propagator_options(
        propagator, checkpoint=checkpoint, sam2_model=sam2_model, precision=precision
    )


def choose_segmenter(
    segmenter: str | ImageSegmenter | None,
    *,
    source: FrameSource,
    detections: str | Path | None = None,
    init_masks: bool = False,
    allow_missing: bool = False,
    models: ModelOptions | None = None,
) -> ImageSegmenter | None:
    """The image segmenter of a run. ``None`` chooses: ``precomputed`` with detections, no
    segmenter at all for semi-supervised VOS (given masks only), else ``motion``."""
    if segmenter is not None and not isinstance(segmenter, str):
        _check_segmenter_options("your own segmenter", detections=False, models=models)
        return segmenter
    name = _segmenter_name(segmenter, detections=detections is not None, init_masks=init_masks)
    _check_segmenter_options(name, detections=detections is not None, models=models)
    if name is None:
        return None
    return make_segmenter(
        name,
        source=source,
        detections=detections,
        allow_missing=allow_missing,
        models=models,
    )


SEGMENTER_NAMES = ("motion", "precomputed", "auto", "text", "panoptic")
PROPAGATOR_NAMES = ("appearance", "flow", "network", "sam2", "edgetam", "sam3")
SAM_VIDEO = ("sam2", "edgetam", "sam3")
"""The SAM-family video propagators (one running session each, see ``propagation.sam_video``)."""


def track(
    source: Source | FrameSource,
    *,
    segmenter: str | ImageSegmenter | None = None,
    propagator: str | Propagator = "appearance",
    detections: str | Path | None = None,
    init_masks: str | Path | None = None,
    config: TrackerConfig | None = None,
    models: ModelOptions | None = None,
) -> Iterator[FrameResult]:
    """Track every object in a video; yields one FrameResult per frame as it is processed.

    source: a video file, a folder of frames, a glob, or an iterable of (H, W, 3) RGB arrays.
    segmenter / propagator: a name (see SEGMENTER_NAMES / PROPAGATOR_NAMES) or your own object
        following the ImageSegmenter / Propagator protocol; segmenter None = choose (see
        ``choose_segmenter``).
    detections: the folder of precomputed detections (implies ``segmenter="precomputed"``).
    init_masks: semi-supervised VOS: a folder of palette PNGs named like the frames; with it
        and no segmenter named, only the given objects are propagated.
    models: model ids and settings of the learned segmenters (``auto``, ``text``,
        ``panoptic``); with ``config`` None their mode defaults apply (see
        ``deva.segmenters.options.MODE_DEFAULTS``). With a SAM-family propagator (``sam2``,
        ``edgetam``, ``sam3``) and no learned segmenter, ``models.model`` names its video
        model. A setting that nothing uses is a DevaError.
    """
    frames = source if isinstance(source, FrameSource) else open_frames(source)
    if config is None and isinstance(segmenter, str):
        config = TrackerConfig(**tracker_defaults(segmenter))  # type: ignore[arg-type]
    models, sam2_model = route_sam2_model(segmenter, propagator, models, None)
    segmenter = choose_segmenter(
        segmenter,
        source=frames,
        detections=detections,
        init_masks=init_masks is not None,
        models=models,
    )
    if isinstance(propagator, str):
        propagator = make_propagator(propagator, sam2_model=sam2_model)
    given = (
        InitMasks(init_masks, frame_name=frames.name, num_frames=frames.num_frames)
        if init_masks is not None
        else None
    )
    return Tracker(segmenter, propagator, config).run(frames, given_masks=given)


def track_to_folder(
    tracker: Tracker,
    frames: FrameSource,
    output: str | Path,
    *,
    video: bool = True,
    on_result: Callable[[FrameResult], None] | None = None,
    given_masks: GivenMasks | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    per_object: bool = False,
    cutout: bool = False,
    style: OverlayStyle | None = None,
    options: Mapping[str, object] | None = None,
) -> int:
    """Track ``frames`` and write masks/, annotations.json and overlay.mp4 to ``output``.

    Frames are held only until their result comes out (semi-online results lag a clip), so
    memory stays bounded. ``on_result`` is called after each frame is written (progress bars).
    ``checkpoint_every`` > 0 saves the tracking state about every N frames (at the first point
    between clips) and ``resume`` continues from the folder's checkpoint, skipping the frames
    already written; with either, overlay.mp4 is drawn from the masks once tracking is done.
    A folder holding an earlier run's outputs is refused (a DevaError) unless ``overwrite``,
    which removes exactly those outputs first (``deva.io.run_folder``), or ``resume``.
    ``per_object``: also objects/<id>/<frame>.png; ``cutout``: also cutout.webm; ``style``: how
    overlay.mp4 draws objects; ``options``: the run's settings as given (recorded in
    annotations.json with the input, the tracker config and deva's version).
    Returns the number of frames written.
    """
    from deva import resume as resumable
    from deva.io.stream import LiveSource
    from deva.io.writer import ResultWriter

    if checkpoint_every < 0:
        raise DevaError(f"--checkpoint-every must be >= 0, got {checkpoint_every}")
    if (checkpoint_every or resume) and isinstance(frames, LiveSource):
        raise DevaError(
            f"{frames.description}: --checkpoint-every and --resume need a file or folder input "
            "(a live input cannot be read again)"
        )
    if resume and overwrite:
        raise DevaError(
            "--resume continues the run in the output folder, --overwrite replaces it; give one"
        )
    out = Path(output)
    fingerprint = resumable.run_fingerprint(tracker, frames.description)
    restored = resumable.load_checkpoint(out, fingerprint) if resume else None
    _check_earlier_run(out, resume=resume, restored=restored is not None, overwrite=overwrite)
    every = restored.every if restored and not checkpoint_every else checkpoint_every
    resumable_run = every > 0 or resume
    redraw = video or cutout
    if resumable_run and redraw and isinstance(frames, IterableSource):
        raise DevaError(
            f"{frames.description} can be read only once, but a resumable run draws overlay.mp4 "
            "in a second pass; pass a list of frames, or turn the video off"
        )
    if restored is not None and not resumable.stream_exists(out, restored.writer):
        # Killed after its annotations were final: only the finishing passes are left to do.
        if not (out / ANNOTATIONS).is_file():
            raise DevaError(
                f"cannot resume {out}: the checkpoint's annotation stream is gone; start over "
                "with --overwrite"
            )
        _finish(
            frames,
            out,
            video=video and not (out / OVERLAY).is_file(),
            cutout=cutout and not (out / CUTOUT).is_file(),
            style=style,
            per_object=per_object,
        )
        return int(json.loads((out / ANNOTATIONS).read_text(encoding="utf-8"))["num_frames"])
    if restored is None:
        state = tracker.start(given_masks)
        skip, position = 0, None
    else:
        state = resumable.restore(tracker, restored, given_masks)
        skip, position = restored.frames_seen, restored.writer
    pending: dict[int, Frame] = {}
    with ResultWriter(
        out,
        fps=frames.fps,
        video=video and not resumable_run,
        cutout=cutout and not resumable_run,
        style=style,
        resume_from=position,
        resumable=resumable_run,
        category_names=getattr(tracker.segmenter, "category_names", None),
        info=run_info(tracker, frames, options),
    ) as writer:
        saved_at = writer.num_frames

        def emit(results: list[FrameResult]) -> None:
            for result in results:
                writer.write(pending.pop(result.frame_index), result)
                if on_result is not None:
                    on_result(result)

        for seen, frame in enumerate(frames):
            if seen < skip:
                continue
            pending[frame.index] = frame
            emit(tracker.step(state, frame))
            if every > 0 and writer.num_frames - saved_at >= every and resumable.is_quiet(state):
                checkpoint = resumable.snapshot(
                    tracker,
                    state,
                    fingerprint=fingerprint,
                    every=every,
                    writer=writer.position(),
                )
                resumable.save_checkpoint(out, checkpoint)
                saved_at = writer.num_frames
        emit(tracker.finish(state))
    _finish(
        frames,
        out,
        video=video and resumable_run,
        cutout=cutout and resumable_run,
        style=style,
        per_object=per_object,
    )
    return writer.num_frames


def run_info(
    tracker: Tracker, frames: FrameSource, options: Mapping[str, object] | None = None
) -> dict[str, object]:
    """What annotations.json records about a run: the input (path, name, frame rate, frames;
    the writer adds the size), the tracker config, segmenter and propagator, and ``options``."""
    return {
        "input": {
            "path": frames.description,
            "name": input_name(frames),
            "fps": frames.fps,
            "frames": frames.num_frames,
        },
        "tracker": asdict(tracker.config),
        "segmenter": type(tracker.segmenter).__name__ if tracker.segmenter else None,
        "propagator": type(tracker.propagator).__name__,
        "options": dict(options or {}),
    }


def input_name(frames: FrameSource) -> str | None:
    """A name for the video: a video file's stem, a frame folder's name, a glob's folder."""
    from deva.io.frames import ImageFilesSource, VideoSource

    if isinstance(frames, VideoSource):
        return frames.path.stem
    if isinstance(frames, ImageFilesSource):
        path = Path(frames.description)
        if path.is_dir():
            return path.resolve().name
        if any(c in path.name for c in "*?["):  # a glob: its folder
            return path.parent.resolve().name or None
        return path.stem
    return None


def _check_earlier_run(out: Path, *, resume: bool, restored: bool, overwrite: bool) -> None:
    """Refuse to mix a new run with what an earlier one left in ``out`` (see track_to_folder)."""
    earlier = find_earlier_run(out)
    if resume and earlier is not None and earlier.finished and not restored:
        raise DevaError(
            f"{out}: holds {earlier.describe()}, nothing to resume; add --overwrite to run it again"
        )
    if resume and not restored:
        log.warning(
            "no checkpoint in %s (a run saves one with --checkpoint-every): starting from the "
            "first frame",
            out,
        )
    if not (overwrite or resume):
        refuse_earlier_run(out)


def _finish(
    frames: FrameSource,
    out: Path,
    *,
    video: bool,
    cutout: bool,
    style: OverlayStyle | None,
    per_object: bool,
) -> None:
    """The passes once masks/ and annotations.json are final: the videos drawn from the masks
    (a resumable run's), the per-object masks, and the checkpoint's removal."""
    from deva import resume as resumable
    from deva.io.writer import render_overlay

    if video or cutout:
        render_overlay(frames, out, fps=frames.fps, video=video, cutout=cutout, style=style)
    if per_object:
        write_object_masks(out)
    resumable.remove_checkpoint(out)


def _motion() -> ImageSegmenter:
    from deva.segmenters.motion import MotionSegmenter

    return MotionSegmenter()


def _precomputed(
    detections: str | Path | None, source: FrameSource, allow_missing: bool
) -> ImageSegmenter:
    from deva.segmenters.precomputed import PrecomputedSegmenter

    if detections is None:
        raise DevaError("the precomputed segmenter needs --detections DIR")
    return PrecomputedSegmenter(detections, frame_name=source.name, allow_missing=allow_missing)


def _network(
    checkpoint: str | Path | None, device: str, max_memory_mb: float | None, precision: str
) -> Propagator:
    if checkpoint is None:
        raise DevaError(
            "the network propagator needs --checkpoint: the official DEVA-propagation.pth "
            "(or a Hugging Face hub id, or a checkpoint from deva train)"
        )
    from deva.device import resolve_device
    from deva.propagation.network.checkpoint import build_network
    from deva.propagation.network.propagator import NetworkPropagator

    torch_device = resolve_device(device)
    network = build_network(checkpoint, torch_device)
    precision = "float32" if precision == "auto" else precision  # bf16 is opt-in: see README
    return NetworkPropagator(
        network, device=torch_device, max_memory_mb=max_memory_mb, precision=precision
    )


def _segmenter_name(segmenter: str | None, *, detections: bool, init_masks: bool) -> str | None:
    """``segmenter``, or when None the one chosen: ``precomputed`` with detections, none for
    semi-supervised VOS (given masks only), else ``motion``."""
    if segmenter is not None:
        return segmenter
    if not detections and init_masks:
        return None
    return "precomputed" if detections else "motion"


def _check_segmenter_options(
    name: str | None, *, detections: bool, models: ModelOptions | None
) -> None:
    """``name``: the segmenter, "your own segmenter" or None (none runs)."""
    who = name or "--init-masks alone (no image segmenter runs)"
    if detections and name != "precomputed":
        raise DevaError(f"--detections is only used by the precomputed segmenter, not {who}")
    unused = unused_model_option(name, models) if models is not None else None
    if unused is not None:
        raise DevaError(f"{unused}, not {who}")


def _check_propagator_options(
    name: str, *, checkpoint: str | Path | None, sam2_model: str | None, precision: str
) -> None:
    if checkpoint is not None and name != "network":
        raise DevaError(f"--checkpoint is only used by the network propagator, not {name}")
    if sam2_model is not None and name not in SAM_VIDEO:
        raise DevaError(
            f"--propagator-model (--sam2-model) is only used by the {' / '.join(SAM_VIDEO)} "
            f"propagators, not {name}"
        )
    if precision not in ("auto", "float32") and name not in ("network", "appearance"):
        raise DevaError(
            f"--precision is only used by the network and appearance propagators, not {name}"
        )
    if precision == "float16" and name == "appearance":
        raise DevaError("--precision float16 is for the network propagator (CUDA) only")


def _learned(name: str, models: ModelOptions | None) -> ImageSegmenter:
    from deva.models.builders import build_segmenter

    return build_segmenter(name, models or ModelOptions())


def _sam_video(family: str, model: str | None, device: str) -> Propagator:
    from deva.models.builders import build_propagator

    return build_propagator(family, model, device)


def _appearance(device: str, max_memory_mb: float | None, precision: str = "auto") -> Propagator:
    from deva.propagation.appearance import AppearancePropagator

    return AppearancePropagator(device=device, max_memory_mb=max_memory_mb, precision=precision)


def _flow(max_memory_mb: float | None = None, fill_unknown: bool = False) -> Propagator:
    from deva.propagation.flow import FlowPropagator

    return FlowPropagator(max_memory_mb=max_memory_mb, fill_unknown=fill_unknown)
