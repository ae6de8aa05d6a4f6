"""Append and read throughput of the Delta Lake history store, against plain Parquet files in one run.

Usage: ``python benchmarks/store_append.py [--machines 10000] [--history-days 3] [--repeats 3]``

Data: synthetic hourly telemetry of ``--machines`` machines for one day (4 sensors, string machine ids), the
shape of one daily inbox batch. The store already holds ``--history-days`` earlier days, so each append does
its duplicate check against stored keys (of the same day partition) as in production.

Rows/s (best of ``--repeats`` runs, each into a fresh copy of the store):

* ``store append``: ``HistoryStore.append`` (Arrow conversion, duplicate check, Delta commit with the batch's
  app transaction, commit-log row).
* ``pandas.to_parquet``: the baseline, the same frame written as one Parquet file (zstd), no log, no checks.
* ``store read``: ``HistoryStore.read(since=<the day>, tables=["telemetry"])`` (partition-pruned).
* ``pandas.read_parquet``: the baseline, that one Parquet file read back.

Also, for the waveform layout decision: 2,000 snapshots x 2,560 float32 samples as a Delta ``values`` list
column (zstd, byte-stream-split, no dictionary) against ``numpy.save``/``numpy.load`` of the same array.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.dataset import QUARANTINE_COLUMNS, TABLES, Dataset, Waveforms
from pipelines.store import open_store

SENSORS = ("temperature_bearing", "temperature_ambient", "speed_rpm", "load_pct")
DAY0 = pd.Timestamp("2026-03-01", tz="UTC")
RESULTS = Path(__file__).parent / "results" / "store_append.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--history-days", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def telemetry_day(machines: int, day: int, seed: int = 0) -> pd.DataFrame:
    """One day of hourly telemetry, grouped by machine and in time order, as the loader returns it."""
    rng = np.random.default_rng(seed + day)
    ids = np.array([f"M{i:06d}" for i in range(machines)], dtype=object)
    stamps = pd.date_range(DAY0 + pd.Timedelta(days=day), periods=24, freq="h").astype("datetime64[us, UTC]")
    frame = pd.DataFrame(
        {"machine_id": np.repeat(ids, 24), "timestamp": stamps[np.tile(np.arange(24), machines)]}
    )
    for k, name in enumerate(SENSORS):
        frame[name] = rng.normal(40 + 10 * k, 1.0, len(frame))
    return frame


def as_dataset(telemetry: pd.DataFrame, waveforms: Waveforms | None = None) -> Dataset:
    """A loaded-looking Dataset around the given tables (nothing quarantined)."""
    waves = waveforms or Waveforms.empty()
    used = {"machines": 0, "telemetry": len(telemetry), "waveforms": len(waves.meta), "events": 0}
    counts = {t: {"rows_in": used[t], "rows_used": used[t], "rows_quarantined": 0} for t in TABLES}
    return Dataset(
        root=Path("."),
        machines=pd.DataFrame({"machine_id": pd.Series(dtype=object)}),
        telemetry=telemetry,
        waveforms=waves,
        events=pd.DataFrame(
            {
                "machine_id": pd.Series(dtype=object),
                "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
                "kind": pd.Series(dtype=object),
            }
        ),
        quarantine=pd.DataFrame(columns=QUARANTINE_COLUMNS),
        notes=pd.DataFrame(),
        counts=counts,
    )


def parquet_bytes(folder: Path) -> int:
    """Bytes of the Parquet data files under a store folder (the Delta log and commit log left out)."""
    return sum(f.stat().st_size for f in folder.rglob("*.parquet") if "_delta_log" not in f.parts)


def best_time(fn: Callable[[], object], setup: Callable[[], object], repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        setup()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return float(best)


def snapshots(n: int, length: int) -> Waveforms:
    rng = np.random.default_rng(1)
    meta = pd.DataFrame(
        {
            "machine_id": [f"M{i:06d}" for i in range(n)],
            "timestamp": pd.Series([DAY0] * n).astype("datetime64[us, UTC]"),
            "channel": "acc_horizontal",
            "sample_rate_hz": 10240.0,
            "speed_rpm": 1480.0,
            "offset": np.arange(n, dtype=np.int64) * length,
            "n_samples": np.full(n, length, dtype=np.int64),
        }
    )
    return Waveforms(meta, rng.normal(0, 0.1, n * length).astype(np.float32))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="wearcast-store-bench-"))
    try:
        history = work / "history"
        store = open_store(history)
        for day in range(args.history_days):
            store.append(as_dataset(telemetry_day(args.machines, day)), f"history-{day}")
        batch = telemetry_day(args.machines, args.history_days)
        data = as_dataset(batch)
        rows = len(batch)
        target, parquet = work / "target", work / "batch.parquet"

        def fresh() -> None:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(history, target)

        rates = {
            "store append": rows
            / best_time(lambda: open_store(target).append(data, "new"), fresh, args.repeats),
            "pandas.to_parquet": rows
            / best_time(lambda: batch.to_parquet(parquet, compression="zstd"), lambda: None, args.repeats),
        }
        since = DAY0 + pd.Timedelta(days=args.history_days)
        stored = open_store(target)
        back = stored.read(since=since, tables=["telemetry"]).telemetry
        assert len(back) == rows, (len(back), rows)  # the benchmark reads what it wrote
        rates["store read"] = rows / best_time(
            lambda: stored.read(since=since, tables=["telemetry"]), lambda: None, args.repeats
        )
        rates["pandas.read_parquet"] = rows / best_time(
            lambda: pd.read_parquet(parquet), lambda: None, args.repeats
        )

        stored_bytes = {"telemetry_bytes_per_row": (parquet_bytes(target) - parquet_bytes(history)) / rows}

        n, length = 2000, 2560
        waves = snapshots(n, length)
        wave_store = open_store(work / "waves")
        start = time.perf_counter()
        wave_store.append(as_dataset(batch.iloc[:0], waves), "waves")
        wave_rates = {"delta append": n * length / (time.perf_counter() - start)}
        stored_bytes["waveform_bytes_per_sample"] = parquet_bytes(work / "waves") / (n * length)
        start = time.perf_counter()
        got = wave_store.read(tables=["waveforms"]).waveforms
        wave_rates["delta read"] = n * length / (time.perf_counter() - start)
        assert np.array_equal(got.samples, waves.samples)
        start = time.perf_counter()
        np.save(work / "x.npy", waves.samples.reshape(n, length))
        wave_rates["numpy.save"] = n * length / (time.perf_counter() - start)
        start = time.perf_counter()
        np.load(work / "x.npy")
        wave_rates["numpy.load"] = n * length / (time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"telemetry batch: {args.machines:,} machines x 24 hourly rows = {rows:,} rows, {len(SENSORS)} sensors;"
    )
    print(f"store holds {args.history_days} earlier days; best of {args.repeats} runs")
    print(f"{'method':<20} {'rows/s':>14}")
    for method, rate in rates.items():
        print(f"{method:<20} {rate:>14,.0f}")
    print(f"waveforms: {n:,} snapshots x {length:,} float32 samples, one run")
    for method, rate in wave_rates.items():
        print(f"{method:<20} {rate / 1e6:>10,.0f} M samples/s")
    print(
        f"store append: {rates['store append']:,.0f} rows/s = "
        f"{rates['store append'] / rates['pandas.to_parquet']:.2f}x pandas.to_parquet; store read: "
        f"{rates['store read']:,.0f} rows/s = {rates['store read'] / rates['pandas.read_parquet']:.2f}x "
        f"pandas.read_parquet ({rows:,} telemetry rows, {args.machines:,} machines x 1 day hourly)"
    )
    print(
        f"on disk: {stored_bytes['telemetry_bytes_per_row']:.1f} bytes per telemetry row "
        f"({len(SENSORS)} random-noise sensors: little to compress), "
        f"{stored_bytes['waveform_bytes_per_sample']:.2f} bytes per waveform sample (float32: 4 raw)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machines": args.machines,
                "rows": rows,
                "rows_per_s": rates,
                "waveform_samples_per_s": wave_rates,
                **stored_bytes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
