"""deva: decoupled video segmentation (track anything with an image segmenter + propagation).

>>> import deva
>>> for result in deva.track("video.mp4"):
...     print(result.frame_index, result.object_ids)
"""

from typing import TYPE_CHECKING, Any

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.types import Frame, FrameResult, ObjectInfo, Segmentation, SegmentInfo

if TYPE_CHECKING:
    from deva.api import track
    from deva.tracker import Tracker

__all__ = [
    "DevaError",
    "Frame",
    "FrameResult",
    "ObjectInfo",
    "SegmentInfo",
    "Segmentation",
    "Tracker",
    "TrackerConfig",
    "track",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``track`` and ``Tracker`` load OpenCV and SciPy; import them only when used."""
    if name == "track":
        from deva.api import track

        return track
    if name == "Tracker":
        from deva.tracker import Tracker

        return Tracker
    raise AttributeError(f"module 'deva' has no attribute {name!r}")
