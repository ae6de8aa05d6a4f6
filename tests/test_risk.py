"""The risk list: statuses, ranking and known machines without data."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from models.risk import RISK_LIST_COLUMNS, build_risk_list


class FakeModel:
    """A stand-in with the RiskModel interface: probability = the feature value."""

    class spec:
        columns = ("f1", "f2")

        @staticmethod
        def matrix(frame):
            return frame.reindex(columns=["f1", "f2"]).astype(np.float32)

    thresholds: ClassVar[dict] = {"high": 0.5, "medium": 0.2}

    def predict_proba(self, frame):
        return frame["f1"].to_numpy(dtype=float)

    def risk_band(self, p):
        return np.where(p >= 0.5, "high", np.where(p >= 0.2, "medium", "low"))

    def remaining_life_h(self, frame):
        return 100.0 * (1.0 - frame["f1"].to_numpy(dtype=float))  # riskier, sooner

    def contributions(self, frame):
        return pd.DataFrame({"f1": frame["f1"], "f2": 0.0}, index=frame.index)


@pytest.fixture
def frame():
    t = pd.Timestamp("2026-05-01", tz="UTC")
    return pd.DataFrame(
        {
            "machine_id": ["a", "b", "c", "d"],
            "timestamp": [t, t, t - pd.Timedelta(hours=100), t],
            "f1": [0.1, 0.9, 0.8, np.nan],
            "f2": [1.0, 1.0, 1.0, np.nan],
        }
    )


def test_statuses_ranking_and_silent_machines(frame, monkeypatch):
    import models.risk as risk

    monkeypatch.setattr(risk, "driver_phrase", lambda name, value: f"{name}={value:.1f}")
    machines = pd.DataFrame({"machine_id": ["a", "b", "c", "d", "e"], "site": "S", "machine_type": "pump"})
    out = build_risk_list(FakeModel(), frame, machines, "m", "3", stale_after_h=48)
    assert list(out.columns) == RISK_LIST_COLUMNS
    assert list(out["machine_id"]) == ["b", "a", "d", "c", "e"]
    assert list(out["status"]) == [
        "scored",
        "scored",
        "insufficient_history",
        "no_recent_data",
        "no_recent_data",
    ]
    assert list(out["rank"]) == [1, 2, 3, 4, 5]
    assert list(out["risk_band"][:2]) == ["high", "low"]
    assert out["failure_probability"][2:].isna().all() and out["remaining_life_hours"][2:].isna().all()
    np.testing.assert_allclose(
        out["remaining_life_hours"][:2], [10.0, 90.0]
    )  # only scored machines get a life
    assert out.loc[0, "drivers"] == "f1=0.9" and out.loc[1, "drivers"] == ""
    assert "100 h" in out.loc[3, "drivers"] and out.loc[4, "drivers"] == "no reading at all"
    assert pd.isna(out.loc[4, "as_of"]) and (out["model_version"] == "3").all()
    # a machine with no reading keeps the column a timestamp: the latest as_of and the dated list name work
    assert (
        isinstance(out["as_of"].dtype, pd.DatetimeTZDtype) and out["as_of"].max() == frame["timestamp"].max()
    )


MACHINES = pd.DataFrame({"machine_id": ["a", "b", "c", "d"], "site": "S", "machine_type": "pump"})
FLAG_TIME = pd.Timestamp("2026-05-01", tz="UTC")


def one_flag(machine: str, flag: str, **extra: str) -> pd.DataFrame:
    """An active sensor flag of temperature_bearing on ``machine`` since FLAG_TIME."""
    row = {"machine_id": machine, "column": "temperature_bearing", "flag": flag, "since": FLAG_TIME}
    return pd.DataFrame([{**row, "active": True, **extra}])


def test_sensor_flags_failures_and_the_previous_list(frame, monkeypatch):
    import models.risk as risk

    monkeypatch.setattr(risk, "driver_phrase", lambda name, value: f"{name}={value:.1f}")
    machines, t = MACHINES, FLAG_TIME
    flags = one_flag("a", "stuck")
    failed = pd.Series({"d": t - pd.Timedelta(hours=2)})
    out = build_risk_list(FakeModel(), frame, machines, "m", "3", sensor_flags=flags, failed=failed)
    by = out.set_index("machine_id")
    assert by.loc["a", "status"] == "check_sensor" and "stuck temperature_bearing" in by.loc["a", "drivers"]
    assert by.loc["d", "status"] == "failed" and "awaiting restart" in by.loc["d", "drivers"]
    assert np.isnan(by.loc["a", "failure_probability"]) and by.loc["b", "status"] == "scored"
    assert by.loc["b", "alarm"] and by.loc["b", "flagged"] and by.loc["b", "change"] == "new"
    assert by.loc["b", "likely_fault"] == "unknown"  # f1/f2 belong to no fault family

    later = frame.assign(timestamp=frame["timestamp"] + pd.Timedelta(days=1), f1=[0.1, 0.3, 0.8, np.nan])
    again = build_risk_list(FakeModel(), later, machines, "m", "4", previous=out).set_index("machine_id")
    assert again.loc["b", "alarm"] and again.loc["b", "change"] == "falling"  # 0.3 >= clear 0.2: still on
    assert again.loc["b", "days_flagged"] == 1.0


def test_an_unconfirmed_spike_keeps_the_machine_scored_and_says_so_in_its_drivers(frame, monkeypatch):
    """A far reading in a machine's latest readings may be a glitch or a real jump: the machine keeps its
    score and rank (a real jump must not drop out of the list), and its drivers carry the flag's detail."""
    import models.risk as risk

    monkeypatch.setattr(risk, "driver_phrase", lambda name, value: f"{name}={value:.1f}")
    machines = MACHINES
    flags = one_flag("b", "spike", detail="temperature_bearing read 900 at 2026-05-01 00:00 UTC, unconfirmed")
    plain = build_risk_list(FakeModel(), frame, machines, "m", "3").set_index("machine_id")
    out = build_risk_list(FakeModel(), frame, machines, "m", "3", sensor_flags=flags).set_index("machine_id")
    assert out.loc["b", "status"] == "scored" == plain.loc["b", "status"]
    assert out.loc["b", "failure_probability"] == plain.loc["b", "failure_probability"]
    assert out.loc["b", "drivers"] == plain.loc["b", "drivers"] + "; " + flags.loc[0, "detail"]
    assert (out.drop(index="b")["drivers"] == plain.drop(index="b")["drivers"]).all()


