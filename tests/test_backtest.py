"""Backtest accounting on hand-made timelines: warnings and leads, false alarms, maintenance, capacity, status."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.backtest import capped_risk, failed_since_last_reading, replay_status, run_backtest, scoring_times

T0 = pd.Timestamp("2026-03-01", tz="UTC")
THRESHOLDS = {"high": 0.5, "medium": 0.2}


def day(d: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=d)


def timeline(risks: dict[str, list[float]]) -> pd.DataFrame:
    """Daily scoring of each machine with the given risks; every row scored; labels unknown except as given."""
    rows = [
        {"machine_id": m, "timestamp": day(i), "status": "scored", "failure_probability": p, "label": np.nan}
        for m, values in risks.items()
        for i, p in enumerate(values)
    ]
    return pd.DataFrame(rows)


def events(*rows: tuple[str, float, str]) -> pd.DataFrame:
    frame = pd.DataFrame([{"machine_id": m, "timestamp": day(d), "kind": k} for m, d, k in rows])
    return frame.reindex(columns=["machine_id", "timestamp", "kind"]).astype(
        {"machine_id": object, "timestamp": "datetime64[ns, UTC]", "kind": object}
    )


def test_warning_lead_and_false_alarm():
    tl = timeline(
        {
            "A": [0.1, 0.6, 0.3, 0.7, 0.8, 0.9],  # alarm from day 1 (stays above clear), fails at day 5.5
            "B": [0.1, 0.7, 0.1, 0.1, 0.1, 0.1],  # alarm on day 1 only, never fails: a false alarm
            "C": [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # fails at day 3.5 unwarned
        }
    )
    ev = events(("A", 5.5, "failure"), ("C", 3.5, "failure"))
    result = run_backtest(tl, ev, THRESHOLDS, every_h=24, min_lead_h=24)
    failures = result.failures.set_index("machine_id")
    assert bool(failures.loc["A", "warned"]) and failures.loc["A", "lead_h"] == 4.5 * 24
    assert not bool(failures.loc["C", "warned"])
    m = result.metrics
    assert (m["failures"], m["recall_lead_24h"], m["false_alarms"]) == (2, 0.5, 1)
    assert m["alarm_precision"] == 0.5 and m["lead_h_median"] == 108
    assert m["cost_in_inspections"] == 20 * 1 + 1  # one miss at the default ratio, one needless inspection
    months = 3 * 5 / 30.44  # three machines scored over 5 days each
    assert abs(m["false_alarms_per_machine_month"] - 1 / months) < 1e-9


def test_a_warning_shorter_than_the_minimum_lead_is_not_a_catch():
    tl = timeline({"A": [0.1, 0.1, 0.1, 0.1, 0.9, 0.9]})
    result = run_backtest(tl, events(("A", 5.5, "failure")), THRESHOLDS, every_h=24, min_lead_h=48)
    assert result.failures["lead_h"].iloc[0] == 36 and result.metrics["recall_lead_48h"] == 0.0
    assert result.metrics["recall_any_lead"] == 1.0


def test_an_alarm_that_clears_before_the_failure_is_false_and_does_not_warn():
    tl = timeline({"A": [0.9, 0.1, 0.1, 0.1]})
    result = run_backtest(tl, events(("A", 2.5, "failure")), THRESHOLDS, every_h=24)
    assert not result.failures["warned"].iloc[0]
    assert result.episodes["outcome"].tolist() == ["false"]


def test_maintenance_inside_an_alarm_is_acted_on_and_an_alarm_open_at_the_end_is_undecided():
    tl = timeline({"A": [0.9, 0.9, 0.1, 0.1], "B": [0.1, 0.1, 0.9, 0.9]})
    result = run_backtest(tl, events(("A", 1.5, "maintenance")), THRESHOLDS, every_h=24)
    assert dict(zip(result.episodes["machine_id"], result.episodes["outcome"], strict=True)) == {
        "A": "maintenance",
        "B": "open",
    }
    assert result.metrics["false_alarms"] == 0


def test_capacity_keeps_lower_ranked_machines_from_opening():
    tl = timeline({"A": [0.9], "B": [0.8], "C": [0.7]})
    risk = capped_risk(tl, alert=0.5, per_day=2)
    assert (risk >= 0.5).sum() == 2 and risk[2] < 0.5
    np.testing.assert_array_equal(capped_risk(tl, 0.5, None), tl["failure_probability"])


def test_unscored_rows_neither_open_nor_close_alarms():
    tl = timeline({"A": [0.9, 0.1, 0.9], "B": [0.1, 0.9, 0.1]})
    tl.loc[[1, 4], "status"] = "no_recent_data"  # A's dip and B's spike were never scored
    result = run_backtest(tl, events(), THRESHOLDS, every_h=24)
    assert result.timeline["alarm"].tolist() == [True, True, True, False, False, False]
    assert len(result.episodes) == 1


def test_replay_status_and_machines_down_after_a_failure():
    rows = pd.DataFrame(
        {
            "machine_id": ["A", "A", "B", "C", "C"],
            "timestamp": [day(1), day(3), day(3), day(1), day(2)],
            "last_reading": [day(1), day(1), day(2.9), day(1), day(2)],
        }
    )
    found = events(("B", 2.95, "failure"), ("A", 0.5, "failure"), ("C", 2, "failure"))
    life = rows[["machine_id", "last_reading"]].rename(columns={"last_reading": "timestamp"})
    down = failed_since_last_reading(rows, found, life)
    # C: its last reading is at its failure (a run-to-failure record ends so): down from then, not before
    np.testing.assert_array_equal(down, [False, False, True, False, True])
    # A's only snapshot (its life's evidence) is before a later failure: down though telemetry came after it
    late = events(("A", 2.0, "failure"))
    np.testing.assert_array_equal(
        failed_since_last_reading(rows.iloc[:2], late, life.iloc[:1]), [False, True]
    )
    status = replay_status(
        rows.assign(failed_since_reading=down), np.array([1.0, 1.0, 0.2, 1.0, 1.0]), 24.0, 0.5
    )
    assert status.tolist() == ["scored", "no_recent_data", "failed", "scored", "failed"]


def test_scoring_times_are_regular_and_inclusive():
    times = scoring_times(day(0), day(2), 12)
    assert len(times) == 5 and times[-1] == day(2)
    # data ending between two steps: its end is the last scoring time (the list a job makes from the last data)
    assert scoring_times(day(0), day(2.9), 24).tolist() == [day(0), day(1), day(2), day(2.9)]
    # a step that does not divide a day exactly: its rounding adds no near-duplicate last time
    sevenths = scoring_times(day(0), day(3), 24 / 7)
    assert len(sevenths) == 22 and sevenths.to_series().diff().min() > pd.Timedelta(hours=3)


def test_an_alarm_open_at_the_end_and_a_failure_exactly_a_step_later_count_together():
    tl = timeline({"A": [0.1, 0.9, 0.9]})  # in alarm at its last scoring time, day 2
    result = run_backtest(tl, events(("A", 3.0, "failure")), THRESHOLDS, every_h=24, min_lead_h=0)
    assert result.episodes["outcome"].tolist() == ["failure"] and bool(result.failures["warned"].iloc[0])
    assert result.metrics["alarm_precision"] == 1.0 and result.metrics["recall_any_lead"] == 1.0


def test_the_warm_up_counts_neither_its_failures_nor_the_alarms_that_ended_in_it():
    tl = timeline({"A": [0.9, 0.1, 0.1, 0.1]})  # an alarm on day 0 only, its failure at day 0.5: the warm-up
    result = run_backtest(
        tl, events(("A", 0.5, "failure")), THRESHOLDS, every_h=24, min_lead_h=0, count_from=day(1)
    )
    assert result.episodes.empty and result.failures.empty and result.metrics["false_alarms"] == 0


def test_the_replay_runs_to_the_latest_reading(tmp_path):
    from conftest import make_tiny

    from features.dataset import load_dataset
    from pipelines.backtest_flow import replay_period

    dataset = load_dataset(make_tiny(tmp_path / "tiny"))
    start, end = replay_period(dataset, None)
    assert end == dataset.latest_reading().max() and start == start.floor("D") and start < end


def test_an_alarm_open_at_the_end_counts_a_failure_only_as_far_as_failures_are_counted():
    tl = timeline({"A": [0.1, 0.9, 0.9], "B": [0.1, 0.9, 0.9]})  # both in alarm at the end (day 2)
    ev = events(("A", 2.5, "failure"), ("B", 4.0, "failure"))  # A within a step of the end, B two steps out
    result = run_backtest(tl, ev, THRESHOLDS, every_h=24, min_lead_h=0)
    outcomes = dict(zip(result.episodes["machine_id"], result.episodes["outcome"], strict=True))
    assert outcomes == {"A": "failure", "B": "open"}
    assert result.failures["machine_id"].tolist() == ["A"] and result.metrics["alarm_precision"] == 1.0


def test_a_warm_up_lets_an_early_failure_count_with_its_full_lead():
    tl = timeline({"A": [0.9, 0.9, 0.9]})  # day 0 is the warm-up, the period starts at day 1
    result = run_backtest(tl, events(("A", 1.5, "failure")), THRESHOLDS, every_h=24, count_from=day(1))
    assert result.failures["lead_h"].tolist() == [36.0] and result.metrics["recall_lead_24h"] == 1.0
    before = run_backtest(tl, events(("A", 0.5, "failure")), THRESHOLDS, every_h=24, count_from=day(1))
    assert before.metrics["failures"] == 0  # failures in the warm-up are not counted


def test_warm_up_adds_whole_steps_before_the_start():
    times = scoring_times(day(2), day(4), 24, warm_up_h=30)
    assert times[0] == day(0) and len(times) == 5


def test_a_replay_without_a_scored_row_still_reports_and_counts_the_failures_it_could_not_replay():
    # machine B lived between two scoring times: its failure (day 1.5) comes before its first scoring time
    tl = timeline({"A": [0.1, 0.1, 0.1]}).assign(status="insufficient_history", failure_probability=np.nan)
    later = timeline({"B": [np.nan, np.nan]}).assign(timestamp=[day(2), day(3)], status="failed")
    tl = pd.concat([tl, later], ignore_index=True)
    result = run_backtest(tl, events(("B", 1.5, "failure")), THRESHOLDS, every_h=24, min_lead_h=0)
    m = result.metrics
    assert m["failures"] == 0 and m["machine_months"] == 0 and np.isnan(m["false_alarms_per_machine_month"])
    assert m["failure_events_in_period"] == 1  # in the replayed period, but not after B's first scoring time


def test_a_failure_when_the_alarm_has_just_cleared_is_its_warning_not_a_false_alarm():
    tl = timeline({"A": [0.1, 0.9, 0.1, 0.1]})  # alarm on day 1, clear on day 2, the failure stamped at day 2
    result = run_backtest(tl, events(("A", 2.0, "failure")), THRESHOLDS, every_h=24, min_lead_h=0)
    assert result.episodes["outcome"].tolist() == ["failure"] and bool(result.failures["warned"].iloc[0])
    assert result.metrics["false_alarms"] == 0 and result.metrics["alarm_precision"] == 1.0


def test_the_backtest_gives_a_brier_score_for_one_class_as_evaluate_does():
    tl = timeline({"A": [0.1, 0.3]}).assign(label=[0.0, 0.0])
    result = run_backtest(tl, events(), THRESHOLDS, every_h=24)
    assert result.metrics["brier"] == pytest.approx((0.01 + 0.09) / 2)
