# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Throughput of the vibration feature step in 1 process against 2 processes, one thread each.

Usage: ``python benchmarks/two_process.py [--snapshots 20000] [--chunk 1000] [--workers 2] [--repeats 15]``

Batch: ``--snapshots`` synthetic float32 snapshots of ``--samples`` samples at 25.6 kHz (noise, shaft harmonics,
outer-race impulses on a 5 kHz resonance in a third of the rows), written once to a temporary ``.npy`` file
that every process memory-maps (as workers reading their partition of a waveform file would; after the
warm-up pass the pages are in the page cache, so no disk is timed). The batch is split in chunks of
``--chunk`` rows; each chunk's features (``features.vibration.vibration_features``) go back to the parent.

Every process limits BLAS/OpenMP threads to 1: the environment variables are set before numpy is imported
(spawned workers import this module again, forked ones inherit it), and ``threadpoolctl`` limits the pools
again in each worker when it is installed. ``scipy.fft`` uses one thread unless asked for more.

Timed, interleaved in each round so that other load on the machine hits all of them alike:

* ``in-process``: the chunks computed one after the other in the parent (no pool, no pickling).
* ``pool x1``: a pool of 1 worker process (the same work plus the inter-process overhead).
* ``pool x N``: a pool of ``--workers`` worker processes.

The speed-up is ``pool x N`` against the faster of the two single-process ways in the same round; the headline is
its median over the rounds, then over the quiet rounds, then the ratios of the best and of the median rates. Other work on the machine is measured in
each run (machine busy CPU time from ``/proc/stat`` minus this benchmark's own CPU time, in cores); a round is
quiet when it stayed under ``--quiet-cores`` in all its runs. Each pool computes the batch once untimed first
(imports, FFT plans, page faults), and its features are checked equal to the in-process ones.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported; inherited by forked and spawned workers

import argparse
import importlib.util
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from synthetic import FS_HZ, SHAFT_HZ, bearing_orders, synthetic_batch

from features.vibration import VibrationConfig, vibration_features

ORDERS = bearing_orders()
CONFIG = VibrationConfig()

_worker: dict = {}  # per process: the memory-mapped batch and the thread limiter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", type=int, default=20_000, help="snapshots in the batch")
    parser.add_argument("--samples", type=int, default=2560, help="samples per snapshot")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per task")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel pool")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument(
        "--quiet-cores", type=float, default=0.2, help="a round is quiet when other work used fewer cores"
    )
    parser.add_argument("--context", choices=("spawn", "fork", "forkserver"), default="spawn")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def limit_threads() -> object | None:
    """Limit every BLAS/OpenMP pool of this process to one thread (threadpoolctl if installed)."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def init_worker(path: str) -> None:
    """Worker start: one thread, and the batch memory-mapped read-only."""
    _worker["limits"] = limit_threads()
    _worker["values"] = np.load(path, mmap_mode="r")


def chunk_features(bounds: tuple[int, int]) -> tuple[dict[str, np.ndarray], float]:
    """Vibration features of rows ``[start, stop)`` of this process's batch, and the CPU seconds they took."""
    start, stop = bounds
    cpu = time.process_time()
    features = vibration_features(_worker["values"][start:stop], FS_HZ, SHAFT_HZ, ORDERS, CONFIG)
    return features, time.process_time() - cpu


