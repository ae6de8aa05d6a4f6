"""Drift: PSI known answers on synthetic distributions, its properties, group fallback, warnings, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from models.drift import (
    MIN_ROWS,
    PSI_DRIFT,
    PSI_WATCH,
    SCORE,
    DriftReference,
    drift_groups,
    drift_reference,
    drift_warnings,
    operating_modes,
    population_stability,
)

TEMPERATURE = "tel__temperature_bearing__last"
RMS = "vib__acc_horizontal__rms"


def normal(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({TEMPERATURE: np.random.default_rng(seed).normal(shift, 1.0, n)})


def psi_of(table: pd.DataFrame, feature: str = TEMPERATURE, group: str = "all", value: str = "all") -> float:
    row = table[(table["feature"] == feature) & (table["group"] == group) & (table["value"] == value)]
    assert len(row) == 1
    return float(row["psi"].iloc[0])


def analytic_shift_psi(shift: float, bins: int = 10) -> float:
    """PSI of N(shift, 1) against the quantile bins of N(0, 1)."""
    edges = norm.ppf(np.arange(1, bins) / bins)
    actual = np.diff(np.r_[0.0, norm.cdf(edges - shift), 1.0])
    return float(np.sum((actual - 1 / bins) * np.log(actual * bins)))


def test_the_same_rows_read_zero_and_a_fresh_sample_nearly_zero() -> None:
    train = normal(20_000)
    reference = drift_reference(train, None, None)
    assert psi_of(population_stability(reference, train)) == pytest.approx(0.0, abs=1e-12)
    fresh = population_stability(reference, normal(20_000, seed=1))
    assert psi_of(fresh) < 0.01
    assert fresh["level"].tolist() == ["ok"]


@pytest.mark.parametrize("shift", [0.5, 1.0])
def test_a_normal_shifted_by_part_of_a_sd_reads_the_analytic_decile_psi(shift: float) -> None:
    expected = analytic_shift_psi(shift)  # 0.238 for half a sd, 0.926 for one sd
    assert 0.2 < expected < 1.0
    reference = drift_reference(normal(200_000), None, None)
    table = population_stability(reference, normal(200_000, shift, seed=1))
    assert psi_of(table) == pytest.approx(expected, rel=0.05)
    assert table["level"].iloc[0] == ("drift" if expected >= PSI_DRIFT else "watch")


def test_two_bins_by_hand() -> None:
    reference = drift_reference(pd.DataFrame({"x": np.arange(100.0)}), None, None, bins=2)
    np.testing.assert_allclose(reference.edges_[0, 0], [49.5])
    np.testing.assert_allclose(reference.shares_[0, 0], [0.5, 0.5, 0.0])
    batch = pd.DataFrame({"x": np.r_[np.zeros(80), np.full(20, 99.0)]})  # 80 % below the median, 20 % above
    table = population_stability(reference, batch, min_rows=1)
    by_hand = 0.3 * np.log(0.8 / 0.5) + (-0.3) * np.log(0.2 / 0.5)  # the missing bin: 1e-4 both, adds 0
    assert psi_of(table, "x") == pytest.approx(by_hand, rel=1e-9)
    assert psi_of(table, "x") == pytest.approx(0.4159, abs=1e-4)


def test_an_empty_bin_keeps_the_psi_finite() -> None:
    reference = drift_reference(normal(5_000), None, None)
    table = population_stability(reference, pd.DataFrame({TEMPERATURE: np.full(500, 10.0)}))
    assert np.isfinite(table["psi"]).all()
    assert table["level"].iloc[0] == "drift"


@settings(max_examples=50, deadline=None)
@given(
    train=st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=1, max_size=300),
    batch=st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=1, max_size=300),
    bins=st.integers(2, 12),
)
def test_psi_is_never_negative(train: list[float], batch: list[float], bins: int) -> None:
    reference = drift_reference(pd.DataFrame({"x": train}), None, None, bins=bins)
    table = population_stability(reference, pd.DataFrame({"x": batch}), min_rows=1)
    assert (table["psi"] >= 0).all()
    assert np.isfinite(table["psi"]).all()


def test_missing_values_raise_the_missing_bins_contribution() -> None:
    reference = drift_reference(normal(10_000), None, None)
    batch = normal(5_000, seed=1)
    holey = batch.copy()
    holey.loc[: len(batch) // 5 - 1, TEMPERATURE] = np.nan  # a fifth of the readings lost
    before = population_stability(reference, batch)
    after = population_stability(reference, holey)
    assert after["psi_missing"].iloc[0] > before["psi_missing"].iloc[0] + 0.1
    assert psi_of(after) > psi_of(before)
    assert after["missing"].iloc[0] == pytest.approx(0.2)
    assert after["reference_missing"].iloc[0] == 0.0


def test_a_feature_the_batch_lacks_counts_as_missing() -> None:
    train = normal(1_000).assign(**{RMS: 0.5})
    reference = drift_reference(train, None, None)
    table = population_stability(reference, normal(1_000, seed=1))
    assert table.set_index("feature").loc[RMS, "missing"] == 1.0
    assert table.set_index("feature").loc[RMS, "level"] == "drift"
    assert "missing in 100% of rows" in drift_warnings(table)[0]


def fleet(
    n_pump: int, n_fan: int, fan_shift: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Pumps read N(0, 1), fans N(fan_shift, 1); scores are the readings squashed to (0, 1)."""
    rng = np.random.default_rng(seed)
    matrix = pd.DataFrame({TEMPERATURE: np.r_[rng.normal(0, 1, n_pump), rng.normal(fan_shift, 1, n_fan)]})
    groups = pd.DataFrame({"machine_type": ["pump"] * n_pump + ["fan"] * n_fan})
    return matrix, 1 / (1 + np.exp(-matrix[TEMPERATURE].to_numpy())), groups


