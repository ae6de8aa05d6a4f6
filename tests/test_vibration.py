"""Known answers on synthetic signals for features.vibration and features.bearings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.bearings import defect_orders
from features.vibration import (
    STANDARD_GRAVITY_M_S2,
    VibrationConfig,
    amplitude_spectrum,
    band_feature_name,
    envelope_bands_hz,
    envelope_spectrum,
    nan_reasons,
    vibration_feature_info,
    vibration_feature_names,
    vibration_features,
)

FS = 10240.0  # with N = FS samples (1 s) every integer frequency sits on a bin
SKF_6205 = {"n_balls": 9, "ball_diameter_mm": 7.94, "pitch_diameter_mm": 39.04}
ENVELOPE_NAMES = [
    name for name in vibration_feature_names() if name.startswith("envelope__") and "rms" not in name
]
SNR_NAMES = [name for name in vibration_feature_names() if name.endswith("_snr")]


def sine(
    amplitude: float, freq_hz: float, fs: float = FS, n: int = int(FS), phase: float = 0.0
) -> np.ndarray:
    """One snapshot (1, n) float32 of amplitude * sin(2 pi f t + phase)."""
    t = np.arange(n) / fs
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + phase)).astype(np.float32)[None, :]


def impacting_bearing(rate_hz: float, resonance_hz: float, fs: float, n: int, seed: int = 0) -> np.ndarray:
    """One snapshot (1, n): impacts at rate_hz, each ringing a decaying resonance, plus a little noise."""
    rng = np.random.default_rng(seed)
    train = np.zeros(n)
    train[np.rint(np.arange(0, n / fs, 1 / rate_hz) * fs).astype(int)] = 1.0
    t = np.arange(int(0.01 * fs)) / fs
    ring = np.exp(-t / 0.0008) * np.sin(2 * np.pi * resonance_hz * t)
    signal = np.convolve(train, ring)[:n] + 0.05 * rng.standard_normal(n)
    return signal.astype(np.float32)[None, :]


def modulated_impacts(
    rate_hz: float,
    modulation_hz: float | None = None,
    resonance_hz: float = 3000.0,
    gain: float = 1.0,
    fs: float = 12000.0,
    n: int = 12000,
    seed: int = 0,
) -> np.ndarray:
    """One snapshot (1, n) of a rolling-element bearing defect: impacts at rate_hz with 1 % slip jitter (each
    interval varies, as rolling elements slip), strength 1 + cos(2 pi modulation t) (a defect passing through
    the load zone), each ringing a decaying resonance, times gain, plus noise of 0.05 g."""
    rng = np.random.default_rng(seed)
    intervals = (1 + 0.01 * rng.standard_normal(int(1.2 * rate_hz * n / fs) + 2)) / rate_hz
    times = np.cumsum(intervals)
    times = times[times < n / fs]
    strength = 1.0 if modulation_hz is None else 1.0 + np.cos(2 * np.pi * modulation_hz * times)
    train = np.zeros(n)
    np.add.at(train, np.rint(times * fs).astype(int), strength)
    t = np.arange(int(0.01 * fs)) / fs
    ring = np.exp(-t / 0.0008) * np.sin(2 * np.pi * resonance_hz * t)
    signal = gain * np.convolve(train, ring)[:n] + 0.05 * rng.standard_normal(n)
    return signal.astype(np.float32)[None, :]


def bearing_at(defect_hz: float, which: str = "bpfo") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Shaft speed (1,) making the SKF 6205 `which` frequency equal defect_hz, and its defect orders (1,)."""
    orders = {name: np.atleast_1d(value) for name, value in defect_orders(**SKF_6205).items()}
    return np.array([defect_hz]) / orders[which], orders


# --- waveform statistics -------------------------------------------------------------------------------


def test_sine_waveform_statistics() -> None:
    amplitude = 2.5
    f = vibration_features(sine(amplitude, 50.0), FS)
    assert f["rms"][0] == pytest.approx(amplitude / math.sqrt(2), rel=1e-5)
    assert f["peak"][0] == pytest.approx(amplitude, rel=1e-5)
    assert f["peak_to_peak"][0] == pytest.approx(2 * amplitude, rel=1e-5)
    assert f["crest_factor"][0] == pytest.approx(math.sqrt(2), rel=1e-5)
    assert f["shape_factor"][0] == pytest.approx(math.pi / (2 * math.sqrt(2)), rel=1e-4)
    assert f["impulse_factor"][0] == pytest.approx(math.pi / 2, rel=1e-4)
    assert f["kurtosis"][0] == pytest.approx(1.5, rel=1e-4)
    assert abs(f["skewness"][0]) < 1e-4


def test_gaussian_noise_kurtosis_3_skewness_0() -> None:
    noise = np.random.default_rng(1).standard_normal((1, 400_000)).astype(np.float32)
    f = vibration_features(noise, FS)
    assert f["kurtosis"][0] == pytest.approx(3.0, abs=0.05)  # sd of the estimate: sqrt(24/n) = 0.008
    assert abs(f["skewness"][0]) < 0.02  # sd: sqrt(6/n) = 0.004
    assert f["rms"][0] == pytest.approx(1.0, rel=0.01)


def test_dc_offset_is_removed() -> None:
    with_offset = vibration_features(sine(1.0, 50.0) + np.float32(3.0), FS)
    without = vibration_features(sine(1.0, 50.0), FS)
    for name in ("rms", "peak", "crest_factor", "kurtosis", band_feature_name(10, 500)):
        assert with_offset[name][0] == pytest.approx(without[name][0], rel=1e-4), name


def test_constant_signal_gives_nan_ratios_not_invented_values() -> None:
    f = vibration_features(np.full((1, 1024), 0.7, dtype=np.float32), FS)
    assert f["rms"][0] == 0.0
    for name in ("crest_factor", "kurtosis", "skewness", "shape_factor", "hf_ratio", "spectral_centroid_hz"):
        assert np.isnan(f[name][0]), name


# --- agreement with straightforward reference computations (float64 numpy / scipy) ------------------------


