"""Alert thresholds in maintenance terms: known answers on hand-made out-of-fold scores, and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from models.thresholds import (
    alert_counts,
    candidate_thresholds,
    capacity_threshold,
    cost_threshold,
    expected_cost,
    failure_windows,
)
from models.train import TrainConfig, choose_thresholds

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def fleet() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Three machines over 4 days (one row a day). A fails after day 3 (days 2-3 positive), B after day 1 (days
    0-1 positive); C never fails. Probabilities: A's failure peaks at 0.6, B's at 0.9; C has a 0.7 day."""
    rows = pd.DataFrame(
        {
            "machine_id": np.repeat(["A", "B", "C"], 4),
            "timestamp": np.tile([T0 + pd.Timedelta(days=d) for d in range(4)], 3),
        }
    )
    y = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.1, 0.2, 0.5, 0.6, 0.8, 0.9, 0.1, 0.1, 0.2, 0.7, 0.3, 0.2])
    return rows, p, y


def test_counts_at_known_thresholds():
    rows, p, y = fleet()
    counts = alert_counts(rows, p, y, np.array([0.55, 0.65, 0.75, 0.95]))
    assert counts.failures == 2
    np.testing.assert_array_equal(counts.missed, [0, 1, 1, 2])  # A's failure (max 0.6) missed above 0.6
    np.testing.assert_array_equal(counts.false_machine_days, [1, 1, 0, 0])  # C's 0.7 day
    assert counts.days == 4


def test_cost_threshold_trades_misses_for_inspections():
    rows, p, y = fleet()
    counts = alert_counts(rows, p, y, candidate_thresholds(p))
    # a miss costing 20 inspections: catch both failures and pay C's one false day (threshold <= 0.6)
    assert cost_threshold(counts, 20.0) == 0.6
    # a miss costing half an inspection: never alert is cheapest (2 misses = 1.0) ... vs 0.9 catches B for free
    assert cost_threshold(counts, 0.5) == 0.9
    assert expected_cost(counts, 0.6, 20.0) == {
        "failures": 2.0,
        "missed": 0.0,
        "needless_inspections": 1.0,
        "cost_in_inspections": 1.0,
    }


def test_capacity_threshold_keeps_daily_load_within_the_crew():
    rows, p, y = fleet()
    counts = alert_counts(rows, p, y, candidate_thresholds(p))
    at_one = capacity_threshold(counts, 1)
    flagged = pd.DataFrame({"day": rows["timestamp"], "p": p})
    flagged_per_day = flagged[flagged["p"] >= at_one].groupby("day").size()
    assert flagged_per_day.quantile(0.9) <= 1
    assert capacity_threshold(counts, 3) == p.min()  # the whole fleet fits: alert on everything


def test_failure_windows_split_runs_per_machine():
    frame = pd.DataFrame(
        {
            "machine_id": ["A"] * 5 + ["B"] * 2,
            "timestamp": [T0 + pd.Timedelta(days=d) for d in [0, 1, 2, 3, 4, 0, 1]],
            "y": [1, 1, 0, 1, 1, 1, 1],
        }
    )
    ids = failure_windows(frame.sample(frac=1, random_state=0).sort_index())
    assert ids[2] == -1
    assert len({ids[0], ids[3], ids[5]}) == 3 and ids[0] == ids[1] and ids[3] == ids[4] and ids[5] == ids[6]


@given(st.floats(0.1, 100.0), st.floats(0.1, 100.0))
def test_a_dearer_miss_never_raises_the_threshold(r1, r2):
    rows, p, y = fleet()
    counts = alert_counts(rows, p, y, candidate_thresholds(p))
    low, high = sorted((r1, r2))
    assert cost_threshold(counts, high) <= cost_threshold(counts, low)


