"""Telemetry features: known answers and as-of correctness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.telemetry import asof_join, hours_since_maintenance, telemetry_feature_rows


def ramp(machine: str = "A", hours: int = 72, slope: float = 0.5) -> pd.DataFrame:
    stamps = pd.date_range("2026-03-01", periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "machine_id": machine,
            "timestamp": stamps,
            "temperature_bearing": 30 + slope * np.arange(hours),
            "temperature_ambient": 20.0,
        }
    )


def features_at(tel: pd.DataFrame, as_of: pd.DataFrame) -> pd.DataFrame:
    return asof_join(as_of, telemetry_feature_rows(tel, (24,)), 24.0)


def test_ramp_known_answers():
    tel = ramp(slope=0.5)
    out = features_at(
        tel, pd.DataFrame({"machine_id": ["A"], "timestamp": [tel["timestamp"].iloc[-1]]})
    ).iloc[0]
    assert out["tel__temperature_bearing__slope__24h"] == pytest.approx(0.5)
    assert out["tel__temperature_bearing__last"] == pytest.approx(30 + 0.5 * 71)
    assert out["tel__temperature_bearing__rise_over_ambient"] == pytest.approx(10 + 0.5 * 71)
    window = 30 + 0.5 * np.arange(71 - 23, 72)  # the 24 hourly readings in (t-24h, t]
    assert out["tel__temperature_bearing__mean__24h"] == pytest.approx(window.mean())
    assert out["tel__temperature_bearing__max__24h"] == pytest.approx(window.max())
    assert out["tel__temperature_bearing__min__24h"] == pytest.approx(window.min())
    assert out["tel__temperature_bearing__std__24h"] == pytest.approx(window.std(ddof=1))
    assert out["tel__temperature_ambient__slope__24h"] == pytest.approx(0.0)


def test_windows_are_in_hours_not_rows():
    tel = ramp(hours=72)
    sparse = tel.iloc[::6]  # one reading every 6 h: a 24 h window holds 4 readings, not 24
    t = sparse["timestamp"].iloc[-1]
    out = features_at(sparse, pd.DataFrame({"machine_id": ["A"], "timestamp": [t]})).iloc[0]
    expected = sparse.loc[sparse["timestamp"] > t - pd.Timedelta(hours=24), "temperature_bearing"].mean()
    assert out["tel__temperature_bearing__mean__24h"] == pytest.approx(expected)


def test_as_of_correct_under_shuffling_and_future_rows():
    tel = pd.concat([ramp("A"), ramp("B", slope=-0.2)], ignore_index=True)
    as_of = pd.DataFrame(
        {"machine_id": ["A", "B", "A"], "timestamp": tel["timestamp"].iloc[[30, 40, 50]].to_numpy()}
    )
    as_of["timestamp"] = as_of["timestamp"] + pd.Timedelta(minutes=20)
    before = features_at(tel, as_of)
    future = ramp("A", hours=300, slope=5.0).iloc[72:]  # readings after every as-of time, wildly different
    shuffled = pd.concat([tel, future]).sample(frac=1.0, random_state=3)
    after = features_at(shuffled, as_of)
    pd.testing.assert_frame_equal(before, after)


def test_stale_telemetry_gives_nan():
    tel = ramp(hours=10)
    late = pd.DataFrame(
        {"machine_id": ["A"], "timestamp": [tel["timestamp"].iloc[-1] + pd.Timedelta(hours=30)]}
    )
    assert np.isnan(features_at(tel, late).iloc[0]["tel__temperature_bearing__last"])


def test_hours_since_maintenance():
    events = pd.DataFrame(
        {
            "machine_id": ["A", "A"],
            "kind": ["maintenance", "failure"],
            "timestamp": pd.to_datetime(["2026-03-01 00:00", "2026-03-03 00:00"], utc=True),
        }
    )
    as_of = pd.DataFrame(
        {
            "machine_id": ["A", "A", "B"],
            "timestamp": pd.to_datetime(
                ["2026-03-02 06:00", "2026-03-04 00:00", "2026-03-04 00:00"], utc=True
            ),
        }
    )
    got = hours_since_maintenance(as_of, events)
    assert got[0] == pytest.approx(30.0) and got[1] == pytest.approx(24.0) and np.isnan(got[2])


def test_an_event_at_the_as_of_time_is_not_yet_known():
    events = pd.DataFrame(
        {
            "machine_id": ["A"],
            "kind": ["failure"],
            "timestamp": pd.to_datetime(["2026-03-02 06:00"], utc=True),
        }
    )
    as_of = pd.DataFrame({"machine_id": ["A"], "timestamp": pd.to_datetime(["2026-03-02 06:00"], utc=True)})
    assert np.isnan(hours_since_maintenance(as_of, events)[0])
