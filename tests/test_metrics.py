"""Tests of train.metrics: tie-aware ROC, operating points, intervals and diagnostics.

Property tests use integer scores in a small range, so almost every input has heavy ties; every
reported operating point is checked against a brute-force count over the data.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve

from train.metrics import (
    Metric,
    clopper_pearson,
    evaluate_scores,
    find_metric,
    flat_summary,
    fpr_at_tpr,
    fpr_label,
    get_metric,
    metric_key,
    monitorable_metrics,
    register_metric,
    roc,
    score_diagnostics,
    sigmoid_saturation_logit,
    tpr_at_fpr,
    tpr_at_n_fp,
    unregister_metric,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def tied_data(draw: st.DrawFn, max_size: int = 60, max_score: int = 6) -> tuple:
    """Integer scores in [0, max_score] (heavy ties) and labels with both classes present."""
    n = draw(st.integers(2, max_size))
    scores = draw(st.lists(st.integers(0, max_score), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    # Guarantee both classes without rejecting examples.
    labels[0], labels[-1] = 0, 1
    return np.array(scores, dtype=np.float32), np.array(labels, dtype=np.int64)


fractions_01 = st.builds(
    lambda k, m: Fraction(min(k, m), m), st.integers(0, 40), st.integers(1, 40)
)


def brute_counts(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[int, int]:
    """(tp, fp) of the rule score >= threshold, counted directly."""
    sel = scores >= threshold
    return int((sel & (labels == 1)).sum()), int((sel & (labels == 0)).sum())


def brute_points(scores: np.ndarray, labels: np.ndarray) -> list[tuple[float, int, int]]:
    """(threshold, tp, fp) for the empty selection and every distinct score, descending."""
    ts = [np.inf, *sorted(set(scores.tolist()), reverse=True)]
    return [(t, *brute_counts(scores, labels, t)) for t in ts]


# ---------------------------------------------------------------------------------------------
# ROC curve
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(tied_data())
def test_roc_matches_brute_force_and_sklearn(data: tuple) -> None:
    scores, labels = data
    curve = roc(scores, labels)
    expected = brute_points(scores, labels)
    np.testing.assert_array_equal(curve.thresholds, [p[0] for p in expected])
    np.testing.assert_array_equal(curve.tp, [p[1] for p in expected])
    np.testing.assert_array_equal(curve.fp, [p[2] for p in expected])
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_array_equal(curve.thresholds, thr)


@SETTINGS
@given(tied_data())
def test_auc_is_tie_aware(data: tuple) -> None:
    scores, labels = data
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    mann_whitney = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    curve = roc(scores, labels)
    assert curve.auc() == pytest.approx(mann_whitney, abs=1e-12)
    assert curve.auc() == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Operating points
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(tied_data(), fractions_01)
def test_tpr_at_fpr_never_exceeds_target_and_is_optimal(data: tuple, target: Fraction) -> None:
    scores, labels = data
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    op = tpr_at_fpr(scores, labels, float(target))
    tp, fp = brute_counts(scores, labels, op.threshold)
    assert (op.tp, op.fp) == (tp, fp)
    assert Fraction(fp, n_neg) <= target
    assert op.fp_allowed == int(target * n_neg)  # floor
    best = max(p[1] for p in brute_points(scores, labels) if Fraction(p[2], n_neg) <= target)
    assert op.tp == best
    assert op.tpr == best / n_pos
    # Among thresholds reaching that TPR, the reported one has the fewest false positives.
    assert op.fp == min(p[2] for p in brute_points(scores, labels) if p[1] == best)
    # The next point is the cheapest one with more TPR, and it overshoots the budget.
    more = [p for p in brute_points(scores, labels) if p[1] > best]
    if more:
        assert (op.next_tp, op.next_fp) == (more[0][1], more[0][2])
        assert op.next_fp > op.fp_allowed
    else:
        assert op.next_tp is None and op.next_fp is None


@SETTINGS
@given(tied_data(), fractions_01)
def test_fpr_at_tpr_matches_brute_force(data: tuple, target: Fraction) -> None:
    scores, labels = data
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    op = fpr_at_tpr(scores, labels, float(target))
    tp, fp = brute_counts(scores, labels, op.threshold)
    assert (op.tp, op.fp) == (tp, fp)
    assert Fraction(tp, n_pos) >= target
    best = min(p[2] for p in brute_points(scores, labels) if Fraction(p[1], n_pos) >= target)
    assert op.fp == best
    assert op.fpr == best / n_neg
    assert op.fp_allowed is None


@SETTINGS
@given(tied_data(max_size=80, max_score=12), st.integers(0, 12))
def test_tpr_at_n_fp_matches_brute_force(data: tuple, n_fp: int) -> None:
    scores, labels = data
    op = tpr_at_n_fp(scores, labels, n_fp)
    assert brute_counts(scores, labels, op.threshold) == (op.tp, op.fp)
    assert op.fp <= n_fp
    assert op.tp == max(p[1] for p in brute_points(scores, labels) if p[2] <= n_fp)
    if n_fp == 0:  # TPR0: positives strictly above every negative
        assert op.tp == int((scores[labels == 1] > scores[labels == 0].max()).sum())


@SETTINGS
@given(tied_data(), st.randoms(use_true_random=False))
def test_evaluate_scores_is_permutation_invariant(data: tuple, rnd) -> None:
    scores, labels = data
    perm = np.arange(len(scores))
    rnd.shuffle(perm)
    assert evaluate_scores(scores[perm], labels[perm]) == evaluate_scores(scores, labels)


def test_tied_top_block_is_never_split() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=2000)
    labels = rng.integers(0, 2, 2000)
    top = scores.max() + 1.0
    scores[:30] = top  # a tied block: 30 samples with mixed labels
    block_neg = int((labels[:30] == 0).sum())
    assert block_neg > 1
    n_neg = int((labels == 0).sum())
    op = tpr_at_fpr(scores, labels, (block_neg - 1) / n_neg)  # budget one short of the block
    assert (op.tp, op.fp, op.threshold) == (0, 0, np.inf)
    assert op.next_fp == block_neg and op.next_tp == int(labels[:30].sum())
    op = tpr_at_fpr(scores, labels, block_neg / n_neg)  # budget exactly the block
    assert op.threshold == top
    assert (op.tp, op.fp) == (int(labels[:30].sum()), block_neg)


def test_low_count_flag() -> None:
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(1000, int), np.ones(500, int)]
    scores = rng.normal(size=1500) + labels
    assert tpr_at_fpr(scores, labels, 1e-3).low_count  # 1 FP allowed
    assert tpr_at_fpr(scores, labels, 9.9e-3).low_count  # 9.9 < 10
    assert not tpr_at_fpr(scores, labels, 1e-2).low_count  # exactly 10 allowed
    assert tpr_at_n_fp(scores, labels, 0).low_count
    assert not tpr_at_n_fp(scores, labels, 10).low_count
    op = fpr_at_tpr(scores, labels, 0.5)
    assert op.low_count == (op.fp < 10)


def test_operating_point_to_dict_is_strict_json() -> None:
    scores = np.array([3.0, 3.0, 1.0, 0.0])
    labels = np.array([1, 0, 1, 0])
    op = tpr_at_fpr(scores, labels, 0.0)
    d = op.to_dict()
    assert d["threshold"] is None  # +inf, the empty selection
    assert d["fp_found"] == d["fp"] == 0 and d["fp_allowed"] == 0
    assert json.loads(json.dumps(d, allow_nan=False)) == d


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, np.nan, 0.3], [0, 1, 1], "NaN"),
        ([0.1, np.inf, 0.3], [0, 1, 1], "inf"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "no negatives"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "no positives"),
        ([0.1, 0.2, 0.3], [0, 1, 2], "binary"),
        ([0.1, 0.2], [0, 1, 1], "length"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
    ],
)
def test_bad_inputs_raise(scores: list, labels: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate_scores(scores, labels)


@pytest.mark.parametrize("target", [-0.1, 1.5])
def test_bad_targets_raise(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        tpr_at_fpr([0.0, 1.0], [0, 1], target)
    with pytest.raises(ValueError, match="target"):
        fpr_at_tpr([0.0, 1.0], [0, 1], target)


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 65090), (6, 65090), (31455, 62910)])
def test_clopper_pearson_equals_scipy_binomtest(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    low, high = clopper_pearson(k, n)
    assert float(low) == pytest.approx(ci.low, abs=1e-12)
    assert float(high) == pytest.approx(ci.high, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_contains_point_estimate(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = clopper_pearson(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert high > low


def test_interval_width_shrinks_with_n() -> None:
    n = np.array([10, 100, 1000, 10_000, 100_000])
    low, high = clopper_pearson(n // 5, n)  # same proportion 0.2
    assert np.all(np.diff(high - low) < 0)


def test_operating_point_intervals_cover_rates() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 5000)
    scores = rng.normal(size=5000) + 2 * labels
    for op in (tpr_at_fpr(scores, labels, 1e-2), fpr_at_tpr(scores, labels, 0.7)):
        assert op.tpr_ci95[0] <= op.tpr <= op.tpr_ci95[1]
        assert op.fpr_ci95[0] <= op.fpr <= op.fpr_ci95[1]


# ---------------------------------------------------------------------------------------------
# Saturation and diagnostics
# ---------------------------------------------------------------------------------------------
def test_sigmoid_saturation_points() -> None:
    big = torch.tensor([6.25, 6.5, 8.0, 16.7, 30.0])
    assert torch.all(torch.sigmoid(big.to(torch.bfloat16)) == 1)
    assert torch.sigmoid(torch.tensor(6.2).to(torch.bfloat16)) < 1
    assert torch.sigmoid(torch.tensor(6.2187, dtype=torch.bfloat16)) < 1  # next bf16 below 6.25
    assert torch.all(torch.sigmoid(torch.tensor([16.7, 17.0, 40.0])) == 1)
    assert torch.sigmoid(torch.tensor(16.5)) < 1
    for dtype, torch_dtype, lo, hi in (
        ("bfloat16", torch.bfloat16, 6.2, 6.25),
        ("float32", torch.float32, 16.5, 16.7),
    ):
        t = sigmoid_saturation_logit(dtype)
        assert lo <= t <= hi
        below = np.nextafter(np.float32(t), np.float32(0))
        assert torch.sigmoid(torch.tensor(t).to(torch_dtype)) == 1
        assert torch.sigmoid(torch.tensor(below).to(torch_dtype)) < 1
    assert torch.tensor(sigmoid_saturation_logit("bfloat16")).to(torch.bfloat16) == 6.25


def test_diagnostics_saturation_fractions() -> None:
    logits = np.array([-3.0, 5.0, 6.2, 6.25, 7.0, 10.0, 16.5, 16.7, 20.0, 50.0], np.float32)
    labels = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 0])
    d = score_diagnostics(logits, labels)
    bf16 = logits >= sigmoid_saturation_logit("bfloat16")
    fp32 = logits >= sigmoid_saturation_logit("float32")
    assert d["frac_sigmoid1_bfloat16"] == pytest.approx(bf16.mean())
    assert d["frac_sigmoid1_float32"] == pytest.approx(fp32.mean())
    assert d["n_sigmoid1_float32"] == {
        "pos": int((fp32 & (labels == 1)).sum()),
        "neg": int((fp32 & (labels == 0)).sum()),
    }
    assert d["n_distinct"] == len(logits)
    assert d["top_tie_size"] == 1 and d["top_tie_n_neg"] == 1  # the 50.0 control


@SETTINGS
@given(tied_data(), st.integers(0, 20), st.integers(0, 20))
def test_diagnostics_top_tie_group(data: tuple, k_pos: int, k_neg: int) -> None:
    scores, labels = data
    if k_pos + k_neg:
        top = scores.max() + 1
        scores = np.r_[scores, np.full(k_pos + k_neg, top)]
        labels = np.r_[labels, np.ones(k_pos, int), np.zeros(k_neg, int)]
    d = score_diagnostics(scores, labels)
    at_max = scores == scores.max()
    assert d["top_tie_size"] == int(at_max.sum())
    assert d["top_tie_n_pos"] == int((at_max & (labels == 1)).sum())
    assert d["top_tie_n_neg"] == int((at_max & (labels == 0)).sum())
    _, counts = np.unique(scores, return_counts=True)
    assert d["largest_tie_size"] == counts.max()
    assert d["n_distinct"] == len(counts)
    for name, mask in (("pos", labels == 1), ("neg", labels == 0)):
        assert d["logit_percentiles"][name]["p50"] == pytest.approx(np.median(scores[mask]))


# ---------------------------------------------------------------------------------------------
# evaluate_scores / flat_summary
# ---------------------------------------------------------------------------------------------
def test_evaluate_scores_layout_and_flat_summary() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 20_000)
    logits = (rng.normal(size=20_000) * 2 + 5 * labels).astype(np.float32)
    result = evaluate_scores(logits, labels)
    round_trip = json.loads(json.dumps(result, allow_nan=False))
    assert set(result["tpr_at_fpr"]) == {"1e-4", "1e-3", "1e-2"}
    assert set(result["fpr_at_tpr"]) == {"0.50", "0.70", "0.85"}
    assert result["tpr_at_fpr"]["1e-3"] == tpr_at_fpr(logits, labels, 1e-3).to_dict()
    assert result["tpr10"] == tpr_at_n_fp(logits, labels, 10).to_dict()
    assert result["auc"] == pytest.approx(roc_auc_score(labels, logits), abs=1e-12)
    flat = flat_summary(result)
    assert flat == flat_summary(round_trip)
    expected = {"tpr@fpr1e-4", "tpr@fpr1e-3", "tpr@fpr1e-2", "fpr@tpr0.50", "fpr@tpr0.70"}
    expected |= {"fpr@tpr0.85", "auc", "top_tie_size", "tpr0", "tpr10"}
    assert expected <= set(flat)
    assert all(isinstance(v, float) for v in flat.values())
    assert flat["tpr@fpr1e-3"] == result["tpr_at_fpr"]["1e-3"]["tpr"]
    assert flat["fpr@tpr0.70"] == result["fpr_at_tpr"]["0.70"]["fpr"]
    assert flat["tpr0"] == result["tpr0"]["tpr"]


@pytest.mark.parametrize(("x", "label"), [(1e-4, "1e-4"), (1e-3, "1e-3"), (2.5e-3, "2.5e-3")])
def test_fpr_label(x: float, label: str) -> None:
    assert fpr_label(x) == label
    assert float(label) == x


# ---------------------------------------------------------------------------------------------
# Plots (train.plots)
# ---------------------------------------------------------------------------------------------
def test_rgb_composite_maps_z_r_g_to_red_green_blue() -> None:
    from train.plots import rgb_composite

    for band, channel in ((0, 2), (1, 1), (2, 0)):  # g -> blue, r -> green, z -> red
        img = np.zeros((3, 64, 64), np.float32)
        img[band, 30:34, 30:34] = 1.0
        rgb = rgb_composite(img)
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        bright = rgb[32, 32].astype(int)
        others = np.delete(bright, channel)
        assert bright[channel] > 2 * others.max()  # the band lands in its own channel
        assert others[0] == others[1]
        sky = rgb[0, 0]
        assert np.all(sky == sky[0]) and sky[0] < 64  # empty sky is dark and grey
    img[0, 0, 0] = np.nan
    assert rgb_composite(img)[0, 0].tolist() == rgb_composite(img)[0, 1].tolist()
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_composite(np.zeros((64, 64, 3)))


def test_plots_write_images(tmp_path) -> None:
    from matplotlib.image import imread

    from train.plots import plot_cutout_grid, plot_history, plot_roc, plot_score_hist

    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 5000)
    logits = rng.normal(size=5000) * 3 + 6 * labels
    history = [
        {"epoch": e, "train_loss": 1 / (e + 1), "lr": 1e-3, "val": {"auc": 0.9, "fpr@tpr0.50": 0}}
        for e in range(3)
    ]
    paths = [
        plot_roc(logits, labels, tmp_path / "roc.png"),
        plot_score_hist(logits, labels, tmp_path / "hist.png"),
        plot_cutout_grid(rng.normal(size=(5, 3, 64, 64)), list("abcde"), tmp_path / "grid.png"),
        plot_history(history, tmp_path / "sub" / "history.png"),
    ]
    for path in paths:
        img = imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0  # a real, non-blank image
    with pytest.raises(ValueError, match="titles"):
        plot_cutout_grid(np.zeros((2, 3, 64, 64)), ["a"], tmp_path / "bad.png")


# ---------------------------------------------------------------------------------------------
# The metric table: one key formatter, one registration per metric
# ---------------------------------------------------------------------------------------------
def test_close_fpr_targets_keep_separate_keys() -> None:
    # Regression: keys were f"{t:.0e}", so 2.5e-3 and 3e-3 both became "3e-03" and one was lost.
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 4000)
    logits = rng.normal(size=4000) + 1.5 * labels
    result = evaluate_scores(logits, labels, fpr_targets=(2.5e-3, 3e-3))
    assert set(result["tpr_at_fpr"]) == {"2.5e-3", "3e-3"}
    assert result["tpr_at_fpr"]["2.5e-3"]["target"] == 2.5e-3
    assert result["tpr_at_fpr"]["3e-3"] == tpr_at_fpr(logits, labels, 3e-3).to_dict()
    flat = flat_summary(json.loads(json.dumps(result)))
    assert {"tpr@fpr2.5e-3", "tpr@fpr3e-3"} <= set(flat)


def test_targets_with_one_key_are_refused() -> None:
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="same key|both have the key"):
        evaluate_scores(np.arange(4.0), labels, fpr_targets=(1e-3, 0.001))


def test_metric_keys_round_trip_through_the_table() -> None:
    for kind, target in (("tpr_at_fpr", 2.5e-3), ("fpr_at_tpr", 0.925), ("tpr_at_n_fp", 10)):
        key = metric_key(kind, target)
        metric = get_metric(key)
        assert metric.direction == ("min" if kind == "fpr_at_tpr" else "max")
    assert metric_key("tpr_at_fpr", 1e-3) == "tpr@fpr1e-3"
    assert find_metric("tpr@fprbanana") is None
    with pytest.raises(KeyError, match="unknown metric"):
        get_metric("no_such_metric")


@pytest.fixture
def toy_metric():
    """A metric defined and registered here, as a user would add one."""
    metric = register_metric(
        Metric(
            "toy_mean_gap",
            "mean logit gap",
            direction="max",
            panel="TPR / AUC",
            compute=lambda x: float(x.scores[x.labels].mean() - x.scores[~x.labels].mean()),
        )
    )
    yield metric
    unregister_metric(metric.name)


def test_a_registered_metric_reaches_summary_history_and_early_stopping(toy_metric) -> None:
    from train.early_stopping import EarlyStopping, EarlyStoppingConfig
    from train.plots import history_panels

    labels = np.array([0, 0, 1, 1])
    logits = np.array([0.0, 1.0, 3.0, 5.0])
    result = evaluate_scores(logits, labels)
    assert result["toy_mean_gap"] == pytest.approx(3.5)
    flat = flat_summary(json.loads(json.dumps(result)))
    assert flat["toy_mean_gap"] == pytest.approx(3.5)
    assert "toy_mean_gap" in monitorable_metrics()
    cfg = EarlyStoppingConfig(monitor="toy_mean_gap", mode="max", patience=1)
    cfg.validate()
    stopper = EarlyStopping(cfg)
    assert stopper.update(0, flat) and not stopper.update(1, {"toy_mean_gap": 1.0})
    assert stopper.should_stop
    assert "val/toy_mean_gap" in history_panels([{"val/toy_mean_gap": 3.5}])["TPR / AUC"]


def test_early_stopping_refuses_the_wrong_direction_and_unknown_metrics() -> None:
    from common.configio import ConfigError
    from train.early_stopping import EarlyStoppingConfig

    with pytest.raises(ConfigError, match="early_stopping.mode"):
        EarlyStoppingConfig(monitor="fpr@tpr0.50", mode="max").validate()
    with pytest.raises(ConfigError, match="early_stopping.monitor"):
        EarlyStoppingConfig(monitor="top_tie_size", mode="max").validate()


def test_register_metric_refuses_inconsistent_entries() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric(Metric("auc", "AUC", "max", "TPR / AUC", compute=lambda x: 0.0))
    with pytest.raises(ValueError, match="operating-point key"):
        register_metric(Metric("tpr@fpr1e-3", "x", "max", compute=lambda x: 0.0))
    with pytest.raises(ValueError, match="panel"):
        register_metric(Metric("toy2", "x", "max", panel="nowhere", compute=lambda x: 0.0))