def test_both_policies_are_stored_and_the_alert_follows_the_policy():
    rows, p, y = fleet()
    by_cost, _ = choose_thresholds(rows, p, y, TrainConfig(alert_policy="cost", miss_cost_ratio=20))
    by_capacity, _ = choose_thresholds(rows, p, y, TrainConfig(alert_policy="capacity", capacity_per_day=1))
    assert by_cost["high"] == by_cost["cost"] and by_capacity["high"] == by_capacity["capacity"]
    assert by_cost["cost"] == by_capacity["cost"] == 0.6
    assert by_cost["medium"] <= by_cost["high"] / 2


def test_two_failures_closer_than_the_horizon_count_twice_when_their_times_are_known():
    from models.labels import failure_within
    from models.rul import remaining_life
    from models.train import failure_times

    days = [T0 + pd.Timedelta(days=d) for d in range(12)]
    rows = pd.DataFrame({"machine_id": ["A"] * 12 + ["B"] * 12, "timestamp": days * 2})
    failures = [T0 + pd.Timedelta(days=4.5), T0 + pd.Timedelta(days=10.5)]  # 6 days apart, horizon 7
    events = pd.DataFrame({"machine_id": ["A", "A"], "timestamp": failures, "kind": "failure"})
    end = pd.Series({"A": T0 + pd.Timedelta(days=30), "B": T0 + pd.Timedelta(days=30)})
    y = failure_within(rows, events, end, horizon_h=168).to_numpy()
    assert y[:12].tolist() == [1.0] * 11 + [0.0]  # one unbroken run of positive rows
    p = np.r_[[0.1] * 4, 0.9, [0.1] * 7, [0.5] * 12]  # only the first failure is warned
    known = rows.assign(failure_at=failure_times(rows, remaining_life(rows, events, end, 720.0), 720.0))
    counts = alert_counts(known, p, y, np.array([0.5, 0.9]))
    assert counts.failures == 2 and counts.missed.tolist() == [1, 1]
    assert cost_threshold(alert_counts(known, p, y, candidate_thresholds(p)), 20.0) == 0.1
    assert (
        alert_counts(rows, p, y, np.array([0.5, 0.9])).failures == 1
    )  # without the times: one run, one failure


def test_capacity_holds_on_nine_days_in_ten_without_interpolation():
    # 16 days, one machine alerting every day at 0.9, and 4 more at 0.8 on two days: at 0.8 only 14 of 16 days
    # (87.5 %) stay within a crew of 3, so 0.8 is not allowed
    machines = [f"M{i}" for i in range(5)]
    rows, p = [], []
    for d in range(16):
        for i, m in enumerate(machines):
            rows.append({"machine_id": m, "timestamp": T0 + pd.Timedelta(days=d)})
            p.append(0.9 if i == 0 else (0.8 if d in (3, 9) else 0.1))
    frame, p = pd.DataFrame(rows), np.array(p)
    counts = alert_counts(frame, p, np.zeros(len(p)), np.array([0.1, 0.8, 0.85, 0.9]))
    assert counts.flagged_per_day.tolist() == [5, 5, 1, 1]
    assert capacity_threshold(counts, 3) == 0.85


def test_failure_times_split_windows_only_inside_a_run_and_only_where_known():
    hours = [T0 + pd.Timedelta(hours=h) for h in range(9)]
    frame = pd.DataFrame(
        {
            "machine_id": ["A"] * 9,
            "timestamp": hours,
            "y": [1, 1, 1, 1, 0, 1, 1, 1, 1],
            # the second run's first rows have no known failure time (lives at the cap): still one failure
            "failure_at": [10.0, 10.0, 10.0, 10.0, np.nan, np.nan, np.nan, 50.0, 50.0],
        }
    )
    assert failure_windows(frame).tolist() == [0, 0, 0, 0, -1, 1, 1, 1, 1]
    machines = pd.DataFrame(
        {
            "machine_id": ["A", "A", "B", "B", "B"],
            "timestamp": [hours[0], hours[1], hours[0], hours[1], hours[2]],
            "y": [1] * 5,
            "failure_at": [5.0, 5.0, np.nan, 9.0, 9.0],
        }
    )
    assert failure_windows(machines).tolist() == [0, 0, 1, 1, 1]
