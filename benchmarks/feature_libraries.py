# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Throughput of wearcast's vibration features against tsfel and tsfresh, same snapshots, same run, one thread.

Usage: ``python benchmarks/feature_libraries.py [DATA_DIR] [--snapshots 10000] [--subset 2000]``

Batch: ``--snapshots`` synthetic float32 snapshots of 2,560 samples at 25.6 kHz (noise, shaft harmonics and an
outer-race impulse train on a 5 kHz resonance in a third of the rows) or, with ``DATA_DIR``, the first
``--snapshots`` snapshots of that dataset (most common length and sample rate, e.g. real PRONOSTIA).

Rows (M samples/s = snapshot samples processed per CPU second of this process, one thread; OMP/OpenBLAS/MKL
threads = 1; CPU time, not wall time, so that other jobs on a shared machine do not lower the rates):

* ``wearcast``: ``features.vibration.vibration_features`` on the whole 2-D batch: its whole set (time
  statistics, band energies, spectral centroid, HF ratio, velocity RMS, 1-3x orders, envelope spectrum at the
  defect frequencies and their SNRs, envelope RMS; the count is in the table), best of ``--repeats`` after a
  warm-up.
* ``wearcast (no envelope)``: the same call with ``VibrationConfig(envelope=False)``: every feature but the
  envelope analysis (time statistics, band energies, centroid, HF ratio, velocity RMS, orders), i.e. the
  features that tsfel's nearest equivalents cover: the like-for-like row.
* ``tsfel``: ``tsfel.calc_window_features`` per snapshot (the extractor's own per-window step) with its nearest
  equivalents, listed in ``TSFEL_FEATURES``. tsfel has no envelope analysis, order tracking or band energies in
  Hz; its spectrogram mean coefficients (band PSDs) are the nearest to band energies.
* ``tsfel (functions)``: the same tsfel functions called directly per snapshot, without the extractor's
  DataFrame bookkeeping: tsfel's best case.
* ``tsfel (full stat+spectral)``: for reference, tsfel's whole statistical + spectral domains (its default
  configuration of those domains, sample rate set), on the first ``--reference-subset`` snapshots.
* ``tsfresh``: ``tsfresh.extract_features`` on a long DataFrame (id, value) with the custom ``fc_parameters`` in
  ``TSFRESH_FC_PARAMETERS`` (``n_jobs=0``, ``disable_progressbar=True``); building the DataFrame is timed too.

tsfel and tsfresh run on the first ``--subset`` snapshots of the same batch (one timed run each): their
per-sample rate does not depend on the batch size. The table is saved as CSV (default
``benchmarks/results/feature_libraries.csv``, ``feature_libraries_<DATA_DIR name>.csv`` for a dataset); the last
line printed is the headline.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread everywhere

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from synthetic import FS_HZ, GEOMETRY, SHAFT_HZ, synthetic_batch

from features.bearings import defect_orders
from features.vibration import VibrationConfig, vibration_features

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "feature_libraries.csv"

# tsfel 0.2 feature names (domain, name) nearest to wearcast's set, with the wearcast feature each stands for.
TSFEL_FEATURES = {
    ("statistical", "Root mean square"): "rms",
    ("statistical", "Standard deviation"): "rms (mean removed)",
    ("statistical", "Max"): "peak",
    ("statistical", "Min"): "peak",
    ("statistical", "Peak to peak distance"): "peak_to_peak",
    ("statistical", "Kurtosis"): "kurtosis",
    ("statistical", "Skewness"): "skewness",
    ("statistical", "Mean absolute deviation"): "shape/impulse factor denominator",
    ("spectral", "Spectral centroid"): "spectral_centroid_hz",
    ("spectral", "Spectrogram mean coefficient"): "band energies (32 PSD bins)",
    ("spectral", "Human range energy"): "hf_ratio (band energy ratio)",
    ("spectral", "Max power spectrum"): "order / peak amplitudes",
}

