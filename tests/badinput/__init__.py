"""The bad-input corpus: every way a user's files can be wrong, through the real CLI."""
