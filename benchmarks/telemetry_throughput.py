# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Throughput of the as-of telemetry features when scoring a fleet, against the pandas rolling path in one run.

Usage: ``python benchmarks/telemetry_throughput.py [--machines 100000] [--days 7] [--baseline-machines 2000]``

Data: synthetic hourly telemetry for ``--machines`` machines over ``--days`` days, 4 sensors (bearing and
ambient temperature, shaft speed, load; ~1 % of bearing temperatures missing), machine ids as strings, rows
grouped by machine and in time order as ``load_dataset`` returns them. As-of rows: each machine at its latest
reading (one per machine, as when scoring). Windows 24 h and 168 h, max age 24 h (``FeatureConfig``).

Rows of the table, in machines per CPU second of this single-threaded process (best of ``--repeats`` runs),
as the other speed benchmarks: time spent waiting for a core while other jobs run is not work done. (Before
the sixth sitting of 2026-11-27 this benchmark timed wall clock.)

* ``wearcast as-of``: ``features.telemetry.telemetry_features_asof`` on the whole fleet.
* ``pandas rolling``: ``telemetry_feature_rows`` (groupby-rolling features at every telemetry row) then
  ``asof_join``, the path it replaces, on the first ``--baseline-machines`` machines; its cost is linear in
  the rows, so machines/s on a subset is its fleet rate. The two are checked to agree on that subset.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread everywhere

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from features.build import FeatureConfig
from features.telemetry import asof_join, telemetry_feature_rows, telemetry_features_asof

SENSORS = ("temperature_bearing", "temperature_ambient", "speed_rpm", "load_pct")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=100_000, help="machines in the fleet")
    parser.add_argument("--days", type=int, default=7, help="days of hourly telemetry per machine")
    parser.add_argument(
        "--baseline-machines", type=int, default=2000, help="machines timed on the pandas path"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_fleet(machines: int, days: int, seed: int) -> pd.DataFrame:
    """Hourly telemetry, grouped by machine and in time order: daily ambient cycle, load shifts, heating bearings."""
    rng = np.random.default_rng(seed)
    hours = 24 * days
    ids = np.array([f"M{i:06d}" for i in range(machines)], dtype=object)
    stamps = np.datetime64("2026-03-01T00:00", "us") + np.arange(hours) * np.timedelta64(1, "h")
    hour_of_day = np.arange(hours) % 24
    ambient = 18 + 6 * np.sin(2 * np.pi * (hour_of_day - 9) / 24) + rng.normal(0, 3, (machines, 1))
    load = np.clip(
        np.where((hour_of_day >= 6) & (hour_of_day < 22), 80, 35) + rng.normal(0, 5, (machines, hours)),
        0,
        100,
    )
    heating = rng.exponential(0.02, (machines, 1)) * np.arange(hours)  # a few machines heat up over the week
    bearing = ambient + 0.25 * load + heating + rng.normal(0, 0.3, (machines, hours))
    bearing[rng.random((machines, hours)) < 0.01] = np.nan
    speed = 1480 - 0.2 * load + rng.normal(0, 1.0, (machines, hours))
    return pd.DataFrame(
        {
            "machine_id": np.repeat(ids, hours),
            "timestamp": pd.Series(np.tile(stamps, machines)).dt.tz_localize("UTC"),  # as load_dataset
            "temperature_bearing": bearing.ravel(),
            "temperature_ambient": (ambient + rng.normal(0, 0.15, (machines, hours))).ravel(),
            "speed_rpm": speed.ravel(),
            "load_pct": load.ravel(),
        }
    )


def latest_per_machine(telemetry: pd.DataFrame) -> pd.DataFrame:
    """One as-of row per machine: its latest reading, as when scoring the fleet."""
    return telemetry.groupby("machine_id", sort=False)["timestamp"].max().reset_index()


def best_time(run: Callable[[], pd.DataFrame], repeats: int) -> tuple[float, pd.DataFrame]:
    """Best CPU time (s) of ``repeats`` runs after one untimed run (first-touch page faults), and the result."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times), result


def pandas_path(telemetry: pd.DataFrame, as_of: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """The path ``telemetry_features_asof`` replaces: features at every row, then the as-of join."""
    rows = telemetry_feature_rows(telemetry, config.windows_h)
    return asof_join(as_of, rows, config.telemetry_max_age_h).drop(columns=["machine_id", "timestamp"])


def agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> str:
    """Largest difference between the two paths relative to each column's spread, and NaN disagreements."""
    a, b = ours[theirs.columns].to_numpy(), theirs.to_numpy()
    scale = np.nanstd(b, axis=0) + np.nanmean(np.abs(b), axis=0) + 1e-12
    both = ~np.isnan(a) & ~np.isnan(b)
    worst = np.nanmax(np.where(both, np.abs(a - b) / scale, 0.0))
    nan_diff = int((np.isnan(a) != np.isnan(b)).sum())
    return f"largest difference {worst:.1e} of a column's scale, {nan_diff} NaN disagreements"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = FeatureConfig()
    telemetry = synthetic_fleet(args.machines, args.days, args.seed)
    as_of = latest_per_machine(telemetry)
    fast = lambda tel, rows: telemetry_features_asof(  # noqa: E731
        tel, rows, config.windows_h, config.telemetry_max_age_h
    )
    seconds, _ = best_time(lambda: fast(telemetry, as_of), args.repeats)
    rates = {"wearcast as-of": len(as_of) / seconds}
    k = min(args.baseline_machines, args.machines)
    subset, sub_as_of = telemetry.iloc[: k * 24 * args.days], as_of.iloc[:k]
    seconds, theirs = best_time(lambda: pandas_path(subset, sub_as_of, config), 1)
    rates["pandas rolling"] = k / seconds
    print(f"[check on {k} machines] {agreement(fast(subset, sub_as_of), theirs)}")
    load = os.getloadavg()[0]
    print(
        f"one thread, CPU time; best of {args.repeats} runs (pandas rolling: 1 run after a warm-up, on {k} "
        f"machines); load average (1 min) {load:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'method':<16} {'machines/s':>12} {'wearcast is':>12}")
    for method, rate in rates.items():
        print(f"{method:<16} {rate:>12,.0f} {rates['wearcast as-of'] / rate:>11.1f}x")
    print(
        f"telemetry as-of features: {rates['wearcast as-of']:,.0f} machines/s of CPU time ({args.machines} machines x "
        f"{args.days} days hourly, {len(SENSORS)} sensors, {len(config.windows_h)} windows) = "
        f"{rates['wearcast as-of'] / rates['pandas rolling']:.0f}x the pandas rolling path"
    )


if __name__ == "__main__":
    main()
