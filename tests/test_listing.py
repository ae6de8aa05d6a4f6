"""From one risk list to the next: hysteresis, days flagged, change, crew cut-off (known answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.listing import carry_over

DAY1, DAY2 = pd.Timestamp("2026-04-01", tz="UTC"), pd.Timestamp("2026-04-03", tz="UTC")


def ranked(
    probabilities: dict[str, float], when: pd.Timestamp, status: dict[str, str] | None = None
) -> pd.DataFrame:
    status = status or {}
    return pd.DataFrame(
        {
            "machine_id": list(probabilities),
            "as_of": when,
            "status": [status.get(m, "scored") for m in probabilities],
            "failure_probability": list(probabilities.values()),
        }
    )


def test_hysteresis_days_flagged_and_changes():
    first = carry_over(ranked({"A": 0.9, "B": 0.6, "C": 0.1, "D": 0.7}, DAY1), None, 0.5, 0.25, None)
    assert first["alarm"].tolist() == [True, True, False, True]
    assert first["change"].tolist() == ["new", "new", "", "new"]
    assert (first.loc[first["alarm"], "days_flagged"] == 0).all()

    second = carry_over(
        ranked({"A": 0.95, "B": 0.3, "C": 0.2, "D": 0.1, "E": 0.8}, DAY2), first, 0.5, 0.25, None
    )
    by = second.set_index("machine_id")
    assert by.loc["B", "alarm"]  # 0.3 is under the alert but above clear: the alarm holds (no flapping)
    assert not by.loc["D", "alarm"] and by.loc["D", "change"] == "cleared"
    assert by.loc["A", "days_flagged"] == 2.0 and by.loc["A", "alarm_since"] == DAY1
    assert (
        by.loc["B", "change"] == "falling"
        and by.loc["C", "change"] == "rising"
        and by.loc["E", "change"] == "new"
    )
    assert by.loc["E", "days_flagged"] == 0 and np.isnan(by.loc["C", "days_flagged"])


def test_an_unscored_machine_keeps_its_alarm():
    first = carry_over(ranked({"A": 0.9}, DAY1), None, 0.5, 0.25, None)
    second = carry_over(ranked({"A": np.nan}, DAY2, {"A": "no_recent_data"}), first, 0.5, 0.25, None)
    assert second["alarm"].tolist() == [True] and second["change"].tolist() == [""]


def test_crew_capacity_flags_only_the_riskiest_in_alarm():
    out = carry_over(ranked({"A": 0.6, "B": 0.9, "C": 0.8, "D": 0.1}, DAY1), None, 0.5, 0.25, 2)
    assert out["alarm"].tolist() == [True, True, True, False]
    assert out["flagged"].tolist() == [False, True, True, False]


def test_a_list_made_again_on_the_same_readings_carries_over_from_the_list_before(tmp_path):
    from pipelines.flows import list_stamp, previous_list

    def written(stamp: str, change: str, folder: Path) -> pd.DataFrame:
        lst = pd.DataFrame(
            {
                "machine_id": ["a", "b"],
                "as_of": pd.to_datetime([stamp, stamp], utc=True),
                "flagged": [True, False],
                "change": [change, ""],
            }
        )
        folder.mkdir(parents=True, exist_ok=True)
        lst.to_parquet(folder / f"risk_list_{list_stamp(lst['as_of'])}.parquet", index=False)
        return lst

    lists = tmp_path / "lists"
    first = written("2026-02-01 10:00", "", lists)
    second = written("2026-02-01 11:00", "new", lists)
    second.to_parquet(tmp_path / "risk_list.parquet", index=False)  # the last run's list

    newer = pd.Series(pd.to_datetime(["2026-02-01 12:00"], utc=True))
    same = pd.Series(pd.to_datetime(["2026-02-01 11:00"], utc=True))
    pd.testing.assert_frame_equal(previous_list(tmp_path, newer), second)  # new readings: the last list
    pd.testing.assert_frame_equal(previous_list(tmp_path, same), first)  # the same: the list before it
    assert previous_list(tmp_path) is not None and previous_list(tmp_path / "none", same) is None
    (lists / "risk_list_20260201T1000.parquet").unlink()
    assert previous_list(tmp_path, same) is None  # nothing earlier: alarms start afresh


def test_a_list_changed_by_a_late_batch_is_a_revision_never_a_rewrite(tmp_path):
    """A late batch of older readings changes the list without a newer reading: the copy the crew received
    stays as it was, the new list is a revision of the same time, and the next list carries over from it."""
    from pipelines.flows import dated_copy, list_stamp, previous_list

    stamp = pd.Timestamp("2026-02-01 10:25", tz="UTC")
    received = pd.DataFrame(
        {"machine_id": ["a", "b"], "as_of": [stamp, stamp], "status": ["scored", "scored"]}
    )
    folder = tmp_path / "lists"
    folder.mkdir()
    first = dated_copy(folder, list_stamp(received["as_of"]), received)
    assert first.name == "risk_list_20260201T1025.parquet"
    received.to_parquet(first, index=False)
    assert dated_copy(folder, "20260201T1025", received.copy()) == first  # the same list again: its own copy
    late = received.assign(status=["scored", "failed"])
    revision = dated_copy(folder, "20260201T1025", late)
    assert revision.name == "risk_list_20260201T1025_r002.parquet"
    late.to_parquet(revision, index=False)
    assert dated_copy(folder, "20260201T1025", late) == revision
    assert dated_copy(folder, "20260201T1025", received).name == "risk_list_20260201T1025_r003.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(first), received)  # what the crew received
    later = received.assign(as_of=stamp + pd.Timedelta(hours=1))  # the next hour's list, then made again
    later.to_parquet(tmp_path / "risk_list.parquet", index=False)
    later.to_parquet(folder / "risk_list_20260201T1125.parquet", index=False)
    again = pd.Series([stamp + pd.Timedelta(hours=1)])
    pd.testing.assert_frame_equal(previous_list(tmp_path, again), late)  # carried over from the revision
