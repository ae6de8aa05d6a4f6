# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Throughput of the vibration feature set on one thread, against named baselines in the same run.

Usage: ``python benchmarks/vibration_throughput.py [DATA_DIR] [--snapshots 10000] [--samples 2560]``

Batches: synthetic (``--snapshots`` x ``--samples`` float32 at 25.6 kHz: noise, shaft harmonics, and an
outer-race impulse train with 1 % slip jitter ringing a 5 kHz resonance in a third of the rows) and, when
``DATA_DIR`` is given, the first snapshots of that dataset's waveforms (one length, one sample rate).

Rows of the table, all in M samples/s (snapshot samples processed per CPU second of this single-threaded
process, best of ``--repeats``, the methods interleaved so that each sees the same machine load). CPU time,
not wall time: on a shared machine, time spent waiting for a core is not work done, and wall-clock rates of
every method (the rfft ceiling included) drop with the other jobs' load; the load average is printed.

* ``wearcast``: ``features.vibration.vibration_features`` on the whole batch: every feature, both envelopes
  (band and whitened band), the line SNRs.
* ``rfft alone``: one float32 ``scipy.fft.rfft`` of the same batch: the ceiling of any spectral feature set
  (targets: wearcast >= 20 % of it, and >= 150 M samples/s where rfft runs at about 790 M samples/s).
* ``naive loop``: the same feature set computed snapshot by snapshot with numpy / scipy.stats /
  scipy.signal.hilbert / np.fft.rfft, the way it is usually written, on ``--naive-snapshots`` rows (its
  per-sample rate does not depend on the batch size). Its agreement with wearcast is printed as a check that
  the two compute the same features.

tsfel and tsfresh are compared in ``benchmarks/feature_libraries.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread everywhere

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.fft as sfft
import scipy.signal
import scipy.stats

from features.bearings import DEFECT_NAMES, defect_orders
from features.vibration import (
    STANDARD_GRAVITY_M_S2,
    VibrationConfig,
    band_feature_name,
    vibration_features,
)

