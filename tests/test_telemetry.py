"""Telemetry features: known answers, as-of correctness, and the fast as-of path against the pandas path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import telemetry
from features.telemetry import (
    asof_join,
    hours_since_maintenance,
    telemetry_feature_names,
    telemetry_feature_rows,
    telemetry_features_asof,
)

START = pd.Timestamp("2026-03-01", tz="UTC")


def ramp(machine: str = "A", hours: int = 72, slope: float = 0.5) -> pd.DataFrame:
    stamps = pd.date_range(START, periods=hours, freq="h")
    return pd.DataFrame(
        {
            "machine_id": machine,
            "timestamp": stamps,
            "temperature_bearing": 30 + slope * np.arange(hours),
            "temperature_ambient": 20.0,
        }
    )


def pandas_path(tel: pd.DataFrame, as_of: pd.DataFrame, windows=(24,), max_age=24.0) -> pd.DataFrame:
    return asof_join(as_of, telemetry_feature_rows(tel, windows), max_age).drop(
        columns=["machine_id", "timestamp"]
    )


def asof_path(tel: pd.DataFrame, as_of: pd.DataFrame, windows=(24,), max_age=24.0) -> pd.DataFrame:
    return telemetry_features_asof(tel, as_of, windows, max_age)


@pytest.fixture(params=[pandas_path, asof_path], ids=["pandas", "asof"])
def features_at(request):
    return request.param


def at(machine: str, *stamps) -> pd.DataFrame:
    return pd.DataFrame({"machine_id": machine, "timestamp": pd.to_datetime(list(stamps), utc=True)})


# --- known answers, on both paths ------------------------------------------------------------------


def test_ramp_known_answers(features_at):
    tel = ramp(slope=0.5)
    out = features_at(tel, at("A", tel["timestamp"].iloc[-1])).iloc[0]
    assert out["tel__temperature_bearing__slope__24h"] == pytest.approx(0.5)
    assert out["tel__temperature_bearing__last"] == pytest.approx(30 + 0.5 * 71)
    assert out["tel__temperature_bearing__rise_over_ambient"] == pytest.approx(10 + 0.5 * 71)
    window = 30 + 0.5 * np.arange(71 - 23, 72)  # the 24 hourly readings in (t-24h, t]
    assert out["tel__temperature_bearing__mean__24h"] == pytest.approx(window.mean())
    assert out["tel__temperature_bearing__max__24h"] == pytest.approx(window.max())
    assert out["tel__temperature_bearing__min__24h"] == pytest.approx(window.min())
    assert out["tel__temperature_bearing__std__24h"] == pytest.approx(window.std(ddof=1))
    assert out["tel__temperature_ambient__slope__24h"] == pytest.approx(0.0)


def test_windows_are_in_hours_not_rows(features_at):
    tel = ramp(hours=72)
    sparse = tel.iloc[::6]  # one reading every 6 h: a 24 h window holds 4 readings, not 24
    t = sparse["timestamp"].iloc[-1]
    out = features_at(sparse, at("A", t)).iloc[0]
    expected = sparse.loc[sparse["timestamp"] > t - pd.Timedelta(hours=24), "temperature_bearing"].mean()
    assert out["tel__temperature_bearing__mean__24h"] == pytest.approx(expected)


def test_as_of_correct_under_shuffling_and_future_rows(features_at):
    tel = pd.concat([ramp("A"), ramp("B", slope=-0.2)], ignore_index=True)
    as_of = pd.DataFrame(
        {"machine_id": ["A", "B", "A"], "timestamp": tel["timestamp"].iloc[[30, 40, 50]].to_numpy()}
    )
    as_of["timestamp"] = as_of["timestamp"] + pd.Timedelta(minutes=20)
    before = features_at(tel, as_of)
    future = ramp("A", hours=300, slope=5.0).iloc[72:]  # readings after every as-of time, wildly different
    shuffled = pd.concat([tel, future]).sample(frac=1.0, random_state=3)
    after = features_at(shuffled, as_of)
    pd.testing.assert_frame_equal(before, after, rtol=1e-12)


def test_stale_telemetry_gives_nan(features_at):
    tel = ramp(hours=10)
    late = at("A", tel["timestamp"].iloc[-1] + pd.Timedelta(hours=30))
    assert np.isnan(features_at(tel, late).iloc[0]["tel__temperature_bearing__last"])


def test_slope_needs_three_readings_and_std_two(features_at):
    tel = ramp(hours=30).iloc[::12]  # readings at 0, 12, 24 h: the 24 h window at 24 h holds 2
    out = features_at(tel, at("A", tel["timestamp"].iloc[-1])).iloc[0]
    assert np.isnan(out["tel__temperature_bearing__slope__24h"])
    assert out["tel__temperature_bearing__std__24h"] == pytest.approx(np.std([36.0, 42.0], ddof=1))


# --- rules of the as-of path ------------------------------------------------------------------------


def test_level_is_bounded_by_the_longest_window():
    """The pandas path forward-fills a sensor without limit; the as-of path only looks back one longest window."""
    tel = ramp(hours=72)
    tel.loc[tel.index >= 20, "temperature_bearing"] = np.nan  # bearing sensor silent after hour 19
    as_of = at(
        "A", tel["timestamp"].iloc[40], tel["timestamp"].iloc[50]
    )  # 21 h and 31 h after its last value
    out = asof_path(tel, as_of)
    assert out["tel__temperature_bearing__last"].iloc[0] == pytest.approx(30 + 0.5 * 19)
    assert np.isnan(out["tel__temperature_bearing__last"].iloc[1])
    assert np.isnan(out["tel__temperature_bearing__rise_over_ambient"].iloc[1])
    assert pandas_path(tel, as_of)["tel__temperature_bearing__last"].iloc[1] == pytest.approx(30 + 0.5 * 19)


def test_flat_windows_have_exactly_zero_spread_and_trend():
    tel = ramp(hours=48)
    tel["temperature_bearing"] = 61.37  # a stuck sensor
    out = asof_path(tel, at("A", tel["timestamp"].iloc[-1])).iloc[0]
    assert out["tel__temperature_bearing__std__24h"] == 0.0
    assert out["tel__temperature_bearing__slope__24h"] == 0.0
    assert out["tel__temperature_bearing__mean__24h"] == 61.37


def test_unknown_machines_and_missing_times_give_nan_rows_in_order():
    tel = ramp(hours=48)
    as_of = pd.DataFrame(
        {
            "machine_id": ["A", "nobody", "A", "A"],
            "timestamp": [
                tel["timestamp"].iloc[30],
                tel["timestamp"].iloc[30],
                pd.NaT,
                START - pd.Timedelta("1h"),
            ],
        },
        index=[7, 3, 5, 1],
    )
    out = asof_path(tel, as_of)
    assert list(out.index) == [7, 3, 5, 1]
    assert out.loc[7, "tel__temperature_bearing__last"] == pytest.approx(45.0)
    assert out.loc[[3, 5, 1]].isna().all().all()
    assert list(out.columns) == telemetry_feature_names(["temperature_bearing", "temperature_ambient"], (24,))


def test_no_telemetry_rows_gives_nan_features():
    empty = ramp().iloc[:0]
    out = asof_path(empty, at("A", START))
    assert out.shape == (
        1,
        len(telemetry_feature_names(["temperature_bearing", "temperature_ambient"], (24,))),
    )
    assert out.isna().all().all()


# --- the rise over the fleet, when there is no ambient temperature ----------------------------------


def fleet(values: dict[str, float], hours: int = 6) -> pd.DataFrame:
    """Hourly bearing temperatures on the hour, constant per machine, no ambient column."""
    stamps = pd.date_range(START, periods=hours, freq="h")
    frames = [
        pd.DataFrame({"machine_id": m, "timestamp": stamps, "temperature_bearing": v})
        for m, v in values.items()
    ]
    return pd.concat(frames, ignore_index=True)


MACHINES = pd.DataFrame(
    {"machine_id": ["P1", "P2", "P3", "P4", "F1", "F2"], "machine_type": ["pump"] * 4 + ["fan"] * 2}
)


def test_rise_over_fleet_median_of_the_same_type():
    tel = fleet({"P1": 50.0, "P2": 52.0, "P3": 54.0, "P4": 70.0, "F1": 40.0, "F2": 41.0, "X": 45.0})
    t = tel["timestamp"].max()
    as_of = pd.DataFrame({"machine_id": ["P4", "P1", "F1", "X"], "timestamp": t})
    out = telemetry_features_asof(tel, as_of, (24,), 24.0, MACHINES)
    rise = out["tel__temperature_bearing__rise_over_fleet"].to_numpy()
    assert rise[0] == pytest.approx(70.0 - 53.0)  # median of 50, 52, 54, 70
    assert rise[1] == pytest.approx(50.0 - 53.0)
    assert np.isnan(rise[2])  # only 2 fans report
    assert np.isnan(rise[3])  # X has no machine type
    assert "tel__temperature_bearing__rise_over_ambient" not in out
    assert (
        telemetry_features_asof(tel, as_of, (24,), 24.0)["tel__temperature_bearing__rise_over_fleet"]
        .isna()
        .all()
    )


def test_a_machine_without_an_ambient_sensor_rises_over_its_fleet_in_a_fleet_with_one():
    """P1-P3 report ambient 20 °C, P4 has no ambient sensor: P4 rises over the pumps' median, the others over
    ambient (their rise over the fleet is NaN: one reference per row)."""
    tel = fleet({"P1": 50.0, "P2": 52.0, "P3": 54.0, "P4": 70.0})
    tel["temperature_ambient"] = np.where(tel["machine_id"] == "P4", np.nan, 20.0)
    as_of = pd.DataFrame({"machine_id": ["P4", "P1"], "timestamp": tel["timestamp"].max()})
    out = telemetry_features_asof(tel, as_of, (24,), 24.0, MACHINES)
    over_fleet = out["tel__temperature_bearing__rise_over_fleet"].to_numpy()
    over_ambient = out["tel__temperature_bearing__rise_over_ambient"].to_numpy()
    assert over_fleet[0] == pytest.approx(70.0 - 53.0) and np.isnan(over_ambient[0])
    assert over_ambient[1] == pytest.approx(50.0 - 20.0) and np.isnan(over_fleet[1])
    assert "tel__temperature_ambient__rise_over_fleet" not in out
    names = list(out.columns)
    assert names.index("tel__temperature_bearing__rise_over_fleet") == (
        names.index("tel__temperature_bearing__rise_over_ambient") + 1
    )
    every = telemetry_features_asof(tel[tel["machine_id"] != "P4"], as_of.iloc[1:], (24,), 24.0, MACHINES)
    assert every["tel__temperature_bearing__rise_over_fleet"].isna().all()  # every row has its ambient level


def test_rise_over_fleet_uses_no_reading_after_the_level():
    """The fleet at hour H takes each machine's latest reading in (H - 1 h, H]; a level read at 10:20 meets the
    fleet at 10:00, so the other pumps' readings at 10:40 (after the as-of time) are not used."""
    tel = fleet({"P1": 50.0, "P2": 52.0, "P3": 54.0, "P4": 70.0}, hours=11)  # 00:00 .. 10:00
    late = [("P4", "10:20", 71.0), ("P1", "09:40", 60.0), ("P2", "10:40", 99.0), ("P3", "10:40", 99.0)]
    extra = pd.DataFrame(
        {
            "machine_id": [m for m, _, _ in late],
            "timestamp": [pd.Timestamp(f"2026-03-01 {hm}", tz="UTC") for _, hm, _ in late],
            "temperature_bearing": [v for _, _, v in late],
        }
    )
    tel = pd.concat([tel, extra], ignore_index=True)
    as_of = at("P4", "2026-03-01 10:30")
    out = telemetry_features_asof(tel, as_of, (24,), 24.0, MACHINES).iloc[0]
    # fleet at 10:00: P1 09:40 -> 60 then 10:00 -> 50 (latest counts), P2 52, P3 54, P4 70 -> median 53
    assert out["tel__temperature_bearing__rise_over_fleet"] == pytest.approx(71.0 - 53.0)
    assert out["tel__temperature_bearing__last"] == 71.0


