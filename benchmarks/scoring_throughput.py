# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
"""Telemetry-only fleet scoring in machines/s, and the share of a large run that Prefect and MLflow cost.

Usage: ``python benchmarks/scoring_throughput.py [--machines 100000] [--big 1000000] [--big-days 1]``

Data (synthetic, written with pyarrow into temporary folders in the equipment data contract layout):

* training: ``--train-machines`` machines x 30 days hourly, a quarter of them heating up over the 5 days before
  a failure event; a real ``RiskModel`` is trained on features every 12 h (``train_risk_model``, 1 search trial).
* fleet: ``--machines`` machines x ``--days`` days hourly (bearing and ambient temperature, load, speed; ~1 % of
  bearing temperatures missing), a ``machines`` table with ``machine_type``; 2 % of the machines are heating up.
* big fleet: ``--big`` machines x ``--big-days`` days, the same generator.

Part 1, the pure path on the fleet (no Prefect, no MLflow), wall and CPU (``time.process_time``) per stage:
``load_dataset``, ``latest_as_of``, ``build_features`` (one as-of row per machine) and ``build_risk_list``
(contributions only for the explained top rows), the fastest (in CPU time) of 3 passes, each on a fresh copy of
the telemetry table. The headline is machines per second of CPU time (this machine is shared; wall time is
printed beside it). Baseline in the same run: the pandas rolling telemetry path
(``telemetry_feature_rows`` + ``asof_join``) on the first ``--baseline-machines`` machines, scaled as machines/s.

Part 2, the real ``score_flow`` (through ``run_flow``) on the big fleet against a temporary SQLite MLflow store and
Prefect's ephemeral API, vs the same calls without Prefect and MLflow (the flow's task bodies via ``task.fn``) on
the same data: overhead share = (flow wall - model load - pure wall) / flow wall. The fixed start-up (ephemeral
API start, timed by a trivial first flow; model load from the registry, the ``load_model`` task's run time from the
API) is reported separately. Results: a table, a summary line, ``benchmarks/results/scoring_throughput.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread everywhere (PITFALLS: two cores, shared)

import argparse
import cProfile
import io
import json
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.build import FeatureConfig, build_features, latest_as_of
from features.dataset import load_dataset
from features.telemetry import asof_join, telemetry_feature_rows
from models.bundle import RiskModel
from models.labels import failure_within
from models.risk import build_risk_list, failed_since_last_reading, score_dataset
from models.rul import remaining_life
from models.train import TrainConfig, train_risk_model

TARGET_MACHINES_PER_S = 50_000
PASSES = 3  # scoring passes over the fleet, each on a fresh table; the fastest counts
TARGET_OVERHEAD = 0.05
MODEL_NAME = "bench-scoring"
RESULTS = Path(__file__).resolve().parent / "results" / "scoring_throughput.json"
TYPES = np.array(["pump", "fan", "compressor", "conveyor"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=100_000, help="machines in the fleet (part 1)")
    parser.add_argument("--days", type=int, default=7, help="days of hourly telemetry in the fleet")
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="machines in the flow run (0: skip part 2)"
    )
    parser.add_argument("--big-days", type=int, default=1, help="days of hourly telemetry in the big fleet")
    parser.add_argument("--big-repeats", type=int, default=2, help="pure and flow runs, alternated")
    parser.add_argument("--train-machines", type=int, default=2000, help="machines in the training set")
    parser.add_argument("--baseline-machines", type=int, default=1000, help="machines on the pandas path")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile of the slow stages")
    parser.add_argument(
        "--profile-machines", type=int, default=10_000, help="fleet size for the load_dataset profile"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------------- data


def write_fleet(
    folder: Path, machines: int, days: int, seed: int, degrading: float, end: pd.Timestamp, events: bool
) -> Path:
    """Hourly telemetry ending at ``end``; a share ``degrading`` of the machines heat up over the 5 days before
    a failure (telemetry stops there; with ``events`` the failure is recorded)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    hours = 24 * days
    ids = pa.array(np.char.add("M", np.char.zfill(np.arange(machines).astype("U8"), 7)))
    end_us = int(end.value // 1000)
    micros = end_us - (hours - 1 - np.arange(hours, dtype=np.int64)) * 3_600_000_000
    hour_of_day = (micros // 3_600_000_000) % 24
    ambient = 18 + 6 * np.sin(2 * np.pi * (hour_of_day - 9) / 24) + rng.normal(0, 3, (machines, 1))
    busy = (hour_of_day >= 6) & (hour_of_day < 22)
    load = np.clip(np.where(busy, 80.0, 35.0) + rng.normal(0, 5, (machines, hours)), 0, 100)
    bearing = ambient + 0.25 * load + rng.normal(0, 0.3, (machines, hours))
    fails = rng.random(machines) < degrading
    fail_h = np.where(fails, rng.uniform(0.3 * hours, hours + 5 * 24, machines), np.inf)  # hours from start
    ramp = np.clip(np.arange(hours) - (fail_h[:, None] - 120), 0, None) / 120  # 0 -> 1 over the last 5 days
    bearing += 15 * ramp**2
    bearing[rng.random((machines, hours)) < 0.01] = np.nan
    speed = 1480 - 0.2 * load - 20 * ramp + rng.normal(0, 1.0, (machines, hours))
    keep = (np.arange(hours) < fail_h[:, None]).ravel()
    rows = np.flatnonzero(keep)
    table = pa.table(
        {
            "machine_id": ids.take(pa.array(rows // hours)),
            "timestamp": pa.array(np.tile(micros, machines)[rows], pa.timestamp("us", tz="UTC")),
            "temperature_bearing": bearing.ravel()[rows],
            "temperature_ambient": (ambient + rng.normal(0, 0.15, (machines, hours))).ravel()[rows],
            "load_pct": load.ravel()[rows],
            "speed_rpm": speed.ravel()[rows],
        }
    )
    pq.write_table(table, folder / "telemetry.parquet")
    types = TYPES[rng.integers(0, len(TYPES), machines)]
    pq.write_table(pa.table({"machine_id": ids, "machine_type": types}), folder / "machines.parquet")
    if events:
        failing = np.flatnonzero(fails & (fail_h < hours))
        stamps = micros[0] + (fail_h[failing] * 3_600_000_000).astype(np.int64)
        pq.write_table(
            pa.table(
                {
                    "machine_id": ids.take(pa.array(failing)),
                    "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                    "kind": pa.array(["failure"] * len(failing)),
                }
            ),
            folder / "events.parquet",
        )
    return folder


def train_model(folder: Path) -> tuple[RiskModel, pd.DataFrame, dict]:
    """A real RiskModel on features every 12 h of the training set (1 search trial), and a sample of its rows."""
    start = time.perf_counter()
    dataset = load_dataset(folder)
    tel = dataset.telemetry
    as_of = tel.loc[tel["timestamp"].dt.hour % 12 == 0, ["machine_id", "timestamp"]]
    frame = build_features(dataset, as_of, FeatureConfig()).frame
    end = dataset.latest_reading()
    labels = failure_within(frame, dataset.events, end, 168.0)
    life = remaining_life(frame, dataset.events, end, 720.0)
    model = train_risk_model(frame, labels, FeatureConfig(), TrainConfig(search_trials=1), life)
    info = {
        "rows": len(frame),
        "positives": int(np.nansum(labels)),
        "features": len(model.spec.columns),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return model, frame.head(200), info


# ------------------------------------------------------------------------------------------ measuring


class Stages:
    """Wall and CPU seconds of named stages, each with the machines it handled."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}

    def run(self, name: str, machines: int, fn: Callable[[], Any], repeats: int = 1) -> Any:
        """Run ``fn`` ``repeats`` times; keep the best wall time (and its CPU time); return the last result."""
        best: tuple[float, float] | None = None
        result = None
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best = (wall, cpu) if best is None or wall < best[0] else best
        assert best is not None
        self.rows[name] = {"machines": machines, "wall_s": best[0], "cpu_s": best[1]}
        return result

    def add(self, name: str, machines: int, wall: float, cpu: float) -> None:
        self.rows[name] = {"machines": machines, "wall_s": wall, "cpu_s": cpu}

    def total(self, name: str, parts: list[str]) -> None:
        rows = [self.rows[p] for p in parts]
        self.add(
            name,
            int(rows[0]["machines"]),
            sum(r["wall_s"] for r in rows),
            sum(r["cpu_s"] for r in rows),
        )

    def rate(self, name: str, clock: str = "wall_s") -> float:
        row = self.rows[name]
        return row["machines"] / max(row[clock], 1e-9)

    def table(self) -> str:
        lines = [
            f"{'stage':<44} {'machines':>10} {'wall s':>8} {'cpu s':>8} {'machines/s':>12} {'cpu m/s':>12}"
        ]
        for name, row in self.rows.items():
            lines.append(
                f"{name:<44} {int(row['machines']):>10,} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} "
                f"{self.rate(name):>12,.0f} {self.rate(name, 'cpu_s'):>12,.0f}"
            )
        return "\n".join(lines)


def profile(fn: Callable[[], Any], top: int = 15) -> str:
    """The ``top`` functions by cumulative time of one call of ``fn`` (cProfile)."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def score_pure(model: RiskModel, path: Path, stages: Stages, machines: int, repeats: int) -> dict:
    """The scoring calls of the score flow without Prefect or MLflow, timed per stage; the fastest of
    ``repeats`` passes, each on a fresh copy of the telemetry table (the stages of one pass share what they
    remember about a table, as in the flow; no pass reuses an earlier pass's)."""
    dataset = stages.run("load_dataset", machines, lambda: load_dataset(path))
    config = model.spec.config
    failed = failed_since_last_reading(dataset.events, dataset.latest_reading())

    def risk_list(table: pd.DataFrame) -> pd.DataFrame:
        return build_risk_list(
            model,
            table,
            dataset.machines,
            MODEL_NAME,
            "1",
            sensor_flags=dataset.sensor_flags,
            failed=failed,
        )

    total = "scoring: features + risk list"
    passes = []
    for _ in range(repeats):
        fresh = replace(dataset, telemetry=dataset.telemetry.copy(deep=False))
        trial = Stages()
        as_of = trial.run("latest_as_of", machines, lambda d=fresh: latest_as_of(d))
        table = trial.run("build_features", machines, lambda d=fresh, a=as_of: build_features(d, a, config))
        risk = trial.run("build_risk_list", machines, lambda t=table.frame: risk_list(t))
        trial.total(total, ["latest_as_of", "build_features", "build_risk_list"])
        passes.append((trial, as_of, table.frame, risk))
    trial, as_of, frame, risk = max(passes, key=lambda p: p[0].rate(total, "cpu_s"))
    stages.rows.update(trial.rows)
    stages.total("end to end: load + features + risk list", ["load_dataset", total])
    calls = {
        "build_features": lambda: build_features(dataset, as_of, config),
        "build_risk_list": lambda: risk_list(frame),
    }
    slowest = max(calls, key=lambda s: stages.rows[s]["wall_s"])
    return {
        "statuses": risk["status"].value_counts().to_dict(),
        "explained": int(((risk["status"] == "scored") & (risk["drivers"].str.len() > 0)).sum()),
        "slowest": slowest,
        "slowest_call": calls[slowest],
        "dataset": dataset,
        "as_of": as_of,
    }


def pandas_baseline(dataset, as_of: pd.DataFrame, config: FeatureConfig, k: int, stages: Stages) -> None:
    """The pandas rolling telemetry path (features at every row, then the as-of join) on the first k machines."""
    ids = set(as_of["machine_id"].iloc[:k])
    subset = dataset.telemetry[dataset.telemetry["machine_id"].isin(ids)].reset_index(drop=True)
    sub_as_of = as_of[as_of["machine_id"].isin(ids)].reset_index(drop=True)

    def run() -> pd.DataFrame:
        rows = telemetry_feature_rows(subset, config.windows_h)
        return asof_join(sub_as_of, rows, config.telemetry_max_age_h)

    stages.run(f"baseline: pandas rolling telemetry ({k:,} m.)", len(sub_as_of), run)


# --------------------------------------------------------------------------------------- Prefect part


def prepare_home(home: Path) -> None:
    """Point wearcast, MLflow and Prefect at temporary folders, before pipelines (and prefect) are imported."""
    (home / "mlruns").mkdir(parents=True)
    os.environ["WEARCAST_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    os.environ["PREFECT_HOME"] = str(home / ".prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)  # the ephemeral API, as the CLI runs it
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def register_champion(model: RiskModel, sample: pd.DataFrame) -> tuple[str, float]:
    """Log and register the model in the temporary store and make it the champion; its version, seconds."""
    from models import registry
    from pipelines.settings import load_settings

    start = time.perf_counter()
    settings = load_settings()
    experiment = registry.connect(settings.tracking_uri, settings.experiment, settings.artifact_location)
    run = registry.log_training_run(model, MODEL_NAME, experiment, {"benchmark": "scoring"}, {}, {}, sample)
    registry.set_champion(MODEL_NAME, run.version, {"by": "benchmarks/scoring_throughput.py"})
    return run.version, time.perf_counter() - start


def start_api() -> tuple[float, float]:
    """Wall seconds of a first trivial flow (starts the ephemeral API) and of a second one (a flow run's cost)."""
    from prefect import flow

    @flow(name="bench-noop")
    def noop() -> int:
        return 1

    times = []
    for _ in range(2):
        start = time.perf_counter()
        noop()
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def task_run_times() -> dict[str, float]:
    """Run time (s) of each task of the latest score flow run, and the flow body, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["wearcast-score"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        flow_run = runs[0]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    times: dict[str, float] = {"(flow body)": flow_run.total_run_time.total_seconds()}
    for run in tasks:
        name = run.task_key.rsplit("-", 1)[0] if run.task_key else run.name
        times[name] = times.get(name, 0.0) + run.total_run_time.total_seconds()
    return times


def flow_vs_pure(
    model: RiskModel,
    sample: pd.DataFrame,
    path: Path,
    warm_up: Path,
    home: Path,
    machines: int,
    repeats: int,
) -> dict:
    """The score flow on ``path`` through Prefect and MLflow vs the same task bodies called directly."""
    prepare_home(home)
    from pipelines import flows, scale  # only after the environment names the temporary homes

    version, register_s = register_champion(model, sample)
    api_first, flow_cost = start_api()

    def pure(out: Path, data: Path = path) -> None:
        """The score flow's body for a PATH, its task bodies called directly (``.fn``): no Prefect, no MLflow
        (the flow's ``log_scoring`` MLflow run and its Prefect table artifact are the only steps left out)."""
        from pipelines.feedback import list_precision, load_findings, read_lists
        from pipelines.notify import WebhookConfig

        dataset = flows.load.fn(str(data))
        table = scale.featurize.fn(dataset, model.spec.config, latest_as_of(dataset))
        flows.check_features(model, table.frame, MODEL_NAME, version)
        previous = flows.previous_list(out, dataset.latest_reading())
        risk = score_dataset(model, dataset, MODEL_NAME, version, frame=table.frame, previous=previous)
        drift = flows.check_drift.fn(model, table.frame, risk, dataset)
        paths = flows.write_outputs.fn(risk, dataset, out)
        precision = list_precision(load_findings(home / "feedback"), read_lists(out / "lists"))
        flows.write_report.fn(model, risk, dataset, MODEL_NAME, version, out, drift, precision)
        flows.notify.fn(risk, WebhookConfig.from_env(), out, paths["risk_list_csv"])

    pure(home / "warm-up", warm_up)  # first-call imports (report, plots) are not the flow's overhead
    pures, runs = [], []
    for i in range(repeats):  # alternate, so that a busy spell of the shared machine hits both
        pures.append(timed(lambda out=home / f"pure{i}": pure(out)))
        params = flows.ScoreParams(path=str(path), model_name=MODEL_NAME, out=str(home / f"flow{i}"))
        run = timed(lambda p=params: flows.run_flow(flows.score_flow, p))
        run["tasks"] = task_run_times()
        runs.append(run)
    best_pure = min(pures, key=lambda r: r["wall_s"])
    best = min(runs, key=lambda r: r["wall_s"])
    model_load = best["tasks"].get("load_model", float("nan"))
    flow_cpu = best["cpu_s"] + best["api_cpu_s"]  # this process and the ephemeral API's process
    return {
        "machines": machines,
        "repeats": repeats,
        "rows_in_list": int(best["result"]["rows"]),
        "register_model_s": register_s,
        "api_start_s": api_first - flow_cost,
        "first_trivial_flow_s": api_first,
        "trivial_flow_s": flow_cost,
        "model_load_s": model_load,
        "pure_wall_s": best_pure["wall_s"],
        "pure_cpu_s": best_pure["cpu_s"],
        "flow_wall_s": best["wall_s"],
        "flow_cpu_s": best["cpu_s"],
        "flow_api_cpu_s": best["api_cpu_s"],
        "overhead_s": best["wall_s"] - model_load - best_pure["wall_s"],
        "overhead_share": (best["wall_s"] - model_load - best_pure["wall_s"]) / best["wall_s"],
        "overhead_share_cpu": (flow_cpu - model_load - best_pure["cpu_s"]) / flow_cpu,
        "all_pure_wall_s": [round(r["wall_s"], 2) for r in pures],
        "all_flow_wall_s": [round(r["wall_s"], 2) for r in runs],
        "task_run_s": best["tasks"],
    }


def children_cpu() -> float:
    """CPU seconds used so far by this process's child processes (the ephemeral Prefect API)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def timed(fn: Callable[[], Any]) -> dict:
    """Wall and CPU seconds of one call (CPU of this process, and of its children apart), and its result."""
    wall, cpu, api = time.perf_counter(), time.process_time(), children_cpu()
    result = fn()
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "api_cpu_s": children_cpu() - api,
        "result": result,
    }


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    end = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)  # no reading in the future
    root = Path(tempfile.mkdtemp(prefix="wearcast-scoring-bench-"))
    try:
        report = run(args, root, end)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["run_seconds"] = round(time.perf_counter() - began, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"run time {report['run_seconds']:.0f} s; results in {RESULTS}")
    print(report["summary"])


def run(args: argparse.Namespace, root: Path, end: pd.Timestamp) -> dict:
    step = time.perf_counter()
    train = write_fleet(root / "train", args.train_machines, 30, args.seed + 1, 0.25, end, events=True)
    model, sample, train_info = train_model(train)
    print(f"trained on {train_info}: {time.perf_counter() - step:.0f} s")
    fleet = write_fleet(root / "fleet", args.machines, args.days, args.seed, 0.02, end, events=False)
    stages = Stages()
    pure = score_pure(model, fleet, stages, args.machines, repeats=PASSES)
    k = min(args.baseline_machines, args.machines)
    pandas_baseline(pure.pop("dataset"), pure.pop("as_of"), model.spec.config, k, stages)
    scoring = stages.rate("scoring: features + risk list", "cpu_s")  # CPU: the machine is shared
    scoring_wall = stages.rate("scoring: features + risk list")
    speedup = stages.rate("build_features") / stages.rate(f"baseline: pandas rolling telemetry ({k:,} m.)")
    print(
        f"\nfleet: {args.machines:,} machines x {args.days} days hourly, 4 sensors, one as-of row per machine"
    )
    print(
        f"one thread; best of {PASSES} passes (load_dataset and the baseline: 1 run); load average {os.getloadavg()[0]:.2f}"
    )
    print(stages.table())
    print(f"build_features is {speedup:.0f}x the pandas rolling telemetry path alone (machines/s)")
    print(f"list statuses {pure['statuses']}, {pure['explained']} scored rows explained (contributions)")
    slowest_call = pure.pop("slowest_call")
    report: dict[str, Any] = {
        "fleet": {"machines": args.machines, "days": args.days, "sensors": 4},
        "training": train_info,
        "load_average_1min": os.getloadavg()[0],
        "threads": 1,
        "stages": stages.rows,
        "features_vs_pandas_baseline": speedup,
        "list": pure,
    }
    if not args.no_profile:
        report["profile"] = {pure["slowest"]: profile(slowest_call)}
        small = min(args.profile_machines, args.machines)
        sample_fleet = write_fleet(root / "profiled", small, args.days, args.seed, 0.02, end, events=False)
        report["profile"][f"load_dataset ({small:,} machines)"] = profile(lambda: load_dataset(sample_fleet))
        for stage, text in report["profile"].items():
            print(f"\nprofile of {stage} (cumulative):\n{text}")
    summary = (
        f"scoring {args.machines:,} machines: {scoring:,.0f} machines/s of CPU time "
        f"(target {TARGET_MACHINES_PER_S:,}: {'met' if scoring >= TARGET_MACHINES_PER_S else 'NOT met'}; "
        f"{scoring_wall:,.0f}/s of wall time; with load_dataset "
        f"{stages.rate('end to end: load + features + risk list', 'cpu_s'):,.0f}/s)"
    )
    if args.big:
        step = time.perf_counter()
        big = write_fleet(root / "big", args.big, args.big_days, args.seed + 2, 0.02, end, events=False)
        print(
            f"\nbig fleet written ({args.big:,} x {args.big_days} day(s)): {time.perf_counter() - step:.0f} s"
        )
        tiny = write_fleet(root / "tiny", 500, 1, args.seed + 3, 0.02, end, events=False)
        flow = flow_vs_pure(model, sample, big, tiny, root / "home", args.big, args.big_repeats)
        flow["days"] = args.big_days
        report["flow"] = flow
        print_flow(flow)
        met = "met" if flow["overhead_share"] < TARGET_OVERHEAD else "NOT met"
        summary += (
            f"; {args.big:,} ({args.big_days} day(s) hourly) through Prefect+MLflow: overhead "
            f"{100 * flow['overhead_share']:.1f} % (target < {100 * TARGET_OVERHEAD:.0f} %: {met}), start-up "
            f"{flow['api_start_s'] + flow['model_load_s']:.1f} s (API {flow['api_start_s']:.1f} s, model load "
            f"{flow['model_load_s']:.1f} s)"
        )
    report["load_average_1min_end"] = os.getloadavg()[0]
    report["summary"] = summary
    return report


def print_flow(flow: dict) -> None:
    print(f"\nscore flow on {flow['machines']:,} machines ({flow['rows_in_list']:,} rows in the list)")
    print(f"{'':<42} {'wall s':>8} {'cpu s':>8}")
    print(
        f"{'pure calls (task bodies, no Prefect/MLflow)':<42} {flow['pure_wall_s']:>8.2f} {flow['pure_cpu_s']:>8.2f}"
    )
    print(f"{'score_flow via run_flow':<42} {flow['flow_wall_s']:>8.2f} {flow['flow_cpu_s']:>8.2f}")
    print(f"{'  plus the ephemeral API process (cpu)':<42} {'':>8} {flow['flow_api_cpu_s']:>8.2f}")
    print(f"{'  of which model load (load_model task)':<42} {flow['model_load_s']:>8.2f}")
    print(f"{'  overhead: flow - model load - pure':<42} {flow['overhead_s']:>8.2f}")
    print(f"{'ephemeral API start (1st - 2nd trivial flow)':<42} {flow['api_start_s']:>8.2f}")
    print(f"{'a trivial flow run once the API is up':<42} {flow['trivial_flow_s']:>8.2f}")
    print(f"{'register the model (not part of scoring)':<42} {flow['register_model_s']:>8.2f}")
    print(
        "task run times from the Prefect API (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in flow["task_run_s"].items())
    )
    print(
        f"overhead share {100 * flow['overhead_share']:.1f} % of the flow's wall time "
        f"({100 * flow['overhead_share_cpu']:.1f} % of its CPU time, API process included); "
        f"best of {flow['repeats']} alternated runs each (pure {flow['all_pure_wall_s']}, "
        f"flow {flow['all_flow_wall_s']}); load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
