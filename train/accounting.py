"""Exactly-once accounting: every sample of a split seen once per epoch, no more, no less.

The one place that counts and checks. The loader (:mod:`train.data`) yields each sample's key
and a weight (0 for padding); the loop collects the keys of real samples
(:func:`real_keys`), gathers them from every rank (:func:`train.distributed.gather_keys`),
counts them (:func:`accounting`) and checks the counts (:func:`check_exactly_once`):
``samples_seen == unique_samples == expected``, where ``expected`` is the manifest's count.
"""

from __future__ import annotations

from collections.abc import Sequence

from train.errors import SampleAccountingError

__all__ = ["accounting", "check_exactly_once", "count_keys", "real_keys"]


def real_keys(keys: Sequence[str], weights: Sequence[float]) -> list[str]:
    """Keys of the real samples of a batch (weight > 0; padding has weight 0)."""
    return [k for k, w in zip(keys, weights, strict=True) if w > 0]


def count_keys(keys_per_rank: Sequence[Sequence[str]]) -> dict[str, int]:
    """Epoch accounting over ranks: samples seen and distinct samples (padding keys ignored).

    Parameters
    ----------
    keys_per_rank : sequence of sequence of str
        The ``key`` lists of every batch, concatenated per rank (e.g. gathered from all ranks).

    Returns
    -------
    dict
        ``samples_seen`` (with repeats) and ``unique_samples``; exactly-once means both equal the
        manifest's expected count.
    """
    real = [k for keys in keys_per_rank for k in keys if k]
    return {"samples_seen": len(real), "unique_samples": len(set(real))}


def accounting(keys_per_rank: Sequence[Sequence[str]], expected: int) -> dict[str, int]:
    """``samples_seen``, ``unique_samples`` (:func:`count_keys`) and ``expected``."""
    return {**count_keys(keys_per_rank), "expected": int(expected)}


def check_exactly_once(counts: dict[str, int], what: str, subset: bool = False) -> None:
    """Raise :class:`~train.errors.SampleAccountingError` unless every sample was seen once.

    Parameters
    ----------
    counts : dict
        Output of :func:`accounting`.
    what : str
        Context for the message (e.g. ``"epoch 3: train split"``).
    subset : bool
        A step-capped debug epoch: only repeats (and more than expected) are an error.
    """
    seen, unique, expected = counts["samples_seen"], counts["unique_samples"], counts["expected"]
    ok = seen == unique and (seen <= expected if subset else seen == expected)
    if not ok:
        raise SampleAccountingError(
            f"{what}: samples_seen={seen}, unique_samples={unique}, expected={expected} "
            "(the manifest count); every sample must be seen exactly once - stopping"
        )
