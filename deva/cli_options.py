"""Choices and option declarations shared by the ``deva`` commands (track, batch, run-task).

One declaration per option that reads the same in several commands, so its flag, help and
type cannot drift apart; an option whose help says something command-specific stays with its
command.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from deva.models.builders import DEFAULT_MODELS
from deva.segmenters.options import DEFAULT_DETECTOR


class SegmenterName(StrEnum):
    motion = "motion"
    precomputed = "precomputed"
    auto = "auto"
    text = "text"
    panoptic = "panoptic"


class PropagatorName(StrEnum):
    appearance = "appearance"
    flow = "flow"
    network = "network"
    sam2 = "sam2"
    edgetam = "edgetam"
    sam3 = "sam3"


class DeviceName(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class PrecisionName(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class ModeName(StrEnum):
    semionline = "semionline"
    online = "online"


class KeyframeName(StrEnum):
    first = "first"
    middle = "middle"


class SaveName(StrEnum):
    per_object = "per-object"
    cutout = "cutout"


class LabelsName(StrEnum):
    both = "both"
    id = "id"
    name = "name"
    none = "none"


# The default model ids, listed unwrapped under the options (\b: click keeps the lines as they
# are), so a hub id is never split at a hyphen or cut at 80 columns.
MODEL_DEFAULTS = (
    "\b\nDefault models (Hugging Face hub ids, downloaded on first use):\n"
    + "\n".join(
        f"  {what:<19} {model}"
        for what, model in (
            ("auto, text (SAM)", DEFAULT_MODELS["auto"]),
            ("text (detector)", DEFAULT_DETECTOR),
            ("panoptic", DEFAULT_MODELS["panoptic"]),
            ("sam2 propagator", DEFAULT_MODELS["sam2"]),
            ("edgetam propagator", DEFAULT_MODELS["edgetam"]),
            ("sam3 (gated)", DEFAULT_MODELS["sam3"]),
        )
    )
)


class PlainUsage(TyperCommand):
    """A command whose usage line names a required argument as ``INPUT``: typer writes
    ``{INPUT}``, which reads as a placeholder to be typed with its braces."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


Output = Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Output folder.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
Device = Annotated[
    DeviceName, typer.Option(help="Where the models run: propagation network and image models.")
]
ClipSize = Annotated[int, typer.Option(help="Frames per clip in semionline mode.")]
Size = Annotated[int, typer.Option(help="Short side of the working resolution (-1 = native).")]

# track and batch
Keyframe = Annotated[KeyframeName, typer.Option(help="Where in the clip the consensus is merged.")]
MaxObjects = Annotated[int, typer.Option(help="At most N tracked objects (0 = unlimited).")]
Incremental = Annotated[
    bool,
    typer.Option(
        help="Count a miss only if the object also left the propagation.", show_default="off"
    ),
]
Reid = Annotated[
    bool,
    typer.Option(
        "--reid/--no-reid",
        help="Give a re-entering object its old id when it looks like a recently deleted one "
        "(appearance propagator only).",
    ),
]
ReidThreshold = Annotated[
    float, typer.Option(help="Least appearance similarity (cosine) that re-identifies.")
]
AllowMissing = Annotated[
    bool,
    typer.Option(
        help="Treat a frame without a detection PNG as an empty detection.", show_default="off"
    ),
]
Video = Annotated[
    bool, typer.Option("--video/--no-video", help="Write overlay.mp4.", show_default="on")
]
OverlayAlpha = Annotated[
    float,
    typer.Option(metavar="A", help="Overlay tint strength, 0 (outlines only) to 1 (solid colour)."),
]
Contours = Annotated[
    bool,
    typer.Option(
        "--contours/--no-contours", help="Outline each object on the overlay.", show_default="on"
    ),
]
Labels = Annotated[
    LabelsName,
    typer.Option(
        help="Text on each object in the overlay: both (id and category name), id, name "
        "(category, else id) or none."
    ),
]
Categories = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help='Category names for the overlay and annotations.json: JSON {"1": "person", ...} '
        'or [{"id": 1, "name": "person"}, ...] (COCO categories).',
    ),
]
Precision = Annotated[
    PrecisionName,
    typer.Option(
        help="Encoder arithmetic of the network and appearance propagators: auto (appearance: "
        "bfloat16 where the CPU/GPU runs it natively; network: float32), float32 (reference), "
        "bfloat16 (faster on CPUs with AVX-512 BF16 and on GPUs; masks differ at a few "
        "boundary pixels), float16 (network, CUDA)."
    ),
]

# learned models (track and batch); using one that the run's segmenter ignores is an error
Model = Annotated[
    str | None,
    typer.Option(
        metavar="ID|DIR",
        help="Image model for auto/text (SAM, SAM-HQ or SAM 2; for text also SAM 3, e.g. "
        "facebook/sam3, which needs no detector) or panoptic: hub id or local folder (defaults "
        "below). With --propagator sam2/edgetam/sam3 and no learned segmenter: the video model.",
    ),
]
Prompt = Annotated[
    str | None,
    typer.Option(
        metavar="TEXT", help="Text mode: class names separated by '.', e.g. \"person.dog.ball\"."
    ),
]
Detector = Annotated[
    str | None,
    typer.Option(
        metavar="ID|DIR",
        help="Text mode detector: Grounding DINO or OWLv2 hub id or folder (default below).",
    ),
]
BoxThreshold = Annotated[
    float, typer.Option(help="Text mode: detector confidence for boxes and class names.")
]
ScoreThreshold = Annotated[
    float,
    typer.Option(help="Text mode with a SAM 3 --model: keep instances scoring above this."),
]
PointsPerSide = Annotated[int, typer.Option(help="Auto mode: SAM point grid size (N x N prompts).")]
PointsPerBatch = Annotated[
    int, typer.Option(help="Auto mode: SAM prompts per decoder call (memory vs speed).")
]
PredIouThreshold = Annotated[
    float, typer.Option(help="Auto mode: keep SAM masks with predicted IoU above this.")
]
SuppressSmall = Annotated[
    bool,
    typer.Option(
        help="Auto mode: larger masks win overlaps; drop masks that lose over 20 %.",
        show_default="off",
    ),
]
Sam2Model = Annotated[
    str | None,
    typer.Option(
        "--propagator-model",
        "--sam2-model",
        metavar="ID|DIR",
        help="Video model of --propagator sam2 / edgetam / sam3: hub id or folder (defaults "
        "below).",
    ),
]
