"""deva: decoupled video segmentation (track anything with an image segmenter + propagation)."""

from deva.config import TrackerConfig
from deva.errors import DevaError
from deva.types import Frame, FrameResult, ObjectInfo, Segmentation, SegmentInfo

__all__ = [
    "DevaError",
    "Frame",
    "FrameResult",
    "ObjectInfo",
    "SegmentInfo",
    "Segmentation",
    "TrackerConfig",
]
__version__ = "0.1.0"
