"""Crew findings: reading them, the events they imply, recording them once, and the list's real precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from models.labels import failure_within
from pipelines.feedback import (
    feedback_events,
    findings_to_events,
    list_precision,
    load_findings,
    merge_events,
    read_findings,
    read_lists,
    record_findings,
)

NOW = pd.Timestamp("2024-04-01", tz="UTC")
HEADER = "machine_id,timestamp,finding,component,note,by\n"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def write(path, body: str):
    path.write_text(body)
    return path


def findings(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["machine_id", "timestamp", "finding", "component"])
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True), note="", by="")


def test_reads_good_rows_normalised_to_utc(tmp_path):
    path = write(
        tmp_path / "crew.csv",
        HEADER
        + "P-7,2024-03-05T12:00:00+02:00,Confirmed fault,outer race,spalling on the race,ana\n"
        + "P-2,2024-03-05 11:00,nothing-found,,,bo\n"
        + "17,2024-03-06T08:00:00Z,REPAIRED,bearing,,bo\n",
    )
    read = read_findings(path, now=NOW)
    assert read.rejected == []
    got = read.findings
    assert list(got.columns) == ["machine_id", "timestamp", "finding", "component", "note", "by"]
    assert list(got["machine_id"]) == ["P-7", "P-2", "17"]
    assert list(got["timestamp"]) == [
        utc("2024-03-05 10:00"),
        utc("2024-03-05 11:00"),
        utc("2024-03-06 08:00"),
    ]
    assert list(got["finding"]) == ["confirmed_fault", "nothing_found", "repaired"]
    assert list(got["component"]) == ["outer race", "", "bearing"]


def test_parquet_findings_without_optional_columns(tmp_path):
    path = tmp_path / "crew.parquet"
    pd.DataFrame(
        {"machine_id": ["A"], "timestamp": [pd.Timestamp("2024-03-05 10:00")], "finding": ["repaired"]}
    ).to_parquet(path)
    got = read_findings(path, now=NOW).findings
    assert got.loc[0, "timestamp"] == utc("2024-03-05 10:00")  # naive is UTC
    assert (got.loc[0, "component"], got.loc[0, "note"], got.loc[0, "by"]) == ("", "", "")


def test_bad_rows_are_rejected_with_file_row_column_and_fix(tmp_path):
    path = write(
        tmp_path / "crew.csv",
        HEADER
        + "A,2024-03-05T10:00:00Z,repaired,,,ana\n"  # row 0: good
        + "B,2024-03-05T10:00:00Z,fixed it,,,ana\n"  # row 1: unknown finding
        + "C,last tuesday,repaired,,,ana\n"  # row 2: not a timestamp
        + "D,,nothing_found,,,ana\n"  # row 3: no timestamp
        + "E,1709632800,repaired,,,ana\n"  # row 4: epoch number
        + "F,2030-01-01T00:00:00Z,repaired,,,ana\n"  # row 5: future
        + ",2024-03-05T10:00:00Z,repaired,,,ana\n"  # row 6: no machine
        + "G/../x,2024-03-05T10:00:00Z,repaired,,,ana\n"  # row 7: path separator
        + "H,2024-03-05T10:00:00Z,,,,ana\n",  # row 8: no finding
    )
    read = read_findings(path, now=NOW)
    assert list(read.findings["machine_id"]) == ["A"]
    got = [(r.row, r.column, r.code) for r in read.rejected]
    assert got == [
        (1, "finding", "unknown_finding"),
        (2, "timestamp", "bad_timestamp"),
        (3, "timestamp", "bad_timestamp"),
        (4, "timestamp", "wrong_type"),
        (5, "timestamp", "future_timestamp"),
        (6, "machine_id", "empty_machine_id"),
        (7, "machine_id", "bad_machine_id"),
        (8, "finding", "missing_finding"),
    ]
    by_row = {r.row: str(r) for r in read.rejected}
    assert by_row[1] == (
        f"{path} row 1 (line 3), column 'finding': finding is not one of confirmed_fault, nothing_found, "
        "repaired (got 'fixed it'); fix: write one of confirmed_fault, nothing_found, repaired"
    )
    assert by_row[2] == (
        f"{path} row 2 (line 4), column 'timestamp': timestamp is not a date and time (got 'last tuesday'); "
        "fix: write ISO 8601 text in UTC, e.g. 2024-03-05T14:30:00Z"
    )
    assert "timestamp is missing; fix:" in by_row[3]
    assert "epoch numbers are ambiguous" in by_row[4] and "(got '1709632800')" in by_row[4]
    assert "in the future (after 2024-04-01 00:00 UTC + 24 h)" in by_row[5]


def test_a_missing_column_or_nothing_usable_is_an_input_error(tmp_path):
    path = write(tmp_path / "crew.csv", "machine_id,when,finding\nA,2024-03-05,repaired\n")
    with pytest.raises(InputError) as error:
        read_findings(path, now=NOW)
    assert str(error.value) == (
        f"{path}: required column 'timestamp' is missing (columns present: machine_id, when, finding); "
        "fix: the findings need columns machine_id, timestamp, finding and optionally component, note, by"
    )
    semicolons = write(tmp_path / "semi.csv", "machine_id;timestamp;finding\nA;2024-03-05;repaired\n")
    with pytest.raises(InputError, match="not comma-separated"):
        read_findings(semicolons, now=NOW)
    useless = write(tmp_path / "bad.csv", HEADER + "A,2024-03-05,fixed,,,\nB,soon,repaired,,,\n")
    with pytest.raises(InputError, match=r"no usable finding; first problem: .*row 0 .*'fixed'.*1 more"):
        read_findings(useless, now=NOW)
    with pytest.raises(InputError, match="no findings"):
        read_findings(write(tmp_path / "empty.csv", HEADER), now=NOW)
    with pytest.raises(InputError, match="cannot be read as parquet"):
        read_findings(write(tmp_path / "junk.parquet", "not parquet"), now=NOW)
    with pytest.raises(InputError, match="no such findings file"):
        read_findings(tmp_path / "absent.csv")


def test_mapping_to_events_known_answers():
    found = findings(
        [
            ("A", "2024-03-05 10:00", "confirmed_fault", "outer race"),
            ("A", "2024-03-05 10:00", "repaired", ""),  # same visit: one event
            ("B", "2024-03-06 09:00", "repaired", "seal"),
            ("C", "2024-03-06 09:00", "nothing_found", ""),  # no event
        ]
    )
    events = findings_to_events(found)
    expected = pd.DataFrame(
        {
            "machine_id": ["A", "B"],
            "timestamp": pd.to_datetime(["2024-03-05 10:00", "2024-03-06 09:00"], utc=True).as_unit("us"),
            "kind": ["maintenance", "maintenance"],
            "component": ["outer race", "seal"],
        }
    )
    pd.testing.assert_frame_equal(events, expected)
    assert findings_to_events(found[found["finding"] == "nothing_found"]).empty


def test_a_caught_fault_censors_the_labels_a_nothing_found_does_not():
    """An alarm at t0 with no failure afterwards counts as a false alarm (label 0); once the crew confirms
    and repairs a fault 10 h later the row is censored (NaN), not a false alarm."""
    t0 = utc("2024-03-05 00:00")
    rows = pd.DataFrame({"machine_id": ["A"], "timestamp": pd.Series([t0]).dt.as_unit("us")})  # as loaded
    end = pd.Series({"A": t0 + pd.Timedelta(hours=200)})
    nothing = findings_to_events(findings([("A", "2024-03-05 10:00", "nothing_found", "")]))
    caught = findings_to_events(findings([("A", "2024-03-05 10:00", "confirmed_fault", "")]))
    assert failure_within(rows, nothing, end, horizon_h=48).iloc[0] == 0.0
    assert np.isnan(failure_within(rows, caught, end, horizon_h=48).iloc[0])


def test_record_appends_dedupes_and_writes_events(tmp_path):
    feedback = tmp_path / "feedback"
    first = write(
        tmp_path / "monday.csv",
        HEADER + "A,2024-03-05T10:00:00Z,confirmed_fault,outer race,,ana\n"
        "A,2024-03-05T10:00:00Z,confirmed_fault,outer race,typed twice,ana\n"
        "B,2024-03-05T11:00:00Z,nothing_found,,,bo\n"
        "C,someday,repaired,,,bo\n",
    )
    counts = record_findings(first, feedback, now=NOW)
    assert {k: counts[k] for k in ("rows_in", "recorded", "duplicates", "rejected")} == {
        "rows_in": 4,
        "recorded": 2,
        "duplicates": 1,
        "rejected": 1,
    }
    assert (counts["findings_total"], counts["events_total"]) == (2, 1)
    assert counts["problems"] == [
        f"{first} row 3 (line 5), column 'timestamp': timestamp is not a date and time (got 'someday'); "
        "fix: write ISO 8601 text in UTC, e.g. 2024-03-05T14:30:00Z"
    ]
    second = write(
        tmp_path / "tuesday.csv",
        HEADER + "A,2024-03-05T10:00:00Z,confirmed_fault,,,ana\n"  # already recorded
        "A,2024-03-05T10:00:00Z,repaired,outer race,,ana\n"  # same visit, other finding: kept, same event
        "B,2024-03-06T09:00:00Z,repaired,seal,,bo\n",
    )
    counts = record_findings(second, feedback, now=NOW)
    assert (counts["recorded"], counts["duplicates"], counts["findings_total"], counts["events_total"]) == (
        2,
        1,
        4,
        2,
    )
    assert record_findings(second, feedback, now=NOW)["recorded"] == 0  # the same file again changes nothing

    stored = load_findings(feedback)
    assert list(zip(stored["machine_id"], stored["finding"], stored["source"], strict=True)) == [
        ("A", "confirmed_fault", "monday.csv"),
        ("A", "repaired", "tuesday.csv"),
        ("B", "nothing_found", "monday.csv"),
        ("B", "repaired", "tuesday.csv"),
    ]
    events = feedback_events(feedback)
    assert list(zip(events["machine_id"], events["kind"], events["component"], strict=True)) == [
        ("A", "maintenance", "outer race"),
        ("B", "maintenance", "seal"),
    ]
    assert sorted(p.name for p in feedback.iterdir()) == [".lock", "events.parquet", "findings.parquet"]


def test_feedback_events_merge_into_a_datasets_events(tmp_path):
    assert feedback_events(tmp_path / "none").empty and feedback_events(None).empty
    dataset_events = pd.DataFrame(
        {
            "machine_id": ["A", "B"],
            "timestamp": pd.to_datetime(["2024-03-05 10:00", "2024-03-01 00:00"], utc=True).as_unit("us"),
            "kind": ["maintenance", "failure"],
            "component": ["from the CMMS", None],
        }
    )
    extra = findings_to_events(
        findings([("A", "2024-03-05 10:00", "repaired", "crew"), ("C", "2024-03-07 00:00", "repaired", "")])
    )
    merged = merge_events(dataset_events, extra)
    assert list(zip(merged["machine_id"], merged["kind"], merged["component"], strict=True)) == [
        ("A", "maintenance", "from the CMMS"),
        ("B", "failure", None),
        ("C", "maintenance", None),
    ]
    assert merge_events(dataset_events, extra.iloc[:0]) is dataset_events


def lists_by_hand() -> pd.DataFrame:
    def listed(when: str, flagged: list[str], not_flagged: tuple[str, ...] = ("G",)) -> pd.DataFrame:
        ids = [*flagged, *not_flagged]
        return pd.DataFrame(
            {
                "machine_id": ids,
                "as_of": utc(when),
                "flagged": [True] * len(flagged) + [False] * len(not_flagged),
            }
        )

    return pd.concat(
        [
            listed("2024-03-04 06:00", ["A", "B", "C"]),  # week of Monday 4 March
            listed("2024-03-06 06:00", ["A", "B", "D"]),
            listed("2024-03-11 06:00", ["A", "E"]),  # week of 11 March
            listed("2024-03-18 06:00", ["F"]),  # week of 18 March: nobody inspected
        ],
        ignore_index=True,
    )


def findings_by_hand() -> pd.DataFrame:
    return findings(
        [
            ("A", "2024-03-05 09:00", "nothing_found", ""),  # answers the 4 March list
            ("A", "2024-03-07 09:00", "confirmed_fault", ""),  # answers 6 March: A in week 1 is confirmed
            ("B", "2024-03-06 05:00", "repaired", ""),  # before the 6 March list: answers 4 March
            ("C", "2024-03-08 09:00", "nothing_found", ""),  # C was flagged on 4 March
            ("E", "2024-03-12 09:00", "nothing_found", ""),
            ("A", "2024-03-12 09:00", "nothing_found", ""),  # answers the 11 March list
            ("G", "2024-03-12 09:00", "confirmed_fault", ""),  # never flagged: not the list's precision
            ("A", "2024-03-30 09:00", "repaired", ""),  # 19 days after A's last flag: too late to count
        ]
    )


def test_precision_per_week_by_hand():
    got = list_precision(findings_by_hand(), lists_by_hand())
    expected = pd.DataFrame(
        {
            "week": pd.to_datetime(["2024-03-04", "2024-03-11", "2024-03-18"], utc=True),
            "flagged": [4, 2, 1],
            "inspected": [3, 2, 0],
            "confirmed": [2, 0, 0],
            "nothing_found": [1, 2, 0],
            "precision": [2 / 3, 0.0, np.nan],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["week"].dt.weekday.eq(0).all()


def test_precision_reads_the_dated_lists_and_handles_no_findings(tmp_path):
    lists = lists_by_hand()
    for when, day in lists.groupby("as_of"):
        day.to_parquet(tmp_path / f"risk_list_{when:%Y%m%dT%H%M}.parquet", index=False)
    (tmp_path / "risk_list_broken.parquet").write_text("truncated")
    history = read_lists(tmp_path)
    assert len(history) == len(lists)
    assert list_precision(findings_by_hand(), history)["inspected"].tolist() == [3, 2, 0]
    none = list_precision(findings_by_hand().iloc[:0], history)
    assert none["inspected"].tolist() == [0, 0, 0] and none["precision"].isna().all()
    assert list_precision(findings_by_hand(), read_lists(tmp_path / "nothing")).empty


def test_the_report_shows_how_right_the_lists_were_only_once_a_finding_is_recorded():
    from pipelines.report import precision_section

    week = pd.Timestamp("2026-01-26", tz="UTC")
    none_yet = pd.DataFrame(
        {
            "week": [week],
            "flagged": [1],
            "inspected": [0],
            "confirmed": [0],
            "nothing_found": [0],
            "precision": [np.nan],
        }
    )
    assert precision_section(none_yet) == ""
    one = none_yet.assign(inspected=[1], confirmed=[1], precision=[1.0])
    assert "How right were the lists?" in precision_section(one)
