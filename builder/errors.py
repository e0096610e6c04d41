"""The one base class of every user-facing error raised by ``builder/``.

The CLI turns any :class:`BuilderError` (and :class:`common.configio.ConfigError`) into one line
on stderr and exit status 2. Subclasses live next to the code that raises them when they carry
extra fields (``BadRecord``, ``SampleNotFound``); the plain ones are here.
"""

from __future__ import annotations


class BuilderError(Exception):
    """Base of the builder's errors; its message is written for users."""


class BuildError(BuilderError, RuntimeError):
    """A build that cannot proceed (config clash, too many rejections...)."""


class SourceError(BuilderError, ValueError):
    """A parent source that cannot be read at all (missing file or column, wrong type)."""


class ExecutorError(BuilderError, ValueError):
    """An unknown executor name or invalid executor options."""