# tsfresh custom set: the comparable calculators. Welch bins are 100 Hz wide (nperseg 256 at 25.6 kHz): one bin
# inside each wearcast band; FFT bins are 10 Hz wide: coefficients 3, 6, 9 = 1x, 2x, 3x of a 30 Hz shaft.
TSFRESH_FC_PARAMETERS = {
    "root_mean_square": None,
    "standard_deviation": None,
    "maximum": None,
    "minimum": None,
    "absolute_maximum": None,
    "kurtosis": None,
    "skewness": None,
    "fft_aggregated": [{"aggtype": a} for a in ("centroid", "variance", "skew", "kurtosis")],
    "fft_coefficient": [{"coeff": k, "attr": "abs"} for k in (3, 6, 9)],
    "spkt_welch_density": [{"coeff": k} for k in (2, 7, 15, 35)],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, nargs="?", help="optional dataset folder with waveforms")
    parser.add_argument("--snapshots", type=int, default=10_000, help="snapshots in the batch (wearcast)")
    parser.add_argument("--samples", type=int, default=2560, help="samples per synthetic snapshot")
    parser.add_argument("--subset", type=int, default=2000, help="snapshots timed for tsfel and tsfresh")
    parser.add_argument(
        "--reference-subset", type=int, default=300, help="snapshots timed for tsfel's full domains"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed wearcast runs; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        help=f"CSV of the table (default {DEFAULT_OUT.name}, or _<DATA_DIR name> with data)",
    )
    return parser.parse_args(argv)


def synthetic_inputs(args: argparse.Namespace) -> tuple[str, np.ndarray, float, np.ndarray, dict]:
    """Label, values, sample rate, shaft speed (Hz) per row and defect orders per row of the synthetic batch."""
    values = synthetic_batch(args.snapshots, args.samples, args.seed)
    n = len(values)
    orders = {k: np.full(n, float(v)) for k, v in defect_orders(**GEOMETRY).items()}
    return f"synthetic {n} x {args.samples}", values, FS_HZ, np.full(n, SHAFT_HZ), orders


def real_inputs(data_dir: Path, n_rows: int) -> tuple[str, np.ndarray, float, np.ndarray, dict]:
    """The first ``n_rows`` snapshots of the most common (sample rate, length) of a dataset, with speeds."""
    from features.build import shaft_speed_hz, snapshot_defect_orders
    from features.dataset import load_dataset

    dataset = load_dataset(data_dir)
    meta = dataset.waveforms.meta
    if meta.empty:
        raise SystemExit(f"{data_dir}: no waveforms")
    rate, length = meta.groupby(["sample_rate_hz", "n_samples"]).size().idxmax()
    same = (meta["sample_rate_hz"] == rate) & (meta["n_samples"] == length)
    rows = np.flatnonzero(same.to_numpy())[:n_rows]
    orders = {k: v[rows] for k, v in snapshot_defect_orders(dataset).items()}
    values = dataset.waveforms.batch(rows)
    label = f"{data_dir.name} {values.shape[0]} x {values.shape[1]}"
    return label, values, float(rate), shaft_speed_hz(dataset)[rows], orders


