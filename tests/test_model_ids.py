"""The SAM 3 and EdgeTAM default hub ids (facebook/sam3 is gated, the EdgeTAM port is a user
repo) when they cannot be loaded: offline and not cached, or gated for this user. Each is one
line naming the id and how to point to a local copy, exit code 2 on the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva import hub
from deva.cli import app
from deva.errors import DevaError
from deva.models.builders import DEFAULT_MODELS, build_propagator, build_segmenter
from deva.segmenters.options import ModelOptions

LOCAL_COPY = "local folder written by save_pretrained"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))


def test_offline_sam3_text_model_is_one_line(offline: None) -> None:
    options = ModelOptions(model="facebook/sam3", prompt="person", device="cpu")
    with pytest.raises(DevaError, match=f"'facebook/sam3' is offline .*{LOCAL_COPY}"):
        build_segmenter("text", options)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub answers, but the repo is gated for this user: transformers raises the OSError it
    raises for huggingface_hub's GatedRepoError (its wording, as in transformers.utils.hub)."""
    import transformers

    def refuse(name: str, **kwargs: object) -> None:
        raise OSError(
            "You are trying to access a gated repo.\nMake sure to have access to it at "
            f"https://huggingface.co/{name}.\n401 Client Error."
        )

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "is_cached", lambda *args: False)
    monkeypatch.setattr(hub, "unreachable", lambda *args: None)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)


@pytest.mark.parametrize("state", ["offline", "gated"])
@pytest.mark.parametrize("family", ["sam3", "edgetam"])
def test_default_propagator_id_is_one_line(
    request: pytest.FixtureRequest, state: str, family: str
) -> None:
    """Offline and not cached, or gated: one line naming the id and the local-copy way out
    (gated: also where to request access)."""
    request.getfixturevalue(state)
    name = DEFAULT_MODELS[family]
    with pytest.raises(DevaError) as caught:
        build_propagator(family, None, device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert f"{name!r} is {state}" in message and LOCAL_COPY in message
    if state == "gated":
        assert f"https://huggingface.co/{name}" in message


@pytest.fixture
def one_frame(davis_root: Path, tmp_path: Path) -> Path:
    clip = tmp_path / "clip"
    clip.mkdir()
    frame = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / "00000.jpg")
    frame.resize((96, 54)).save(clip / "00000.jpg")
    return clip


def one_error_line(arguments: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output


def test_cli_offline_sam3_propagator_is_one_line_exit_2(
    offline: None, one_frame: Path, tmp_path: Path
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    Image.fromarray(np.pad(np.ones((20, 20), np.uint8), 17)[:54, :96]).save(given / "00000.png")
    one_error_line(
        ["track", str(one_frame), "-o", str(tmp_path / "out"), "--init-masks", str(given),
         "--propagator", "sam3", "--no-video"],
        "'facebook/sam3' is offline",
    )  # fmt: skip


def test_cli_sam3_video_gated_is_one_line_exit_2(
    gated: None, one_frame: Path, tmp_path: Path
) -> None:
    one_error_line(
        ["sam3-video", str(one_frame), "-o", str(tmp_path / "out"), "--prompt", "swan"],
        "'facebook/sam3' is gated",
    )
