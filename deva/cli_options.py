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


class SegmenterName(StrEnum):
    motion = "motion"
    precomputed = "precomputed"
    auto = "auto"
    text = "text"
    panoptic = "panoptic"


class PropagatorName(StrEnum):
    flow = "flow"
    network = "network"
    sam2 = "sam2"


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


Output = Annotated[Path, typer.Option("--output", "-o", help="Output folder.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
Device = Annotated[DeviceName, typer.Option(help="Where the network runs.")]
ClipSize = Annotated[int, typer.Option(help="Frames per clip in semionline mode.")]
Size = Annotated[int, typer.Option(help="Short side of the working resolution (-1 = native).")]

# track and batch
Keyframe = Annotated[KeyframeName, typer.Option(help="Where in the clip the consensus is merged.")]
MaxObjects = Annotated[int, typer.Option(help="At most N tracked objects (0 = unlimited).")]
Incremental = Annotated[
    bool, typer.Option(help="Count a miss only if the object also left the propagation.")
]
AllowMissing = Annotated[
    bool, typer.Option(help="Treat a frame without a detection PNG as an empty detection.")
]
Video = Annotated[bool, typer.Option("--video/--no-video", help="Write overlay.mp4.")]
