"""Errors a user can act on: each message names the problem and the fix.

The CLI prints these as one line and exits with status 2; anything else is a bug and keeps its
traceback.
"""


class VitsslError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(VitsslError):
    """A config key is unknown, of the wrong type, or has an impossible value."""


class DataError(VitsslError):
    """A dataset folder, file or image cannot be used."""


class CheckpointError(VitsslError):
    """A checkpoint is missing, corrupt, or does not fit the model."""


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name (some messages are empty)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
