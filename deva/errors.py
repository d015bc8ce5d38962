"""One exception type for everything a user can cause, so the CLI prints it as one line."""


class DevaError(Exception):
    """A problem with the user's input, options or environment; the message says what to do."""


DISTRIBUTION = "deva-track"
"""deva's name on PyPI and in pip (``deva`` there is an unrelated package); the import name and
the command stay ``deva``."""


def install_hint(extra: str) -> str:
    """The command installing an optional extra, for messages: ``pip install "deva-track[x]"``."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'
