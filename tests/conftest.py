from pathlib import Path

import pytest

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis16-dev"


@pytest.fixture(scope="session")
def davis_root() -> Path:
    """The shared DAVIS-16 clips (../shared/data/davis16-dev next to the repository)."""
    if not (DAVIS / "JPEGImages" / "480p").is_dir():
        pytest.fail(f"shared DAVIS data not found at {DAVIS}")
    return DAVIS
