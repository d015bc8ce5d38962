"""Loading Hugging Face ``transformers`` models by hub id or local folder: the one home for the
optional-extra check, offline errors, model-type checks, device and dtype.

Nothing here is imported by ``import deva``; transformers is imported inside the functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deva import hub
from deva.errors import DevaError, install_hint

if TYPE_CHECKING:
    import torch

INSTALL_HINT = install_hint("models")

SAM_TYPES = {"sam": "SamModel", "sam_hq": "SamHQModel", "sam2": "Sam2Model"}
SAM3_TRACKER_TYPES = {"sam3_tracker": "Sam3TrackerModel", "sam3_video": "Sam3TrackerModel"}
"""SAM 3's promptable tracker as an image model (points -> masks, as SAM 2) for the automatic
mode; facebook/sam3 is a sam3_video folder, whose tracker half ``Sam3TrackerModel`` loads."""
DETECTOR_TYPES = {
    "grounding-dino": "GroundingDinoForObjectDetection",
    "mm-grounding-dino": "MMGroundingDinoForObjectDetection",
    "owlv2": "Owlv2ForObjectDetection",
    "owlvit": "OwlViTForObjectDetection",
}
PANOPTIC_TYPES = {
    "mask2former": "Mask2FormerForUniversalSegmentation",
    "oneformer": "OneFormerForUniversalSegmentation",
    "eomt": "EomtForUniversalSegmentation",
    "maskformer": "MaskFormerForInstanceSegmentation",
}
VIDEO_FAMILIES: dict[str, dict[str, str]] = {
    "sam2": {"sam2_video": "Sam2VideoModel"},
    "edgetam": {"edgetam_video": "EdgeTamVideoModel"},
    # facebook/sam3 holds the whole SAM 3 video model; its tracker half loads from it
    "sam3": {"sam3_tracker_video": "Sam3TrackerVideoModel", "sam3_video": "Sam3TrackerVideoModel"},
}
"""``--propagator`` name -> the video model types it accepts."""
VIDEO_TYPES = {k: v for family in VIDEO_FAMILIES.values() for k, v in family.items()}
CONCEPT_TYPES = {"sam3": "Sam3Model", "sam3_video": "Sam3Model"}
"""SAM 3 image models (text concepts -> instance masks); facebook/sam3 is a sam3_video folder."""
SAM3_VIDEO_TYPES = {"sam3_video": "Sam3VideoModel"}
"""SAM 3's own detector + tracker (the ``deva sam3-video`` baseline)."""
SELF_FED = {
    "sam2",
    "sam2_video",
    "edgetam_video",
    "sam3",
    "sam3_video",
    "sam3_tracker",
    "sam3_tracker_video",
}
"""Model types deva prepares inputs for itself (their processors need torchvision)."""


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode on its device, its processor, and what it is."""

    model: Any
    processor: Any
    model_type: str
    device: torch.device
    dtype: torch.dtype
    source: str


def require_transformers() -> Any:
    """The transformers module, or one line saying how to install the extra."""
    try:
        return importlib.import_module("transformers")
    except ImportError as err:
        raise DevaError(f"learned image models need the optional extra: {INSTALL_HINT}") from err


def model_dtype(device: torch.device, half: bool = True) -> torch.dtype:
    """float16 on CUDA when ``half`` (speed, memory); always float32 on CPU."""
    import torch

    return torch.float16 if half and device.type == "cuda" else torch.float32


def load_model(
    source: str | Path,
    *,
    accepted: dict[str, str],
    role: str,
    device: torch.device,
    half: bool = True,
    with_processor: bool = True,
) -> LoadedModel:
    """Load ``source`` (a hub id or a folder written by ``save_pretrained``) with its processor.

    accepted: model_type -> transformers class name this role can use; any other type is one
    clear error naming what the folder holds. role: words for messages ("--model (SAM)").
    with_processor: also load its processor (AutoProcessor) from the same place, except for
    the ``SELF_FED`` types (None; for the SAM 3 ``CONCEPT_TYPES``, their tokenizer).
    A hub id in the local cache is loaded from there without the network; otherwise one
    request checks the hub answers before transformers downloads (it would retry an
    unreachable hub for minutes). Offline (HF_HUB_OFFLINE=1) it must be in the cache.
    """
    transformers = require_transformers()
    name = _check_source(source, role)
    load = _Loader(transformers, name, accepted, role, device, model_dtype(device, half))
    if Path(name).is_dir() or hub.offline():
        return load(with_processor, local_only=hub.offline())
    hub.quiet_duplicate_logs()
    if hub.is_cached(name, "config.json"):
        try:
            return load(with_processor, local_only=True)
        except _NotFound:
            pass  # the weights or the processor are not cached yet: fetch them
    problem = hub.unreachable(name, "config.json")
    if problem is not None:
        raise DevaError(
            f"{role}: model {name!r} is not in the local cache and {problem}; pass a folder "
            "written by save_pretrained() instead, or download it once with network access "
            "(later runs use the cache)"
        )
    return load(with_processor, local_only=False)


@dataclass(frozen=True)
class _Loader:
    """One model's from_pretrained calls, from the cache only or from the hub too."""

    transformers: Any
    name: str
    accepted: dict[str, str]
    role: str
    device: torch.device
    dtype: torch.dtype

    def __call__(self, with_processor: bool, *, local_only: bool) -> LoadedModel:
        transformers, name, role = self.transformers, self.name, self.role
        local = {"local_files_only": True} if local_only else {}
        config = _load(lambda: transformers.AutoConfig.from_pretrained(name, **local), name, role)
        model_type = getattr(config, "model_type", None)
        if model_type not in self.accepted:
            raise DevaError(
                f"{role}: {name} holds a {model_type!r} model; expected one of "
                f"{', '.join(sorted(self.accepted))}"
            )
        model_class = getattr(transformers, self.accepted[model_type])
        model = _load(
            lambda: model_class.from_pretrained(name, dtype=self.dtype, **local), name, role
        )
        processor = None
        if with_processor and model_type in CONCEPT_TYPES:  # its tokenizer is all deva needs
            processor = _load(
                lambda: transformers.AutoTokenizer.from_pretrained(name, **local), name, role
            )
        elif with_processor and model_type not in SELF_FED:
            processor = _load(
                lambda: transformers.AutoProcessor.from_pretrained(name, **local), name, role
            )
        model = model.to(self.device).eval()
        return LoadedModel(model, processor, model_type, self.device, self.dtype, name)