FS_HZ = 25600.0
SHAFT_HZ = 30.0
GEOMETRY = {"n_balls": 13, "ball_diameter_mm": 3.5, "pitch_diameter_mm": 25.6}  # PRONOSTIA test bearing
AUTO_REGION_FS, AUTO_WIDTH_FS, AUTO_GRID = (0.1, 0.4), 0.1, 8  # as features.vibration
SNR_LINES = {  # as features.vibration: (defect, harmonic, modulation or None)
    "bpfo_snr": ("bpfo", 1, None),
    "bpfi_snr": ("bpfi", 1, None),
    "bsf_snr": ("bsf", 1, None),
    "bsf_2x_snr": ("bsf", 2, None),
    "ftf_snr": ("ftf", 1, None),
    "bpfi_sideband_snr": ("bpfi", 1, "shaft"),
    "bsf_sideband_snr": ("bsf", 2, "ftf"),
}
TARGET_RATE, TARGET_SHARE = 150.0, 0.20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, nargs="?", help="optional dataset folder with waveforms")
    parser.add_argument("--snapshots", type=int, default=10_000, help="snapshots per batch")
    parser.add_argument("--samples", type=int, default=2560, help="samples per synthetic snapshot")
    parser.add_argument("--naive-snapshots", type=int, default=300, help="rows timed for the naive loop")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_batch(n_rows: int, n_samples: int, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """Float32 snapshots in g: noise + 1x/2x shaft + outer-race impacts on a 5 kHz resonance (every 3rd row)."""
    rng = np.random.default_rng(seed)
    orders = {k: float(v) for k, v in defect_orders(**GEOMETRY).items()}
    t = (np.arange(n_samples) / FS_HZ).astype(np.float32)
    period = 1.0 / (orders["bpfo"] * SHAFT_HZ)
    impacts_at = np.cumsum(period * (1 + 0.01 * rng.standard_normal(int(t[-1] / period) + 2)))
    after = t[:, None] - impacts_at[None, :]  # time since each impact
    since = np.where(after >= 0, after, np.inf).min(axis=1)
    since = np.where(np.isfinite(since), since, 1.0)
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


def best_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best CPU time (s, this process: one thread) of each run over ``repeats`` interleaved rounds, after one
    untimed round."""
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return best


def hann_spectrum(x: np.ndarray) -> np.ndarray:
    """|rfft| of the Hann-windowed signal."""
    return np.abs(np.fft.rfft(x * scipy.signal.get_window("hann", len(x))))


def bins_of(target_hz: float, half_hz: float, bin_hz: float, n_bins: int) -> tuple[int, int] | None:
    """Bin window [lo, hi] of target +- half, clipped to 1..n_bins-2; None if the target cannot be read."""
    if not (np.isfinite(target_hz) and 1 <= np.rint(target_hz / bin_hz) <= n_bins - 2):
        return None
    lo = int(np.clip(np.rint((target_hz - half_hz) / bin_hz), 1, n_bins - 2))
    return lo, int(np.clip(np.rint((target_hz + half_hz) / bin_hz), 1, n_bins - 2))


def peak_amplitude(hann: np.ndarray, target_hz: float, bin_hz: float, tolerance: float, n: int) -> float:
    """Largest Hann-windowed amplitude (g) within target*(1 +- tol); NaN if the target cannot be read."""
    window = bins_of(target_hz, target_hz * tolerance, bin_hz, len(hann))
    return float("nan") if window is None else float(hann[window[0] : window[1] + 1].max() * 4.0 / n)


def line_snr_db(hann: np.ndarray, target_hz: float, bin_hz: float, tolerance: float) -> float:
    """Peak within the tolerance over the median of 17 evenly spread bins within +-10 % (>= 8 bins), in dB."""
    peak = bins_of(target_hz, target_hz * tolerance, bin_hz, len(hann))
    floor = bins_of(target_hz, max(0.1 * target_hz, 8 * bin_hz), bin_hz, len(hann))
    if peak is None or floor is None:
        return float("nan")
    points = floor[0] + (floor[1] - floor[0]) * np.arange(17) // 16
    return float(20 * np.log10(hann[peak[0] : peak[1] + 1].max() / np.median(hann[points])))


def envelope_bins(power: np.ndarray, freqs: np.ndarray, fs: float) -> tuple[int, int]:
    """rfft bins [first, last] demodulated: the most powerful 0.1*fs window of 0.1..0.4*fs (1/8-width grid)."""
    region = np.flatnonzero((freqs >= AUTO_REGION_FS[0] * fs) & (freqs < AUTO_REGION_FS[1] * fs))
    region = region[(region >= 1) & (region <= len(freqs) - 2)]
    k0, k1 = int(region[0]), int(region[-1]) + 1
    block = round(AUTO_WIDTH_FS * fs / freqs[1]) // AUTO_GRID
    n_blocks = (k1 - k0) // block
    blocks = [power[k0 + b * block : k0 + (b + 1) * block].sum() for b in range(n_blocks)]
    windows = [sum(blocks[s : s + AUTO_GRID]) for s in range(n_blocks - AUTO_GRID + 1)]
    start = k0 + int(np.argmax(windows)) * block
    return start, start + AUTO_GRID * block - 1


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
    hann = hann_spectrum(x)
    for k in (1, 2, 3):
        out[f"order_{k}x_amp"] = peak_amplitude(hann, k * shaft_hz, fs / n, config.defect_tolerance, n)
    first, last = envelope_bins(np.abs(spectrum) ** 2, freqs, fs)
    envelopes = {}
    for kind, bins in (("raw", spectrum[first : last + 1]), ("whitened", spectrum[first : last + 1])):
        if kind == "whitened":
            bins = bins / np.abs(bins)  # cepstrum pre-whitening
        passband = np.zeros_like(spectrum)
        passband[first : last + 1] = bins
        envelope = np.abs(scipy.signal.hilbert(np.fft.irfft(passband, n)))
        envelopes[kind] = envelope - envelope.mean()
    env_hann = hann_spectrum(envelopes["raw"])
    for harmonic in (1, 2):
        for name in DEFECT_NAMES:
            suffix = f"envelope__{name}{'_2x' if harmonic == 2 else ''}_amp"
            target = harmonic * orders[name] * shaft_hz
            out[suffix] = peak_amplitude(env_hann, target, fs / n, config.defect_tolerance, n)
    out["envelope__rms"] = np.sqrt(np.mean(envelopes["raw"] ** 2))
    white_hann = hann_spectrum(envelopes["whitened"])
    frequency = {**{name: orders[name] * shaft_hz for name in DEFECT_NAMES}, "shaft": shaft_hz}
    for name, (defect, harmonic, modulation) in SNR_LINES.items():
        line = harmonic * frequency[defect]
        offsets = [0.0] if modulation is None else [-frequency[modulation], frequency[modulation]]
        targets = [line + offset for offset in offsets]
        snrs = [line_snr_db(white_hann, f, fs / n, config.defect_tolerance) for f in targets]
        out[f"envelope__{name}"] = float(np.mean(snrs))
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
    """Median relative difference per feature group between wearcast and the naive loop (SNRs: dB)."""
    groups = {"time": ("rms", "kurtosis"), "spectral": ("hf_ratio", "velocity_rms_mm_s")}
    groups |= {"orders": ("order_1x_amp",), "envelope": ("envelope__rms", "envelope__bpfo_amp")}
    parts = []
    for group, names in groups.items():
        diffs = [
            np.nanmedian(np.abs(ours[k][:n_rows] - naive[k]) / np.maximum(np.abs(naive[k]), 1e-12))
            for k in names
        ]
        parts.append(f"{group} {max(diffs):.1e}")
    snr = max(np.nanmedian(np.abs(ours[k][:n_rows] - naive[k])) for k in naive if k.endswith("_snr"))
    parts.append(f"line SNRs {snr:.2f} dB")
    return "median difference wearcast vs naive: " + ", ".join(parts)


def measure(
    label: str, values: np.ndarray, fs: float, shaft: np.ndarray, orders: dict, args: argparse.Namespace
) -> dict[str, float]:
    """M samples/s of wearcast, rfft alone and the naive loop on one batch; prints the agreement."""
    config = VibrationConfig()
    ours = vibration_features(values, fs, shaft, orders, config)
    seconds = best_times(
        {
            "wearcast": lambda: vibration_features(values, fs, shaft, orders, config),
            "rfft alone": lambda: sfft.rfft(values, axis=1),
        },
        args.repeats,
    )
    rates = {name: values.size / s / 1e6 for name, s in seconds.items()}
    k = min(args.naive_snapshots, len(values))
    sub = {name: v[:k] for name, v in orders.items()}
    naive = naive_loop(values[:k], fs, shaft[:k], sub, config)
    naive_seconds = best_times(
        {"naive": lambda: naive_loop(values[:k], fs, shaft[:k], sub, config)}, max(1, args.repeats // 2)
    )
    rates["naive loop"] = values[:k].size / naive_seconds["naive"] / 1e6
    print(f"[{label}] {agreement(ours, naive, k)} (on {k} snapshots)")
    return rates


def print_table(results: dict[str, dict[str, float]]) -> None:
    print(f"{'batch':<28} {'method':<12} {'M samples/s':>12} {'wearcast / method':>18}")
    for batch, rates in results.items():
        for method, rate in rates.items():
            print(f"{batch:<28} {method:<12} {rate:>12.2f} {rates['wearcast'] / rate:>17.3f}x")


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
    print(
        f"one thread (OMP/OpenBLAS/MKL = 1, scipy.fft workers = 1); best CPU time of {args.repeats} interleaved "
        f"runs; load average (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print_table(results)
    rates = next(iter(results.values()))
    share = rates["wearcast"] / rates["rfft alone"]
    verdict = "met" if rates["wearcast"] >= TARGET_RATE and share >= TARGET_SHARE else "NOT met"
    print(
        f"wearcast vibration features {rates['wearcast']:.0f} M samples/s = {100 * share:.1f} % of one float32 "
        f"rfft ({rates['rfft alone']:.0f} M samples/s) = {rates['wearcast'] / rates['naive loop']:.0f}x naive "
        f"loop (synthetic {args.snapshots} x {args.samples} float32, one thread; targets >= {TARGET_RATE:.0f} "
        f"M samples/s and >= {100 * TARGET_SHARE:.0f} % of rfft: {verdict})"
    )


if __name__ == "__main__":
    main()