def timed(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best CPU time (s, this process: one thread, no worker processes) of ``repeats`` runs, last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        result = run()
        best = min(best, time.process_time() - start)
    return best, result


def tsfel_config(fs: float) -> dict:
    """tsfel's feature configuration reduced to ``TSFEL_FEATURES``, with the batch's sample rate."""
    import tsfel

    full = tsfel.get_features_by_domain()
    config: dict[str, dict] = {}
    for domain, name in TSFEL_FEATURES:
        entry = dict(full[domain][name])
        if isinstance(entry.get("parameters"), dict) and "fs" in entry["parameters"]:
            entry["parameters"] = {**entry["parameters"], "fs": fs}
        config.setdefault(domain, {})[name] = entry
    return config


def tsfel_full_config(fs: float) -> dict:
    """tsfel's default configuration of its statistical and spectral domains, with the batch's sample rate."""
    import tsfel

    config = {d: tsfel.get_features_by_domain()[d] for d in ("statistical", "spectral")}
    for features in config.values():
        for entry in features.values():
            if isinstance(entry.get("parameters"), dict) and "fs" in entry["parameters"]:
                entry["parameters"] = {**entry["parameters"], "fs": fs}
    return config


def run_tsfel(values: np.ndarray, fs: float, config: dict | None = None) -> pd.DataFrame:
    """tsfel features of every row: its per-window extraction step, one DataFrame at the end."""
    import tsfel

    config = config or tsfel_config(fs)
    return pd.concat([tsfel.calc_window_features(config, row, fs, verbose=0) for row in values])


def tsfel_functions(fs: float) -> list[Callable[[np.ndarray], object]]:
    """The chosen tsfel feature functions, bound to their configured parameters."""
    import tsfel

    calls = []
    for features in tsfel_config(fs).values():
        for entry in features.values():
            function = getattr(tsfel, entry["function"].split(".")[-1])
            params = entry.get("parameters") or {}
            calls.append(lambda x, f=function, p=params: f(x, **p))
    return calls


def run_tsfel_functions(values: np.ndarray, fs: float) -> list[list[object]]:
    """The same tsfel functions called directly on each row (no extractor bookkeeping)."""
    calls = tsfel_functions(fs)
    return [[call(row) for call in calls] for row in values]


def run_tsfresh(values: np.ndarray) -> pd.DataFrame:
    """tsfresh features of every row from a long (id, value) DataFrame, one process."""
    from tsfresh import extract_features

    n, length = values.shape
    long = pd.DataFrame({"id": np.repeat(np.arange(n), length), "value": values.ravel()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return extract_features(
            long,
            column_id="id",
            default_fc_parameters=TSFRESH_FC_PARAMETERS,
            n_jobs=0,
            disable_progressbar=True,
        )


def n_tsfel_features(fs: float, row: np.ndarray) -> int:
    import tsfel

    return tsfel.calc_window_features(tsfel_config(fs), row, fs, verbose=0).shape[1]


def median_relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.nanmedian(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)))


def check_agreement(ours: dict, fresh: pd.DataFrame, n_samples: int) -> str:
    """Median relative difference of wearcast's rms, skewness and peak-to-peak against tsfresh's: a check that
    they compute the same thing. tsfresh's rms includes the mean, so its standard deviation is compared; its
    skewness is pandas' bias-corrected G1, so wearcast's g1 is scaled by sqrt(n (n - 1)) / (n - 2) first."""
    k = len(fresh)
    g1_to_G1 = np.sqrt(n_samples * (n_samples - 1.0)) / (n_samples - 2.0)
    rms = median_relative(ours["rms"][:k], fresh["value__standard_deviation"].to_numpy())
    skew = median_relative(ours["skewness"][:k] * g1_to_G1, fresh["value__skewness"].to_numpy())
    peak = median_relative(
        ours["peak_to_peak"][:k], (fresh["value__maximum"] - fresh["value__minimum"]).to_numpy()
    )
    return (
        f"agreement wearcast vs tsfresh (median relative difference): rms {rms:.1e}, "
        f"skewness {skew:.1e} (after the G1 bias correction), peak_to_peak {peak:.1e}"
    )


def measure(
    values: np.ndarray, fs: float, shaft: np.ndarray, orders: dict, args: argparse.Namespace
) -> list[dict]:
    """One table row per library: snapshots and seconds timed, M samples/s."""
    config = VibrationConfig()
    vibration_features(values[:256], fs, shaft[:256], {k: v[:256] for k, v in orders.items()}, config)
    seconds, ours = timed(lambda: vibration_features(values, fs, shaft, orders, config), args.repeats)
    rows = [_row("wearcast", "whole vibration set", len(ours), values, seconds)]
    lean = VibrationConfig(envelope=False)
    seconds, plain = timed(lambda: vibration_features(values, fs, shaft, orders, lean), args.repeats)
    computed = sum(not np.isnan(v).all() for v in plain.values())
    rows.append(
        _row("wearcast (no envelope)", "envelope=False: what tsfel covers", computed, values, seconds)
    )
    subset = values[: min(args.subset, len(values))]
    run_tsfel(subset[:4], fs)  # imports, numba/JIT-free warm-up
    seconds, _ = timed(lambda: run_tsfel(subset, fs), 1)
    rows.append(
        _row("tsfel", "calc_window_features per snapshot", n_tsfel_features(fs, subset[0]), subset, seconds)
    )
    seconds, _ = timed(lambda: run_tsfel_functions(subset, fs), 1)
    rows.append(
        _row("tsfel (functions)", "same functions called directly", rows[-1]["features"], subset, seconds)
    )
    reference = values[: min(args.reference_subset, len(values))]
    full = tsfel_full_config(fs)
    seconds, out = timed(lambda: run_tsfel(reference, fs, full), 1)
    rows.append(
        _row("tsfel (full stat+spectral)", "reference: all 2 domains", out.shape[1], reference, seconds)
    )
    run_tsfresh(subset[:4])
    seconds, fresh = timed(lambda: run_tsfresh(subset), 1)
    rows.append(_row("tsfresh", "extract_features n_jobs=0", fresh.shape[1], subset, seconds))
    print(check_agreement(ours, fresh, values.shape[1]))
    return rows


def _row(library: str, how: str, n_features: int, values: np.ndarray, seconds: float) -> dict:
    return {
        "library": library,
        "how": how,
        "features": n_features,
        "snapshots_timed": len(values),
        "seconds": seconds,
        "M_samples_per_s": values.size / seconds / 1e6,
    }


def print_table(table: pd.DataFrame) -> None:
    shown = table.assign(
        seconds=table["seconds"].round(3),
        M_samples_per_s=table["M_samples_per_s"].round(3),
        wearcast_is=table["wearcast_is_x"].map(lambda v: f"{v:,.0f}x" if v >= 10 else f"{v:.2f}x"),
    ).drop(columns="wearcast_is_x")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(shown.to_string(index=False))


def headline(table: pd.DataFrame, label: str) -> str:
    rate = table.set_index("library")["M_samples_per_s"]
    ours, lean = rate["wearcast"], rate["wearcast (no envelope)"]
    full = rate["tsfel (full stat+spectral)"]
    return (
        f"wearcast {ours:.0f} M samples/s = {ours / rate['tsfel']:,.0f}x tsfel ({rate['tsfel']:.2f} M/s, "
        f"nearest equivalents; {ours / full:,.0f}x its full statistical+spectral set at {full:.2f} M/s); "
        f"like for like, without the envelope analysis tsfel does not have, {lean:.0f} M samples/s = "
        f"{lean / rate['tsfel']:,.0f}x tsfel; "
        f"{ours / rate['tsfresh']:,.0f}x tsfresh ({rate['tsfresh']:.2f} M/s), same {label} batch, one thread "
        f"(tsfel/tsfresh: per-sample rates on its first {table['snapshots_timed'].iloc[-1]} snapshots)"
    )


def default_out(data_dir: Path | None) -> Path:
    """benchmarks/results/feature_libraries.csv, or feature_libraries_<dataset>.csv for a dataset's batch."""
    if data_dir is None:
        return DEFAULT_OUT
    return DEFAULT_OUT.with_name(f"{DEFAULT_OUT.stem}_{data_dir.resolve().name}.csv")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.data_dir is None:
        label, values, fs, shaft, orders = synthetic_inputs(args)
    else:
        label, values, fs, shaft, orders = real_inputs(args.data_dir, args.snapshots)
    print(f"batch: {label} float32 at {fs:g} Hz; one thread (OMP/OpenBLAS/MKL = 1)")
    print("tsfel features:", ", ".join(f"{name} ({domain})" for domain, name in TSFEL_FEATURES))
    print("tsfresh fc_parameters:", TSFRESH_FC_PARAMETERS)
    load_before = os.getloadavg()[0]
    table = pd.DataFrame(measure(values, fs, shaft, orders, args))
    print(
        f"load average (1 min, 2 cores; this benchmark adds about 1) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    table.insert(0, "batch", label)
    table["wearcast_is_x"] = table["M_samples_per_s"].iloc[0] / table["M_samples_per_s"]
    out = args.out or default_out(args.data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print_table(table)
    print(f"table saved to {out}")
    print(headline(table, label))


if __name__ == "__main__":
    main()
