"""Semi-supervised J&F on the six shared DAVIS-16 clips for one appearance-propagator setting,
the quick version of the `appearance_parts` bench section:

    python -m bench.appearance_vos '{"recent": 2}'

Settings are ``AppearancePropagator`` keyword arguments.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bench import tracking
from deva.propagation.appearance import AppearancePropagator

if __name__ == "__main__":
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    rows = tracking.vos_rows(
        tracking.SEQUENCES, make_propagator=lambda: AppearancePropagator(**settings), label="x"
    )
    clips = " ".join(f"{r.sequence}:{r.jf:.3f}" for r in rows)
    print(f"{settings} {clips} mean J&F {np.mean([r.jf for r in rows]):.3f}")