def test_each_group_is_judged_against_its_own_training_rows() -> None:
    reference = drift_reference(*fleet(2_000, 2_000, 3.0, seed=0))
    assert (reference.groups_.set_index("value")["slot"].drop("all") > 0).all()
    table = population_stability(reference, *fleet(1_000, 1_000, 3.0, seed=1))
    assert set(zip(table["group"], table["value"], strict=True)) == {
        ("all", "all"),
        ("machine_type", "pump"),
        ("machine_type", "fan"),
    }
    assert (table["psi"] < PSI_WATCH).all()
    assert (table["reference"] == "own").all()
    assert set(table["feature"]) == {TEMPERATURE, SCORE}
    # the fans warm up by one sd: their own reference sees it, and so does the score
    drifted = population_stability(reference, *fleet(1_000, 1_000, 4.0, seed=1))
    assert psi_of(drifted, TEMPERATURE, "machine_type", "fan") == pytest.approx(
        analytic_shift_psi(1.0), rel=0.15
    )
    assert psi_of(drifted, SCORE, "machine_type", "fan") >= PSI_DRIFT
    assert psi_of(drifted, TEMPERATURE, "machine_type", "pump") < PSI_WATCH


def test_small_and_unseen_groups_fall_back_to_all_training_rows() -> None:
    matrix, scores, groups = fleet(3_000, MIN_ROWS - 1, 0.0, seed=0)
    reference = drift_reference(matrix, scores, groups)
    assert reference.groups_.set_index("value").loc["fan", "slot"] == 0
    assert reference.edges_.shape[0] == 2  # all rows and pumps; fans have none of their own
    batch, batch_scores, batch_groups = fleet(1_000, 1_000, 0.0, seed=1)
    batch_groups.loc[batch_groups["machine_type"] == "pump", "machine_type"] = "compressor"
    table = population_stability(reference, batch, batch_scores, batch_groups)
    own = table.set_index(["value", "feature"])["reference"]
    assert own[("fan", TEMPERATURE)] == "overall"
    assert own[("compressor", TEMPERATURE)] == "overall"
    assert own[("all", TEMPERATURE)] == "own"
    assert (table["psi"] < PSI_WATCH).all()  # same distribution as the fleet, so no drift


def test_groups_with_too_few_batch_rows_are_not_judged() -> None:
    reference = drift_reference(*fleet(2_000, 2_000, 0.0, seed=0))
    table = population_stability(reference, *fleet(1_000, 20, 5.0, seed=1))
    fan = table[table["value"] == "fan"]
    assert (fan["level"] == "few_rows").all()
    assert (fan["psi"] >= PSI_DRIFT).all()  # computed, but 20 rows are too few to trust
    assert drift_warnings(table) == []


def test_missing_group_values_count_only_in_all_rows() -> None:
    matrix, scores, groups = fleet(1_000, 1_000, 0.0, seed=0)
    groups.loc[:99, "machine_type"] = None
    reference = drift_reference(matrix, scores, groups)
    assert reference.groups_.set_index("value").loc["pump", "rows"] == 900
    table = population_stability(reference, matrix, scores, groups)
    assert table.groupby("value")["rows"].first().to_dict() == {"all": 2_000, "fan": 1_000, "pump": 900}