def test_rise_over_fleet_from_untrimmed_fleet_readings():
    """Features of a machine's own recent readings, fleet medians from the whole fleet's readings."""
    tel = fleet({"P1": 50.0, "P2": 52.0, "P3": 54.0, "P4": 70.0}, hours=48)
    as_of = at("P4", tel["timestamp"].max())
    own = tel[tel["machine_id"] == "P4"]
    full = telemetry_features_asof(tel, as_of, (24,), 24.0, MACHINES)
    trimmed = telemetry_features_asof(own, as_of, (24,), 24.0, MACHINES, fleet_telemetry=tel)
    pd.testing.assert_frame_equal(trimmed, full)
    alone = telemetry_features_asof(own, as_of, (24,), 24.0, MACHINES)
    assert np.isnan(alone["tel__temperature_bearing__rise_over_fleet"].iloc[0])  # a fleet of one


# --- the as-of path equals the pandas path --------------------------------------------------------


def irregular_fleet(seed: int, machines: int = 5) -> pd.DataFrame:
    """Irregular telemetry: gaps from 5 min to 40 h, NaN runs, a stuck stretch, one sensor without NaN."""
    rng = np.random.default_rng(seed)
    frames = []
    for m in range(machines):
        n = int(rng.integers(3, 250))
        gaps_h = rng.choice(
            [5 / 60, 0.5, 1.0, 1.0, 2.0, 7.0, 40.0], size=n, p=[0.1, 0.2, 0.3, 0.2, 0.1, 0.07, 0.03]
        )
        stamps = START + pd.to_timedelta(np.round(np.cumsum(gaps_h) * 3600), unit="s")
        frame = pd.DataFrame(
            {
                "machine_id": f"M{m}",
                "timestamp": stamps,
                "temperature_bearing": np.round(40 + 8 * m + np.cumsum(rng.normal(0, 0.7, n)), 2),
                "temperature_ambient": np.round(18 + 5 * np.sin(np.arange(n) / 4) + rng.normal(0, 0.3, n), 2),
                "load_pct": np.round(rng.uniform(0, 100, n), 1),
                "speed_rpm": 1480 + rng.normal(0, 2, n),  # never NaN
            }
        )
        for col in ("temperature_bearing", "temperature_ambient", "load_pct"):
            frame.loc[rng.random(n) < 0.15, col] = np.nan
        start = int(rng.integers(0, n))
        frame.loc[frame.index[start : start + 30], "load_pct"] = 55.0  # stuck
        frame.loc[frame.index[start : start + int(rng.integers(0, 40))], "temperature_bearing"] = (
            np.nan
        )  # dropout
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def as_of_rows(tel: pd.DataFrame, seed: int, per_machine: int) -> pd.DataFrame:
    """As-of rows on readings and between them, before the first reading, and long after the last."""
    rng = np.random.default_rng(seed)
    on = tel[["machine_id", "timestamp"]].sample(
        per_machine * tel["machine_id"].nunique(), replace=True, random_state=seed
    )
    between = on.assign(
        timestamp=on["timestamp"] + pd.to_timedelta(rng.uniform(0, 50, len(on)), unit="h").round("s")
    )
    edges = pd.DataFrame(
        {"machine_id": ["M0", "M1", "nobody"], "timestamp": [START, START + pd.Timedelta("400D"), START]}
    )
    return pd.concat([on, between, edges], ignore_index=True)


