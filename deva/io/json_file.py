"""Read a JSON file a user gave, every failure a DevaError naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deva.errors import DevaError


def read_json(path: Path) -> Any:
    """The parsed contents of ``path`` (UTF-8 JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DevaError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise DevaError(f"{path}: malformed JSON (line {err.lineno}: {err.msg})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DevaError(f"{path}: cannot read ({err})") from err
