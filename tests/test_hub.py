"""Hub ids when the Hugging Face hub cannot be reached: one error line at once (no retries, no
warning printed twice), and a model in the local cache loads without the network.

Each case runs in a fresh process pointed at a closed local port (HF_ENDPOINT) with its own
empty cache (HF_HOME): the hub library reads both when it is imported.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deva.io.video import VideoWriter

pytest.importorskip("transformers", reason="the models extra is not installed")

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket closes


def no_hub(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine whose hub is unreachable, with an empty cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        HF_HOME=str(tmp_path / "hf-home"),
        PYTHONPATH=str(REPO),
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "small.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, fps=10) as video:
        for _ in range(3):
            video.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_unreachable_hub_is_one_line_naming_the_id_without_retries(small_video, tmp_path):
    env = no_hub(tmp_path)
    args = ["-m", "deva.cli", "track", str(small_video), "-o", str(tmp_path / "out")]
    result = run([*args, "--segmenter", "auto", "--model", "nobody/no-such-sam"], env)
    lines = error_lines(result)
    assert result.returncode == 2, lines
    assert len(lines) == 1, lines  # no retry warnings, nothing printed twice, no traceback
    [line] = lines
    assert "--model (SAM)" in line and "'nobody/no-such-sam'" in line
    assert "cannot be reached" in line and "save_pretrained" in line


def test_unreachable_hub_for_network_weights_is_one_line(tmp_path):
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.WARNING)\n"  # as the command line does
        "from deva.errors import DevaError\n"
        "from deva.propagation.network.checkpoint import load_propagation_weights\n"
        "try:\n"
        "    load_propagation_weights(None, 'nobody/deva-weights')\n"
        "except DevaError as err:\n"
        "    print(err)\n"
    )
    result = run(["-c", code], no_hub(tmp_path))
    lines = error_lines(result)
    assert result.returncode == 0 and len(lines) == 1, lines
    assert "'nobody/deva-weights'" in lines[0] and "cannot be reached" in lines[0]


def cache_model(folder: Path, hf_home: Path, repo_id: str) -> None:
    """Put a save_pretrained folder into the hub cache layout, as a download would."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_a_cached_hub_id_loads_without_the_network(tmp_path):
    from deva.models import tiny

    env = no_hub(tmp_path)
    cache_model(tiny.tiny_sam(tmp_path / "sam"), Path(env["HF_HOME"]), "nobody/tiny-sam")
    code = (
        "import torch\n"
        "from deva.models import loading\n"
        "loaded = loading.load_model('nobody/tiny-sam', accepted=loading.SAM_TYPES, role='--model',"
        " device=torch.device('cpu'))\n"
        "print(loaded.model_type, loaded.processor is not None)\n"
    )
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sam", "True"]
