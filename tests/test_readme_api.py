"""The README's "Python API: a runnable example" blocks, executed exactly as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Python API: a runnable example"


def python_blocks(text: str, heading: str) -> list[str]:
    """The ```python blocks between ``heading`` and the next second-level heading."""
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    section = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README.read_text(encoding="utf-8"), SECTION)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)

    clip = namespace["clip"]
    printed = capsys.readouterr().out
    assert printed.count("\n") > len(clip.frames)  # one line per frame of deva.track, at least
    # The detector's ids change every frame; deva keeps one id per true object.
    true_objects = len(np.unique(clip.masks)) - 1
    assert len(namespace["tracked"]) == true_objects
    assert namespace["report"].ok and namespace["report"].frames == len(clip.frames)
    coco = json.loads((tmp_path / "runs" / "demo" / "coco.json").read_text())
    assert coco["videos"][0]["length"] == len(clip.frames)
