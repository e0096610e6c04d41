"""The selection function: recall per bin at fixed thresholds, counts, intervals, empty bins,
out-of-range and missing values, real positives kept apart, JSON and figures."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from common.configio import ConfigError
from train.evaluate import write_json
from train.selection import QUANTITIES, resolve_edges, selection_function
from train.selection_plots import CURVES_NAME, grid_name, plot_selection

THRESHOLDS = {"loose": 0.0, "tight": 1.0, "none": math.inf}
EDGES = {"theta_e_arcsec": (0.5, 1.0, 2.0, 3.0), "source_mag_r": (22.0, 24.0, 26.0)}

# (label, logit, theta_e_arcsec, source_mag_r, visible, kind)
ROWS = [
    # bin [0.5, 1): 4 positives, logits -1, 0.5, 0.5, 2 -> loose 3/4, tight 1/4
    (1, -1.0, 0.6, 23.0, False, "injected"),
    (1, 0.5, 0.7, 23.0, True, "injected"),
    (1, 0.5, 0.9, 25.0, True, None),  # no kind recorded: counts as injected
    (1, 2.0, 0.5, 25.0, True, "injected"),  # on the lower edge: in this bin
    # bin [1, 2): empty
    # bin [2, 3]: 2 positives, one on the closed top edge -> loose 1/2, tight 1/2
    (1, 1.5, 2.5, 22.0, True, "injected"),
    (1, -2.0, 3.0, 26.0, False, "injected"),
    # outside the edges and missing
    (1, 3.0, 0.3, 23.0, True, "injected"),  # underflow
    (1, -3.0, 3.5, 27.0, None, "injected"),  # overflow (both axes of the map)
    (1, 0.2, None, None, None, "injected"),  # missing
    # real lenses: no injection parameters, a population of their own
    (1, 5.0, None, None, None, "real"),
    (1, -5.0, None, None, None, "real"),
    # controls are never binned
    (0, 9.0, 1.5, 23.0, None, None),
    (0, -9.0, None, None, None, None),
]


def toy() -> tuple[dict[str, list], np.ndarray, np.ndarray]:
    labels = np.array([r[0] for r in ROWS])
    logits = np.array([r[1] for r in ROWS], np.float32)
    names = ("theta_e_arcsec", "source_mag_r", "visible", "kind")
    cols = {n: [r[2 + j] for r in ROWS] for j, n in enumerate(names)}
    return cols, labels, logits


@pytest.fixture(scope="module")
def sel() -> dict:
    cols, labels, logits = toy()
    return selection_function(cols, labels, logits, THRESHOLDS, edges=EDGES)


def exact_ci(k: int, n: int) -> list[float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return [ci.low, ci.high]


def test_counts_per_bin_are_exact(sel: dict) -> None:
    q = sel["populations"]["injected"]["quantities"]["theta_e_arcsec"]
    assert q["edges"] == [0.5, 1.0, 2.0, 3.0]
    assert [b["n"] for b in q["bins"]] == [4, 0, 2]
    assert [b["points"]["loose"]["k"] for b in q["bins"]] == [3, 0, 1]
    assert [b["points"]["tight"]["k"] for b in q["bins"]] == [1, 0, 1]
    assert [b["points"]["none"]["k"] for b in q["bins"]] == [0, 0, 0]
    assert q["bins"][0]["points"]["loose"]["recall"] == pytest.approx(0.75)
    assert (q["underflow"]["n"], q["underflow"]["points"]["tight"]["k"]) == (1, 1)
    assert (q["overflow"]["n"], q["overflow"]["points"]["loose"]["k"]) == (1, 0)
    assert (q["missing"]["n"], q["missing"]["points"]["loose"]["k"]) == (1, 1)
    total = sum(b["n"] for b in q["bins"]) + sum(q[k]["n"] for k in ("underflow", "overflow"))
    assert total + q["missing"]["n"] == sel["populations"]["injected"]["n"] == 9


def test_intervals_are_clopper_pearson_and_empty_bins_are_kept(sel: dict) -> None:
    bins = sel["populations"]["injected"]["quantities"]["theta_e_arcsec"]["bins"]
    np.testing.assert_allclose(bins[0]["points"]["loose"]["ci95"], exact_ci(3, 4), rtol=1e-9)
    np.testing.assert_allclose(bins[2]["points"]["tight"]["ci95"], exact_ci(1, 2), rtol=1e-9)
    empty = bins[1]
    assert (empty["lo"], empty["hi"], empty["n"]) == (1.0, 2.0, 0)
    assert empty["points"]["loose"] == {"k": 0, "recall": None, "ci95": None}


def test_categorical_visible_and_real_positives_kept_apart(sel: dict) -> None:
    vis = sel["populations"]["injected"]["quantities"]["visible"]
    by_value = {b["value"]: b for b in vis["bins"]}
    assert (by_value[True]["n"], by_value[False]["n"], vis["missing"]["n"]) == (5, 2, 2)
    assert by_value[True]["points"]["tight"]["k"] == 3  # logits 0.5, 0.5, 2, 1.5, 3
    real = sel["populations"]["real"]
    assert real["n"] == 2 and real["points"]["loose"]["k"] == 1
    theta = real["quantities"]["theta_e_arcsec"]
    assert sum(b["n"] for b in theta["bins"]) == 0 and theta["missing"]["n"] == 2
    assert sel["populations"]["injected"]["points"]["loose"]["k"] == 6  # no real lens in it


def test_grid_counts(sel: dict) -> None:
    (grid,) = sel["populations"]["injected"]["grids"]
    assert (grid["x"], grid["y"]) == ("theta_e_arcsec", "source_mag_r")
    # x bins [0.5,1) [1,2) [2,3]; y bins [22,24) [24,26]
    assert grid["n"] == [[2, 2], [0, 0], [1, 1]]
    assert grid["k"]["loose"] == [[1, 2], [0, 0], [1, 0]]
    assert (grid["n_outside"], grid["n_missing"]) == (2, 1)


def test_json_keys_and_strict_json(sel: dict, tmp_path: Path) -> None:
    path = write_json(sel, tmp_path / "selection.json")
    back = json.loads(path.read_text())
    assert set(back) == {"threshold_source", "thresholds", "populations"}
    assert back["thresholds"] == {"loose": 0.0, "tight": 1.0, "none": None}
    assert set(back["populations"]) == {"injected", "real"}
    pop = back["populations"]["injected"]
    assert set(pop) == {"n", "points", "quantities", "grids"}
    assert set(pop["quantities"]) == set(QUANTITIES)
    assert set(pop["quantities"]["theta_e_arcsec"]) == {
        "label", "categorical", "edges", "bins", "underflow", "overflow", "missing"
    }  # fmt: skip


def test_figures_written_for_quantities_with_values(sel: dict, tmp_path: Path) -> None:
    files = plot_selection(sel, tmp_path)
    assert {p.name for p in files} == {CURVES_NAME, grid_name("theta_e_arcsec", "source_mag_r")}
    for p in files:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = {**copy.deepcopy(sel["populations"]["injected"]), "grids": []}
    for q in empty["quantities"].values():  # no positive has a value: no figure at all
        q["bins"] = [{**b, "n": 0} for b in q["bins"]]
    assert plot_selection({"populations": {"injected": empty}}, tmp_path / "none") == []


def test_edges_configurable_and_bad_edges_refused() -> None:
    assert resolve_edges(None)["theta_e_arcsec"] == QUANTITIES["theta_e_arcsec"].edges
    assert resolve_edges({"psfsize_r": [1, 2]})["psfsize_r"] == (1.0, 2.0)
    for bad, why in (
        ({"theta_e_arcsec": [1.0]}, "at least two"),
        ({"theta_e_arcsec": [1.0, 1.0]}, "increase strictly"),
        ({"theta_e_arcsec": [0.0, math.inf]}, "finite"),
        ({"visible": [0, 1]}, "not a numeric quantity"),
        ({"theta_e": [0, 1]}, "not a numeric quantity"),
    ):
        with pytest.raises(ConfigError, match=why) as err:
            resolve_edges(bad)
        assert err.value.key == f"selection.edges.{next(iter(bad))}"


def test_length_mismatch_refused() -> None:
    cols, labels, logits = toy()
    cols["theta_e_arcsec"] = cols["theta_e_arcsec"][:-1]
    with pytest.raises(ValueError, match="theta_e_arcsec"):
        selection_function(cols, labels, logits, THRESHOLDS)
