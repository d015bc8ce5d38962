"""Thousands of segment ids: ``deva track`` stays within a memory bound and tracks every one.

The run happens in a child process that first tracks a 10-segment clip (imports, thread pools,
caches), then caps its address space at what it uses plus 1 GiB and tracks 5,000 segments: a
(segments x H x W) stack would need several GiB there and end in a MemoryError.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from bench.many_segments import grid_ids, write_clip
from deva.io.masks import read_id_png

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (240, 426)
SEGMENTS = 5000
MARGIN = 1 << 30

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from typer.main import get_command
    from deva.cli import app

    def track(folder, out):
        args = ["track", f"{folder}/frames", "--detections", f"{folder}/dets", "-o", out]
        args += ["--propagator", "flow"]  # appearance caps its objects at 256
        assert get_command(app).main(args=args, standalone_mode=False) in (None, 0)

    small, large, out = sys.argv[1:]
    track(small, out + "/small")
    with open("/proc/self/status") as status:
        size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + MARGIN, -1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    track(large, out + "/large")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_mib": (after - before) / 1024}))
    """
)


def test_thousands_of_segments_track_in_bounded_memory(tmp_path: Path) -> None:
    write_clip(tmp_path / "small", 10, *SHAPE)
    write_clip(tmp_path / "large", SEGMENTS, *SHAPE)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD.replace("MARGIN", str(MARGIN)),
            str(tmp_path / "small"),
            str(tmp_path / "large"),
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth_mib"]
    assert growth < 200, f"peak RSS grew {growth:.0f} MiB for {SEGMENTS} segments"

    detection = grid_ids(SEGMENTS, *SHAPE)
    annotations = json.loads((tmp_path / "large" / "annotations.json").read_text())
    for record in annotations["frames"]:
        ids = read_id_png(tmp_path / "large" / "masks" / f"{record['file_name']}.png")
        # Every cell comes out whole under its own object id: a one-to-one relabelling.
        assert not ids[detection == 0].any()
        cells = detection > 0
        pairs = np.unique(np.stack([detection[cells], ids[cells]]), axis=1)
        assert pairs.shape[1] == SEGMENTS and (pairs[1] > 0).all()
        assert len(np.unique(pairs[1])) == SEGMENTS
        areas = {o["id"]: o["area"] for o in record["objects"]}
        assert sorted(areas) == sorted(pairs[1].tolist())
        assert [areas[i] for i in pairs[1].tolist()] == np.bincount(detection[cells])[
            pairs[0]
        ].tolist()
