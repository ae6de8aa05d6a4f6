# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Throughput of the vibration feature set on one thread, against named baselines in the same run.

Usage: ``python benchmarks/vibration_throughput.py [DATA_DIR] [--snapshots 10000] [--samples 2560]``

Batches: synthetic (``--snapshots`` x ``--samples`` float32 at 25.6 kHz: noise, shaft harmonics, and an
outer-race impulse train ringing a 5 kHz resonance in a third of the rows) and, when ``DATA_DIR`` is given,
the first snapshots of that dataset's waveforms (one length, one sample rate).

Rows of the table, all in M samples/s (snapshot samples processed per second, one thread, best of
``--repeats``):

* ``wearcast``: ``features.vibration.vibration_features`` on the whole batch.
* ``naive loop``: the same feature set computed snapshot by snapshot with numpy / scipy.stats /
  scipy.signal.hilbert / np.fft.rfft, the way it is usually written, on ``--naive-snapshots`` rows (its
  per-sample rate does not depend on the batch size). Its agreement with wearcast is printed as a check that
  the two compute the same features.
* ``rfft alone``: ``scipy.fft.rfft`` of the float32 batch, the floor of any spectral feature set.
* ``tsfel``: its statistical + spectral feature set, if tsfel is installed (it is not a dependency).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread everywhere

import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.fft as sfft
import scipy.signal
import scipy.stats

from features.bearings import defect_orders
from features.vibration import (
    STANDARD_GRAVITY_M_S2,
    VibrationConfig,
    band_feature_name,
    vibration_features,
)

