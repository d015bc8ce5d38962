"""Packaging and the Makefile: the pip name, every install line, what ``make demo`` installs,
and the Chromium step of ``make test`` (run with stand-ins for apt-get, never for real)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deva.errors import DISTRIBUTION, install_hint

REPO = Path(__file__).resolve().parents[1]
DEV_ONLY = ("gradio", "ray", "transformers", "huggingface_hub", "playwright", "pycocotools")
# `pip install deva`, `pip install "deva[x]"`, `pip install -U 'deva[x]'`: the unrelated
# PyPI package. `deva-track` and local paths (`-e .`) do not match.
WRONG_INSTALL = re.compile(r"""pip install\s+(?:-\S+\s+)*["']?deva(?![-\w])""")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_pip_name_is_ours_and_the_import_and_command_stay_deva():
    project = pyproject()["project"]
    assert project["name"] == DISTRIBUTION != "deva"
    assert project["scripts"] == {"deva": "deva.cli:app"}
    assert pyproject()["tool"]["setuptools"]["packages"]["find"]["include"] == ["deva*"]
    assert install_hint("models") == f'pip install "{DISTRIBUTION}[models]"'
    assert "models" in project["optional-dependencies"]


def install_texts() -> dict[Path, str]:
    files = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "deva").rglob("*.py"))]
    files += sorted((REPO / "docs").rglob("*.md")) if (REPO / "docs").is_dir() else []
    return {path: path.read_text(encoding="utf-8") for path in files}


def test_no_install_line_names_the_unrelated_pypi_deva():
    texts = install_texts()
    wrong = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path, text in texts.items()
        for match in WRONG_INSTALL.finditer(text)
    ]
    assert wrong == []
    hints = sum(text.count(f"{DISTRIBUTION}[") for text in texts.values())
    assert hints >= 5  # README and the code's messages name the extras by the pip name


def test_the_pattern_catches_the_old_lines():
    for line in ('pip install "deva[export]"', "pip install deva", "pip install -U 'deva[web]'"):
        assert WRONG_INSTALL.search(line), line
    for line in ('pip install "deva-track[export]"', 'pip install -e ".[dev]"'):
        assert not WRONG_INSTALL.search(line), line


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make TARGET`` would run for a fresh venv (``make -n``: nothing runs)."""
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [c for c in commands if "pip install" in c and "--upgrade pip" not in c]


@needs_make
def test_make_demo_installs_the_core_only_and_make_test_the_dev_extra(tmp_path):
    demo = installs(make_dry_run("demo", tmp_path))
    assert demo and all("[" not in c for c in demo), demo
    assert any(c.rstrip().endswith("-e .") for c in demo)
    assert any("torch==" in c for c in demo)
    test = installs(make_dry_run("test", tmp_path))
    assert any('-e ".[dev]"' in c for c in test)
    assert set(demo) <= set(test)  # one venv: the tests add to what the demo installed


def test_the_demo_runs_without_any_optional_dependency(tmp_path):
    """``deva demo`` in a process where the dev/extras packages cannot be imported."""
    code = f"""
import sys
for name in {DEV_ONLY!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
import deva.demo
real = deva.demo.render_demo_clip
deva.demo.render_demo_clip = lambda: real(num_frames=8, height=72, width=128)
from deva.cli import app
app(["demo", "-o", sys.argv[1]])
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo" / "annotations.json").is_file()
    assert len(list((tmp_path / "demo" / "masks").glob("*.png"))) == 8


def fake_system(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PATH with an ``id`` that says root and an ``apt-get`` that only logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> "{log}"\necho FAKE-APT\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DEVA_NO_BROWSER"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env, log


def make_browser(env: dict[str, str], tmp_path: Path) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "browser", f"CHROMIUM={tmp_path / 'no-chromium'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout


@needs_make
def test_make_test_says_before_it_apt_installs_chromium(tmp_path):
    env, log = fake_system(tmp_path)
    out = make_browser(env, tmp_path)
    assert re.search(r"apt-get install .*chromium", log.read_text())
    said = out.index("DEVA_NO_BROWSER=1")
    assert "apt-get" in out[:said] and "upgrade system packages" in out[:said]
    assert said < out.index("FAKE-APT")  # the note comes before apt-get runs


@needs_make
def test_deva_no_browser_skips_chromium(tmp_path):
    env, log = fake_system(tmp_path)
    out = make_browser({**env, "DEVA_NO_BROWSER": "1"}, tmp_path)
    assert not log.exists()
    assert "DEVA_NO_BROWSER" in out and "skipped" in out


def test_the_appearance_weights_ship_in_the_package() -> None:
    """`pip install deva-track` then `--propagator appearance` needs no download: the wheel
    must carry the MobileNetV2 weights file."""
    from deva.propagation.features import WEIGHTS_PATH

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["deva.propagation"]
    package = root / "deva" / "propagation"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert WEIGHTS_PATH in shipped
