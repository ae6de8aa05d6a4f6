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
    windows = checks._centred_windows(codes, times.asi8, pd.Timedelta(minutes=120).value)
    passes = [np.zeros(x.shape, bool)]
    for _ in range(checks.MAX_PASSES):
        passes.append(checks._far_pass(x, passes[-1], codes, windows, config.glitch_k))
        if np.array_equal(passes[-1], passes[-2]):
            break
    assert len(passes) > 3  # more than one pass matters here
    np.testing.assert_array_equal(checks._far_readings(x, codes, times, config), passes[-1])
