"""The glitch check's one-call rolling medians equal pandas' grouped, centred, time-based rolling medians."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import checks


def irregular(seed: int) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Machine codes, time index (gaps from 1 s to a day, repeated times) and values with NaN, machine-sorted."""
    rng = np.random.default_rng(seed)
    codes, times, values = [], [], []
    for m in range(40):
        n = int(rng.integers(1, 120))
        gaps = rng.choice([0, 1, 30, 600, 3600, 7200, 86400], size=n)
        codes.append(np.full(n, m))
        times.append(np.cumsum(gaps) * 1_000_000_000)
        x = rng.normal(0, 1, n)
        x[rng.random(n) < 0.2] = np.nan
        values.append(x)
    return np.concatenate(codes), pd.DatetimeIndex(np.concatenate(times)), np.concatenate(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("minutes", [1.0, 120.0, 7.5])
def test_centred_windows_match_pandas_grouped_rolling(seed, minutes):
    codes, times, x = irregular(seed)
    window = pd.Timedelta(minutes=minutes)
    expected = (
        pd.Series(x, index=times)
        .groupby(codes, sort=False)
        .rolling(window, center=True, min_periods=1)
        .median()
    )
    count = pd.Series(1.0, index=times).groupby(codes, sort=False).rolling(window, center=True).count()
    windows = checks._centred_windows(codes, times.asi8, window.value)
    got = pd.Series(x).rolling(windows, min_periods=1).median()
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(windows.end - windows.start, count.to_numpy())


def test_later_passes_run_only_where_outliers_changed_with_the_same_result():
    """Machines (and columns) whose outliers did not change in a pass would repeat it: skipping them changes
    nothing against passes over every row until nothing changes."""
    rng = np.random.default_rng(3)
    n, machines = 300, 30
    codes = np.repeat(np.arange(machines), n)
    times = pd.DatetimeIndex(np.tile(np.arange(n) * 300_000_000_000, machines))  # every 5 min
    x = rng.normal(20, 0.5, (machines * n, 2))
    for m in range(0, machines, 3):  # a third of the machines: bursts that pull the running median up
        for _ in range(8):
            start, length = m * n + int(rng.integers(0, n - 12)), int(rng.integers(1, 12))
            x[start : start + length, 0] += rng.uniform(3, 40) * (0.75 + 0.5 * (np.arange(length) % 2))
    config = checks.PlausibilityConfig()
    windows = checks._level_windows(codes, times.asi8, config)
    passes = [np.zeros(x.shape, bool)]
    for _ in range(checks.MAX_PASSES):
        passes.append(checks._far_pass(x, passes[-1], codes, windows)[0] > config.glitch_k)
        if np.array_equal(passes[-1], passes[-2]):
            break
    assert len(passes) > 3  # more than one pass matters here
    far = checks._far_readings(x, codes, times, config)[0] > config.glitch_k
    np.testing.assert_array_equal(far, passes[-1])


def test_a_plateau_minutes_long_on_a_level_climbing_within_the_window_is_a_glitch_and_the_climb_is_not():
    """A bearing heating from 70 to 230 °C within two hours in four steps of 40 °C (1 Hz, one-minute ramps):
    around the two-hour median the steps spread the residuals so wide that a six-minute plateau 250 °C above
    the level hides; around the half-hour median it does not. The steps, followed at the short scale, are
    never a glitch."""
    rng = np.random.default_rng(4)
    n = 7200
    t = np.arange(n)
    x = 70.0 + sum(40.0 * np.clip((t - step) / 60.0, 0.0, 1.0) for step in (1440, 2880, 4320, 5760))
    x += rng.normal(0, 0.5, n)
    plateau = slice(3300, 3660)  # minutes 55 to 61, in the middle of the 150 °C step
    x[plateau] += 250.0
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(t, unit="s")
    tel = pd.DataFrame({"machine_id": "B1", "timestamp": stamps, "temperature_bearing": x})
    found = checks.find_glitches(tel, ["temperature_bearing"], checks.PlausibilityConfig())
    expected = np.zeros(n, bool)
    expected[plateau] = True
    np.testing.assert_array_equal(found["temperature_bearing"], expected)


@pytest.mark.parametrize("minutes_from_start", [0, 100])
def test_a_fast_warm_up_or_heating_at_either_end_of_a_record_is_not_a_glitch(minutes_from_start):
    """20 -> 60 °C within ten minutes at the start or at the end of a two-hour record (1 Hz, noise 0.3 °C): the
    short median stays centred near the ends, so it follows the rise instead of lagging it."""
    rng = np.random.default_rng(5)
    n = 7200
    t = np.arange(n)
    rise = np.clip((t - minutes_from_start * 60) / 600.0, 0.0, 1.0)
    x = 20.0 + 40.0 * rise + rng.normal(0, 0.3, n)
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(t, unit="s")
    tel = pd.DataFrame({"machine_id": "B1", "timestamp": stamps, "temperature_bearing": x})
    assert checks.find_glitches(tel, ["temperature_bearing"], checks.PlausibilityConfig()) == {}


def test_a_burst_in_the_latest_readings_is_open_and_the_one_a_normal_reading_ends_is_a_glitch():
    """Hourly readings of two machines: a burst in the middle (ended by normal readings) is a glitch whose
    ``ended_by`` is the first normal reading after it; a burst in the latest readings is open (not a glitch:
    nothing shows yet whether it ends) and becomes a spike flag; a record that ends on a normal reading has none."""
    rng = np.random.default_rng(6)
    n = 200
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h")
    a = 60.0 + rng.normal(0, 0.5, n)
    a[100:102] += 400.0  # ended by row 102
    b = 60.0 + rng.normal(0, 0.5, n)
    b[-2:] += 400.0  # the latest two readings
    tel = pd.DataFrame(
        {
            "machine_id": np.repeat(["A", "B"], n),
            "timestamp": np.tile(stamps, 2),
            "temperature_bearing": np.r_[a, b],
        }
    )
    bursts = checks.find_bursts(tel, ["temperature_bearing"], checks.PlausibilityConfig())[
        "temperature_bearing"
    ]
    assert list(np.flatnonzero(bursts.glitch)) == [100, 101]
    assert (
        list(bursts.ended_by[[100, 101]]) == [102, 102]
        and (np.delete(bursts.ended_by, [100, 101]) == -1).all()
    )
    assert list(np.flatnonzero(bursts.open)) == [2 * n - 2, 2 * n - 1]
    assert (bursts.excess[bursts.glitch | bursts.open] > checks.PlausibilityConfig().glitch_k).all()
    flags = checks.spike_flags(tel, {"temperature_bearing": bursts})
    assert list(flags["machine_id"]) == ["B"] and list(flags["flag"]) == ["spike"]
    assert flags.loc[0, "since"] == stamps[-2] and flags.loc[0, "until"] == stamps[-1]
    assert bool(flags.loc[0, "active"]) and flags.loc[0, "readings"] == 2
    assert "unconfirmed" in flags.loc[0, "detail"] and "temperature_bearing read 4" in flags.loc[0, "detail"]


def test_a_sensor_that_keeps_switching_to_another_level_has_no_glitches_but_rare_bursts_are_glitches():
    """A turbofan sensor reads 40 higher in one of six operating conditions, drawn every cycle (as in the
    C-MAPSS fleets with six conditions): far runs start at about 14 % of its readings, a regime, not glitches.
    The same sensor of an engine in one condition, with three short bursts of +40, has three glitches: too few
    runs to tell on its own, it gets the fleet's rate (40 runs in 600 readings) weighed against its own 3 in
    300 readings (``_regime_rates``), far below a regime's."""
    rng = np.random.default_rng(8)
    n = 300
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 600, unit="s")
    switching = rng.normal(0, 1, n) + np.where(rng.integers(0, 6, n) == 0, 40.0, 0.0)
    steady = rng.normal(0, 1, n)
    steady[[50, 150, 151, 250]] += 40.0
    tel = pd.DataFrame(
        {
            "machine_id": np.repeat(["switching", "steady"], n),
            "timestamp": np.tile(stamps, 2),
            "sensor": np.r_[switching, steady],
        }
    )
    bursts, reference = checks.judge_bursts(tel, ["sensor"], checks.PlausibilityConfig())
    assert list(np.flatnonzero(bursts["sensor"].glitch)) == [n + 50, n + 150, n + 151, n + 250]
    rate = reference[reference["scale"] == 0].set_index("machine_id")["rate"]
    assert rate["switching"] == 37 / 300 and rate["steady"] == 0  # one switching machine is no fleet


