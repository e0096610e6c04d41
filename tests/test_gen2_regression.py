"""Regression tests for the Gen-2 "TPR at FPR=1e-4 collapse" (docs/gen2-diagnosis.md).

The Gen-2 validation set is rebuilt from the counts in the origin notes (62,910 positives,
65,090 negatives). Logits are drawn so that a block of confident samples - more than 80% of the
positives plus ``k`` controls - lies above the float32 sigmoid saturation point; Gen-2's scores,
``sigmoid(logits)`` in float32, are then computed exactly as Gen-2 did, so the tie at 1.0 is
produced by the arithmetic, not written in by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.gen2_reference import legacy_gen2_tpr_at_fpr
from train.metrics import (
    evaluate_scores,
    fpr_at_tpr,
    roc,
    roc_auc,
    score_diagnostics,
    sigmoid_saturation_logit,
    tpr_at_fpr,
)

N_POS, N_NEG = 62_910, 65_090
BLOCK_FRAC = 0.82  # "more than 80% of the positives"; fpr@tpr0.85 needs to go below the block


def gen2_like(block_neg: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (logits, labels, probabilities) shaped like a Gen-2 validation epoch.

    ``block_neg`` controls and ``round(BLOCK_FRAC * N_POS)`` positives get logits above the
    float32 saturation point (positives mostly above those controls); everything else stays
    below it. Order is shuffled.
    """
    rng = np.random.default_rng(seed)
    block_pos = round(BLOCK_FRAC * N_POS)
    logits = np.concatenate(
        [
            rng.uniform(18.0, 40.0, block_pos),  # confident lenses
            rng.uniform(-2.0, 16.0, N_POS - block_pos),  # the rest of the lenses
            rng.uniform(17.0, 19.0, block_neg),  # confidently wrong controls
            rng.uniform(6.0, 16.0, 60),  # a tail of high-scoring controls below the block
            np.minimum(rng.normal(-6.0, 3.0, N_NEG - block_neg - 60), 6.0),  # the rest
        ]
    ).astype(np.float32)
    labels = np.r_[np.ones(N_POS, np.int64), np.zeros(N_NEG, np.int64)]
    perm = rng.permutation(labels.size)
    logits, labels = logits[perm], labels[perm]
    probs = torch.sigmoid(torch.from_numpy(logits)).numpy()  # Gen-2's float32 scores
    # Within a tie the legacy ROC keeps whichever sample the sort put first. Gen-2 reported 1/P,
    # so a positive came first; make that so here (with >80% positives it almost always is).
    block = np.flatnonzero(probs == 1.0)
    first_pos = block[labels[block] == 1][0]
    for arr in (logits, labels, probs):
        arr[[block[0], first_pos]] = arr[[first_pos, block[0]]]
    return logits, labels, probs


def brute_tpr_at_fp(logits: np.ndarray, labels: np.ndarray, n_fp: int) -> float:
    """Best TPR with at most ``n_fp`` false positives, for distinct scores, by direct counting."""
    neg_sorted = np.sort(logits[labels == 0])[::-1]
    cut = neg_sorted[n_fp]  # the (n_fp+1)-th highest control must stay unselected
    return float((logits[labels == 1] > cut).sum() / (labels == 1).sum())


@pytest.fixture(scope="module", params=[46, 140], ids=["epoch5_k46", "epoch7_k140"])
def epoch(request: pytest.FixtureRequest) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    return (request.param, *gen2_like(request.param))


def test_saturation_produces_the_tie_block(epoch: tuple) -> None:
    k, logits, labels, probs = epoch
    sat = logits >= sigmoid_saturation_logit("float32")
    assert np.array_equal(probs == 1.0, sat)  # the block is exactly the saturated logits
    assert int((sat & (labels == 0)).sum()) == k
    assert (sat & (labels == 1)).sum() / N_POS > 0.8
    assert np.all(probs[~sat] < 1.0)


def test_legacy_first_of_tie_reports_exactly_one_positive(epoch: tuple) -> None:
    _, _, labels, probs = epoch
    assert legacy_gen2_tpr_at_fpr(probs, labels, 1e-4, tie="first") == 1 / N_POS


def test_legacy_first_of_tie_depends_on_which_tied_sample_sorts_first(epoch: tuple) -> None:
    _, _, labels, probs = epoch
    block = np.flatnonzero(probs == 1.0)
    first_neg = block[labels[block] == 0][0]
    order = np.r_[first_neg, np.delete(np.arange(labels.size), first_neg)]
    assert legacy_gen2_tpr_at_fpr(probs[order], labels[order], 1e-4, tie="first") == 0.0


def test_legacy_last_of_tie_reports_zero(epoch: tuple) -> None:
    _, _, labels, probs = epoch
    assert legacy_gen2_tpr_at_fpr(probs, labels, 1e-4, tie="last") == 0.0


def test_tie_aware_metric_on_probabilities_is_zero_and_flags_the_tie(epoch: tuple) -> None:
    k, _, labels, probs = epoch
    block_pos = int(((probs == 1.0) & (labels == 1)).sum())
    op = tpr_at_fpr(probs, labels, 1e-4)
    assert op.fp_allowed == 6  # floor(1e-4 * 65,090)
    assert (op.tp, op.fp, op.threshold) == (0, 0, np.inf)
    assert (op.next_tp, op.next_fp) == (block_pos, k)  # the next reachable point costs k FPs
    assert op.low_count  # 6.5 allowed false positives < 10
    diag = score_diagnostics(probs, labels)
    assert diag["top_tie_size"] == block_pos + k
    assert (diag["top_tie_n_pos"], diag["top_tie_n_neg"]) == (block_pos, k)


