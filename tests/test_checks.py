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
