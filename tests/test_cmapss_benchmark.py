"""Operating conditions in ``benchmarks/cmapss.py`` on fleets like C-MAPSS FD002/FD004 (six conditions drawn every
cycle), with missing settings, and on a fleet without settings. No model is trained here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from cmapss import engine_features, fit_conditions

CENTRES = np.array([[0, 0], [10, 0.25], [20, 0.7], [25, 0.62], [35, 0.84], [42, 0.84]])


def readings(n: int = 1200, seed: int = 0, settings: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Two settings at one of six centres per reading, a sensor offset by condition, a constant sensor."""
    rng = np.random.default_rng(seed)
    condition = rng.integers(0, len(CENTRES), n)
    frame = pd.DataFrame(
        {
            "machine_id": "e1",
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
            "sensor_a": 100.0 + 7.0 * condition + rng.normal(0, 1, n),
            "sensor_flat": 5.0,
        }
    )
    if settings:
        frame[["op_setting_1", "op_setting_2"]] = CENTRES[condition] + rng.normal(0, 0.002, (n, 2))
    return frame, condition


def test_six_conditions_are_found_and_the_sensor_is_flat_within_each():
    frame, truth = readings()
    conditions = fit_conditions(frame)
    found = conditions.label(frame)
    assert conditions.kmeans is not None and conditions.kmeans.n_clusters == 6
    assert pd.crosstab(found, truth).gt(0).sum(axis=1).eq(1).all()  # each cluster is one true condition
    assert conditions.sensors == ["sensor_a"]  # the constant sensor is left out
    z = conditions.normalise(frame)["sensor_a"]
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1


def test_missing_settings_make_no_condition_of_their_own():
    frame, _ = readings(seed=1)
    gaps = np.random.default_rng(2).random(len(frame)) < 0.03
    frame.loc[gaps, "op_setting_1"] = np.nan
    conditions = fit_conditions(frame)
    assert conditions.kmeans is not None and conditions.kmeans.n_clusters == 6
    label = conditions.label(frame)
    assert (label[gaps] == -1).all() and (label[~gaps] >= 0).all()
    z = conditions.normalise(frame)["sensor_a"].to_numpy()
    assert np.isnan(z[gaps]).all() and np.isfinite(z[~gaps]).all()


def test_a_fleet_without_settings_is_one_condition():
    frame, _ = readings(settings=False)
    conditions = fit_conditions(frame)
    assert conditions.kmeans is None and conditions.settings == []
    assert (conditions.label(frame) == 0).all()
    z = conditions.normalise(frame)["sensor_a"]
    assert abs(z.mean()) < 1e-9


def test_window_features_of_cycles_shorter_than_an_hour_span_whole_cycles():
    """One cycle a minute: windows of 5 and 10 cycles are 5 and 10 minutes, not rounded to 0 h."""
    n = 30
    series = pd.DataFrame(
        {
            "machine_id": "e1",
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
            "sensor_a": np.arange(n, dtype=float),
        }
    )
    features = engine_features(series, ["sensor_a"], (5, 10), cycle_h=1 / 60)
    mean_5 = next(c for c in features.columns if c.startswith("tel__sensor_a__mean__") and "0.0833" in c)
    assert features[mean_5].iloc[-1] == pytest.approx(np.arange(n)[-6:].mean(), abs=0.6)