FS_HZ = 25600.0
SHAFT_HZ = 30.0
GEOMETRY = {"n_balls": 13, "ball_diameter_mm": 3.5, "pitch_diameter_mm": 25.6}  # PRONOSTIA test bearing
AUTO_REGION_FS, AUTO_WIDTH_FS, AUTO_GRID, AUTO_DOMINANCE = (0.1, 0.4), 0.1, 8, 2.0  # as features.vibration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, nargs="?", help="optional dataset folder with waveforms")
    parser.add_argument("--snapshots", type=int, default=10_000, help="snapshots per batch")
    parser.add_argument("--samples", type=int, default=2560, help="samples per synthetic snapshot")
    parser.add_argument("--naive-snapshots", type=int, default=300, help="rows timed for the naive loop")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_batch(n_rows: int, n_samples: int, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Float32 snapshots in g: noise + 1x/2x shaft + outer-race impacts on a 5 kHz resonance (every 3rd row)."""
    rng = np.random.default_rng(seed)
    orders = {k: float(v) for k, v in defect_orders(**GEOMETRY).items()}
    t = (np.arange(n_samples) / FS_HZ).astype(np.float32)
    since = np.mod(t, 1.0 / (orders["bpfo"] * SHAFT_HZ))
    impacts = (np.exp(-since * 900.0) * np.sin(2 * np.pi * 5000.0 * since)).astype(np.float32)
    shaft = (0.2 * np.sin(2 * np.pi * SHAFT_HZ * t) + 0.05 * np.sin(4 * np.pi * SHAFT_HZ * t)).astype(
        np.float32
    )
    values = rng.standard_normal((n_rows, n_samples), dtype=np.float32)
    values *= 0.3
    values += shaft
    values[::3] += impacts
    return values, orders


def real_batch(data_dir: Path, n_rows: int) -> tuple[np.ndarray, float, np.ndarray, dict[str, np.ndarray]]:
    """The first ``n_rows`` snapshots of the most common (sample rate, length) in a dataset, with speeds."""
    from features.build import shaft_speed_hz, snapshot_defect_orders
    from features.dataset import load_dataset

    dataset = load_dataset(data_dir)
    meta = dataset.waveforms.meta
    if meta.empty:
        raise SystemExit(f"{data_dir}: no waveforms")
    rate, length = meta.groupby(["sample_rate_hz", "n_samples"]).size().idxmax()
    rows = np.flatnonzero(((meta["sample_rate_hz"] == rate) & (meta["n_samples"] == length)).to_numpy())[
        :n_rows
    ]
    orders = {k: v[rows] for k, v in snapshot_defect_orders(dataset).items()}
    return dataset.waveforms.batch(rows), float(rate), shaft_speed_hz(dataset)[rows], orders


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best wall time (s) of ``repeats`` runs, after one untimed run (plans, first-touch page faults)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_amplitude(
    hann_spectrum: np.ndarray, target_hz: float, bin_hz: float, tolerance: float, n: int
) -> float:
    """Largest Hann-windowed amplitude (g) within target*(1 +- tol); NaN if the target cannot be read."""
    if not (np.isfinite(target_hz) and target_hz > 0):
        return float("nan")
    lo = max(int(np.rint(target_hz * (1 - tolerance) / bin_hz)), 1)
    hi = min(int(np.rint(target_hz * (1 + tolerance) / bin_hz)), len(hann_spectrum) - 2)
    if lo > hi:
        return float("nan")
    return float(np.abs(hann_spectrum[lo : hi + 1]).max() * 4.0 / n)


def envelope_bins(power: np.ndarray, freqs: np.ndarray, fs: float) -> tuple[int, int]:
    """rfft bins [first, last] demodulated: the dominant 0.1*fs window of 0.1..0.4*fs, else that region."""
    region = np.flatnonzero((freqs >= AUTO_REGION_FS[0] * fs) & (freqs < AUTO_REGION_FS[1] * fs))
    region = region[(region >= 1) & (region <= len(freqs) - 2)]
    k0, k1 = int(region[0]), int(region[-1]) + 1
    width = round(AUTO_WIDTH_FS * fs / freqs[1])
    block = width // AUTO_GRID
    n_blocks = (k1 - k0) // block
    blocks = [power[k0 + b * block : k0 + (b + 1) * block].sum() for b in range(n_blocks)]
    windows = [sum(blocks[s : s + AUTO_GRID]) for s in range(n_blocks - AUTO_GRID + 1)]
    start = int(np.argmax(windows))
    if windows[start] / AUTO_GRID >= AUTO_DOMINANCE * sum(blocks) / n_blocks:
        return k0 + start * block, k0 + (start + AUTO_GRID) * block - 1
    return k0, k1 - 1


def naive_snapshot(x: np.ndarray, fs: float, shaft_hz: float, orders: dict, config: VibrationConfig) -> dict:
    """The wearcast feature set of one snapshot, written plainly (float64, one FFT per purpose)."""
    n = len(x)
    x = x.astype(np.float64) - x.mean()
    out = {"rms": np.sqrt(np.mean(x**2)), "peak": np.max(np.abs(x)), "peak_to_peak": x.max() - x.min()}
    mean_abs = np.mean(np.abs(x))
    out |= {
        "crest_factor": out["peak"] / out["rms"],
        "kurtosis": scipy.stats.kurtosis(x, fisher=False),
        "skewness": scipy.stats.skew(x),
        "shape_factor": out["rms"] / mean_abs,
        "impulse_factor": out["peak"] / mean_abs,
    }
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    power = np.abs(spectrum) ** 2 / n**2
    power[1 : -1 if n % 2 == 0 else None] *= 2.0
    nyquist = fs / 2
    for lo, hi in config.bands_hz:
        inside = (freqs >= lo) & ((freqs < hi) | ((freqs == nyquist) & (hi >= nyquist)))
        out[band_feature_name(lo, hi)] = power[inside].sum()
    out["spectral_centroid_hz"] = (freqs * power).sum() / power.sum()
    out["hf_ratio"] = power[freqs >= config.hf_split_hz].sum() / power.sum()
    lo, hi = config.velocity_band_hz
    band = (freqs >= lo) & (freqs < hi)
    out["velocity_rms_mm_s"] = np.sqrt(
        (power[band] * (STANDARD_GRAVITY_M_S2 * 1000 / (2 * np.pi * freqs[band])) ** 2).sum()
    )
    window = scipy.signal.get_window("hann", n)
    hann = np.fft.rfft(x * window)
    for k in (1, 2, 3):
        out[f"order_{k}x_amp"] = peak_amplitude(hann, k * shaft_hz, fs / n, config.defect_tolerance, n)
    first, last = envelope_bins(np.abs(spectrum) ** 2, freqs, fs)
    passband = np.zeros_like(spectrum)
    passband[first : last + 1] = spectrum[first : last + 1]
    envelope = np.abs(scipy.signal.hilbert(np.fft.irfft(passband, n)))
    envelope -= envelope.mean()
    env_hann = np.fft.rfft(envelope * window)
    for harmonic in (1, 2):
        for name in ("bpfo", "bpfi", "bsf", "ftf"):
            suffix = f"envelope__{name}{'_2x' if harmonic == 2 else ''}_amp"
            target = harmonic * orders[name] * shaft_hz
            out[suffix] = peak_amplitude(env_hann, target, fs / n, config.defect_tolerance, n)
    out["envelope__rms"] = np.sqrt(np.mean(envelope**2))
    return out


def naive_loop(
    values: np.ndarray, fs: float, shaft: np.ndarray, orders: dict, config: VibrationConfig
) -> dict:
    """Naive features of every row (a Python loop over snapshots), as arrays."""
    rows = [
        naive_snapshot(values[i], fs, float(shaft[i]), {k: float(v[i]) for k, v in orders.items()}, config)
        for i in range(len(values))
    ]
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def agreement(ours: dict, naive: dict, n_rows: int) -> str:
    """Median relative difference per feature group between wearcast and the naive loop."""
    groups = {"time": ("rms", "kurtosis", "skewness"), "spectral": ("hf_ratio", "velocity_rms_mm_s")}
    groups |= {"orders": ("order_1x_amp",), "envelope": ("envelope__rms", "envelope__bpfo_amp")}
    parts = []
    for group, names in groups.items():
        diffs = [
            np.nanmedian(np.abs(ours[k][:n_rows] - naive[k]) / np.maximum(np.abs(naive[k]), 1e-12))
            for k in names
        ]
        parts.append(f"{group} {max(diffs):.1e}")
    return "median relative difference wearcast vs naive: " + ", ".join(parts)


def tsfel_rate(values: np.ndarray, fs: float, n_rows: int, repeats: int) -> float | None:
    """tsfel statistical + spectral features on ``n_rows`` snapshots (M samples/s), or None if not installed."""
    if importlib.util.find_spec("tsfel") is None:
        return None
    import tsfel

    config = tsfel.get_features_by_domain()
    config.pop("temporal", None)
    subset = values[:n_rows]
    seconds = best_time(
        lambda: [tsfel.time_series_features_extractor(config, row, fs=fs, verbose=0) for row in subset], 1
    )
    return subset.size / seconds / 1e6


def measure(
    label: str, values: np.ndarray, fs: float, shaft: np.ndarray, orders: dict, args: argparse.Namespace
) -> dict[str, float]:
    """M samples/s of wearcast, the naive loop, rfft alone (and tsfel) on one batch; prints the agreement."""
    config = VibrationConfig()
    vibration_features(values[:64], fs, shaft[:64], {k: v[:64] for k, v in orders.items()}, config)  # warm-up
    ours = vibration_features(values, fs, shaft, orders, config)
    rates = {
        "wearcast": values.size
        / best_time(lambda: vibration_features(values, fs, shaft, orders, config), args.repeats)
        / 1e6
    }
    k = min(args.naive_snapshots, len(values))
    sub = {name: v[:k] for name, v in orders.items()}
    naive = naive_loop(values[:k], fs, shaft[:k], sub, config)
    seconds = best_time(lambda: naive_loop(values[:k], fs, shaft[:k], sub, config), max(1, args.repeats - 1))
    rates["naive loop"] = values[:k].size / seconds / 1e6
    rates["rfft alone"] = values.size / best_time(lambda: sfft.rfft(values, axis=1), args.repeats) / 1e6
    tsfel = tsfel_rate(values, fs, min(k, 50), args.repeats)
    if tsfel is None:
        print(
            f"[{label}] tsfel is not installed: tsfel baseline skipped (not a dependency; not installed here)"
        )
    else:
        rates["tsfel"] = tsfel
    print(f"[{label}] {agreement(ours, naive, k)} (on {k} snapshots)")
    return rates


def print_table(results: dict[str, dict[str, float]]) -> None:
    print(f"{'batch':<28} {'method':<12} {'M samples/s':>12} {'wearcast is':>14}")
    for batch, rates in results.items():
        for method, rate in rates.items():
            ratio = rates["wearcast"] / rate
            print(f"{batch:<28} {method:<12} {rate:>12.2f} {ratio:>13.2f}x")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {}
    values, orders = synthetic_batch(args.snapshots, args.samples, args.seed)
    shaft = np.full(len(values), SHAFT_HZ)
    per_row = {k: np.full(len(values), v) for k, v in orders.items()}
    name = f"synthetic {values.shape[0]}x{values.shape[1]}"
    results[name] = measure(name, values, FS_HZ, shaft, per_row, args)
    if args.data_dir is not None:
        real, fs, real_shaft, real_orders = real_batch(args.data_dir, args.snapshots)
        name = f"{args.data_dir.name} {real.shape[0]}x{real.shape[1]}"
        results[name] = measure(name, real, fs, real_shaft, real_orders, args)
    print("one thread (OMP/OpenBLAS/MKL = 1, scipy.fft workers = 1); best of", args.repeats, "runs")
    print_table(results)
    rates = next(iter(results.values()))
    print(
        f"wearcast vibration features {rates['wearcast']:.0f} M samples/s = "
        f"{rates['wearcast'] / rates['naive loop']:.1f}x naive loop, "
        f"{rates['wearcast'] / rates['rfft alone']:.2f}x of rfft alone "
        f"(synthetic {args.snapshots} x {args.samples} float32, one thread)"
    )


if __name__ == "__main__":
    main()
