"""SAM 3 and EdgeTAM in the web app: the propagator choices, the weights field reaching the
SAM-family propagators, a run with SAM 3 concepts + the SAM 3 tracker end to end (tiny random
models from the real config classes), and errors naming the app's field."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deva.errors import DevaError
from deva.web import RunOutcome, WebInputs, WebSettings, run_job

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="the models extra is not installed"
)


@pytest.fixture(scope="module")
def frames_zip(davis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three blackswan frames at 107x60 in a zip, and the first frame's mask in another."""
    root = tmp_path_factory.mktemp("web-sam")
    archive = root / "swan.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(3):
            name = f"{index:05d}.jpg"
            image = Image.open(davis_root / "JPEGImages" / "480p" / "blackswan" / name)
            image.resize((107, 60)).save(root / name)
            bundle.write(root / name, name)
    masks = root / "masks.zip"
    mask = root / "00000.png"
    truth = Image.open(davis_root / "Annotations" / "480p" / "blackswan" / "00000.png")
    truth.resize((107, 60), Image.NEAREST).save(mask)  # a palette PNG, like the frames
    with zipfile.ZipFile(masks, "w") as bundle:
        bundle.write(mask, mask.name)
    return archive


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from deva.models import tiny

    root = tmp_path_factory.mktemp("web-models")
    return {
        "sam3": tiny.tiny_sam3(root / "sam3"),
        "sam3-tracker": tiny.tiny_video(root / "sam3-tracker", "sam3", image_size=112),
        "edgetam": tiny.tiny_video(root / "edgetam", "edgetam", image_size=128),
    }


def test_the_app_offers_sam3_and_edgetam_propagators(tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="the web extra is not installed")
    from deva.web import build_app

    app = build_app(tmp_path / "runs")
    [radio] = [
        block
        for block in app.blocks.values()
        if str(getattr(block, "label", "")).startswith("Propagator (")
    ]
    values = [choice[1] if isinstance(choice, tuple) else choice for choice in radio.choices]
    assert {"sam2", "edgetam", "sam3"} <= set(values)
    labels = [str(getattr(block, "label", "")) for block in app.blocks.values()]
    assert any(label.startswith("Propagator weights") and "SAM 3" in label for label in labels)


def test_text_mode_with_sam3_and_the_sam3_tracker(frames_zip: Path, models, tmp_path) -> None:
    settings = WebSettings.for_mode(
        "text",
        prompt="swan.bird",
        model=str(models["sam3"]),
        propagator="sam3",
        propagator_model=str(models["sam3-tracker"]),
        size=-1,
    )
    outcome = run_job(WebInputs(frames_zip=frames_zip), settings, tmp_path / "runs")
    assert isinstance(outcome, RunOutcome) and outcome.num_frames == 3
    with zipfile.ZipFile(outcome.archive) as bundle:
        names = set(bundle.namelist())
    assert {"masks/00000.png", "masks/00002.png", "annotations.json"} <= names


def test_first_frame_masks_with_edgetam(frames_zip: Path, models, tmp_path) -> None:
    masks = frames_zip.parent / "masks.zip"
    settings = WebSettings(
        segmentation="masks", propagator="edgetam", propagator_model=str(models["edgetam"])
    )
    outcome = run_job(WebInputs(frames_zip=frames_zip, masks_zip=masks), settings, tmp_path / "r")
    assert outcome.num_frames == 3 and outcome.object_ids == (1,)


@pytest.mark.parametrize(("family", "name"), [("sam3", "facebook/sam3"), ("edgetam", "EdgeTAM")])
def test_offline_default_model_names_the_weights_field(
    frames_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: str, name: str
) -> None:
    """An empty weights field means the family's default hub id; offline it is one message
    naming the app's field (not a command-line flag) and the id."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    masks = frames_zip.parent / "masks.zip"
    with pytest.raises(DevaError) as info:
        run_job(
            WebInputs(frames_zip=frames_zip, masks_zip=masks),
            WebSettings(segmentation="masks", propagator=family),
            tmp_path / "runs",
        )
    message = str(info.value)
    assert message.startswith('"Propagator weights"') and name in message
    assert "--" not in message
