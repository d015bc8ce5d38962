"""Output folders that cannot take the results: a file in the way, no permission, a full disk."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import make
from .harness import deva, deva_process, fails, succeeds

FLAGS = ("--size", "-1")


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (root only); the test is skipped where mounting is denied."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount not permitted here: {mounted.stderr.decode(errors='replace')}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_output_path_is_an_existing_file(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames")
    taken = tmp_path / "results.txt"
    taken.write_text("keep me")
    fails(deva("track", folder, "-o", taken, *FLAGS), "results.txt", "not writable")
    assert taken.read_text() == "keep me"


def test_unwritable_output_folder(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            fails(deva("track", folder, "-o", locked / "out", *FLAGS), "locked", "not writable")
        finally:
            locked.chmod(0o755)
        return
    # root writes through chmod 555: a read-only filesystem is the unwritable folder instead
    with tmpfs(tmp_path / "ro", "ro,size=64k") as readonly:
        fails(deva("track", folder, "-o", readonly / "out", *FLAGS), "ro", "not writable")


def test_disk_full_on_a_tiny_filesystem(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=30, shape=(120, 160))
    with tmpfs(tmp_path / "tiny", "size=64k") as tiny:
        out = tiny / "out"
        fails(deva("track", folder, "-o", out, *FLAGS), "write failed", "disk full", out=out)
        assert (out / "annotations.incomplete.json").exists()
        assert not list((out / "masks").glob(".*.partial"))


def test_file_size_limit_behaves_like_a_full_disk(tmp_path: Path) -> None:
    """Without root: RLIMIT_FSIZE makes writes past 20 kB fail with EFBIG, as a full disk."""
    folder = make.frames(tmp_path / "frames", count=12, shape=(120, 160))
    out = tmp_path / "out"
    outcome = deva_process("track", folder, "-o", out, *FLAGS, limit_file_size=20_000)
    fails(outcome, "out", "File too large", out=out)


def test_failed_rerun_does_not_leave_the_earlier_run_looking_complete(tmp_path: Path) -> None:
    folder = make.frames(tmp_path / "frames", count=4)
    out = tmp_path / "out"
    succeeds(deva("track", folder, "-o", out, *FLAGS), out, frames=4)
    assert (out / "overlay.mp4").exists()
    (folder / "2.png").write_bytes(b"broken since")
    fails(deva("track", folder, "-o", out, *FLAGS, "--overwrite"), "2.png", out=out)
    partial = json.loads((out / "annotations.incomplete.json").read_text())
    assert partial["complete"] is False


def test_output_inside_the_input_folder_is_not_read_as_frames(tmp_path: Path) -> None:
    """Recovery: masks written under the frame folder are in a sub-folder, never new frames."""
    folder = make.frames(tmp_path / "frames", count=3)
    out = folder / "out"
    succeeds(deva("track", folder, "-o", out, *FLAGS, "--no-video"), out, frames=3)
    succeeds(deva("track", folder, "-o", out, *FLAGS, "--no-video", "--overwrite"), out, frames=3)


def test_output_folder_holding_an_earlier_run(tmp_path: Path) -> None:
    """A new run would leave the earlier run's extra masks next to its own: refused."""
    out = tmp_path / "out"
    succeeds(deva("track", make.frames(tmp_path / "a", count=5), "-o", out, *FLAGS), out, 5)
    line = fails(
        deva("track", make.frames(tmp_path / "b", count=3), "-o", out, *FLAGS), "--overwrite"
    )
    assert str(out) in line and "finished deva run (5 masks)" in line
    succeeds(deva("track", tmp_path / "b", "-o", out, *FLAGS, "--overwrite"), out, frames=3)