def expected_from_pandas(tel: pd.DataFrame, as_of: pd.DataFrame, windows, max_age) -> pd.DataFrame:
    """The pandas path, with levels bounded by the longest window (the as-of path's documented rule)."""
    old = pandas_path(tel, as_of, windows, max_age)
    sensors = [c for c in tel.columns if c not in ("machine_id", "timestamp")]
    longest = max(windows)
    for col in sensors:
        seen = old[f"tel__{col}__mean__{longest}h"].notna()
        old[f"tel__{col}__last"] = old[f"tel__{col}__last"].where(seen)
    for col in ("temperature_bearing",):
        old[f"tel__{col}__rise_over_ambient"] = (
            old[f"tel__{col}__last"] - old["tel__temperature_ambient__last"]
        )
        old[f"tel__{col}__rise_over_fleet"] = np.nan  # no machine types given: no fleet to rise over
    return old[telemetry_feature_names(sensors, tuple(windows))]


def assert_same_features(new: pd.DataFrame, old: pd.DataFrame) -> None:
    """Same columns, same NaN, values within 1e-9 relative (or 1e-9 of the column's largest value); slopes
    within 1e-7, the precision of the pandas reference itself (its rolling float64 sums of t·x and t² lose
    digits: a two-pass fit agrees with the as-of path to 1e-10, see test_years_of_history_keep_slopes_precise)."""
    assert list(new.columns) == list(old.columns)
    for col in old.columns:
        a, b = new[col].to_numpy(), old[col].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
        scale = np.nanmax(np.abs(b), initial=0.0)
        tolerance = 1e-7 if "__slope__" in col else 1e-9
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * scale, err_msg=col)


