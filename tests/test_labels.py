"""Labels and splits: known answers on a hand-made timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.labels import failure_within
from models.split import machine_holdout, time_holdout


def day(d: int) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=d)


def test_failure_within_horizon_censoring_and_min_lead():
    rows = pd.DataFrame(
        {
            "machine_id": ["A"] * 5 + ["B"] * 3,
            "timestamp": [day(0), day(5), day(8), day(9.9), day(10), day(0), day(5), day(9)],
        }
    )
    events = pd.DataFrame(
        {"machine_id": ["A", "B"], "timestamp": [day(10), day(1)], "kind": ["failure", "maintenance"]}
    )
    end = pd.Series({"A": day(10), "B": day(9)})
    label = failure_within(rows, events, end, horizon_h=72, min_lead_h=6).to_numpy()
    # A: 10 days before -> 0; 5 days -> 0; 2 days -> 1; 2.4 h (< min lead) -> masked; at failure -> masked
    np.testing.assert_array_equal(label[:5], [0, 0, 1, np.nan, np.nan])
    # B never fails: unknown right before its maintenance, healthy while 72 h of data follow, censored at its end
    np.testing.assert_array_equal(label[5:], [np.nan, 0, np.nan])


def test_time_holdout_purges_the_horizon():
    rows = pd.DataFrame({"machine_id": "A", "timestamp": [day(d) for d in range(100)]})
    train, test = time_holdout(rows, test_fraction=0.3, purge_h=24 * 7)
    assert rows["timestamp"].iloc[train].max() + pd.Timedelta(days=7) < rows["timestamp"].iloc[test].min()
    assert len(test) == 30


def test_machine_holdout_never_shares_machines():
    rows = pd.DataFrame({"machine_id": np.repeat([f"M{i}" for i in range(10)], 5), "timestamp": day(0)})
    train, test = machine_holdout(rows, 0.3, seed=1)
    assert not set(rows["machine_id"].iloc[train]) & set(rows["machine_id"].iloc[test])
    assert rows["machine_id"].iloc[test].nunique() == 3


def test_maintenance_within_the_horizon_censors_the_row():
    rows = pd.DataFrame({"machine_id": "A", "timestamp": [day(0), day(2), day(6), day(8)]})
    events = pd.DataFrame(
        {"machine_id": ["A", "A"], "timestamp": [day(4), day(9)], "kind": ["maintenance", "failure"]}
    )
    label = failure_within(rows, events, pd.Series({"A": day(20)}), horizon_h=72).to_numpy()
    # day 0: maintenance 4 days on, failure 9 days on -> healthy; day 2: maintenance within 72 h -> unknown;
    # day 6 and 8: failure within 72 h, no maintenance before it -> 1
    np.testing.assert_array_equal(label, [0, np.nan, 1, 1])


def test_calibration_error_known_answer():
    from models.evaluate import calibration_table, expected_calibration_error

    y = np.array([0, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.75])
    table = calibration_table(y, p)
    assert table["rows"].tolist() == [2, 1, 1]
    # bins: 0.0-0.1 (gap 0.05, 2 rows), 0.7-0.8 (gap 0.25), 0.9-1.0 (gap 0.05)
    assert abs(expected_calibration_error(y, p) - (2 * 0.05 + 0.25 + 0.05) / 4) < 1e-12


def test_labels_and_lives_follow_the_rows_whatever_their_index_and_time_units():
    from models.rul import remaining_life

    rows = pd.DataFrame({"machine_id": "A", "timestamp": [day(0), day(2)]}, index=[7, 3])  # not index order
    events = pd.DataFrame({"machine_id": ["A"], "timestamp": [day(5)], "kind": ["failure"]})
    end = pd.Series({"A": day(9)})
    for ev in (
        events,
        events.assign(timestamp=events["timestamp"].dt.tz_convert("Europe/Berlin").dt.as_unit("ns")),
    ):
        for order in (rows, rows.iloc[::-1]):
            label = failure_within(order, ev, end, horizon_h=96).to_numpy()
            life = remaining_life(order, ev, end, cap_h=720).to_numpy()
            expected_life = (
                ev["timestamp"].iloc[0] - order["timestamp"]
            ).dt.total_seconds().to_numpy() / 3600
            np.testing.assert_array_equal(label, (expected_life <= 96).astype(float))
            np.testing.assert_allclose(life, expected_life)