def reference_signals(kind: str, n_samples: int) -> np.ndarray:
    """Realistic float32 batches (8, n): noise, impulsive noise, a tone in noise, each on a sensor offset."""
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((8, n_samples))
    t = np.arange(n_samples) / FS
    signal = {
        "noise": noise,
        "impulsive": noise**3,
        "tone": np.sin(2 * np.pi * 123.4 * t) + 0.05 * noise,
    }[kind]
    return (signal + rng.uniform(-5, 5, (8, 1))).astype(np.float32)


def reference_features(values: np.ndarray, config: VibrationConfig) -> dict[str, np.ndarray]:
    """The definitions written plainly: float64, scipy.stats moments, np.fft power spectrum (Parseval)."""
    x = values.astype(np.float64)
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    rms, mean_abs = np.sqrt(np.mean(centred**2, axis=1)), np.mean(np.abs(centred), axis=1)
    peak = np.abs(centred).max(axis=1)
    out = {
        "rms": rms,
        "peak": peak,
        "peak_to_peak": x.max(axis=1) - x.min(axis=1),
        "crest_factor": peak / rms,
        "kurtosis": scipy.stats.kurtosis(x, axis=1, fisher=False),
        "skewness": scipy.stats.skew(x, axis=1),
        "shape_factor": rms / mean_abs,
        "impulse_factor": peak / mean_abs,
    }
    freqs = np.fft.rfftfreq(n, 1 / FS)
    power = np.abs(np.fft.rfft(centred, axis=1)) ** 2 / n**2
    power[:, 1 : n // 2 + (n % 2)] *= 2  # one-sided; DC and (even n) Nyquist counted once
    for lo, hi in config.bands_hz:
        inside = (freqs >= lo) & ((freqs < hi) | ((freqs == FS / 2) & (hi >= FS / 2)))
        out[band_feature_name(lo, hi)] = power[:, inside].sum(axis=1)
    out["spectral_centroid_hz"] = (power * freqs).sum(axis=1) / power.sum(axis=1)
    out["hf_ratio"] = power[:, freqs >= config.hf_split_hz].sum(axis=1) / power.sum(axis=1)
    band = (freqs >= config.velocity_band_hz[0]) & (freqs < config.velocity_band_hz[1])
    velocity = STANDARD_GRAVITY_M_S2 * 1000.0 / (2 * np.pi * freqs[band])
    out["velocity_rms_mm_s"] = np.sqrt((power[:, band] * velocity**2).sum(axis=1))
    return out


@pytest.mark.parametrize("n_samples", [4096, 3001])
@pytest.mark.parametrize("kind", ["noise", "impulsive", "tone"])
def test_features_agree_with_reference_computations_to_1e6(kind: str, n_samples: int) -> None:
    config = VibrationConfig(bands_hz=((10, 500), (500, 1000), (1000, 2000), (2000, FS / 2)))
    values = reference_signals(kind, n_samples)
    ours, reference = vibration_features(values, FS, config=config), reference_features(values, config)
    for name, expected in reference.items():
        # skewness is near 0 for symmetric signals: 1e-6 relative, or 1e-6 absolute (it is dimensionless)
        atol = 1e-6 if name == "skewness" else 0.0
        np.testing.assert_allclose(ours[name], expected, rtol=1e-6, atol=atol, err_msg=name)
    total = sum(ours[band_feature_name(lo, hi)] for lo, hi in config.bands_hz)
    assert np.all(total < ours["rms"] ** 2 * (1 + 1e-6))  # bands from 10 Hz: all but the lowest bins


def hann_line(x: np.ndarray, fs: float, target_hz: float, tolerance: float) -> float:
    """Reference amplitude of a line: the largest |rfft| of the periodic-Hann-windowed x (float64) over the bins
    within +- tolerance of the target, scaled to the amplitude of a sine."""
    window = scipy.signal.get_window("hann", x.size)
    spectrum = np.abs(np.fft.rfft(x * window)) * 2.0 / window.sum()
    lo, hi = (round(target_hz * (1 + sign * tolerance) * x.size / fs) for sign in (-1, 1))
    return float(spectrum[max(lo, 1) : hi + 1].max())


def test_orders_agree_with_a_hann_windowed_numpy_spectrum_to_1e6() -> None:
    rng = np.random.default_rng(11)
    shaft = np.array([24.3, 29.7, 41.05])
    t = np.arange(10240) / FS
    values = np.stack(
        [
            sum(a * np.sin(2 * np.pi * k * f * t + k) for k, a in ((1, 0.8), (2, 0.3), (3, 0.1)))
            + 0.2 * rng.standard_normal(t.size)
            + 3.0
            for f in shaft
        ]
    ).astype(np.float32)
    ours = vibration_features(values, FS, shaft)
    for row, f in enumerate(shaft):
        x = values[row].astype(np.float64) - values[row].mean(dtype=np.float64)
        for k in (1, 2, 3):
            expected = hann_line(x, FS, k * f, VibrationConfig().defect_tolerance)
            assert ours[f"order_{k}x_amp"][row] == pytest.approx(expected, rel=1e-6), (row, k)


def test_envelope_lines_agree_with_a_full_rate_hilbert_envelope() -> None:
    """The library demodulates the chosen band with a decimated inverse FFT; the reference does it at the full
    rate (scipy.signal.hilbert of the band-passed signal), then reads the same lines from a Hann-windowed
    spectrum. They agree to 1 % on lines that stand out and to 0.1 % on the envelope RMS; lines at noise level
    differ more (the decimation folds some envelope noise), which is why they are not compared."""
    fs, n = 12000.0, 12000
    values = np.vstack([modulated_impacts(87.0, fs=fs, n=n, seed=s) for s in range(3)])
    shaft, orders = bearing_at(87.0, "bpfo")
    ours = vibration_features(
        values, fs, np.repeat(shaft, 3), {k: np.repeat(v, 3) for k, v in orders.items()}
    )
    lo, hi = envelope_bands_hz(values, fs)
    freqs = np.fft.rfftfreq(n, 1 / fs)
    for row in range(3):
        spectrum = np.fft.rfft(values[row].astype(np.float64))
        spectrum[(freqs < lo[row]) | (freqs >= hi[row])] = 0
        envelope = np.abs(scipy.signal.hilbert(np.fft.irfft(spectrum, n)))
        envelope -= envelope.mean()
        for name, harmonic in (("bpfo", 1), ("bpfo_2x", 2)):
            expected = hann_line(envelope, fs, harmonic * 87.0, VibrationConfig().defect_tolerance)
            assert ours[f"envelope__{name}_amp"][row] == pytest.approx(expected, rel=0.01), (row, name)
        assert ours["envelope__rms"][row] == pytest.approx(envelope.std(), rel=1e-3)


# --- spectrum -------------------------------------------------------------------------------------------


def test_700hz_sine_energy_lands_in_its_band() -> None:
    amplitude = 1.5
    f = vibration_features(sine(amplitude, 700.0), FS)
    assert f["band_energy__500_1000hz"][0] == pytest.approx(amplitude**2 / 2, rel=1e-4)
    for name in ("band_energy__10_500hz", "band_energy__1000_2000hz", "band_energy__2000_5000hz"):
        assert f[name][0] < 1e-6 * amplitude**2, name
    assert f["spectral_centroid_hz"][0] == pytest.approx(700.0, rel=1e-4)
    assert f["hf_ratio"][0] < 1e-6


@pytest.mark.parametrize("n_samples", [4096, 4095])
def test_bands_covering_0_to_nyquist_sum_to_variance(n_samples: int) -> None:
    rng = np.random.default_rng(2)
    values = (rng.standard_normal((5, n_samples)) + 2.0).astype(np.float32)
    values += sine(0.8, 1000.0, n=n_samples)  # a line exactly on a band edge counts once
    config = VibrationConfig(bands_hz=((0, 1000), (1000, 2500.5), (2500.5, FS / 2)))
    f = vibration_features(values, FS, config=config)
    total = sum(f[band_feature_name(lo, hi)] for lo, hi in config.bands_hz)
    np.testing.assert_allclose(total, f["rms"] ** 2, rtol=1e-4)
    high = f[band_feature_name(1000, 2500.5)] + f[band_feature_name(2500.5, FS / 2)]
    np.testing.assert_allclose(f["hf_ratio"], high / total, rtol=1e-4)


def test_band_above_nyquist_is_nan() -> None:
    f = vibration_features(sine(1.0, 100.0, fs=4000.0, n=4000), 4000.0)
    assert np.isnan(f["band_energy__2000_5000hz"][0])  # 2 kHz is Nyquist at 4 kHz: nothing measured there
    assert np.isfinite(f["band_energy__1000_2000hz"][0])


@pytest.mark.parametrize("freq_hz", [25.0, 80.0, 400.0, 900.0])
def test_velocity_rms_of_an_acceleration_sine(freq_hz: float) -> None:
    accel_g = 0.5
    expected = accel_g * STANDARD_GRAVITY_M_S2 / (2 * np.pi * freq_hz) / math.sqrt(2) * 1000.0
    f = vibration_features(sine(accel_g, freq_hz), FS)
    assert f["velocity_rms_mm_s"][0] == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("freq_hz", [5.0, 2000.0])
def test_velocity_rms_ignores_content_outside_its_band(freq_hz: float) -> None:
    in_band = vibration_features(sine(0.5, 900.0), FS)["velocity_rms_mm_s"][0]
    outside = vibration_features(sine(0.5, freq_hz), FS)["velocity_rms_mm_s"][0]
    assert outside < 1e-3 * in_band


def test_order_2x_reads_the_sine_at_twice_shaft_speed() -> None:
    amplitude = 0.3
    f = vibration_features(sine(amplitude, 49.0), FS, shaft_hz=np.array([24.5]))
    assert f["order_2x_amp"][0] == pytest.approx(amplitude, rel=1e-3)
    assert f["order_1x_amp"][0] < 0.01 * amplitude
    assert f["order_3x_amp"][0] < 0.01 * amplitude


def test_order_between_bins_loses_at_most_hann_scalloping() -> None:
    values = sine(1.0, 60.5, n=2048)  # df = 5 Hz: 60.5 Hz is 0.1 bin off; 62.5 Hz is half a bin
    values = np.vstack([values, sine(1.0, 62.5, n=2048)])
    f = vibration_features(values, FS, shaft_hz=np.array([60.5, 62.5]))
    assert np.all(f["order_1x_amp"] >= 0.84)
    assert np.all(f["order_1x_amp"] <= 1.01)


def test_orders_are_nan_without_a_positive_shaft_speed() -> None:
    values = np.vstack([sine(1.0, 50.0)] * 3)
    f = vibration_features(values, FS, shaft_hz=np.array([np.nan, 0.0, 50.0]))
    assert np.isnan(f["order_1x_amp"][:2]).all()
    assert f["order_1x_amp"][2] == pytest.approx(1.0, rel=1e-3)
    assert np.isfinite(f["rms"]).all()


# --- envelope ----------------------------------------------------------------------------------------------


def test_envelope_spectrum_peaks_at_the_impact_rate() -> None:
    values = impacting_bearing(87.0, 3000.0, fs=12000.0, n=12000)
    freqs, amplitude = envelope_spectrum(values, 12000.0)
    in_view = (freqs > 20) & (freqs < 500)
    assert freqs[in_view][amplitude[0, in_view].argmax()] == pytest.approx(87.0, abs=1.0)
    lo, hi = envelope_bands_hz(values, 12000.0)
    assert lo[0] < 3000.0 < hi[0]
    assert hi[0] - lo[0] < 0.15 * 12000.0  # a band around the resonance, not the fallback region


@pytest.mark.parametrize("band", [None, (2000.0, 4500.0)])
def test_outer_race_impacts_show_at_bpfo_not_bpfi(band: tuple[float, float] | None) -> None:
    values = impacting_bearing(87.0, 3000.0, fs=12000.0, n=12000)
    shaft, orders = bearing_at(87.0, "bpfo")
    f = vibration_features(values, 12000.0, shaft, orders, VibrationConfig(envelope_band_hz=band))
    assert f["envelope__bpfo_amp"][0] > 10 * f["envelope__bpfi_amp"][0]
    assert f["envelope__bpfo_amp"][0] > 10 * f["envelope__bsf_amp"][0]
    assert f["envelope__bpfo_2x_amp"][0] > 10 * f["envelope__bsf_2x_amp"][0]
    assert f["envelope__rms"][0] > 0


@pytest.mark.parametrize("error", [-0.015, 0.01, 0.015])
def test_a_speed_off_by_less_than_the_tolerance_still_reads_the_defect_line(error: float) -> None:
    """The stated shaft speed is 1-1.5 % off (a tachometer's error, or slip): the line is read as with the exact
    speed, within the 2 % defect tolerance; 5 % off, the window misses it (noise level)."""
    values = np.vstack([modulated_impacts(87.0, fs=12000.0, n=12000, seed=s) for s in range(3)])
    shaft, orders = bearing_at(87.0, "bpfo")
    rows = {k: np.repeat(v, 3) for k, v in orders.items()}

    def read(speed_error: float) -> dict[str, np.ndarray]:
        return vibration_features(values, 12000.0, np.repeat(shaft * (1 + speed_error), 3), rows)

    exact, off, far = read(0.0), read(error), read(0.05)
    for name in ("envelope__bpfo_amp", "envelope__bpfo_2x_amp"):
        np.testing.assert_allclose(off[name], exact[name], rtol=1e-6, err_msg=name)
        assert np.all(far[name] < 0.2 * exact[name]), name
    assert np.all(off["envelope__bpfo_snr"] > 20.0) and np.all(far["envelope__bpfo_snr"] < 8.0)


@pytest.mark.parametrize("fs", [12000.0, 25600.0, 48000.0, 96000.0])
def test_a_resonance_of_a_few_khz_is_found_at_any_sample_rate(fs: float) -> None:
    """Impacts ringing a 3 kHz resonance read the same outer-race line whether sampled at 12 or 96 kHz: above
    25.6 kHz the automatic band's search starts no higher than 2.56 kHz (its width stays 0.1 fs)."""
    values = modulated_impacts(87.0, fs=fs, n=int(fs))
    shaft, orders = bearing_at(87.0, "bpfo")
    lo, hi = envelope_bands_hz(values, fs)
    assert lo[0] < 3000.0 < hi[0] and hi[0] - lo[0] == pytest.approx(0.1 * fs, rel=0.01)
    f = vibration_features(values, fs, shaft, orders)
    assert f["envelope__bpfo_snr"][0] > 15.0 and f["envelope__bpfo_amp"][0] > 0.05


def test_the_noise_level_of_line_snrs_rises_with_snapshot_length() -> None:
    """White noise: a line's peak is the largest of the bins within the +-2 % speed tolerance, and a longer snapshot
    has more of them, so noise reads about 0 dB at 0.1 s, 4 dB at 1 s and 7 dB at 10 s (docs/features.md: compare
    snapshots of one length)."""
    fs, rows = 25600.0, 40
    shaft, orders = bearing_at(87.0, "bpfo")
    rng = np.random.default_rng(0)
    levels = []
    for seconds in (0.1, 1.0, 10.0):
        noise = rng.standard_normal((rows, int(fs * seconds))).astype(np.float32)
        f = vibration_features(
            noise, fs, np.repeat(shaft, rows), {k: np.repeat(v, rows) for k, v in orders.items()}
        )
        levels.append(float(np.nanmedian([f[f"envelope__{k}_snr"] for k in ("bpfo", "bpfi", "bsf")])))
    assert levels[0] < 2.0 and 2.5 < levels[1] < 5.5 and 6.0 < levels[2] < 9.0, levels


def test_inner_race_impacts_show_at_bpfi() -> None:
    shaft, orders = bearing_at(150.0, "bpfi")
    values = impacting_bearing(150.0, 3000.0, fs=12000.0, n=12000)
    f = vibration_features(values, 12000.0, shaft, orders)
    assert f["envelope__bpfi_amp"][0] > 10 * f["envelope__bpfo_amp"][0]


def test_envelope_amplitude_of_an_amplitude_modulated_carrier() -> None:
    t = np.arange(int(FS)) / FS
    modulation = 0.2  # envelope = 1 + 0.2 cos(2 pi 40 t): line of 0.2 g at 40 Hz in the envelope spectrum
    values = ((1 + modulation * np.cos(2 * np.pi * 40 * t)) * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    shaft, orders = bearing_at(40.0, "bpfo")
    f = vibration_features(
        values[None], FS, shaft, orders, VibrationConfig(envelope_band_hz=(1500.0, 2500.0))
    )
    assert f["envelope__bpfo_amp"][0] == pytest.approx(modulation, rel=0.01)
    assert f["envelope__rms"][0] == pytest.approx(modulation / math.sqrt(2), rel=0.01)


def test_missing_speed_or_geometry_gives_nan_and_a_reason() -> None:
    one = impacting_bearing(87.0, 3000.0, fs=12000.0, n=12000)
    values = np.vstack([one] * 4)
    shaft, orders = bearing_at(87.0, "bpfo")
    shafts = np.array([shaft[0], np.nan, shaft[0], np.nan])
    geometry = {name: np.array([v[0], v[0], np.nan, np.nan]) for name, v in orders.items()}
    f = vibration_features(values, 12000.0, shafts, geometry)
    for name in ENVELOPE_NAMES:
        assert np.isfinite(f[name][0]) and np.isnan(f[name][1:]).all(), name
    assert np.isfinite(f["envelope__rms"]).all()
    assert np.isnan(f["order_1x_amp"][[1, 3]]).all() and np.isfinite(f["order_1x_amp"][[0, 2]]).all()
    assert nan_reasons(shafts, geometry) == [
        None,
        "no shaft speed",
        "no bearing geometry",
        "no shaft speed; no bearing geometry",
    ]


def test_nan_reasons_other_causes() -> None:
    values = np.zeros((3, 64), dtype=np.float32)
    values[2, 5] = np.nan
    reasons = nan_reasons(np.array([0.0, 30.0, 30.0]), None, values=values)
    assert reasons == [
        "shaft not turning; no bearing geometry",
        "no bearing geometry",
        "no bearing geometry; signal has missing samples",
    ]
    assert nan_reasons(None, defect_orders(**SKF_6205), n_snapshots=2) == ["no shaft speed"] * 2


def test_envelope_band_above_nyquist_gives_nan() -> None:
    shaft, orders = bearing_at(87.0)
    config = VibrationConfig(envelope_band_hz=(6000.0, 8000.0))
    f = vibration_features(sine(1.0, 100.0, fs=10000.0, n=10000), 10000.0, shaft, orders, config)
    assert np.isnan([f[name][0] for name in [*ENVELOPE_NAMES, "envelope__rms"]]).all()


def test_envelope_off_gives_nan_envelope_features_and_the_same_others() -> None:
    shaft, orders = bearing_at(87.0, "bpfo")
    x = np.vstack([modulated_impacts(87.0), sine(0.5, 700.0, fs=12000.0, n=12000)])
    full = vibration_features(x, 12000.0, shaft, orders)
    off = vibration_features(x, 12000.0, shaft, orders, VibrationConfig(envelope=False))
    assert off.keys() == full.keys()
    for name, values in off.items():
        if name.startswith("envelope__"):
            assert np.isnan(values).all(), name
        else:
            np.testing.assert_array_equal(values, full[name], err_msg=name)
    assert np.isfinite(full["envelope__bpfo_snr"]).all()  # the envelope was there to switch off


# --- whitened-envelope line SNRs ----------------------------------------------------------------------


def test_outer_race_impacts_stand_out_at_bpfo_only() -> None:
    shaft, orders = bearing_at(87.0, "bpfo")
    f = vibration_features(modulated_impacts(87.0), 12000.0, shaft, orders)
    assert f["envelope__bpfo_snr"][0] > 20.0  # dB above the local noise floor of the whitened envelope
    for name in ("envelope__bpfi_snr", "envelope__bsf_2x_snr", "envelope__ftf_snr"):
        assert f[name][0] < 12.0, name


def test_noise_alone_reads_a_few_db() -> None:
    shaft, orders = bearing_at(87.0, "bpfo")
    noise = np.random.default_rng(3).standard_normal((40, 12000)).astype(np.float32)
    f = vibration_features(noise, 12000.0, np.repeat(shaft, 40), orders)
    for name in SNR_NAMES:
        assert 0.0 < np.median(f[name]) < 8.0, name  # a max of a few bins over a median: about 3-6 dB
        assert np.max(f[name]) < 15.0, name


def test_snr_ignores_the_resonance_and_the_gain() -> None:
    """The same defect seen through another transfer path (another resonance, 100x the sensor gain): the
    amplitudes in g change 100x, the whitened SNRs stay within a few dB. This is what carries a fault
    signature from one bearing to another."""
    shaft, orders = bearing_at(87.0, "bpfo")
    here = modulated_impacts(87.0, resonance_hz=2000.0)
    there = 100 * modulated_impacts(87.0, resonance_hz=4200.0, seed=1)
    f = vibration_features(np.vstack([here, there]), 12000.0, np.repeat(shaft, 2), orders)
    assert f["envelope__bpfo_amp"][1] > 30 * f["envelope__bpfo_amp"][0]
    assert f["envelope__bpfo_snr"][0] > 20.0
    assert abs(f["envelope__bpfo_snr"][1] - f["envelope__bpfo_snr"][0]) < 4.0


def test_inner_race_turning_through_the_load_zone_shows_shaft_sidebands() -> None:
    shaft, orders = bearing_at(150.0, "bpfi")
    steady = modulated_impacts(150.0)
    turning = modulated_impacts(150.0, modulation_hz=shaft[0])
    f = vibration_features(np.vstack([steady, turning]), 12000.0, np.repeat(shaft, 2), orders)
    assert f["envelope__bpfi_snr"][1] > 15.0
    assert f["envelope__bpfi_sideband_snr"][1] > 12.0
    assert f["envelope__bpfi_sideband_snr"][1] > f["envelope__bpfi_sideband_snr"][0] + 6.0


def test_ball_defect_shows_at_twice_bsf_with_cage_sidebands() -> None:
    shaft, orders = bearing_at(140.0, "bsf")  # shaft such that BSF = 140 Hz; the ball strikes at 2 x BSF
    ftf_hz = orders["ftf"][0] * shaft[0]
    f = vibration_features(modulated_impacts(280.0, modulation_hz=ftf_hz), 12000.0, shaft, orders)
    assert f["envelope__bsf_2x_snr"][0] > 15.0
    assert f["envelope__bsf_sideband_snr"][0] > 10.0
    assert f["envelope__bpfo_snr"][0] < 12.0 and f["envelope__bpfi_snr"][0] < 12.0


def test_whitened_envelope_spectrum_peaks_at_the_impact_rate() -> None:
    freqs, amplitude = envelope_spectrum(modulated_impacts(87.0, gain=50.0), 12000.0, whitened=True)
    in_view = (freqs > 20) & (freqs < 500)
    assert freqs[in_view][amplitude[0, in_view].argmax()] == pytest.approx(87.0, abs=1.0)


def test_harmonic_families_name_the_defect_and_their_ratios_point_to_it() -> None:
    """Outer-race impacts fill the BPFO family (1-3x), inner-race impacts the BPFI family, ball impacts (at 2x
    BSF) the BSF family; each family ratio is the difference of two families and leans towards the defect."""
    cases = {"bpfo": (87.0, None), "bpfi": (150.0, None), "bsf": (140.0, "ftf")}
    for defect, (defect_hz, modulation) in cases.items():
        shaft, orders = bearing_at(defect_hz, defect)
        rate = 2 * defect_hz if defect == "bsf" else defect_hz
        modulation_hz = None if modulation is None else orders[modulation][0] * shaft[0]
        f = vibration_features(modulated_impacts(rate, modulation_hz), 12000.0, shaft, orders)
        others = [o for o in ("bpfo", "bpfi", "bsf") if o != defect]
        assert f[f"envelope__{defect}_harmonics_snr"][0] > 15.0, defect
        for other in others:
            assert f[f"envelope__{other}_harmonics_snr"][0] < 10.0, (defect, other)
        for name, (top, bottom) in {
            "bpfi_to_bpfo_db": ("bpfi", "bpfo"),
            "bsf_to_bpfo_db": ("bsf", "bpfo"),
            "bsf_to_bpfi_db": ("bsf", "bpfi"),
        }.items():
            difference = f[f"envelope__{top}_harmonics_snr"] - f[f"envelope__{bottom}_harmonics_snr"]
            np.testing.assert_allclose(f[f"envelope__{name}"], difference, err_msg=name)
            if defect in (top, bottom):
                sign = 1.0 if defect == top else -1.0
                assert sign * f[f"envelope__{name}"][0] > 6.0, (defect, name)


def test_harmonics_shared_by_two_families_count_for_neither() -> None:
    """SKF 6205: 2x BPFO sits on 3x BSF and 3x BPFO on 2x BPFI (within the 2 % windows), so the BPFO family is
    its fundamental alone (the family of one line is that line's SNR); an outer-race fault's 3x BPFO does not
    raise the BPFI family."""
    shaft, orders = bearing_at(87.0, "bpfo")
    f = vibration_features(modulated_impacts(87.0), 12000.0, shaft, orders)
    np.testing.assert_allclose(f["envelope__bpfo_harmonics_snr"], f["envelope__bpfo_snr"], rtol=1e-6)
    assert f["envelope__bpfo_snr"][0] > 20.0 and f["envelope__bpfi_harmonics_snr"][0] < 10.0


def test_ball_defect_modulated_by_the_cage_shows_cage_sidebands_unmodulated_does_not() -> None:
    shaft, orders = bearing_at(140.0, "bsf")
    ftf_hz = orders["ftf"][0] * shaft[0]
    steady, carried = modulated_impacts(280.0), modulated_impacts(280.0, modulation_hz=ftf_hz)
    f = vibration_features(np.vstack([steady, carried]), 12000.0, np.repeat(shaft, 2), orders)
    assert f["envelope__bsf_sideband_snr"][1] > 10.0
    assert f["envelope__bsf_sideband_snr"][1] > f["envelope__bsf_sideband_snr"][0] + 6.0
    assert f["envelope__bsf_harmonics_snr"].min() > 15.0  # the family is there either way


def test_family_reads_the_harmonics_inside_the_envelope_spectrum() -> None:
    """A short, slowly sampled snapshot whose envelope spectrum stops below 3x BPFI: the family averages the
    readable harmonics (finite), the unreadable 3x line does not make it NaN."""
    shaft, orders = bearing_at(150.0, "bpfi")
    fs = 4000.0  # envelope spectrum reaches 0.1 fs = 400 Hz: 1x and 2x BPFI readable, 3x not
    f = vibration_features(modulated_impacts(150.0, resonance_hz=1000.0, fs=fs, n=4000), fs, shaft, orders)
    assert np.isfinite(f["envelope__bpfi_harmonics_snr"][0])
    assert f["envelope__bpfi_harmonics_snr"][0] > 10.0


def test_snrs_of_a_constant_signal_are_nan() -> None:
    shaft, orders = bearing_at(87.0)
    f = vibration_features(np.full((1, 4096), 0.3, np.float32), 12000.0, shaft, orders)
    assert np.isnan([f[name][0] for name in SNR_NAMES]).all()


# --- bearings ---------------------------------------------------------------------------------------------


def test_skf_6205_defect_frequencies_match_cwru() -> None:
    shaft_hz = 1797 / 60
    orders = defect_orders(**SKF_6205)
    assert orders["bpfo"] * shaft_hz == pytest.approx(107.36, abs=0.05)
    assert orders["bpfi"] * shaft_hz == pytest.approx(162.19, abs=0.05)
    assert orders["bsf"] * shaft_hz == pytest.approx(70.58, abs=0.05)
    assert 2 * orders["bsf"] * shaft_hz == pytest.approx(141.17, abs=0.05)  # CWRU's table lists 2 x BSF
    assert orders["ftf"] * shaft_hz == pytest.approx(11.93, abs=0.05)
    assert orders["bpfo"] + orders["bpfi"] == pytest.approx(9)


def test_defect_orders_broadcast_and_nan_geometry() -> None:
    orders = defect_orders([9, np.nan, 9, 9], [7.94, 7.94, np.nan, 40.0], 39.04, [0.0, 0.0, 0.0, 0.0])
    for value in orders.values():
        assert value.shape == (4,) and value.dtype == np.float64
        assert np.isfinite(value[0]) and np.isnan(value[1:]).all()  # missing or impossible geometry
    angled = defect_orders(9, 7.94, 39.04, 15.0)
    assert angled["bpfo"] > orders["bpfo"][0]  # contact angle shrinks d/D cos(phi)


# --- registry and API -------------------------------------------------------------------------------------


def test_every_feature_has_a_unit_and_description() -> None:
    for name in vibration_feature_names():
        info = vibration_feature_info(name)
        assert info.description and info.unit in {"g", "g²", "mm/s", "Hz", "dB", ""}, name
    info = vibration_feature_info("band_energy__500_1000hz")
    assert info.unit == "g²" and info.description == "vibration energy in the 500–1000 Hz band"
    assert vibration_feature_info("vib__de__envelope__bpfo_amp").description.startswith("outer-race fault")
    assert {vibration_feature_info(name).unit for name in SNR_NAMES} == {"dB"}
    assert "2.5–10" in vibration_feature_info(band_feature_name(2.5, 10)).description
    with pytest.raises(KeyError):
        vibration_feature_info("not_a_feature")


def test_output_names_dtype_and_shape() -> None:
    values = np.random.default_rng(3).standard_normal((3, 512)).astype(np.float64)  # float64 in is accepted
    f = vibration_features(values, FS, 25.0, defect_orders(**SKF_6205))  # scalars broadcast
    assert list(f) == vibration_feature_names()
    assert all(v.dtype == np.float64 and v.shape == (3,) for v in f.values())
    empty = vibration_features(np.empty((0, 512), np.float32), FS)
    assert all(v.shape == (0,) for v in empty.values())
    with pytest.raises(ValueError):
        vibration_features(values[0], FS)


def test_blocks_do_not_change_results() -> None:
    rng = np.random.default_rng(4)
    values = (rng.standard_normal((600, 1024)) ** 3).astype(np.float32)
    shaft = rng.uniform(5, 80, 600)
    orders = defect_orders(**SKF_6205)
    whole = vibration_features(values, FS, shaft, orders)
    parts = [vibration_features(values[s], FS, shaft[s], orders) for s in (slice(0, 299), slice(299, 600))]
    for name, column in whole.items():
        np.testing.assert_allclose(column, np.concatenate([p[name] for p in parts]), rtol=1e-5, err_msg=name)


def test_rows_with_different_auto_bands_match_rows_alone() -> None:
    """A block whose rows demodulate different bands (a gather) gives what each row gives alone (a slice)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(FS)) / FS
    carriers = (1500.0, 3000.0, 1500.0, 2500.0)  # tones inside the auto region 0.1-0.4 fs
    values = np.stack([np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 37 * t)) for f in carriers])
    values = (values + 0.05 * rng.standard_normal(values.shape)).astype(np.float32)
    orders = defect_orders(**SKF_6205)
    first, _ = envelope_bands_hz(values, FS)
    assert len(np.unique(first)) > 1  # the block needs a gather
    batch = vibration_features(values, FS, 25.0, orders)
    for i in range(len(values)):
        alone = vibration_features(values[i : i + 1], FS, 25.0, orders)
        for name, column in batch.items():
            np.testing.assert_allclose(column[i], alone[name][0], rtol=1e-5, atol=0, err_msg=name)


def test_rows_of_different_bearings_match_each_bearing_alone() -> None:
    """Shared harmonics are decided per distinct geometry and only the lines some row of a block counts are
    read: a batch mixing bearings (runs, alternating rows, missing geometry, several blocks) gives what each
    bearing's rows give alone."""
    rng = np.random.default_rng(11)
    values = (rng.standard_normal((420, 1024)) ** 3).astype(np.float32)
    shaft = rng.uniform(5, 80, 420)
    geometries = [defect_orders(**SKF_6205), defect_orders(13, 3.5, 25.6), defect_orders(np.nan, 3.5, 25.6)]
    which = np.zeros(420, dtype=int)  # a run of SKF 6205 fills the first block, then the bearings mix
    which[260:] = rng.integers(0, 3, 160)
    orders = {name: np.array([float(geometries[g][name]) for g in which]) for name in geometries[0]}
    batch = vibration_features(values, FS, shaft, orders)
    for g in range(3):
        rows = which == g
        alone = vibration_features(values[rows], FS, shaft[rows], {k: v[rows] for k, v in orders.items()})
        for name, column in batch.items():
            np.testing.assert_allclose(column[rows], alone[name], rtol=1e-5, atol=0, err_msg=(g, name))


# --- properties -------------------------------------------------------------------------------------------


@st.composite
def signals(draw: st.DrawFn) -> np.ndarray:
    """A batch (n, L) of noise, impulsive noise or sine plus noise, from a drawn seed."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, length = draw(st.integers(1, 4)), draw(st.integers(64, 600))
    noise = rng.standard_normal((n, length))
    kind = draw(st.sampled_from(["noise", "impulsive", "sine"]))
    if kind == "impulsive":
        noise = noise**3
    elif kind == "sine":
        noise = 0.2 * noise + np.sin(2 * np.pi * rng.uniform(10, 4000) * np.arange(length) / FS)
    return noise.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(values=signals(), scale=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3))
def test_levels_scale_with_abs_c_shapes_and_snrs_do_not(values: np.ndarray, scale: float) -> None:
    shaft, orders = 25.0, defect_orders(**SKF_6205)
    base = vibration_features(values, FS, shaft, orders)
    scaled = vibration_features(values * np.float32(scale), FS, shaft, orders)
    for name in ("rms", "peak", "peak_to_peak", "velocity_rms_mm_s", "envelope__rms"):
        np.testing.assert_allclose(scaled[name], abs(scale) * base[name], rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(
        scaled["band_energy__10_500hz"], scale**2 * base["band_energy__10_500hz"], rtol=1e-3
    )
    for name in ("crest_factor", "kurtosis", "shape_factor", "spectral_centroid_hz", "hf_ratio"):
        np.testing.assert_allclose(scaled[name], base[name], rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(scaled["skewness"], np.sign(scale) * base["skewness"], rtol=1e-4, atol=1e-6)
    for name in SNR_NAMES:  # dimensionless by construction: whitening removes the gain
        np.testing.assert_allclose(scaled[name], base[name], rtol=0, atol=1e-3, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(16, 400)),
        elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False),
    ),
    shaft=st.floats(0.5, 300.0) | st.just(float("nan")),
    band=st.sampled_from([None, (1000.0, 3000.0)]),
)
def test_batch_equals_row_by_row(values: np.ndarray, shaft: float, band: tuple[float, float] | None) -> None:
    n = len(values)
    shafts = np.full(n, shaft) * np.linspace(1.0, 1.5, n)
    orders = {name: np.full(n, value) for name, value in defect_orders(**SKF_6205).items()}
    config = VibrationConfig(envelope_band_hz=band)
    batch = vibration_features(values, FS, shafts, orders, config)
    for i in range(n):
        row = vibration_features(
            values[i : i + 1], FS, shafts[i : i + 1], {k: v[i : i + 1] for k, v in orders.items()}, config
        )
        for name, column in batch.items():
            np.testing.assert_allclose(column[i], row[name][0], rtol=1e-5, atol=0, err_msg=name)


def test_amplitude_spectrum_reads_a_sine_amplitude_at_its_frequency() -> None:
    fs, n = 10240.0, 10240  # 1 Hz bins: 100 Hz and 733 Hz fall on bins
    t = np.arange(n) / fs
    values = np.stack([3.0 * np.sin(2 * np.pi * 100.0 * t) + 0.5, 0.2 * np.sin(2 * np.pi * 733.0 * t)])
    freqs, amplitude = amplitude_spectrum(values, fs)
    assert amplitude.shape == (2, n // 2 + 1) and freqs[1] == 1.0
    assert freqs[np.argmax(amplitude[0])] == 100.0 and freqs[np.argmax(amplitude[1])] == 733.0
    np.testing.assert_allclose(amplitude.max(axis=1), [3.0, 0.2], rtol=1e-3)
    assert amplitude[0, 0] < 1e-6  # the mean (0.5 g offset) is removed


# --- inputs a notebook user passes directly (found by a QA pass on the library API) ----------------


@pytest.mark.parametrize("scale", [1e-12, 1e-6, 1e6, 1e12])
def test_kurtosis_and_skewness_hold_at_extreme_scales(scale: float) -> None:
    x = np.random.default_rng(3).standard_normal((2, 4096))
    f = vibration_features((x * scale).astype(np.float32), FS)
    expected = scipy.stats.kurtosis(x.astype(np.float32).astype(np.float64), axis=1, fisher=False)
    assert f["kurtosis"] == pytest.approx(expected, rel=1e-4)
    assert f["skewness"] == pytest.approx(scipy.stats.skew(x.astype(np.float32), axis=1), rel=1e-3, abs=1e-5)


def test_a_large_offset_in_float64_input_does_not_eat_the_vibration() -> None:
    x = np.random.default_rng(4).standard_normal((2, 4096))
    f = vibration_features(1e6 + 0.01 * x, FS)  # float64, as a 24-bit ADC's counts or a biased signal
    assert f["rms"] == pytest.approx(0.01 * x.std(axis=1), rel=1e-5)
    assert f["kurtosis"] == pytest.approx(scipy.stats.kurtosis(x, axis=1, fisher=False), rel=1e-4)


def test_peak_of_a_flat_snapshot_is_plus_zero() -> None:
    peak = vibration_features(np.zeros((1, 256), np.float32), FS)["peak"][0]
    assert peak == 0.0 and not np.signbit(peak)


def test_hf_ratio_is_nan_when_the_split_lies_above_nyquist() -> None:
    f = vibration_features(
        sine(1.0, 50.0, fs=1500.0, n=1500), 1500.0, config=VibrationConfig(hf_split_hz=1000.0)
    )
    assert np.isnan(f["hf_ratio"][0]) and np.isfinite(f["rms"][0])


@pytest.mark.parametrize("band", [(1e-5, 10.0), (2.5, 7.25), (5e6, 1e7), (123456789.0, 987654321.5)])
def test_any_valid_band_has_a_name_that_describes_itself(band: tuple[float, float]) -> None:
    name = band_feature_name(*band)
    assert "e" not in name.removeprefix("band_energy__").removesuffix("hz")  # never an exponent
    assert vibration_feature_info(name).unit == "g²"
    assert name in vibration_features(sine(1.0, 50.0), FS, config=VibrationConfig(bands_hz=(band,)))


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"bands_hz": ((1000.0, math.inf),)}, "finite"),
        ({"bands_hz": ((10, 500), (10.0, 500.0))}, "twice"),
        ({"hf_split_hz": math.inf}, "finite"),
    ],
)
def test_config_rejects_bands_that_cannot_be_columns(settings_: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VibrationConfig(**settings_)


def test_per_snapshot_inputs_of_the_wrong_length_name_the_argument() -> None:
    values = np.vstack([sine(1.0, 50.0)] * 4)
    with pytest.raises(ValueError, match=r"shaft_hz .* one value per snapshot \(4\)"):
        vibration_features(values, FS, shaft_hz=np.ones(3))
    with pytest.raises(ValueError, match=r"defect_orders\['bpfo'\]"):
        vibration_features(values, FS, 30.0, {**defect_orders(**SKF_6205), "bpfo": np.ones(5)})
    with pytest.raises(ValueError, match=r"unknown keys \['BPFO'\]"):
        vibration_features(values, FS, 30.0, {"BPFO": 3.0})


def test_infinite_speed_and_impossible_orders_are_unknown_with_a_reason() -> None:
    import warnings

    values = np.vstack([sine(1.0, 50.0)] * 2)
    orders = {
        name: np.array([-1.0, 0.0]) if name == "bpfo" else 3.0 for name in ("bpfo", "bpfi", "bsf", "ftf")
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        f = vibration_features(values, FS, np.array([np.inf, 30.0]), orders)
    assert np.isnan(f["order_1x_amp"][0]) and np.isfinite(f["order_1x_amp"][1])
    assert np.isnan(f["envelope__bpfo_amp"]).all()
    assert nan_reasons(np.array([np.inf, 30.0]), orders) == [
        "no shaft speed; no bearing geometry",
        "no bearing geometry",
    ]


def test_a_snapshot_with_missing_samples_has_no_envelope_band() -> None:
    values = np.vstack([impacting_bearing(87.0, 3000.0, fs=12000.0, n=12000)] * 2)
    values[1, 7] = np.nan
    lo, hi = envelope_bands_hz(values, 12000.0)
    assert np.isfinite([lo[0], hi[0]]).all() and lo[0] < hi[0] and np.isnan([lo[1], hi[1]]).all()


def test_float64_input_with_an_infinite_sample_gives_nan_without_a_warning() -> None:
    import warnings

    values = np.vstack([sine(1.0, 50.0)] * 2).astype(np.float64)
    values[1, 3] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = vibration_features(values, FS)
    assert np.isfinite(f["rms"][0]) and np.isnan(f["rms"][1])
