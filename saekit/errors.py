"""Exceptions raised by saekit.

Every error says what was wrong, what was expected, and how to fix it.
"""

from __future__ import annotations


class SaekitError(ValueError):
    """Base class for saekit's errors (a ``ValueError``, so callers can catch either)."""


class SiteError(SaekitError, KeyError):
    """An unknown or malformed site name (``"resid_post.15"``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FormatError(SaekitError):
    """A file that is not in a format saekit can read, or is truncated or corrupt."""


class ModelLoadError(SaekitError):
    """A model that could not be loaded (offline, missing files, bad arguments)."""


class CompatibilityError(SaekitError):
    """An SAE that does not fit the model or site it is used with."""


class SaekitWarning(UserWarning):
    """A warning from saekit: work that will take long, or input that was changed (truncated).

    Silence one kind with ``warnings.filterwarnings("ignore", category=SaekitWarning)``.
    """