def test_a_machine_is_down_when_its_failure_is_at_or_after_its_latest_reading():
    from models.risk import failed_since_last_reading

    t = pd.Timestamp("2026-05-01", tz="UTC")
    events = pd.DataFrame(
        {
            "machine_id": ["a", "b", "b", "c"],
            "timestamp": [t + pd.Timedelta(hours=1), t - pd.Timedelta(days=3), t - pd.Timedelta(days=1), t],
            "kind": ["failure", "failure", "maintenance", "failure"],
        }
    )
    latest = pd.Series({"a": t, "b": t, "c": t})
    down = failed_since_last_reading(events, latest)
    # b restarted since; c's latest reading is at its failure (a run-to-failure record ends so): down too
    assert down.to_dict() == {"a": t + pd.Timedelta(hours=1), "c": t}


def test_a_reading_just_after_a_failure_does_not_bring_the_machine_back_without_a_snapshot(tmp_path):
    """PRONOSTIA Bearing3_3 has one temperature reading 0.8 s after its failure: with the last snapshot before the
    failure, a score would be that of the life that ended. A machine with vibration is back with a snapshot; a
    machine without it, with any reading."""
    from conftest import make_tiny

    from features.dataset import load_dataset
    from models.risk import failed_since_last_reading, latest_life_reading

    root = make_tiny(tmp_path / "d")  # M00 fails 5 h after the last hourly reading
    events = pd.read_parquet(root / "events.parquet")
    failed_at = events["timestamp"].iloc[0]
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet")
    after = tel[tel["machine_id"].isin(["M00", "M01"])].groupby("machine_id").tail(1)
    after = after.assign(timestamp=failed_at + pd.Timedelta(seconds=1))
    pd.concat([tel, after]).to_parquet(root / "telemetry" / "part-0.parquet")
    events = pd.concat([events, events.assign(machine_id="M01")])  # M01 fails too, M02 not
    events.to_parquet(root / "events.parquet")
    dataset = load_dataset(root, now=failed_at + pd.Timedelta(days=1))
    assert dataset.latest_reading()["M00"] > failed_at  # the reading after the failure is kept
    down = failed_since_last_reading(dataset.events, latest_life_reading(dataset))
    assert sorted(down.index) == ["M00", "M01"]
    no_vibration = replace(
        dataset, waveforms=replace(dataset.waveforms, meta=dataset.waveforms.meta.iloc[:0])
    )
    assert failed_since_last_reading(no_vibration.events, latest_life_reading(no_vibration)).empty


def test_an_insufficient_history_names_the_signals_the_machine_sends_nothing_of():
    from models.risk import unscored_reasons

    t = pd.Timestamp("2026-05-01", tz="UTC")
    frame = pd.DataFrame({"machine_id": ["a", "b"], "timestamp": [t, t]})
    names = ["vib__acc_h__rms", "vib__acc_h__kurtosis", "vib__acc_v__rms", "tel__temp__level"]
    names += ["tel__maintenance__hours_since", "age"]  # no signals: from the events; not a signal's name
    matrix = pd.DataFrame(
        [[1.0, np.nan, np.nan, 3.0, np.nan, np.nan], [np.nan, np.nan, 2.0, np.nan, np.nan, np.nan]],
        columns=names,
    )
    status = np.array(["insufficient_history", "insufficient_history"], dtype=object)
    reasons = unscored_reasons(frame, status, matrix.notna().mean(axis=1).to_numpy(), matrix)
    # a: a channel it never sends (more history never brings it); b: nothing of two signals
    assert reasons[0].startswith(
        "only 33% of the model's features could be computed: no feature of vib__acc_v,"
    )
    assert "fix: send that channel or sensor" in reasons[0]
    assert "no feature of tel__temp, vib__acc_h, which the model uses" in reasons[1]
    partial = matrix.assign(**{"vib__acc_v__rms": 2.0})  # every signal has a value: only history is short
    assert unscored_reasons(frame, status, np.array([0.4, 0.4]), partial)[0].endswith("needs more history")


def test_a_machine_that_failed_while_in_alarm_is_not_flagged_for_inspection():
    from models.listing import carry_over

    t = pd.Timestamp("2026-05-02", tz="UTC")
    previous = pd.DataFrame(
        {
            "machine_id": ["a", "b"],
            "alarm": [True, True],
            "alarm_since": [t - pd.Timedelta(days=1)] * 2,
            "failure_probability": [0.9, 0.9],
        }
    )
    now = pd.DataFrame(
        {
            "machine_id": ["a", "b"],
            "as_of": [t, t],
            "status": ["failed", "no_recent_data"],
            "failure_probability": [np.nan, np.nan],
        }
    )
    out = carry_over(now, previous, alert=0.5, clear=0.2, capacity=10).set_index("machine_id")
    assert not out.loc["a", "alarm"] and not out.loc["a", "flagged"] and out.loc["a", "change"] == ""
    assert out.loc["b", "alarm"] and out.loc["b", "flagged"]  # silent, not failed: its alarm stands
