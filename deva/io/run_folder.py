"""What deva writes into a run's output folder, so a new run never mixes with an earlier one.

A ``deva track`` folder holds ``masks/<frame>.png``, ``objects/<id>/<frame>.png``,
``annotations.json`` (or ``annotations.incomplete.json`` and the hidden annotation stream
``.annotations.json.<pid>.partial``), ``overlay.mp4``, ``cutout.webm``, the resume checkpoint
``.deva-resume.pt``, the files ``deva export`` writes by default, and deva's temporary files.
Only these are ever removed: anything else in the folder is the user's and stays. A new run
must not leave an earlier run's masks next to its own (a shorter video would keep the extra
frames), so ``find_earlier_run`` tells the caller to refuse or ``clear_earlier_run`` first.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deva.errors import DevaError

ANNOTATIONS = "annotations.json"
INCOMPLETE_ANNOTATIONS = "annotations.incomplete.json"
OVERLAY = "overlay.mp4"
CUTOUT = "cutout.webm"
CHECKPOINT = ".deva-resume.pt"
MASKS = "masks"
OBJECTS = "objects"
EXPORTS = ("coco.json", "mots.txt", "cvat.xml")
_FILES = (ANNOTATIONS, INCOMPLETE_ANNOTATIONS, OVERLAY, CUTOUT, CHECKPOINT, *EXPORTS)
# Temporary files: atomic_path's ".<name>.<pid>.partial" and the writability probe.
_NAMES = "|".join(re.escape(name) for name in _FILES)
_TEMP = re.compile(rf"^\.(?:(?:{_NAMES})\.\d+\.partial|deva-write-test-\d+)$")
_MASK_TEMP = re.compile(r"^\..+\.png\.\d+\.partial$")


@dataclass(frozen=True)
class EarlierRun:
    """The outputs an earlier run left in a folder. ``finished``: its annotations.json exists;
    ``resumable``: its checkpoint exists; ``masks``: mask PNGs in masks/."""

    folder: Path
    files: tuple[Path, ...]
    finished: bool
    resumable: bool
    masks: int

    def describe(self) -> str:
        """E.g. ``a finished deva run (44 masks)`` for messages."""
        state = "a finished deva run" if self.finished else "an unfinished deva run"
        if self.resumable:
            state += " with a checkpoint"
        if self.masks:
            state += f" ({self.masks} mask{'s' if self.masks != 1 else ''})"
        return state


def find_earlier_run(folder: str | Path) -> EarlierRun | None:
    """What an earlier deva run left in ``folder``; None when there is nothing (or no folder)."""
    root = Path(folder)
    if not root.is_dir():
        return None
    files = run_outputs(root)
    if not files:
        return None
    masks = sum(1 for p in files if p.parent.name == MASKS and p.suffix == ".png")
    return EarlierRun(
        root,
        tuple(files),
        finished=(root / ANNOTATIONS).is_file(),
        resumable=(root / CHECKPOINT).is_file(),
        masks=masks,
    )


def refuse_earlier_run(folder: str | Path) -> None:
    """A DevaError naming the earlier run in ``folder`` and the flags that deal with it (a new
    run must neither mix with it nor silently replace it); nothing when there is none."""
    earlier = find_earlier_run(folder)
    if earlier is None:
        return
    if earlier.resumable:
        advice = "add --resume to continue it, or --overwrite to start over"
    elif earlier.finished:
        advice = "add --overwrite to replace it, or choose another --output"
    else:
        advice = "add --overwrite to start over (it saved no checkpoint to --resume from)"
    raise DevaError(f"{folder}: already holds {earlier.describe()}; {advice}")


def run_outputs(folder: Path) -> list[Path]:
    """Every file deva writes that exists in the run folder ``folder``."""
    found = [folder / name for name in _FILES if (folder / name).is_file()]
    found += _matching(folder, _TEMP)
    found += _matching(folder / MASKS, _MASK_TEMP, "*.png")
    objects = folder / OBJECTS
    if objects.is_dir():
        for sub in sorted(objects.iterdir()):
            if sub.is_dir() and sub.name.isdigit():
                found += _matching(sub, _MASK_TEMP, "*.png")
    return found


def clear_earlier_run(folder: str | Path) -> None:
    """Remove what an earlier run wrote to ``folder`` (see the module doc); other files stay.
    deva's sub-folders (masks/, objects/<id>/) are removed once empty."""
    root = Path(folder)
    for path in run_outputs(root) if root.is_dir() else []:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise DevaError(f"{path}: cannot remove an earlier run's file: {err.strerror}") from err
    objects = root / OBJECTS
    subfolders = sorted(objects.iterdir()) if objects.is_dir() else []
    for empty in [*(p for p in subfolders if p.name.isdigit()), objects, root / MASKS]:
        with contextlib.suppress(OSError):  # not empty (a file of the user's) or not there
            empty.rmdir()


def _matching(folder: Path, temp: re.Pattern[str], glob: str | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if temp.match(p.name) and p.is_file())
    if glob is not None:
        found += sorted(p for p in folder.glob(glob) if p.is_file())
    return found


# ``deva run-task`` writes a benchmark's layout instead: PNGs in per-video folders and the
# task's JSON / zip files (deva.tasks); the same rule holds there.
TASK_FILES = frozenset({"pred.json", "burst_predictions.json", "submission.zip"})
_TASK_TEMP = re.compile(r"^\..+\.(?:png|json|zip)\.\d+\.partial$")


def task_outputs(folder: str | Path) -> Iterator[Path]:
    """The files a ``deva run-task`` run wrote under ``folder``: PNGs, the task's JSON and zip
    files, and deva's temporary files; nothing else (found lazily: the first answers "any?")."""
    root = Path(folder)
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        name = path.name
        if (path.suffix == ".png" or name in TASK_FILES or _TASK_TEMP.match(name)) and (
            path.is_file()
        ):
            yield path


def clear_task_outputs(folder: str | Path) -> None:
    """Remove ``task_outputs(folder)``, then the sub-folders left empty."""
    root = Path(folder)
    for path in list(task_outputs(root)):
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise DevaError(f"{path}: cannot remove an earlier run's file: {err.strerror}") from err
    for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