def _check_source(source: str | Path, role: str) -> str:
    """A folder must exist; anything else is treated as a hub id."""
    text = str(source).strip()
    if not text:
        raise DevaError(f"{role}: no model given; pass a Hugging Face hub id or a local folder")
    path = Path(text).expanduser()
    looks_local = path.is_absolute() or text.startswith((".", "~")) or path.exists()
    if looks_local or text.count("/") > 1:
        if not path.is_dir():
            raise DevaError(f"{role}: model folder {path} does not exist")
        if not (path / "config.json").is_file():
            raise DevaError(
                f"{role}: {path} has no config.json; save the model there with save_pretrained()"
            )
        return str(path)
    return text


class _NotFound(DevaError):
    """A file of the model is neither in the folder or cache nor (when asked) on the hub."""


def _load(load: Any, name: str, role: str) -> Any:
    """Run a from_pretrained call; turn 'not found / offline' into one line."""
    try:
        return load()
    except OSError as err:
        if "gated repo" in str(err):
            raise DevaError(
                f"{role}: model {name!r} is gated on the Hugging Face hub; accept its licence on "
                f"https://huggingface.co/{name} and log in (hf auth login), or pass a local "
                "folder written by save_pretrained() instead"
            ) from err
        where = (
            "offline (HF_HUB_OFFLINE=1) and not in the local cache"
            if hub.offline()
            else "not found on the Hugging Face hub or in the local cache"
        )
        raise _NotFound(
            f"{role}: model {name!r} is {where}; download it once with network access, or "
            "pass a local folder written by save_pretrained() instead"
        ) from err
    except ImportError as err:
        raise DevaError(f"{role}: {name} needs a missing package: {err}") from err
    except ValueError as err:
        raise DevaError(f"{role}: cannot load {name}: {str(err).splitlines()[0]}") from err
