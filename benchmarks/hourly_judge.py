"""What judging an hourly batch against stored history costs, per machine of the batch.

Usage: ``python benchmarks/hourly_judge.py [--machines 2000] [--days 14] [--repeats 3]``

The inbox path (``pipelines.inbox.judge_against_history``) re-finds sensor glitches and stuck or dead sensors
of each new batch against the machine's own running medians and robust spreads. In full, over its stored
history of the last ``history_days`` (14 by default): an hourly batch of one row per machine costs the work of
``24 x days`` rows per machine. With the statistics a full judgement saved in the store (less than a day old),
over one glitch window (a day at an hourly cadence): what the hourly job does 23 hours out of 24.

Data: a Delta history store holding ``--days`` days of hourly telemetry of ``--machines`` machines (4 sensors,
random noise), and the next hour's batch (one row per machine). Timed with CPU time (``time.process_time``),
best of ``--repeats``:

* ``judge (full)``: ``judge_against_history`` of the batch in full (14 days; saves the statistics);
* ``judge (saved statistics)``: the same with the statistics the full judgement saved (one day of history);
* its parts on the same rows: ``store read`` (the baseline: the I/O it cannot avoid), ``find_glitches`` and
  ``find_sensor_flags``.

Prints the table and one summary line; writes ``benchmarks/results/hourly_judge.json``, which
``fleet_sizing.py`` reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from store_append import SENSORS, as_dataset, telemetry_day

from features.checks import PlausibilityConfig, find_glitches, find_sensor_flags
from pipelines.inbox import judge_against_history
from pipelines.store import open_store

RESULTS = Path(__file__).parent / "results" / "hourly_judge.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14, help="days of stored history (the inbox judges 14)")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def cpu_best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="wearcast-judge-bench-"))
    try:
        store = open_store(work / "store")
        for day in range(args.days):
            store.append(as_dataset(telemetry_day(args.machines, day)), f"history-{day}")
        hour = telemetry_day(args.machines, args.days).groupby("machine_id").head(1).reset_index(drop=True)
        batch = as_dataset(hour)
        config = PlausibilityConfig()
        since = hour["timestamp"].min() - pd.Timedelta(days=args.days)
        machines = hour["machine_id"].unique()
        history = store.read(since=since, machines=machines, tables=["telemetry"]).telemetry
        both = pd.concat([history, hour]).sort_values(["machine_id", "timestamp"], ignore_index=True)
        sensors = list(SENSORS)
        full = pd.Timedelta(0)  # saved statistics never young enough: judged in full
        judged = judge_against_history(batch, store, config, args.days, state_max_age=full)
        assert len(judged.telemetry) == len(hour)  # random noise: nothing is quarantined
        assert not store.judge_state().empty  # the full judgement saved its statistics
        seconds = {
            "judge (full)": cpu_best(
                lambda: judge_against_history(batch, store, config, args.days, state_max_age=full),
                args.repeats,
            ),
            "judge (saved statistics)": cpu_best(
                lambda: judge_against_history(batch, store, config, args.days), args.repeats
            ),
            "store read": cpu_best(
                lambda: store.read(since=since, machines=machines, tables=["telemetry"]), args.repeats
            ),
            "find_glitches": cpu_best(lambda: find_glitches(both, sensors, config), args.repeats),
            "find_sensor_flags": cpu_best(lambda: find_sensor_flags(both, sensors, config), args.repeats),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = len(both)
    print(
        f"hourly batch of {args.machines:,} machines (1 row each) judged against {args.days} days of stored "
        f"history ({rows:,} rows, {len(SENSORS)} sensors); CPU time, best of {args.repeats}"
    )
    print(f"{'step':<20} {'cpu s':>8} {'history rows/s':>16} {'batch machines/s':>18}")
    for step, value in seconds.items():
        print(f"{step:<20} {value:>8.2f} {rows / value:>16,.0f} {args.machines / value:>18,.0f}")
    per_machine = seconds["judge (full)"] / args.machines
    with_state = seconds["judge (saved statistics)"] / args.machines
    hourly = with_state + per_machine / 24  # 23 hours from the saved statistics, a full judgement a day
    ratio = seconds["judge (full)"] / seconds["store read"]
    summary = (
        f"judging an hourly batch against {args.days} days of history: {1 / per_machine:,.0f} batch machines/s "
        f"per core in full = {ratio:.1f}x the store read it needs ({rows / seconds['judge (full)']:,.0f} history "
        f"rows/s); {1 / with_state:,.0f}/s with the saved statistics ({per_machine / with_state:.1f}x faster); "
        f"{1 / hourly:,.0f}/s averaged over a day of hourly batches"
    )
    print(summary)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machines": args.machines,
                "history_days": args.days,
                "history_rows": rows,
                "cpu_s": seconds,
                "judge_full_core_s_per_machine": per_machine,
                "judge_state_core_s_per_machine": with_state,
                "judge_core_s_per_machine": hourly,  # what an hourly job pays on average
                "judge_vs_store_read": ratio,
                "summary": summary,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
