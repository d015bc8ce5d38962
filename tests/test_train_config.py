"""TrainConfig from TOML: spec defaults, round trip, and one clear error per bad key or value."""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deva.cli import app
from deva.errors import DevaError
from deva.train.config import DataRoot, TrainConfig, config_to_toml, load_config
from deva.train.trainer import train

runner = CliRunner()


def write(tmp_path, text: str):
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_spec():
    config = TrainConfig()
    assert config.stages == "03" and config.network == "full" and not config.amp
    assert config.on_bad_file == "skip"
    assert (config.weight_decay, config.clip_grad_norm) == (1e-3, 3.0)
    s0, s3 = config.stage0, config.stage3
    assert (s0.iterations, s0.batch_size, s0.lr, s0.lr_steps) == (80_000, 16, 2e-5, ())
    assert (s0.num_frames, s0.num_ref_frames, s0.max_objects, s0.size) == (3, 2, 1, 384)
    assert (s3.iterations, s3.lr, s3.lr_steps, s3.lr_gamma) == (
        150_000,
        1e-5,
        (120_000, 140_000),
        0.1,
    )
    assert (s3.num_frames, s3.num_ref_frames, s3.max_objects) == (8, 3, 3)
    assert (s3.bootstrap_start, s3.bootstrap_end, config.bootstrap_final) == (10_000, 35_000, 0.3)


def test_default_toml_round_trips(tmp_path):
    assert load_config(write(tmp_path, config_to_toml())) == TrainConfig()


def test_edited_toml_round_trips_with_paths_relative_to_the_file(tmp_path):
    text = """
stages = "3"
network = "tiny"
init_checkpoint = "weights/start.pth"
[stage3]
iterations = 500
lr_steps = [300, 400]
[[stage3.data]]
root = "davis"
repeat = 5
[[stage3.data]]
root = "/data/ytvos"
layout = "youtube"
sequences = ["a", "b"]
"""
    config = load_config(write(tmp_path, text))
    assert config.stages == "3" and config.network == "tiny"
    assert config.init_checkpoint == str(tmp_path / "weights" / "start.pth")
    assert config.stage3.iterations == 500 and config.stage3.lr_steps == (300, 400)
    assert config.stage3.data == (
        DataRoot(str(tmp_path / "davis"), repeat=5),
        DataRoot("/data/ytvos", layout="youtube", sequences=("a", "b")),
    )
    again = tmp_path / "again"
    again.mkdir()
    assert load_config(write(again, config_to_toml(config))) == config


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("batchsize = 4\n", "'batchsize'"),
        ("[stage3]\nlearning_rate = 1.0\n", "'stage3.learning_rate'"),
        ('[[stage0.data]]\nroot = "x"\nlayout = "davis"\n', "'stage0.data[0].layout'"),
        ('seed = "seven"\n', "'seed'"),
        ("[stage0]\nsize = 100\n", "multiple of 16"),
        ('stages = "012"\n', "stages"),
        ('network = "huge"\n', "network"),
        ("[stage3]\nlr_steps = [5, 3]\n", "lr_steps"),
        ('on_bad_file = "ignore"\n', "on_bad_file must be skip or stop"),
        ("on_bad_file = false\n", "'on_bad_file'"),
    ],
)
def test_bad_keys_and_values_name_the_problem_and_the_file(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(DevaError) as error:
        load_config(path)
    assert named in str(error.value) and str(path) in str(error.value)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(DevaError, match="not valid TOML"):
        load_config(write(tmp_path, "stages = \n"))
    with pytest.raises(DevaError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_iterations_override_sets_every_stage():
    config = TrainConfig().with_iterations(7)
    assert config.stage0.iterations == config.stage3.iterations == 7
    with pytest.raises(DevaError):
        TrainConfig().with_iterations(0)


def test_print_config_and_train_config_write_the_defaults(tmp_path):
    printed = runner.invoke(app, ["train", "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert tomllib.loads(printed.output)["stage3"]["lr_steps"] == [120_000, 140_000]
    out = tmp_path / "mine.toml"
    written = runner.invoke(app, ["train-config", "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert load_config(out) == TrainConfig()


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    path = write(tmp_path, "colour = 3\n")
    result = runner.invoke(app, ["train", str(path), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "unknown key 'colour'" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_replace_keeps_the_config_frozen():
    config = replace(TrainConfig(), seed=3)
    with pytest.raises(AttributeError):
        config.seed = 4  # type: ignore[misc]


def static_data_with_a_corrupt_image(tmp_path):
    """Three 64 x 64 image/mask pairs under tmp_path/static; b.jpg is not an image."""
    root = tmp_path / "static"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{name}.jpg")
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 20:44] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    corrupt = root / "images" / "b.jpg"
    corrupt.write_bytes(b"not a jpeg")
    return corrupt


def bad_file_config(tmp_path, policy: str):
    return load_config(
        write(
            tmp_path,
            f"""
stages = "0"
network = "tiny"
device = "cpu"
workers = 0
on_bad_file = "{policy}"
[stage0]
iterations = 2
batch_size = 3
size = 64
[[stage0.data]]
root = "static"
""",
        )
    )


def test_on_bad_file_stop_ends_the_run_naming_the_file(tmp_path):
    corrupt = static_data_with_a_corrupt_image(tmp_path)
    config = bad_file_config(tmp_path, "stop")
    assert config.on_bad_file == "stop"
    with pytest.raises(DevaError, match=re.escape(str(corrupt))):
        train(config, tmp_path / "run")  # every batch holds all three samples


def test_on_bad_file_skip_warns_and_trains_on(tmp_path, caplog):
    corrupt = static_data_with_a_corrupt_image(tmp_path)
    config = bad_file_config(tmp_path, "skip")
    with caplog.at_level(logging.WARNING, logger="deva.train.data"):
        result = train(config, tmp_path / "run")
    assert (result.stage, result.iteration, result.interrupted) == ("0", 2, False)
    assert result.weights.is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(corrupt) in message for message in warnings)