def test_tie_aware_metric_on_logits_recovers_true_tpr(epoch: tuple) -> None:
    k, logits, labels, probs = epoch
    op = tpr_at_fpr(logits, labels, 1e-4)
    truth = brute_tpr_at_fp(logits, labels, 6)
    assert op.tpr == truth
    assert truth > 0.5  # most of the block ranks above the confidently wrong controls
    assert op.fp <= 6
    diag = score_diagnostics(logits, labels)
    assert diag["top_tie_size"] == 1  # distinct logits: no tie to hide behind
    assert diag["n_sigmoid1_float32"]["neg"] == k  # ... but the saturation is still reported


def test_fpr_at_tpr_columns_match_history(epoch: tuple) -> None:
    """History: at epoch 5 tpr 0.50 / 0.70 / 0.80 all needed 46 negatives; at epoch 7, 140."""
    k, _, labels, probs = epoch
    for target in (0.5, 0.7, 0.8):
        assert fpr_at_tpr(probs, labels, target).fp == k
    assert fpr_at_tpr(probs, labels, 0.85).fp > k  # 85% lies below the block


def test_tpr_at_1e3_collapses_only_when_block_exceeds_65_negatives(epoch: tuple) -> None:
    """History: tpr@1e-3 survives epoch 5 (46 <= 65 allowed) and collapses at epoch 7 (140)."""
    k, _, labels, probs = epoch
    legacy = legacy_gen2_tpr_at_fpr(probs, labels, 1e-3, tie="first")
    ours = tpr_at_fpr(probs, labels, 1e-3)
    assert ours.fp_allowed == 65
    if k <= 65:
        assert legacy > BLOCK_FRAC and ours.tpr > BLOCK_FRAC
    else:
        assert legacy == 1 / N_POS and ours.tpr == 0.0


def test_auc_hardly_moves_while_the_low_fpr_metric_collapses(epoch: tuple) -> None:
    """AUROC stayed at 0.989-0.991: the tie only costs half of the k x block pairs."""
    _, logits, labels, probs = epoch
    assert abs(roc_auc(probs, labels) - roc_auc(logits, labels)) < 1e-3
    assert tpr_at_fpr(logits, labels, 1e-4).tpr - tpr_at_fpr(probs, labels, 1e-4).tpr > 0.5


def test_evaluate_scores_on_gen2_like_logits_reports_saturation(epoch: tuple) -> None:
    k, logits, labels, _ = epoch
    result = evaluate_scores(logits, labels)
    diag = result["diagnostics"]
    block = int((logits >= sigmoid_saturation_logit("float32")).sum())
    assert diag["frac_sigmoid1_float32"] == pytest.approx(block / labels.size)
    assert diag["frac_sigmoid1_bfloat16"] > diag["frac_sigmoid1_float32"]
    assert result["tpr_at_fpr"]["1e-4"]["tpr"] > 0.5


def test_duplicated_validation_gives_even_counts_and_overconfident_intervals() -> None:
    """Every stamp seen twice (Gen-2's worker bug): rates unchanged, counts even, CIs too narrow."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 20_000)
    logits = rng.normal(size=20_000) + 3 * labels
    once = roc(logits, labels)
    twice = roc(np.r_[logits, logits], np.r_[labels, labels])
    assert np.all(twice.fp % 2 == 0) and np.all(twice.tp % 2 == 0)
    np.testing.assert_allclose(twice.fpr, once.fpr)
    a, b = once.tpr_at_fpr(1e-3), twice.tpr_at_fpr(1e-3)
    assert a.tpr == b.tpr
    width = lambda op: op.tpr_ci95[1] - op.tpr_ci95[0]  # noqa: E731
    assert width(b) < 0.8 * width(a)  # same information, ~1/sqrt(2) narrower interval


def focal_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """Binary focal loss as configured in Gen-2 (alpha 0.25, gamma 2)."""
    p = torch.sigmoid(logits)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    return (a_t * (1 - p_t) ** gamma * ce).mean()


def test_saturated_samples_contribute_nothing_to_the_loss() -> None:
    """A correctly classified sample at the saturation logit adds < 1e-8 to the focal loss.

    So Gen-2's mean train loss (3.4e-3 at epoch 5, 1e-4 at epoch 11) sets no limit on how many
    samples sit in the saturated block: the loss is carried by the few hard samples that the
    96 effective passes were still fitting.
    """
    for dtype, bound in (("bfloat16", 1e-8), ("float32", 1e-20)):
        z = torch.tensor([sigmoid_saturation_logit(dtype)], dtype=torch.float64)
        assert focal_loss(z, torch.ones(1, dtype=torch.float64)) < bound
        assert focal_loss(-z, torch.zeros(1, dtype=torch.float64)) < bound
    # ... while a hard, misranked sample carries almost all of the mean loss:
    assert focal_loss(torch.tensor([0.0]), torch.ones(1)) > 1e4 * 1e-8