def test_judging_a_large_table_in_chunks_of_whole_machines_changes_nothing(monkeypatch):
    """Every statistic of the glitch judge is per machine, so a fleet judged in chunks of whole machines (to
    bound memory) gives the same bursts, ``ended_by`` rows, excess and statistics as one pass: chunks of 997
    rows over 12 machines of uneven length, glitches and open bursts among them, a 3-reading machine last."""
    rng = np.random.default_rng(8)
    parts = []
    for m, n in enumerate([300, 250, 420, 180, 333, 290, 260, 410, 150, 500, 220, 3]):
        stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 10, unit="min")
        x = 60.0 + rng.normal(0, 0.5, n) + np.linspace(0, 5 * (m % 3), n)
        y = 20.0 + rng.normal(0, 0.2, n)
        if n > 100:
            x[n // 2 : n // 2 + 2] += 300.0  # a glitch
            y[-1] += 50.0 if m % 2 else 0.0  # an open burst on every other machine
        parts.append(pd.DataFrame({"machine_id": f"M{m:02d}", "timestamp": stamps, "t_a": x, "t_b": y}))
    tel = pd.concat(parts, ignore_index=True)
    config = checks.PlausibilityConfig()
    whole, whole_stats = checks.judge_bursts(tel, ["t_a", "t_b"], config)
    monkeypatch.setattr(checks, "JUDGE_CHUNK_ROWS", 997)
    assert len(checks._machine_chunks(tel)) > 2
    chunked, chunked_stats = checks.judge_bursts(tel, ["t_a", "t_b"], config)
    assert set(whole) == set(chunked) == {"t_a", "t_b"}
    for column in whole:
        for field in ("glitch", "ended_by", "open", "excess"):
            np.testing.assert_array_equal(getattr(whole[column], field), getattr(chunked[column], field))
    assert whole["t_a"].glitch.sum() >= 20 and whole["t_b"].open.sum() >= 5
    pd.testing.assert_frame_equal(whole_stats, chunked_stats)
    shuffled = pd.concat([tel.iloc[500:], tel.iloc[:500]], ignore_index=True)  # M00's rows at both ends
    assert checks._machine_chunks(shuffled) == [(0, len(tel))]


LEVELS = np.array(
    [0.0, 10.0, 20.0, 30.0, 40.0, 200.0]
)  # a sensor's level in each of six operating conditions


def fleet_table(conditions: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    """Machine -> its condition per reading (an index into ``LEVELS``, or -1: a steady 0): a sensor reading
    its condition's level with noise 1, every 10 minutes."""
    parts = []
    for machine, condition in conditions.items():
        n = len(condition)
        stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 600, unit="s")
        x = np.where(condition >= 0, LEVELS[condition], 0.0) + rng.normal(0, 1, n)
        parts.append(pd.DataFrame({"machine_id": machine, "timestamp": stamps, "sensor": x}))
    return pd.concat(parts, ignore_index=True)


def test_short_machines_of_a_fleet_switching_among_six_conditions_have_no_glitches(monkeypatch):
    """40 engines of 30 cycles each, one of six conditions drawn every cycle (as in C-MAPSS FD002 and FD004),
    the sensor 200 above its usual levels in one of them: 34 engines have far runs, 27 of them fewer than 5,
    too few for a rate of their own (judged by their own rates alone, 99 readings are glitches). The fleet's
    engines start such runs at 13 % of their readings: a regime, so none is a glitch, and the statistics carry
    the rate each engine was judged by, so judging its last 12 readings with them finds none either."""
    rng = np.random.default_rng(9)
    tel = fleet_table({f"E{m:02d}": rng.integers(0, 6, 30) for m in range(40)}, rng)
    config = checks.PlausibilityConfig()
    bursts, reference = checks.judge_bursts(tel, ["sensor"], config)
    assert bursts == {} and (reference["rate"] > checks.REGIME_RUN_RATE).all()
    recent = tel.groupby("machine_id").tail(12).reset_index(drop=True)
    assert checks.judge_bursts(recent, ["sensor"], config, reference)[0] == {}
    monkeypatch.setattr(checks, "_fleet_rate", lambda runs, readings: np.full(runs.shape[1], np.nan))
    assert checks.find_glitches(tel, ["sensor"], config)["sensor"].sum() == 99


def test_a_short_machine_with_a_glitch_in_a_fleet_without_regimes_still_has_it():
    """Ten engines of 500 cycles in one condition, each with four single glitches of +200 (0.8 % of their
    readings), one with six (its own rate, 1.2 %), and two of 30 cycles with one and two glitches (two in 30
    readings: 6.7 %, a regime's rate, but too few runs to tell): one machine with enough runs of its own is no
    fleet, and glitches never pool into a regime, so every burst is a glitch."""
    rng = np.random.default_rng(10)
    conditions = {f"L{m}": np.full(500, -1) for m in range(10)} | {
        "S1": np.full(30, -1),
        "S2": np.full(30, -1),
    }
    tel = fleet_table(conditions, rng)
    starts = tel.groupby("machine_id").indices
    planted = [starts[f"L{m}"][[60, 160, 260, 360]] for m in range(10)]
    planted += [starts["L9"][[430, 470]], starts["S1"][[15]], starts["S2"][[10, 20]]]
    rows = np.sort(np.concatenate(planted))
    tel.loc[rows, "sensor"] += 200.0
    bursts, reference = checks.judge_bursts(tel, ["sensor"], checks.PlausibilityConfig())
    np.testing.assert_array_equal(np.flatnonzero(bursts["sensor"].glitch), rows)
    rate = reference[reference["scale"] == 0].set_index("machine_id")["rate"]
    assert rate["L9"] == 6 / 500 and rate["S2"] == 0 and rate["L0"] == 0  # no fleet rate to borrow


def test_glitches_of_many_short_machines_never_pool_into_a_fleet_regime():
    """Twenty engines of 30 cycles, each with two single glitches (6.7 % of its readings), and one engine of
    600 cycles that switches to another level at 12 % of its readings: neither the glitches together nor one
    machine's own mode make a fleet's regime, so every short engine keeps its glitches."""
    rng = np.random.default_rng(12)
    conditions = {f"S{m:02d}": np.full(30, -1) for m in range(20)} | {
        "R": np.where(rng.random(600) < 0.12, 5, 0)
    }
    tel = fleet_table(conditions, rng)
    starts = tel.groupby("machine_id").indices
    rows = np.sort(np.concatenate([starts[f"S{m:02d}"][[10, 20]] for m in range(20)]))
    tel.loc[rows, "sensor"] += 200.0
    bursts, reference = checks.judge_bursts(tel, ["sensor"], checks.PlausibilityConfig())
    found = np.flatnonzero(bursts["sensor"].glitch)
    short = np.concatenate([starts[f"S{m:02d}"] for m in range(20)])
    np.testing.assert_array_equal(found[np.isin(found, short)], rows)
    rate = reference[reference["scale"] == 0].set_index("machine_id")["rate"]
    assert rate["R"] > checks.REGIME_RUN_RATE and (rate.drop("R") == 0).all()


def test_a_short_machine_in_another_chunk_than_the_machines_showing_the_regime_gets_the_fleets_rate(
    monkeypatch,
):
    """The fleet's rate is over the whole table, not over a chunk: four engines of 300 cycles switching among
    six conditions (a regime on their own), then in the next chunk an engine of 30 cycles with four far runs,
    and an engine of 300 cycles in one condition with two glitches. Alone, that chunk's rate would be a
    glitch's (6 runs in 330 readings); with the fleet's, the short engine switches regimes and the long one
    still has its glitches, in chunks as in one pass."""
    rng = np.random.default_rng(11)
    conditions = {f"A{m}": rng.integers(0, 6, 300) for m in range(4)}
    short = rng.integers(0, 5, 30)
    short[[5, 12, 19, 25]] = 5
    tel = fleet_table(conditions | {"B0": short, "B1": np.full(300, -1)}, rng)
    glitches = 1230 + np.array([100, 200])
    tel.loc[glitches, "sensor"] += 200.0
    config = checks.PlausibilityConfig()
    whole, whole_stats = checks.judge_bursts(tel, ["sensor"], config)
    monkeypatch.setattr(checks, "JUDGE_CHUNK_ROWS", 1200)
    assert checks._machine_chunks(tel) == [(0, 1200), (1200, 1530)]
    chunked, chunked_stats = checks.judge_bursts(tel, ["sensor"], config)
    for field in ("glitch", "ended_by", "open", "excess"):
        np.testing.assert_array_equal(getattr(whole["sensor"], field), getattr(chunked["sensor"], field))
    pd.testing.assert_frame_equal(whole_stats, chunked_stats)
    np.testing.assert_array_equal(np.flatnonzero(whole["sensor"].glitch), glitches)
    alone = checks.find_glitches(tel.iloc[1200:].reset_index(drop=True), ["sensor"], config)["sensor"]
    assert alone[[5, 12, 19, 25]].all()  # the short engine's far readings, judged by its own chunk's rate
