"""The benchmarks' shared loading (``benchmarks/contract.py``): run-to-failure lives read from the events, a
bad folder as one message with exit code 2, the loader's quarantine summarised."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from contract import exit_2_on_input_error, load_or_exit, run_to_failure, until_failure


def rows(machine: str, start: str, hours: int) -> pd.DataFrame:
    times = pd.date_range(start, periods=hours + 1, freq="h", tz="UTC")
    return pd.DataFrame({"machine_id": machine, "timestamp": times})


def event(machine: str, when: str, kind: str = "failure") -> dict:
    return {"machine_id": machine, "timestamp": pd.Timestamp(when, tz="UTC"), "kind": kind}


def test_lives_end_at_the_first_failure_after_the_data_starts():
    frame = pd.concat(
        [
            rows("ran", "2024-01-01", 10),
            rows("early", "2024-01-01", 10),
            rows("never", "2024-01-01", 10),
            rows("cut", "2024-01-01", 10),
            rows("twice", "2024-01-01", 10),
        ]
    )
    events = pd.DataFrame(
        [
            event("ran", "2024-01-01 10:00"),
            event("early", "2023-12-31"),  # before its data: not its end of life
            event("never", "2024-01-01 05:00", "maintenance"),
            event("cut", "2024-01-02 06:00"),  # 20 h after its last reading, 30 h into its life
            event("twice", "2024-01-01 10:30"),
            event("twice", "2024-01-03"),
        ]
    )
    failures, notes = run_to_failure(frame, events)
    assert failures.to_dict() == {
        "cut": pd.Timestamp("2024-01-02 06:00", tz="UTC"),
        "ran": pd.Timestamp("2024-01-01 10:00", tz="UTC"),
        "twice": pd.Timestamp("2024-01-01 10:30", tz="UTC"),
    }
    said = dict(note.split(maxsplit=1) for note in notes)
    assert said["early"].startswith(
        "left out: its failure event (2023-12-31 00:00) is before its first snapshot"
    )
    assert said["never"] == "left out: it has no failure event"
    assert said["cut:"].startswith("its data ends 20.00 h (67% of its life) before its failure event")
    assert set(said) == {"early", "never", "cut:"}  # 'twice' ends 0.5 h after its data: under 5 % of life


def test_no_kind_column_means_no_failure():
    failures, notes = run_to_failure(
        rows("m", "2024-01-01", 2), pd.DataFrame(columns=["machine_id", "timestamp"])
    )
    assert failures.empty and notes == ["m left out: it has no failure event"]


def test_a_folder_that_is_not_a_dataset_exits_2_with_the_loader_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        load_or_exit(tmp_path)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(tmp_path) in error and "fix:" in error


def test_a_life_ends_at_its_failure_even_when_the_data_goes_on():
    frame = rows("on", "2024-01-01", 20)
    failures, notes = run_to_failure(
        frame, pd.DataFrame([event("on", "2024-01-01 10:00"), event("on", "2024-01-01 20:00")])
    )
    assert failures["on"] == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert notes == [
        "on: its data goes on 10.00 h after its failure event (2024-01-01 10:00); the rows after it are left out"
    ]
    kept = until_failure(frame, failures)
    assert len(kept) == 11 and kept["timestamp"].max() == failures["on"]
    assert until_failure(frame, failures.iloc[:0]).empty  # a machine without a failure keeps no rows


def test_a_benchmark_stopped_by_bad_input_exits_2_with_its_message(capsys):
    def bad_input() -> None:
        raise SystemExit("labels.parquet: not found; give one row per recording")

    with pytest.raises(SystemExit) as stopped:
        exit_2_on_input_error(bad_input)
    assert stopped.value.code == 2 and "error: labels.parquet: not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        exit_2_on_input_error(lambda: sys.exit(0))
    assert done.value.code == 0
