"""What a fleet of N machines needs (cores, memory, storage), by arithmetic from the measured benchmarks.

Usage: ``python benchmarks/fleet_sizing.py [--machines 100000000] [--deadline-min 15] [--channels 1]``

Workload: every machine sends one telemetry row (4 sensors) an hour and one vibration snapshot of 2,560
samples a day per channel; the hourly job validates the new rows, judges them against each machine's stored
history of the last 14 days (glitches, stuck and dead sensors: ``pipelines.inbox.judge_against_history``),
stores them and scores every machine from its last 7 days; the daily job computes the snapshots' vibration
features.

Inputs, all measured on this machine by repo commands (re-run them first; this script only reads their
results and does arithmetic, and says which file each number came from):

* ``benchmarks/results/scoring_throughput.json`` (``benchmarks/scoring_throughput.py --big 0 --no-profile``):
  CPU seconds of ``load_dataset`` (validation) and of features + risk list for 100,000 machines x 7 days;
* ``benchmarks/results/store_append.json`` (``benchmarks/store_append.py``): store append and read rows/s,
  bytes on disk per telemetry row and per waveform sample;
* ``benchmarks/results/hourly_judge.json`` (``benchmarks/hourly_judge.py``): CPU seconds per batch machine of
  judging an hourly batch, averaged over a day (23 batches judged with the saved statistics, one in full
  against 14 days of stored history);
* ``benchmarks/results/dask_scaling.json`` (``benchmarks/dask_scaling.py``): the whole training feature step
  per snapshot (one process), and the 2-worker speed-up (parallel efficiency);
* memory: measured here, the peak Python allocation (tracemalloc) of scoring 2,000 telemetry-only machines x 7
  days, per machine.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
HOURS_KEPT = 7 * 24  # the longest feature window the hourly scoring reads (168 h)
SNAPSHOT_SAMPLES = 2560


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=float, default=1e8)
    parser.add_argument("--deadline-min", type=float, default=15.0, help="the hourly list is due this soon")
    parser.add_argument("--channels", type=int, default=1, help="vibration channels per machine")
    parser.add_argument("--partition", type=int, default=50_000, help="machines per partition (one task)")
    parser.add_argument("--core-gib", type=float, default=4.0, help="memory per worker core, for the count")
    return parser.parse_args(argv)


def load(name: str) -> dict:
    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing; fix: run benchmarks/{name.split('.')[0]}.py first")
    return json.loads(path.read_text())


def scoring_memory_per_machine(machines: int = 2000) -> float:
    """Peak bytes allocated per machine while scoring telemetry-only machines with 7 days of hourly history."""
    from features.build import FeatureConfig, build_features, latest_as_of
    from features.dataset import Dataset, Waveforms

    rng = np.random.default_rng(0)
    stamps = pd.date_range("2026-03-01", periods=HOURS_KEPT, freq="h").to_numpy()
    ids = np.array([f"M{i:09d}" for i in range(machines)], dtype=object)
    telemetry = pd.DataFrame(
        {
            "machine_id": np.repeat(ids, HOURS_KEPT),
            "timestamp": pd.Series(np.tile(stamps, machines))
            .dt.tz_localize("UTC")
            .astype("datetime64[us, UTC]"),
        }
    )
    for k, name in enumerate(("temperature_bearing", "temperature_ambient", "speed_rpm", "load_pct")):
        telemetry[name] = rng.normal(40 + 10 * k, 1.0, len(telemetry))
    dataset = Dataset(
        root=Path("."),
        machines=pd.DataFrame({"machine_id": ids, "machine_type": "pump"}),
        telemetry=telemetry,
        waveforms=Waveforms.empty(),
        events=pd.DataFrame(
            {
                "machine_id": pd.Series(dtype=object),
                "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
                "kind": pd.Series(dtype=object),
            }
        ),
        quarantine=pd.DataFrame(),
        notes=pd.DataFrame(),
    )
    as_of = latest_as_of(dataset)
    tracemalloc.start()
    build_features(dataset, as_of, FeatureConfig())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = telemetry.memory_usage(deep=True).sum()
    return (peak + held) / machines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n = args.machines
    scoring, store, dask, judge = (
        load("scoring_throughput.json"),
        load("store_append.json"),
        load("dask_scaling.json"),
        load("hourly_judge.json"),
    )
    stages = scoring["stages"]
    fleet = scoring["fleet"]
    tel_rows_measured = fleet["machines"] * fleet["days"] * 24
    validate_rows_per_core_s = tel_rows_measured / stages["load_dataset"]["cpu_s"]
    score_core_s_per_machine = stages["scoring: features + risk list"]["cpu_s"] / fleet["machines"]
    append_rows_s = store["rows_per_s"]["store append"]
    read_rows_s = store["rows_per_s"]["store read"]
    snapshot_core_s = dask["one_process_no_dask_s"] / dask["snapshots"]  # whole feature step per snapshot
    efficiency = dask["speedup_median"] / dask["workers"]
    memory_per_machine = scoring_memory_per_machine()

    hourly = {
        "validate the new rows": n / validate_rows_per_core_s,
        "judge them (saved statistics; 14 days once a day)": n * judge["judge_core_s_per_machine"],
        "append them to the store": n / append_rows_s,
        "read 7 days of history": n * HOURS_KEPT / read_rows_s,
        "features + risk list": n * score_core_s_per_machine,
    }
    daily_snapshots = n * args.channels
    daily = {"vibration features (whole step)": daily_snapshots * snapshot_core_s}
    hourly_core_s = sum(hourly.values())
    deadline_s = args.deadline_min * 60
    cores_hourly = hourly_core_s / deadline_s / max(efficiency, 1e-9)
    cores_daily = (
        daily["vibration features (whole step)"] / (4 * 3600) / max(efficiency, 1e-9)
    )  # in a 4 h window
    partition_gib = memory_per_machine * args.partition / 2**30
    tel_day_tb = n * 24 * store["telemetry_bytes_per_row"] / 1e12
    wave_day_tb = daily_snapshots * SNAPSHOT_SAMPLES * store["waveform_bytes_per_sample"] / 1e12

    print(
        f"fleet: {n:,.0f} machines; 1 telemetry row/h, {args.channels} snapshot(s)/day of {SNAPSHOT_SAMPLES} samples"
    )
    print("measured rates (per core):")
    print(f"  validation {validate_rows_per_core_s:,.0f} rows/s (scoring_throughput.json, load_dataset)")
    print(f"  features + risk list {1 / score_core_s_per_machine:,.0f} machines/s (scoring_throughput.json)")
    print(
        f"  judging, averaged over a day of hourly batches "
        f"{1 / judge['judge_core_s_per_machine']:,.0f} batch machines/s (hourly_judge.json; in full against "
        f"{judge['history_days']} days {1 / judge['judge_full_core_s_per_machine']:,.0f}/s)"
    )
    print(f"  store append {append_rows_s:,.0f} rows/s, read {read_rows_s:,.0f} rows/s (store_append.json)")
    print(
        f"  whole vibration feature step {1 / snapshot_core_s:,.0f} snapshots/s (dask_scaling.json, one process)"
    )
    print(
        f"  parallel efficiency {efficiency:.2f} ({dask['workers']} Dask workers, dask_scaling.json, median)"
    )
    print(f"  scoring memory {memory_per_machine / 1024:.1f} KiB per machine (tracemalloc peak, here)")
    print("hourly job, core-seconds:")
    for step, value in hourly.items():
        print(f"  {step:<36} {value:>12,.0f}")
    print(
        f"  {'total':<36} {hourly_core_s:>12,.0f}  -> {cores_hourly:,.0f} cores to finish in {args.deadline_min:g} min"
    )
    print("daily job, core-seconds:")
    for step, value in daily.items():
        print(f"  {step:<36} {value:>12,.0f}  -> {cores_daily:,.1f} cores to finish in 4 h")
    print(
        f"partitions of {args.partition:,} machines: {n / args.partition:,.0f} tasks per hourly run, "
        f"{partition_gib:.2f} GiB each while scoring; {args.core_gib:g} GiB per core"
    )
    workers = max(cores_hourly, cores_daily)
    print(
        f"workers: {workers:,.0f} cores in all (e.g. {np.ceil(workers / 16):,.0f} machines of 16 cores, "
        f"{16 * args.core_gib:g} GiB)"
    )
    print(
        f"storage per day: telemetry {tel_day_tb:,.2f} TB, waveforms {wave_day_tb:,.2f} TB "
        f"(per year {365 * tel_day_tb:,.0f} TB and {365 * wave_day_tb:,.0f} TB)"
    )
    summary = {
        "machines": n,
        "hourly_core_s": hourly,
        "daily_core_s": daily,
        "cores_hourly": cores_hourly,
        "cores_daily": cores_daily,
        "memory_per_machine_bytes": memory_per_machine,
        "partition_gib": partition_gib,
        "telemetry_tb_per_day": tel_day_tb,
        "waveform_tb_per_day": wave_day_tb,
    }
    (RESULTS / "fleet_sizing.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