def chunks(n_rows: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


def in_process(bounds: list[tuple[int, int]]) -> list[tuple[dict, float]]:
    return [chunk_features(b) for b in bounds]


def in_pool(pool: ProcessPoolExecutor, bounds: list[tuple[int, int]]) -> list[tuple[dict, float]]:
    return list(pool.map(chunk_features, bounds))


def busy_cpu_seconds() -> float:
    """CPU seconds spent by the whole machine so far (all processes), from /proc/stat; NaN if unavailable."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def timed_round(run: Callable[[], list[tuple[dict, float]]], in_workers: bool) -> tuple[float, float]:
    """Wall seconds of one run, and the cores used meanwhile by other work (machine busy time minus this
    benchmark's own CPU time: the parent's, plus the feature computations' in the workers)."""
    busy, own, start = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    results = run()
    wall = time.perf_counter() - start
    own = time.process_time() - own
    own += sum(cpu for _, cpu in results) if in_workers else 0.0
    return wall, max(busy_cpu_seconds() - busy - own, 0.0) / wall


def same_features(a: list[tuple[dict, float]], b: list[tuple[dict, float]]) -> bool:
    """True when two runs give the same features (NaN where the other is NaN)."""
    return all(
        np.array_equal(x[k], y[k], equal_nan=True) for (x, _), (y, _) in zip(a, b, strict=True) for k in x
    )


def rounds(runs: dict[str, Callable], repeats: int, n_samples: int) -> tuple[dict, dict]:
    """M samples/s of every run, and the other work's cores meanwhile, in each of ``repeats`` interleaved
    rounds (after one untimed pass each, checked against the first run)."""
    reference = next(iter(runs.values()))()
    for name, run in runs.items():
        if not same_features(reference, run()):
            raise SystemExit(f"{name}: features differ from the in-process run")
    rates: dict[str, list[float]] = {name: [] for name in runs}
    others: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, other = timed_round(run, in_workers=name != "in-process")
            rates[name].append(n_samples / wall / 1e6)
            others[name].append(other)
    return rates, others


def print_rates(rates: dict[str, list[float]], others: dict[str, list[float]]) -> None:
    print(f"{'run':<12} {'best M/s':>9} {'median M/s':>11}   every round: M samples/s (other work, cores)")
    for name, values in rates.items():
        every = " ".join(f"{v:.0f}({o:.1f})" for v, o in zip(values, others[name], strict=True))
        print(f"{name:<12} {max(values):>9.1f} {statistics.median(values):>11.1f}   {every}")


def speedups(rates: dict[str, list[float]], parallel: str) -> tuple[float, float, list[float]]:
    """Best and median speed-up of ``parallel`` over the faster single process; per-round speed-ups."""
    single = [max(a, b) for a, b in zip(rates["in-process"], rates["pool x1"], strict=True)]
    per_round = [p / s for p, s in zip(rates[parallel], single, strict=True)]
    best = max(rates[parallel]) / max(single)
    median = statistics.median(rates[parallel]) / statistics.median(single)
    return best, median, per_round


def quiet_median(per_round: list[float], others: dict[str, list[float]], limit: float) -> tuple[float, int]:
    """Median per-round speed-up over the rounds where other work used less than ``limit`` cores in every run."""
    quiet = [s for i, s in enumerate(per_round) if all(o[i] < limit for o in others.values())]
    return (statistics.median(quiet) if quiet else float("nan")), len(quiet)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="wearcast-two-process-") as tmp:
        path = str(Path(tmp) / "batch.npy")
        np.save(path, synthetic_batch(args.snapshots, args.samples, args.seed))
        init_worker(path)
        bounds = chunks(args.snapshots, args.chunk)
        context = mp.get_context(args.context)
        parallel = f"pool x{args.workers}"
        with (
            ProcessPoolExecutor(1, context, init_worker, (path,)) as one,
            ProcessPoolExecutor(args.workers, context, init_worker, (path,)) as many,
        ):
            runs = {
                "in-process": lambda: in_process(bounds),
                "pool x1": lambda: in_pool(one, bounds),
                parallel: lambda: in_pool(many, bounds),
            }
            rates, others = rounds(runs, args.repeats, args.snapshots * args.samples)
    best, median, per_round = speedups(rates, parallel)
    quiet, n_quiet = quiet_median(per_round, others, args.quiet_cores)
    print(
        f"batch {args.snapshots} x {args.samples} float32 in {len(bounds)} chunks of {args.chunk}; "
        f"{args.context} context; {os.cpu_count()} CPUs; one thread per process "
        f"(threadpoolctl {'on' if _worker['limits'] is not None else 'not installed: env only'}); "
        f"{args.repeats} interleaved rounds"
    )
    quiet_text = (
        f"{quiet:.2f}x over the {n_quiet} rounds with other work < {args.quiet_cores:g} core"
        if n_quiet
        else f"no round had other work < {args.quiet_cores:g} core"
    )
    print_rates(rates, others)
    print("speed-up per round:", " ".join(f"{s:.2f}x" for s in per_round))
    print(f"load average (1 min) before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(
        f"{args.workers} processes = {statistics.median(per_round):.2f}x 1 process on the vibration feature step "
        f"(median per-round speed-up over {args.repeats} rounds; {quiet_text}; ratio of the best rates "
        f"{best:.2f}x, of the median rates {median:.2f}x), {args.snapshots} x {args.samples} float32, "
        f"{os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
