"""One exception type for everything a user can cause, so the CLI prints it as one line."""

from __future__ import annotations

# Python names whose command-line flag is not simply ``--name-with-dashes``.
_FLAGS = {"max_memory_mb": "--max-memory", "num_samples": "--n-frames"}


class DevaError(Exception):
    """A problem with the user's input, options or environment; the message says what to do."""


DISTRIBUTION = "deva-track"
"""deva's name on PyPI and in pip (``deva`` there is an unrelated package); the import name and
the command stay ``deva``."""


def install_hint(extra: str) -> str:
    """The command installing an optional extra, for messages: ``pip install "deva-track[x]"``."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


class OptionError(DevaError):
    """A bad option value. ``option`` is its Python name (``detect_every``): the message reads
    ``detect_every must be >= 1, got 0`` from Python and, through ``command_line()``,
    ``--detect-every must be >= 1, got 0`` on the command line."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option
        self.problem = problem

    def command_line(self) -> str:
        return f"{flag_name(self.option)} {self.problem}"


def flag_name(option: str) -> str:
    """The command-line flag of the Python option name ``option`` (``max_memory_mb`` ->
    ``--max-memory``)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))
