# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""The feature step of a fleet on a local Dask cluster of 2 workers against 1 worker, through Prefect.

Usage: ``python benchmarks/dask_scaling.py [--machines 600] [--days 20] [--partition 50] [--rounds 3]``

Data: a simulated fleet (``features.simulator``: hourly telemetry and a daily vibration snapshot of 4,096
samples per machine) written to a temporary folder in the contract layout and loaded once. The step timed is
the training feature step (every snapshot time of every machine): ``pipelines.scale.run_partitions`` on a
started ``DaskTaskRunner`` inside a Prefect flow, exactly as ``WEARCAST_DASK_WORKERS`` runs it: the fleet split
into partitions of ``--partition`` machines, the data scattered to the workers, one Prefect task per
partition, the tables gathered. Cluster start-up (worker processes, imports) is reported apart.

In each round the 1-worker and 2-worker clusters run one after the other, so that other load on the machine
hits both alike; the speed-up is reported for the median and the best round, beside the cores other work used
meanwhile (machine busy cores from /proc/stat during the step: about 1 and 2 when nothing else runs). The partitioned features are
checked equal to ``build_features`` of the whole fleet in one process. Target (#7): at least 1.7x.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from two_process import busy_cpu_seconds

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="wearcast-dask-prefect-"))
from prefect import flow

from features.build import FeatureConfig, build_features
from features.dataset import load_dataset
from features.partition import concat_tables, fleet_reference, split_fleet
from features.simulator import SimulationConfig, simulate
from pipelines.scale import dask_task_runner, run_partitions
from pipelines.settings import ScaleSettings

RESULTS = Path(__file__).parent / "results" / "dask_scaling.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=600)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--partition", type=int, default=50, help="machines per partition")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel cluster")
    return parser.parse_args(argv)


_WORKLOAD: dict = {}  # the fleet and its partitions, set by main() in this process only


def workload() -> dict:
    """The benchmark's data. A module function, so that pickling the flow (Prefect sends its run context, flow
    included, with every task) refers to it by name instead of copying the fleet into every task."""
    return _WORKLOAD


@flow(name="dask-scaling-benchmark")
def timed_step(workers: int) -> dict:
    """Start a local cluster of ``workers``, run the feature step once untimed and once timed; check it."""
    w = workload()
    settings = ScaleSettings(workers=workers, partition_machines=w["partition"])
    start = time.perf_counter()
    with dask_task_runner(settings) as runner:
        runner.client.wait_for_workers(workers)  # the cluster starts on first use
        started = time.perf_counter()
        run_partitions(runner, w["parts"], w["config"], w["reference"])  # warm-up: imports, first calls
        busy_step, t0 = busy_cpu_seconds(), time.perf_counter()
        tables = run_partitions(runner, w["parts"], w["config"], w["reference"])
        step = time.perf_counter() - t0
        busy_cores = (busy_cpu_seconds() - busy_step) / step
    frame = concat_tables(w["parts"], tables).frame
    pd.testing.assert_frame_equal(frame, w["whole"])  # the partitioned features are the whole fleet's
    return {
        "startup_s": started - start,
        "step_s": step,
        "machine_busy_cores": busy_cores,  # this run's workers and parent, plus any other work
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="wearcast-dask-"))
    data = home / "fleet"
    simulate(data, SimulationConfig(machines=args.machines, days=args.days, seed=1))
    dataset = load_dataset(data)
    config = FeatureConfig()
    snapshots = len(dataset.waveforms.meta)
    print(
        f"fleet: {args.machines} machines x {args.days} days: {len(dataset.telemetry):,} telemetry rows, "
        f"{snapshots:,} snapshots; partitions of {args.partition} machines"
    )
    start = time.perf_counter()
    whole = build_features(dataset, None, config).frame
    single_s = time.perf_counter() - start
    print(f"one process, no Dask (build_features): {single_s:.1f} s")
    parts = split_fleet(dataset, args.partition)
    _WORKLOAD.update(
        parts=parts,
        config=config,
        reference=fleet_reference(dataset, None, config),
        whole=whole,
        partition=args.partition,
    )
    timed = timed_step
    rounds: list[dict] = []
    for r in range(args.rounds):
        one, many = timed(1), timed(args.workers)
        rounds.append({"one": one, "many": many, "speedup": one["step_s"] / many["step_s"]})
        print(
            f"round {r + 1}: 1 worker {one['step_s']:.1f} s, {args.workers} workers {many['step_s']:.1f} s "
            f"-> {rounds[-1]['speedup']:.2f}x (start-up {one['startup_s']:.1f} / {many['startup_s']:.1f} s; "
            f"machine busy {one['machine_busy_cores']:.1f} / {many['machine_busy_cores']:.1f} cores)"
        )
    speedups = [r["speedup"] for r in rounds]
    summary = {
        "machines": args.machines,
        "days": args.days,
        "snapshots": snapshots,
        "one_process_no_dask_s": single_s,
        "partition_machines": args.partition,
        "partitions": len(parts),
        "workers": args.workers,
        "speedup_median": statistics.median(speedups),
        "speedup_vs_no_dask_median": single_s / statistics.median(r["many"]["step_s"] for r in rounds),
        "speedup_best": max(speedups),
        "step_s_1_worker_median": statistics.median(r["one"]["step_s"] for r in rounds),
        "step_s_n_workers_median": statistics.median(r["many"]["step_s"] for r in rounds),
        "startup_s_median": statistics.median(r["many"]["startup_s"] for r in rounds),
        "load_average_1min": os.getloadavg()[0],
        "rounds": rounds,
    }
    print(
        f"{args.workers} workers vs 1: median {summary['speedup_median']:.2f}x, best "
        f"{summary['speedup_best']:.2f}x (target >= 1.7x); "
        f"{summary['speedup_vs_no_dask_median']:.2f}x one process without Dask; cluster start-up {summary['startup_s_median']:.1f} s; "
        f"load average {summary['load_average_1min']:.1f}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    # run as the importable module ``dask_scaling``, so that Prefect's run context (which holds the flow) is
    # pickled by reference for the workers, never with the fleet the flow's closure holds
    import dask_scaling

    dask_scaling.main()
