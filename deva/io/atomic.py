"""Write-then-rename, so a file that exists under its final name is always complete."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from deva.errors import DevaError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    final = Path(path)
    temp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check we can write there; one clear error otherwise."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".deva-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DevaError(
            f"output folder {directory} is not writable: {err.strerror or err}"
        ) from err
    return directory


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@contextlib.contextmanager
def write_errors(path: str | Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (disk full, file too large, folder gone)
    into one DevaError naming the file, so the CLI prints a line instead of a traceback."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno in _FULL:
            reason += " (is the disk full?)"
        raise DevaError(f"{path}: write failed: {reason}") from err
