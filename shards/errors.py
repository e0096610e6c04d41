"""Exceptions of the ``shards`` package, all under one base, :class:`ShardError`.

:class:`ShardError` derives from :class:`ValueError` (bad data, not a bug), so callers that catch
``ValueError`` keep working; callers that want "anything wrong with a dataset on disk" catch
:class:`ShardError`.
"""

from __future__ import annotations


class ShardError(ValueError):
    """Base of every error the ``shards`` package raises for bad data or bad input."""


class ShardFormatError(ShardError):
    """A shard or one of its members is corrupt, truncated, unsafe or not in the schema.

    The message always names the shard and, where known, the member.
    """


class ManifestError(ShardError):
    """Missing, unreadable or inconsistent manifest."""


class SampleEncodeError(ShardError):
    """A sample cannot be written: bad key, missing or unknown member, wrong shape, dtype or value.

    Raised by the writer before anything is written, so nothing corrupt ever reaches a shard. The
    message starts with the sample key and names the member.
    """


class MemberTableError(ShardError):
    """An invalid member row or table (duplicate suffix or field, bad suffix, no version bump)."""
