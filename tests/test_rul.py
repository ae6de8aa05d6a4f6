"""Remaining life: known answers for the targets and the metrics, and a regressor that learns a clear trend."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from models.rul import RulConfig, phm08_score, predict, remaining_life, rmse, train_rul_regressor


def day(d: float) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=d)


def test_phm08_score_known_answers():
    # d = pred - truth: 13 early costs e^1 - 1, 10 late costs e^1 - 1, exact costs 0
    assert phm08_score([87.0, 60.0, 40.0], [100.0, 50.0, 40.0]) == pytest.approx(2 * (math.e - 1))
    assert phm08_score([20.0], [0.0]) == pytest.approx(math.e**2 - 1)  # 20 late
    assert phm08_score([0.0], [26.0]) == pytest.approx(math.e**2 - 1)  # 26 early: the same cost as 20 late
    assert phm08_score([5.0], [0.0]) > phm08_score([0.0], [5.0])  # late is worse than early


def test_rmse_known_answer():
    assert rmse([3.0, 0.0], [0.0, 4.0]) == pytest.approx(math.sqrt(12.5))


def test_remaining_life_caps_and_censors():
    rows = pd.DataFrame(
        {
            "machine_id": ["A"] * 6 + ["B"] * 2 + ["C"] * 2,
            "timestamp": [day(d) for d in (0, 8, 9.5, 10, 11, 11.5, 0, 7, 4, 6)],
        }
    )
    events = pd.DataFrame(
        {
            "machine_id": ["A", "A", "C", "C"],
            "timestamp": [day(10), day(12), day(5), day(8)],
            "kind": ["failure", "failure", "maintenance", "failure"],
        }
    )
    end = pd.Series({"A": day(11.5), "B": day(9), "C": day(6)})
    life = remaining_life(rows, events, end, cap_h=72).to_numpy()
    # A: 10 days out -> cap; 2 days -> 48 h; 12 h; at the failure -> down (NaN); restarted -> 24 h, 12 h
    np.testing.assert_array_equal(life[:6], [72, 48, 12, np.nan, 24, 12])
    # B never fails: 9 days observed after day 0 (> cap) -> cap; 2 days observed after day 7 -> censored
    np.testing.assert_array_equal(life[6:8], [72, np.nan])
    # C: a maintenance 1 day ahead comes before the failure -> unknown; after it, 2 days to the failure
    np.testing.assert_array_equal(life[8:], [np.nan, 48])


def test_remaining_life_names_the_missing_column():
    with pytest.raises(InputError, match="'timestamp'"):
        remaining_life(pd.DataFrame({"machine_id": ["A"]}), pd.DataFrame(), pd.Series(dtype=object), 10)


def _engines(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Engines whose wear sensor rises linearly over the last 60 cycles of a 100-200 cycle life, plus noise."""
    rng = np.random.default_rng(seed)
    frames, targets, groups = [], [], []
    for engine in range(n):
        life = int(rng.integers(100, 200))
        remaining = np.arange(life - 1, -1, -1, dtype=float)
        wear = np.clip(60.0 - remaining, 0.0, None) + rng.normal(0, 2.0, life)
        frames.append(pd.DataFrame({"wear": wear, "noise": rng.normal(0, 1, life)}))
        targets.append(remaining)
        groups.append(np.full(life, f"{seed}-{engine}"))
    return pd.concat(frames, ignore_index=True), np.concatenate(targets), np.concatenate(groups)


def test_regressor_learns_a_clear_wear_trend():
    x, y, groups = _engines(12, seed=1)
    config = RulConfig(cap=60, folds=3, n_estimators=300, learning_rate=0.1, early_stopping_rounds=20)
    model = train_rul_regressor(x, y, groups, config)
    x_new, y_new, _ = _engines(6, seed=2)
    pred = predict(model, x_new)
    truth = np.minimum(y_new, 60)
    assert rmse(pred, truth) < 5.0  # noise of 2 units on a slope of 1 per cycle
    assert rmse(model.oof, np.minimum(y, 60)) < 6.0
    assert pred.min() >= 0 and pred.max() <= 60
    assert model.feature_columns == ("wear", "noise")
    # reordered columns give the same prediction: the model reads columns by name
    np.testing.assert_allclose(predict(model, x_new[["noise", "wear"]]), pred)


def test_regressor_refuses_censored_targets():
    x, y, groups = _engines(3, seed=3)
    y[0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train_rul_regressor(x, y, groups, RulConfig(folds=2, n_estimators=5))