@pytest.mark.parametrize(
    ("windows", "max_age", "per_machine"), [((6, 24), 12.0, 40), ((24, 168), 24.0, 1), ((3,), 48.0, 300)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asof_path_equals_pandas_path(seed, windows, max_age, per_machine):
    tel = irregular_fleet(seed)
    as_of = as_of_rows(tel, seed, per_machine)
    new = telemetry_features_asof(tel.sample(frac=1.0, random_state=seed), as_of, windows, max_age)
    assert_same_features(new, expected_from_pandas(tel, as_of, windows, max_age))


def test_features_of_a_row_do_not_depend_on_the_other_rows_asked():
    """One as-of row per machine (direct window sums) and hundreds (cumulative sums over segments) agree."""
    tel = irregular_fleet(7)
    many = as_of_rows(tel, 7, 200)
    one = many.groupby("machine_id").head(1)
    all_rows = telemetry_features_asof(tel, many, (6, 24), 24.0)
    pd.testing.assert_frame_equal(
        telemetry_features_asof(tel, one, (6, 24), 24.0), all_rows.loc[one.index], rtol=1e-11
    )


@pytest.mark.parametrize(
    "knobs",
    [
        {"ROWS_PER_CHUNK": 7},  # many chunks, machines alone in a chunk
        {"CUMSUM_OVERLAP": 0},  # cumulative sums for every window
        {"CUMSUM_OVERLAP": 10**9},  # direct sums for every window
        {"SEGMENT_REACHES": 0.05, "CUMSUM_OVERLAP": 0},  # many short segments sharing readings
        {"CONDITION": 1.0},  # every window recomputed in two passes
        {"STEPS_BACK": 0},  # every level found by the running maximum
        {"STEPS_BACK": 10**4},  # every level found by stepping back
    ],
)
def test_results_do_not_depend_on_how_the_work_is_cut(monkeypatch, knobs):
    tel = irregular_fleet(11)
    as_of = as_of_rows(tel, 11, 30)
    reference = telemetry_features_asof(tel, as_of, (6, 24), 24.0)
    for name, value in knobs.items():
        monkeypatch.setattr(telemetry, name, value)
    pd.testing.assert_frame_equal(telemetry_features_asof(tel, as_of, (6, 24), 24.0), reference, rtol=1e-10)


def test_machine_runs_are_remembered_per_table_and_checked_before_reuse():
    tel = irregular_fleet(3)
    runs = telemetry.machine_runs(tel)
    assert runs is not None and telemetry.machine_runs(tel) is runs
    assert list(runs[0]) == [f"M{m}" for m in range(5)]
    tel.loc[0, "machine_id"] = "M9"  # changed in place: the first run's machine no longer fits
    changed = telemetry.machine_runs(tel)
    assert changed is not runs and list(changed[0][:2]) == ["M9", "M0"]
    assert telemetry.machine_runs(tel.iloc[:-1])[1][-1] == len(tel) - 1  # another table: its own runs
    assert telemetry.machine_runs(tel.sample(frac=1.0, random_state=0)) is None  # rows not grouped


def test_years_of_history_keep_slopes_precise():
    """Hourly as-of rows over a year of hourly readings of 4 machines (cumulative sums over many segments):
    the slope of a 24 h window to 1e-9 of a direct two-pass fit."""
    hours, rng = 24 * 365, np.random.default_rng(3)
    t_h = np.concatenate([np.arange(hours) + rng.integers(0, 900, hours) / 3600 for _ in range(4)])
    x = 60 + 10 * np.sin(t_h / 1400) + 5 * np.sin(t_h * 2 * np.pi / 24) + rng.normal(0, 0.5, len(t_h))
    tel = pd.DataFrame(
        {
            "machine_id": np.repeat(["A", "B", "C", "D"], hours),
            "timestamp": START + pd.to_timedelta(np.round(t_h * 3600), unit="s"),
            "temperature_bearing": x,
        }
    )
    t_h = ((tel["timestamp"] - START).dt.total_seconds() / 3600).to_numpy()
    slopes = telemetry_features_asof(tel, tel[["machine_id", "timestamp"]], (24,), 1.0)
    slopes = slopes["tel__temperature_bearing__slope__24h"].to_numpy()
    for i in rng.integers(24, 4 * hours, 40):
        machine = slice(i // hours * hours, i + 1)
        inside = t_h[machine] > t_h[i] - 24
        t, v = t_h[machine][inside], x[machine][inside]
        direct = np.sum((t - t.mean()) * (v - v.mean())) / np.sum((t - t.mean()) ** 2)
        assert slopes[i] == pytest.approx(direct, rel=1e-9, abs=1e-12)


@st.composite
def small_fleets(draw):
    frames = []
    for m in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 30))
        gaps = draw(
            st.lists(st.sampled_from([300, 1800, 3600, 3600, 7200, 30 * 3600]), min_size=n, max_size=n)
        )
        values = draw(
            st.lists(st.one_of(st.none(), st.integers(-5000, 5000)), min_size=2 * n, max_size=2 * n)
        )
        x = np.array([np.nan if v is None else v / 100 for v in values]).reshape(2, n)
        frames.append(
            pd.DataFrame(
                {
                    "machine_id": f"M{m}",
                    "timestamp": START + pd.to_timedelta(np.cumsum(gaps), unit="s"),
                    "temperature_bearing": x[0],
                    "temperature_ambient": x[1],
                }
            )
        )
    tel = pd.concat(frames, ignore_index=True)
    offsets = draw(st.lists(st.integers(-3600, 40 * 3600), min_size=1, max_size=6))
    picks = draw(st.lists(st.integers(0, len(tel) - 1), min_size=len(offsets), max_size=len(offsets)))
    as_of = pd.DataFrame(
        {
            "machine_id": tel["machine_id"].to_numpy()[picks],
            "timestamp": pd.DatetimeIndex(tel["timestamp"].iloc[picks]) + pd.to_timedelta(offsets, unit="s"),
        }
    )
    return tel, as_of


@settings(max_examples=60, deadline=None)
@given(small_fleets())
def test_property_asof_path_equals_pandas_path(fleet_and_as_of):
    tel, as_of = fleet_and_as_of
    assert_same_features(
        telemetry_features_asof(tel, as_of, (2, 24), 6.0), expected_from_pandas(tel, as_of, (2, 24), 6.0)
    )


# --- maintenance -------------------------------------------------------------------------------------


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


# --- inputs a notebook user passes directly (found by a QA pass on the library API) ----------------


def test_an_infinite_reading_is_missing_and_touches_no_other_window_or_machine():
    a = ramp("A", hours=400)
    a.loc[10, "temperature_bearing"] = np.inf
    b = ramp("B", hours=400, slope=0.1)
    tel = pd.concat([a, b], ignore_index=True)
    every = tel[["machine_id", "timestamp"]]
    together = telemetry_features_asof(tel, every, (24, 168), 24.0)
    clean = pd.concat([a.drop(index=10), b], ignore_index=True)
    alone = telemetry_features_asof(clean, every, (24, 168), 24.0)
    pd.testing.assert_frame_equal(together.drop(index=10), alone.drop(index=10), rtol=1e-9)
    assert np.isfinite(together.filter(like="__mean__").to_numpy()).all()


def test_joins_accept_any_datetime_unit_and_naive_or_aware_times():
    events = pd.DataFrame(
        {
            "machine_id": ["A"],
            "kind": ["maintenance"],
            "timestamp": pd.to_datetime(["2026-03-01"]).as_unit("us"),
        }
    )
    for stamps in (
        pd.to_datetime(["2026-03-02 06:00"], utc=True).as_unit("ns"),
        pd.to_datetime(["2026-03-02 06:00"]).as_unit("s"),
    ):
        as_of = pd.DataFrame({"machine_id": ["A"], "timestamp": stamps})
        assert hours_since_maintenance(as_of, events)[0] == pytest.approx(30.0)
        joined = asof_join(as_of, events.assign(level=1.5), 48.0)
        assert joined["level"].tolist() == [1.5] and joined["timestamp"].equals(as_of["timestamp"])


def test_direct_calls_with_unusable_inputs_say_what_to_fix():
    tel = ramp("A", hours=48)
    as_of = at("A", "2026-03-02")
    with pytest.raises(ValueError, match="positive, finite hours"):
        telemetry_features_asof(tel, as_of, (0,), 24.0)
    with pytest.raises(ValueError, match="'note' is not numeric"):
        telemetry_features_asof(tel.assign(note="x"), as_of, (24,), 24.0)
    numbered = tel.assign(machine_id=1)
    with pytest.raises(ValueError, match="differ in type"):
        telemetry_features_asof(numbered, as_of.assign(machine_id="1"), (24,), 24.0)


def test_joins_give_nan_for_rows_at_no_time_on_either_side():
    as_of = pd.DataFrame(
        {"machine_id": ["A", "A"], "timestamp": pd.to_datetime(["2026-03-02", None], utc=True)}
    )
    events = pd.DataFrame(
        {
            "machine_id": ["A", "A"],
            "kind": "maintenance",
            "timestamp": pd.to_datetime([None, "2026-03-01"], utc=True),
        }
    )
    hours = hours_since_maintenance(as_of, events)
    assert hours[0] == pytest.approx(24.0) and np.isnan(hours[1])
    ahead = asof_join(as_of, events.assign(level=1.0), None, direction="forward")
    assert ahead["level"].isna().all()  # no event after 2026-03-02, and none for a row at no time


def test_an_infinite_reading_counts_in_no_fleet_median():
    stamps = pd.to_datetime(["2026-03-01 10:00"] * 4, utc=True)
    tel = pd.DataFrame(
        {
            "machine_id": ["m1", "m2", "m3", "m4"],
            "timestamp": stamps,
            "temperature_bearing": [40.0, 41, 42, np.inf],
        }
    )
    machines = pd.DataFrame({"machine_id": ["m1", "m2", "m3", "m4"], "machine_type": "pump"})
    as_of = tel[["machine_id", "timestamp"]]
    out = telemetry_features_asof(tel, as_of, (24,), 24.0, machines=machines, fleet_telemetry=tel)
    rise = out["tel__temperature_bearing__rise_over_fleet"].tolist()
    assert rise[:3] == [-1.0, 0.0, 1.0] and np.isnan(rise[3])


def test_machine_ids_of_another_kind_that_match_nothing_anyway_are_no_error():
    tel = ramp("A", hours=48)
    as_of = pd.DataFrame(
        {"machine_id": pd.Categorical(["Z"]), "timestamp": pd.to_datetime(["2026-03-02"], utc=True)}
    )
    assert telemetry_features_asof(tel, as_of, (24,), 24.0).isna().all(axis=None)
