"""Why a path the user gave cannot be opened, in words: a missing file, a broken symlink or a
symlink loop all look the same to ``Path.exists()``."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def why_missing(path: str | Path) -> str:
    """``no such file or folder``, ``is a symlink loop`` or ``is a broken symlink (to X)``:
    the problem with a path that does not resolve to a file or folder."""
    target = Path(path)
    try:
        os.stat(target)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symlink loop (a link that points back to itself)"
        if target.is_symlink():
            return f"is a broken symlink (to {os.readlink(target)}, which does not exist)"
        if err.errno == errno.ENOTDIR:
            return "no such file or folder (a part of the path is a file)"
        if err.errno == errno.EACCES:
            return "cannot be read (permission denied)"
        return "no such file or folder"
    return "no such file or folder"
