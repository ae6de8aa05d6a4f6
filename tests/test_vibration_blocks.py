"""The block / chunk machinery of ``features.vibration``: sizes never change results, the median network is a
median."""

from __future__ import annotations

import numpy as np
import pytest

import features.vibration as vibration
from features.bearings import defect_orders
from features.vibration import vibration_features

FS = 12000.0
SKF_6205 = {"n_balls": 9, "ball_diameter_mm": 7.94, "pitch_diameter_mm": 39.04}


def mixed_batch(
    n_rows: int = 300, n_samples: int = 512
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Impulsive noise at varying speeds; one bearing for the first half, then bearings mixed (one without a
    geometry), so that chunks differ in the family lines they read."""
    rng = np.random.default_rng(5)
    values = (rng.standard_normal((n_rows, n_samples)) ** 3).astype(np.float32)
    values[17] = 0.25  # a constant row
    shaft = rng.uniform(5, 80, n_rows)
    shaft[23] = np.nan
    geometries = [defect_orders(**SKF_6205), defect_orders(13, 3.5, 25.6), defect_orders(np.nan, 3.5, 25.6)]
    which = np.zeros(n_rows, dtype=int)
    which[n_rows // 2 :] = rng.integers(0, 3, n_rows - n_rows // 2)
    orders = {name: np.array([float(geometries[g][name]) for g in which]) for name in geometries[0]}
    return values, shaft, orders


@pytest.mark.parametrize(("block_rows", "chunk_rows"), [(7, 20), (32, 96), (64, 64), (300, 300)])
def test_block_and_chunk_sizes_do_not_change_results(
    monkeypatch: pytest.MonkeyPatch, block_rows: int, chunk_rows: int
) -> None:
    values, shaft, orders = mixed_batch()
    reference = vibration_features(values, FS, shaft, orders)
    monkeypatch.setattr(vibration, "_BLOCK_ROWS", block_rows)
    monkeypatch.setattr(vibration, "_CHUNK_ROWS", chunk_rows)
    result = vibration_features(values, FS, shaft, orders)
    assert list(result) == list(reference)
    for name, column in reference.items():
        np.testing.assert_allclose(result[name], column, rtol=1e-5, atol=0, err_msg=name)


def test_median_network_is_a_median_of_17() -> None:
    """0-1 principle: a comparator network selects the median of any values iff it does for every 0/1 input."""
    bits = ((np.arange(2**17)[None, :] >> np.arange(17)[:, None]) & 1).astype(np.float32)
    values = list(bits)
    for i, j, low_needed, high_needed in vibration._FLOOR_MEDIAN:
        low = np.fmin(values[i], values[j])
        if high_needed:
            values[j] = np.maximum(values[i], values[j])
        if low_needed:
            values[i] = low
    np.testing.assert_array_equal(values[8], bits.sum(axis=0) >= 9)


def test_floor_medians_match_a_partition_nan_last() -> None:
    """Median of 17 evenly spread bins per window, NaN counted as the largest value (as np.partition)."""
    rng = np.random.default_rng(2)
    magnitude = rng.random((40, 90)).astype(np.float32)
    magnitude[rng.random(magnitude.shape) < 0.2] = np.nan
    magnitude[3] = np.nan
    lo = rng.integers(1, 40, (40, 6))
    hi = lo + rng.integers(0, 49, (40, 6))
    points = lo[..., None] + ((hi - lo)[..., None] * np.arange(17) >> 4)
    samples = np.take_along_axis(magnitude[:, None, :], points, axis=2)
    expected = np.partition(samples, 8, axis=-1)[..., 8]
    np.testing.assert_array_equal(vibration._floor_medians(magnitude, lo, hi), expected)


def test_reused_block_buffers_do_not_carry_over_between_calls() -> None:
    """A call reuses the previous call's block buffers (same thread): a wider envelope band before must not
    leave bins in a narrower band's zero padding, and results equal those of fresh buffers."""
    values, shaft, orders = mixed_batch(n_rows=40)
    narrow = vibration.VibrationConfig(envelope_band_hz=(1000.0, 2330.0))  # 57 bins
    wide = vibration.VibrationConfig(envelope_band_hz=(1000.0, 2410.0))  # 60 bins, same env_n
    vibration._WORKSPACES.last = None
    fresh = vibration_features(values, FS, shaft, orders, narrow)
    vibration_features(values, FS, shaft, orders, wide)
    again = vibration_features(values, FS, shaft, orders, narrow)
    for name, column in fresh.items():
        np.testing.assert_array_equal(again[name], column, err_msg=name)
