"""Model selection that is meaningful for the validation size (``early_stopping.monitor: auto``)."""

from __future__ import annotations

import logging

import pytest

from common.configio import ConfigError
from tests.runs import tiny_config
from train.early_stopping import (
    MIN_FALSE_POSITIVES,
    EarlyStopping,
    EarlyStoppingConfig,
    false_positive_budget,
    monitor_warning,
    resolve_monitor,
)
from train.trainer import run


@pytest.mark.parametrize(
    ("n_neg", "want"),
    [
        (None, "auc"),
        (0, "auc"),
        (300, "auc"),  # 1e-2 * 300 = 3 false positives: too few for any FPR target
        (999, "auc"),
        (1000, "tpr@fpr1e-2"),  # exactly 10 at 1e-2
        (9999, "tpr@fpr1e-2"),
        (10_000, "tpr@fpr1e-3"),
        (100_000, "tpr@fpr1e-4"),
    ],
)
def test_auto_picks_the_lowest_fpr_with_enough_false_positives(n_neg, want) -> None:
    assert resolve_monitor("auto", n_neg) == want
    if n_neg:
        budget = false_positive_budget(want, n_neg)
        assert budget is None or budget >= MIN_FALSE_POSITIVES


def test_explicit_monitor_is_kept_and_warned_about_when_it_allows_too_few() -> None:
    assert resolve_monitor("tpr@fpr1e-3", 300) == "tpr@fpr1e-3"
    assert false_positive_budget("tpr@fpr1e-3", 300) == 0
    assert false_positive_budget("tpr10", 300) == 10
    assert false_positive_budget("auc", 300) is None
    warning = monitor_warning("tpr@fpr1e-3", 300)
    assert warning is not None and "0 false positive" in warning and "300" in warning
    assert monitor_warning("tpr@fpr1e-3", 20_000) is None
    assert monitor_warning("auc", 300) is None


def test_auto_is_valid_config_and_unknown_names_list_it() -> None:
    EarlyStoppingConfig(monitor="auto").validate()
    with pytest.raises(ConfigError, match="early_stopping.monitor.*auto"):
        EarlyStoppingConfig(monitor="tpr@fpr7").validate()


def test_resolved_monitor_is_what_is_stored_and_checked_on_resume() -> None:
    stopper = EarlyStopping(EarlyStoppingConfig(), n_val_neg=50_000)
    assert stopper.monitor == "tpr@fpr1e-3" and stopper.mode == "max"
    stopper.update(0, {"tpr@fpr1e-3": 0.4})
    other = EarlyStopping(EarlyStoppingConfig(), n_val_neg=300)  # resolves to auc
    with pytest.raises(ValueError, match="this run monitors 'auc'"):
        other.load_state_dict(stopper.state_dict())


def test_a_run_with_too_few_validation_controls_warns_and_selects_sensibly(
    dataset, tmp_path, caplog
) -> None:
    cfg = tiny_config(epochs=1, early_stopping={"monitor": "tpr@fpr1e-3"})
    with caplog.at_level(logging.WARNING, logger="train.trainer"):
        run(cfg, dataset, tmp_path / "explicit")
    assert any("allows 0 false positive" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="train.trainer"):
        summary = run(tiny_config(epochs=1), dataset, tmp_path / "auto")
    assert not any("false positive" in r.getMessage() for r in caplog.records)
    assert summary.status == "completed"