def test_warnings_name_the_worst_features_in_words_once_each() -> None:
    reference = drift_reference(*fleet(2_000, 2_000, 0.0, seed=0))
    table = population_stability(reference, *fleet(1_000, 1_000, 2.0, seed=1))  # the fans run 2 sd warmer
    warnings = drift_warnings(table, top=1)
    assert len(warnings) == 2
    assert warnings[0].startswith("bearing temperature drifted (PSI ")
    assert warnings[0].endswith("°C) across the fleet, and in 1 group")
    assert warnings[1] == "and 1 more features at level drift"  # the score
    assert drift_warnings(table.assign(level="ok")) == []


def test_a_warning_names_the_group_when_only_the_group_drifted() -> None:
    reference = drift_reference(*fleet(5_000, 2_000, 0.0, seed=0))
    table = population_stability(reference, *fleet(5_000, 300, 1.5, seed=1))
    assert psi_of(table) < PSI_DRIFT
    assert "for machine type fan" in drift_warnings(table)[0]


def test_large_groups_are_judged_on_a_sample_with_their_full_row_count() -> None:
    reference = drift_reference(normal(50_000), None, None, max_rows=5_000)
    assert reference.groups_["rows"].iloc[0] == 50_000
    batch = normal(30_000, 0.5, seed=1)
    sampled = population_stability(reference, batch, max_rows=5_000)
    assert sampled["rows"].iloc[0] == 30_000
    assert psi_of(sampled) == pytest.approx(analytic_shift_psi(0.5), abs=0.03)
    pd.testing.assert_frame_equal(sampled, population_stability(reference, batch, max_rows=5_000))


def test_the_reference_pickles_and_reads_the_same_afterwards() -> None:
    matrix, scores, groups = fleet(2_000, 300, 1.0, seed=0)
    reference = drift_reference(matrix.assign(**{RMS: np.nan}), scores, groups)
    copy = pickle.loads(pickle.dumps(reference))
    assert isinstance(copy, DriftReference)
    batch = fleet(500, 500, 1.5, seed=1)
    pd.testing.assert_frame_equal(population_stability(copy, *batch), population_stability(reference, *batch))
    assert len(pickle.dumps(reference)) < 20_000  # small: it travels in the model bundle


def test_without_scores_there_is_no_score_row() -> None:
    matrix, scores, groups = fleet(1_000, 1_000, 0.0, seed=0)
    reference = drift_reference(matrix, scores, groups)
    assert SCORE not in set(population_stability(reference, matrix, None, groups)["feature"])
    assert population_stability(reference, matrix.iloc[:0], None, None).empty


def test_scores_or_groups_of_another_length_are_refused() -> None:
    matrix, scores, groups = fleet(300, 300, 0.0, seed=0)
    with pytest.raises(ValueError, match="599 scores for 600 matrix rows"):
        drift_reference(matrix, scores[1:], groups)
    reference = drift_reference(matrix, scores, groups)
    with pytest.raises(ValueError, match="599 groups for 600 matrix rows"):
        population_stability(reference, matrix, scores, groups.iloc[1:])


def test_operating_modes_are_load_bands() -> None:
    frame = pd.DataFrame({"tel__load_pct__last": [10.0, 75.0, 100.0, np.nan]})
    modes = operating_modes(frame)
    assert modes.iloc[:3].tolist() == ["load 0-50 %", "load 50-100 %", "load 100-150 %"]
    assert pd.isna(modes.iloc[3])
    assert operating_modes(pd.DataFrame(index=range(2))).isna().all()


def test_drift_groups_join_machine_types_and_load_bands_in_row_order() -> None:
    frame = pd.DataFrame(
        {"machine_id": ["M2", "M1", "M9"], "tel__load_pct__last": [80.0, 20.0, np.nan]}, index=[7, 3, 5]
    )
    machines = pd.DataFrame({"machine_id": ["M1", "M2"], "machine_type": ["fan", "pump"]})
    groups = drift_groups(frame, machines)
    assert groups["machine_type"].tolist()[:2] == ["pump", "fan"]
    assert pd.isna(groups["machine_type"].iloc[2])
    assert groups["mode"].tolist()[:2] == ["load 50-100 %", "load 0-50 %"]
    assert list(drift_groups(frame, None).columns) == ["mode"]
