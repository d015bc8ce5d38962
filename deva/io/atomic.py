"""Write-then-rename, so a file that exists under its final name is always complete."""

from __future__ import annotations

import contextlib
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
