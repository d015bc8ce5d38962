"""Running the real ``deva`` command on a bad input and checking the promise about it:
one error line naming the culprit and exit code 2 (or a documented recovery and exit code 0),
never a traceback, never a final output that looks complete after a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from deva.cli import app

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    output: str  # stdout and stderr together


def deva(*args: object) -> Outcome:
    """The command in-process (fast); an uncaught exception fails the test with its traceback."""
    result = CliRunner().invoke(app, [_arg(a) for a in args], catch_exceptions=False)
    return Outcome(result.exit_code, result.output)


def deva_process(*args: object, limit_file_size: int | None = None) -> Outcome:
    """The command as a real process (real stderr encoding, resource limits, signals).

    limit_file_size: RLIMIT_FSIZE in bytes; a write beyond it fails with EFBIG like a full disk
    (Python ignores SIGXFSZ, so the write raises instead of killing the process).
    """

    def limit() -> None:
        if limit_file_size is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    command = [sys.executable, "-m", "deva.cli", *(_arg(a) for a in args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, timeout=300, preexec_fn=limit
    )
    text = (done.stdout + done.stderr).decode("utf-8", errors="backslashreplace")
    return Outcome(done.returncode, text)


def fails(outcome: Outcome, *needles: str, out: Path | None = None) -> str:
    """Exit code 2 and exactly one ``error:`` line holding every needle; returns that line."""
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.exit_code == 2, outcome.output
    errors = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, outcome.output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    if out is not None:
        nothing_complete(out)
    return errors[0]


def nothing_complete(out: Path) -> None:
    """No file under ``out`` claims a finished run."""
    assert not (out / "annotations.json").exists()
    assert not (out / "overlay.mp4").exists()
    leftovers = [p.name for p in out.glob(".*.partial")] if out.is_dir() else []
    assert not leftovers, leftovers


def usage_error(outcome: Outcome, *needles: str) -> None:
    """A command-line usage error from the option parser: exit 2, the option named."""
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.exit_code == 2, outcome.output
    text = " ".join(outcome.output.split())
    for needle in needles:
        assert needle in text, (needle, text)


def succeeds(outcome: Outcome, out: Path, frames: int) -> list[Path]:
    """Exit 0, a complete annotations.json and ``frames`` masks; returns the masks in order."""
    assert "Traceback" not in outcome.output, outcome.output
    assert outcome.exit_code == 0, outcome.output
    import json

    annotations = json.loads((out / "annotations.json").read_text())
    assert annotations["complete"] is True and annotations["num_frames"] == frames
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == frames
    return masks


def _arg(value: object) -> str:
    return os.fsdecode(value) if isinstance(value, bytes | Path) else str(value)
