"""J&F on the six shared DAVIS-16 clips for one appearance-propagator setting, in one or all
of the three end-to-end settings of the `appearance` bench section (quick version):

    python -m bench.appearance_vos '{"recent": 2}'              # semi-supervised
    python -m bench.appearance_vos '{"recent": 2}' noisy motion  # the other two

Settings are ``AppearancePropagator`` keyword arguments.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bench import tracking
from bench.appearance import SEMI_ONLINE
from deva.propagation.appearance import AppearancePropagator


def rows(task: str, settings: dict[str, object]) -> list[tracking.Row]:
    """The rows of one task: ``semi``, ``noisy`` or ``motion``."""

    def make() -> AppearancePropagator:
        return AppearancePropagator(**settings)  # type: ignore[arg-type]

    if task == "semi":
        return tracking.vos_rows(tracking.SEQUENCES, make_propagator=make, label="x")
    if task == "noisy":
        found = tracking.noisy_detection_rows(methods=SEMI_ONLINE, make_propagator=make)
        return [r for r in found if r.method in SEMI_ONLINE]
    if task == "motion":
        found = tracking.motion_rows(make_propagator=make, label="x", raw=False)
        return [r for r in found if r.method.endswith("union")]
    raise SystemExit(f"unknown task {task!r}: semi, noisy or motion")


if __name__ == "__main__":
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    for task in sys.argv[2:] or ["semi"]:
        found = rows(task, settings)
        clips = " ".join(f"{r.sequence}:{r.jf:.3f}" for r in found)
        mean = np.mean([r.jf for r in found])
        print(f"{task} {settings} {clips} mean J&F {mean:.3f}", flush=True)
