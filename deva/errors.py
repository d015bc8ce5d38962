"""One exception type for everything a user can cause, so the CLI prints it as one line."""


class DevaError(Exception):
    """A problem with the user's input, options or environment; the message says what to do."""
