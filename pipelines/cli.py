"""The ``wearcast`` command: simulate, train, score, demo.

Exit codes: 0 done, 2 input unusable (one line says why and how to fix it), 1 internal error, 3 (``score
--inbox``) the list was written but a batch could not be stored (it is named, and kept in failed/ or the inbox).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

import click
import typer

if TYPE_CHECKING:
    import pandas
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from features.errors import InputError
from pipelines.settings import Settings, check_services, load_settings, prepare_environment

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="wearcast: predictive maintenance from equipment data."
)
console = Console(soft_wrap=True)

ENVELOPE_BAND_HELP = (
    "Envelope band 'LO,HI' in Hz (e.g. 2000,4000: a resonance known from an impact test); "
    "default: chosen per snapshot."
)
err = Console(stderr=True, soft_wrap=True)


def _start(uses: tuple[str, ...] = ("mlflow", "prefect")) -> Settings:
    """Settings, read once; the services the command ``uses`` checked first (a fast, clear failure)."""
    settings = load_settings()
    check_services(settings, mlflow="mlflow" in uses, prefect="prefect" in uses)
    prepare_environment(settings)
    return settings


class _Bar:
    """A progress callback for a rich bar. It stays in this process: Prefect sends the run's parameters with
    every task to a Dask worker, and a copy there (the bar's lock cannot travel) does nothing."""

    def __init__(self, progress: Progress, bar: TaskID) -> None:
        self.progress: Progress | None = progress
        self.bar = bar

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.bar, completed=done, total=total)

    def __getstate__(self) -> dict:
        return {"progress": None, "bar": self.bar}


@app.command()
def simulate(
    out: Annotated[Path, typer.Argument(help="Folder to write the fleet into (must not exist or be empty).")],
    machines: Annotated[int, typer.Option(help="Number of machines.")] = 200,
    days: Annotated[int, typer.Option(help="Days of history.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 0,
    start: Annotated[str, typer.Option(help="First day (UTC), YYYY-MM-DD.")] = "2026-01-01",
    inbox_days: Annotated[int, typer.Option(help="Write the last K days as batches under OUT/inbox/.")] = 0,
) -> None:
    """Write a simulated fleet in the equipment data contract layout (hidden truth in OUT/truth.parquet)."""
    summary = run_simulation(out, machines=machines, days=days, seed=seed, start=start, inbox_days=inbox_days)
    console.print(
        f"wrote {summary.machines} machines x {summary.days} days to {summary.out} "
        f"({summary.bytes_written / 1e6:.0f} MB): {summary.telemetry_rows} telemetry rows, "
        f"{summary.waveform_rows} snapshots, {summary.failures} failures, "
        f"{summary.faulty_at_end} machines degrading at the end"
    )
    for batch in summary.inbox_batches:
        console.print(f"inbox batch: {batch}")


def run_simulation(out: Path, **options):
    from features.simulator import SimulationConfig
    from features.simulator import simulate as simulate_fleet

    try:
        config = SimulationConfig(**options)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with _progress() as progress:
        bar = progress.add_task("simulating", total=config.days)
        try:
            return simulate_fleet(
                out, config, progress=lambda done, total: progress.update(bar, completed=done)
            )
        except (ValueError, FileExistsError) as exc:
            raise InputError(str(exc)) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Dataset folder (equipment data contract v1).")],
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "wearcast",
    horizon_h: Annotated[float, typer.Option(help="Predict failure within this many hours.")] = 168.0,
    holdout: Annotated[
        str, typer.Option(help="Hold-out: 'time' (latest period) or 'machines' (unseen machines).")
    ] = "time",
    min_lead_h: Annotated[
        float, typer.Option(help="Warnings closer to the failure than this are useless.")
    ] = 0.0,
    alert_policy: Annotated[
        str,
        typer.Option(
            help="Alert threshold by 'cost' (--miss-cost-ratio) or crew 'capacity' (--capacity-per-day)."
        ),
    ] = "cost",
    miss_cost_ratio: Annotated[
        float, typer.Option(help="A missed failure costs this many needless inspections.")
    ] = 20.0,
    capacity_per_day: Annotated[int, typer.Option(help="Machines the crew can inspect per day.")] = 10,
    search_trials: Annotated[
        int, typer.Option(help="Hyperparameter trials (nested MLflow runs); 1 = none.")
    ] = 6,
    life_cap_h: Annotated[
        float, typer.Option(help="Remaining-life predictions are capped at this many hours.")
    ] = 720.0,
    promote_margin: Annotated[
        float, typer.Option(help="PR AUC the challenger must gain to replace the champion.")
    ] = 0.005,
    envelope_band_hz: Annotated[str | None, typer.Option(help=ENVELOPE_BAND_HELP)] = None,
) -> None:
    """Train a failure predictor on DATA, track it in MLflow, register it, promote it if it beats the champion."""
    from models.train import TrainConfig

    config = TrainConfig(
        horizon_h=horizon_h,
        holdout=cast(Literal["time", "machines"], holdout),
        min_lead_h=min_lead_h,
        alert_policy=cast(Literal["cost", "capacity"], alert_policy),
        miss_cost_ratio=miss_cost_ratio,
        capacity_per_day=capacity_per_day,
        search_trials=search_trials,
        life_cap_h=life_cap_h,
    )
    result = run_training(data, model_name, config, promote_margin, feature_config(envelope_band_hz))
    print_training(result)


def feature_config(envelope_band_hz: str | None):
    """The feature settings the command line can set (the rest: FeatureConfig's defaults)."""
    from features.build import FeatureConfig

    if envelope_band_hz is None:
        return FeatureConfig()
    try:
        lo, hi = (float(part) for part in envelope_band_hz.split(","))
        return FeatureConfig(envelope_band_hz=(lo, hi))
    except ValueError as exc:  # two numbers, 0 <= lo < hi (pydantic's ValidationError is a ValueError)
        raise InputError(
            f"--envelope-band-hz {envelope_band_hz!r}: not a band in Hz; fix: give two numbers LO,HI with "
            "0 <= LO < HI, such as 2000,4000"
        ) from exc


def run_training(
    data: Path, model_name: str, config=None, promote_margin: float = 0.005, features=None
) -> dict:
    settings = _start()
    from features.build import FeatureConfig
    from models.train import TrainConfig
    from pipelines.flows import TrainParams, run_flow, train_flow

    if not Path(data).is_dir():
        raise InputError(
            f"{data}: not a folder; fix: give a dataset folder in the equipment data contract layout"
        )
    params = TrainParams(
        data=str(Path(data).resolve()),
        model_name=model_name,
        train=config or TrainConfig(),
        promote_margin=promote_margin,
        features=features or FeatureConfig(),
    )
    result = run_flow(train_flow, params)
    console.print(f"MLflow store: {settings.tracking_uri}")
    return result


def print_training(result: dict) -> None:
    m = result["metrics"]
    console.print(
        f"trained {result['features']} features on {result['train_rows']} rows; hold-out {result['holdout_rows']} rows: "
        f"ROC AUC {m['roc_auc']:.3f}, PR AUC {m['pr_auc']:.3f}, recall {m['recall_at_alert']:.2f}, "
        f"precision {m['precision_at_alert']:.2f} at the alert threshold, "
        f"{_or_none(m['false_alarms_per_machine_month'], '.2f')} false alarms per machine-month, "
        f"{m['failures_caught']:.0f} of {m['failures_in_holdout']:.0f} failures caught"
    )
    if "life_rmse_h" in m:
        console.print(
            f"remaining life on the hold-out: RMSE {m['life_rmse_h']:.0f} h over {m['life_rows']:.0f} rows"
        )
    t = result["thresholds"]
    console.print(
        f"alert threshold {t['high']:.3f} (by {result['alert_policy']}; by cost {t['cost']:.3f}, "
        f"by crew capacity {t['capacity']:.3f}); medium from {t['medium']:.3f}"
    )
    promo = result["promotion"]
    verdict = "promoted to champion" if promo["promoted"] else "not promoted"
    console.print(f"registered version {result['version']}: {verdict} ({promo['reason']})")


@app.command()
def score(
    path: Annotated[
        Path | None,
        typer.Argument(help="Batch folder (equipment data contract v1); read, never written or moved."),
    ] = None,
    inbox: Annotated[
        Path | None,
        typer.Option(
            help="Folder of batch folders: each is validated, stored, moved to processed/ or failed/."
        ),
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="History store for --inbox (default: store/ in the project).")
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="Dataset with earlier readings, used as history (with PATH).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the risk list (default: outputs/).")
    ] = None,
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "wearcast",
    model: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    stale_after_h: Annotated[
        float,
        typer.Option(
            help="A machine whose latest reading is this much older than the fleet's is no_recent_data."
        ),
    ] = 48.0,
) -> None:
    """Score each machine of PATH (or of the store, after ingesting --inbox) as of its latest reading."""
    result = run_scoring(path, history, out, model_name, model, stale_after_h, inbox, store)
    print_scoring(result)
    unstored = [b["batch"] for b in result.get("batches", []) if b["status"] in ("failed", "error")]
    if unstored:  # the list is out, but a scheduler must see that some data did not make it into it
        err.print(
            f"exit code {PARTIAL_EXIT}: {len(unstored)} batch(es) not stored ({', '.join(unstored)}): the list "
            "scores the machines on the rest; fix: a batch in failed/ as its line above says, then move it back "
            "into the inbox (one left in the inbox is tried again by the next run)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(PARTIAL_EXIT)


PARTIAL_EXIT = 3  # score --inbox: the list was written, but a batch was not stored


def run_scoring(
    path: Path | None,
    history: Path | None,
    out: Path | None,
    model_name: str,
    model: str | None,
    stale_after_h: float = 48.0,
    inbox: Path | None = None,
    store: Path | None = None,
) -> dict:
    _start()
    from pipelines.flows import ScoreParams, run_flow, score_flow

    if (path is None) == (inbox is None):
        raise InputError(
            "give either a batch PATH or --inbox DIR (not both); fix: e.g. `wearcast score --inbox inbox/`"
        )
    for folder in (path, history, inbox):
        if folder is not None and not Path(folder).is_dir():
            raise InputError(
                f"{folder}: not a folder; fix: give a batch folder in the equipment data contract layout"
            )
    check_output_folder(out, [path, history, inbox])
    params = ScoreParams(
        path=str(Path(path).resolve()) if path else None,
        inbox=str(Path(inbox).resolve()) if inbox else None,
        store=str(Path(store).resolve()) if store else None,
        history=str(Path(history).resolve()) if history else None,
        out=str(Path(out).resolve()) if out else None,
        model_name=model_name,
        model_version=model,
        stale_after_h=stale_after_h,
    )
    return run_flow(score_flow, params)


@app.command()
def ingest(
    data: Annotated[Path, typer.Argument(help="Dataset folder to add to the store (read, never moved).")],
    store: Annotated[
        Path | None, typer.Option(help="History store (default: store/ in the project).")
    ] = None,
) -> None:
    """Add a dataset (e.g. the history before the first inbox batch) to the history store, validated."""
    run_ingest(data, store)


def run_ingest(data: Path, store: Path | None) -> None:
    from features.dataset import fingerprint, load_dataset
    from pipelines.store import default_store_path, open_store

    settings = _start(uses=())
    if not Path(data).is_dir():
        raise InputError(
            f"{data}: not a folder; fix: give a dataset folder in the equipment data contract layout"
        )
    dataset = load_dataset(data)
    where = Path(store or default_store_path(settings.root))
    result = open_store(where).append(dataset, fingerprint(data), str(data))
    print_counts(dataset.counts)
    verdict = "already stored (no change)" if result.already_stored else f"store version {result.version}"
    console.print(
        f"stored {sum(result.stored.values())} rows{_by_table(result.stored)} in {where}, "
        f"{sum(result.duplicates.values())} duplicates skipped{_by_table(result.duplicates)}"
        f"{_clash_text(sum(result.conflicts.values()), _by_table(result.conflicts))}"
        f"{_register_text(result.register_updates)}: {verdict}",
        markup=False,
    )


def _register_text(changes: list[str], shown: int = 5) -> str:
    """'; register updated for 2 machines (M0007: vibration_class II -> IV; ...)': machine rows that changed."""
    if not changes:
        return ""
    more = f"; and {len(changes) - shown} more" if len(changes) > shown else ""
    return f"; register updated for {len(changes)} machine(s) ({'; '.join(changes[:shown])}{more})"


def _clash_text(n_rows: int, by_table: str = "") -> str:
    """'; N rows (by table) quarantined as conflicts_with_stored (...)': rows that no batch may replace."""
    if not n_rows:
        return ""
    return (
        f"; {n_rows} rows{by_table} quarantined as conflicts_with_stored "
        "(their key is stored with other values; the stored rows are kept)"
    )


def _by_table(counts: dict[str, int]) -> str:
    """' (machines 20, telemetry 2380)': the tables a count comes from, when it is not zero."""
    parts = [f"{table} {n}" for table, n in counts.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


def check_output_folder(out: Path | None, inputs: list[Path | None]) -> None:
    """Outputs go to a folder that is not a file and not inside the data read (which is never written)."""
    if out is None:
        return
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; fix: give a folder for the risk list")
    for data in inputs:
        if data is not None and out.is_relative_to(Path(data).resolve()):
            raise InputError(
                f"--out {out}: is inside the input {data}, which wearcast never writes; fix: choose another folder"
            )


def batch_line(batch: dict) -> str:
    """One inbox batch's line: its balance of rows, or, when nothing of it was stored, why and where it is."""
    from pipelines.inbox import table_totals

    if batch["status"] in ("failed", "error"):  # nothing of it was read into the store: no balance to give
        return (
            f"batch {batch['batch']}: {batch['status']}, nothing stored; {batch.get('error')}; the whole batch "
            f"is kept in {batch.get('moved_to') or 'the inbox, for the next run'}"
        )
    t = table_totals(batch["tables"])
    return (
        f"batch {batch['batch']}: {batch['status']}; rows in {t['rows_in']} = stored {t['stored']} + "
        f"quarantined {t['quarantined']} + duplicates {t['duplicates']}"
        f"{_by_table({k: v['duplicates'] for k, v in batch['tables'].items()})}; moved to {batch['moved_to']}"
        + (
            f"; withdrew {batch['withdrawn']} stored readings of earlier batches as glitches"
            if batch.get("withdrawn")
            else ""
        )
        + (f" ({batch['error']})" if batch.get("error") else "")
        + _clash_text((batch.get("quarantine_codes") or {}).get("conflicts_with_stored", 0))
        + _register_text(batch.get("register_updates") or [])
        + "".join(
            f"; new {table} signal(s) the store never had: {', '.join(names)} (a renamed column or channel? the "
            "old one will read as dead; fix the batch and send it again)"
            for table, names in (batch.get("new_signals") or {}).items()
        )
    )


def print_scoring(result: dict, top: int = 10) -> None:

    for batch in result.get("batches", []):
        console.print(batch_line(batch), markup=False)
    if "inbox" not in result["counts"]:
        print_counts(result["counts"], "batch rows")
    console.print(
        f"risk list (model v{result['model_version']}): top {top} of {result['rows']} machines "
        f"({', '.join(f'{n} {s}' for s, n in result['statuses'].items())})"
    )
    console.print(
        f"{'rank':>4}  {'machine':<10} {'type':<15} {'p(fail)':>7}  {'band':<6}  {'inspect':<11} {'life':>6}  "
        "drivers",
        style="bold",
    )
    for row in result["top"][:top]:
        p = row["failure_probability"]
        shown = "" if p != p else f"{p:.3f}"
        console.print(
            f"{row['rank']:>4}  {row['machine_id']:<10} {row['machine_type']:<15} {shown:>7}  "
            f"{row['risk_band'] or row['status']:<6}  {inspect_text(row):<11} "
            f"{life_text(row.get('remaining_life_hours'), result):>6}  {row['drivers']}",
            soft_wrap=True,
            markup=False,
        )
    for name, where in result["paths"].items():
        console.print(f"{name}: {where}", soft_wrap=True)


@app.command()
def features(
    data: Annotated[
        Path, typer.Argument(help="Dataset folder (equipment data contract v1); read, never written.")
    ],
    out: Annotated[
        Path, typer.Option(help="Feature table to write (Parquet); notes and quarantine go beside it.")
    ],
    envelope_band_hz: Annotated[str | None, typer.Option(help=ENVELOPE_BAND_HELP)] = None,
) -> None:
    """Compute the feature table of DATA: one row per machine and as-of time, one column per feature."""
    config = feature_config(envelope_band_hz)
    _start(uses=("prefect",))
    from pipelines.flows import FeaturesParams, features_flow, run_flow

    if not Path(data).is_dir():
        raise InputError(
            f"{data}: not a folder; fix: give a dataset folder in the equipment data contract layout"
        )
    if Path(out).resolve().is_relative_to(Path(data).resolve()):
        raise InputError(
            f"--out {out}: is inside {data}, which wearcast never writes; fix: write it elsewhere"
        )
    params = FeaturesParams(data=str(Path(data).resolve()), out=str(Path(out).resolve()), features=config)
    with _progress() as progress:
        bar = progress.add_task("vibration snapshots", total=None)
        result = run_flow(
            features_flow,
            params,
            progress=_Bar(progress, bar),
        )
    print_counts(result["counts"])
    console.print(f"{result['rows']} rows x {result['features']} features for {result['machines']} machines")
    for name, where in result["paths"].items():
        console.print(f"{name}: {where}")


def life_text(hours: float | None, result: dict) -> str:
    """Predicted remaining life: hours under two days ('2.3h'), else days ('>30d' at the regressor's cap, ''
    without one)."""
    if hours is None or hours != hours:
        return ""
    cap = result.get("life_cap_h")
    if cap and hours >= cap - 1e-6:
        return f">{cap / 24:.0f}d"
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _true(value: object) -> bool:
    """True for True and numpy's True (a record of the list), not for NaN or a missing value."""
    return str(value) == "True"


def inspect_text(row: dict) -> str:
    """'yes' for a machine the crew is to inspect (``flagged``), with what changed since the last list ('yes new');
    a machine in alarm but over the crew's capacity reads 'alarm'; the status of a machine not scored."""
    change = str(row.get("change") or "")
    if _true(row.get("flagged")):
        return f"yes {change}".strip()
    if _true(row.get("alarm")):
        return f"alarm {change}".strip()
    return "" if row.get("status") in (None, "scored") else f"({row['status']})"


def print_counts(counts: dict, title: str = "rows") -> None:
    """The balance of every table: rows in = used + quarantined."""
    balance = ", ".join(
        f"{t} {c['rows_in']} in / {c['rows_used']} used / {c['rows_quarantined']} quarantined"
        for t, c in counts.items()
        if c["rows_in"]
    )
    console.print(f"{title}: {balance}")


@app.command()
def backtest(
    data: Annotated[
        Path, typer.Argument(help="Dataset folder (equipment data contract v1); read, never written.")
    ],
    out: Annotated[
        Path, typer.Option(help="Timeline to write (Parquet); the report goes to <stem>_report/.")
    ],
    days: Annotated[float, typer.Option(help="Replay the last DAYS of the data.")] = 30.0,
    every_h: Annotated[float, typer.Option(help="Hours between scoring times.")] = 24.0,
    min_lead_h: Annotated[
        float, typer.Option(help="A failure counts as caught with at least this lead.")
    ] = 24.0,
    horizon_h: Annotated[
        float, typer.Option(help="Walk-forward model: predict failure within H hours.")
    ] = 168.0,
    model_name: Annotated[str, typer.Option(help="Registered model name (with --model).")] = "wearcast",
    model: Annotated[
        str | None, typer.Option(help="Replay a registered version instead of a walk-forward model.")
    ] = None,
) -> None:
    """Replay the last DAYS of DATA as hourly/daily scoring would have seen it, and report in maintenance terms."""
    from models.train import TrainConfig

    run_report(
        "backtest", data, out, days, every_h, min_lead_h, model_name, model, TrainConfig(horizon_h=horizon_h)
    )


@app.command()
def evaluate(
    data: Annotated[
        Path, typer.Argument(help="Dataset folder (equipment data contract v1); read, never written.")
    ],
    out: Annotated[
        Path, typer.Option(help="Timeline to write (Parquet); the report goes to <stem>_report/.")
    ],
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "wearcast",
    model: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    every_h: Annotated[float, typer.Option(help="Hours between scoring times.")] = 24.0,
    min_lead_h: Annotated[
        float, typer.Option(help="A failure counts as caught with at least this lead.")
    ] = 24.0,
) -> None:
    """Evaluate a registered model (the champion by default) on every machine and time of DATA it never trained on."""
    from models.train import TrainConfig

    run_report("evaluate", data, out, None, every_h, min_lead_h, model_name, model, TrainConfig())


def run_report(
    kind: str,
    data: Path,
    out: Path,
    days: float | None,
    every_h: float,
    min_lead_h: float,
    model_name: str,
    model: str | None,
    train,
) -> dict:
    _start()
    from pipelines.backtest_flow import BacktestParams, backtest_flow, evaluate_flow
    from pipelines.flows import run_flow

    if not Path(data).is_dir():
        raise InputError(
            f"{data}: not a folder; fix: give a dataset folder in the equipment data contract layout"
        )
    check_output_folder(Path(out).parent, [data])
    params = BacktestParams(
        data=str(Path(data).resolve()),
        out=str(Path(out).resolve()),
        days=days,
        every_h=every_h,
        min_lead_h=min_lead_h,
        model_name=model_name,
        model_version=model,
        train=train,
    )
    result = run_flow(backtest_flow if kind == "backtest" else evaluate_flow, params)
    m = result["metrics"]
    console.print(
        f"{kind} of {result['model']}: {m['failures']:.0f} failures, {_caught(m, min_lead_h, every_h)}, "
        f"{_or_none(m['false_alarms_per_machine_month'], '.2f')} false alarms per machine-month, "
        f"alarm precision {_or_none(m['alarm_precision'], '.0%')}, PR AUC {_or_none(m['pr_auc'], '.3f')}, "
        f"Brier {_or_none(m['brier'], '.4f')}"
    )
    console.print(f"timeline: {result['files'][0]}", soft_wrap=True)
    console.print(f"report: {result['files'][1]} (MLflow run {result['run_id']})", soft_wrap=True)
    import pandas as pd

    thin = thin_replay(pd.read_parquet(result["files"][0]), every_h)
    if thin:
        err.print(f"warning: {thin}", markup=False, highlight=False)
    return result


def thin_replay(timeline: pandas.DataFrame, every_h: float) -> str | None:
    """Why the figures of a replay say little, when it scored fewer rows than two per machine (most of its
    machines failed before the next scoring time, or had no reading): else None."""
    if "status" not in timeline or timeline.empty:
        return None
    scored = int((timeline["status"] == "scored").sum())
    machines = timeline["machine_id"].nunique()
    if scored >= 2 * machines:
        return None
    by_status = ", ".join(f"{n} {s}" for s, n in timeline["status"].value_counts().items())
    return (
        f"the replay scored only {scored} rows of {machines} machines ({by_status}), so its figures say little: "
        f"lives or records shorter than the {every_h:g} h step between scoring times are barely scored; fix: a "
        "smaller --every-h (and --min-lead-h below the lives)"
    )


@app.command()
def feedback(
    file: Annotated[
        Path, typer.Argument(help="Crew findings: CSV or Parquet with machine_id, timestamp, finding.")
    ],
    feedback_dir: Annotated[
        Path | None, typer.Option(help="Where findings are kept (default: feedback/ in the project).")
    ] = None,
) -> None:
    """Record a crew's findings (confirmed_fault, nothing_found, repaired): the next training uses them as
    maintenance events, and the report tracks the lists' real precision."""
    from pipelines.feedback import record_findings

    settings = _start(uses=())
    result = record_findings(file, feedback_dir or settings.root / "feedback")
    for problem in result["problems"]:
        err.print(problem, markup=False, highlight=False)
    console.print(
        f"findings: {result['rows_in']} in = {result['recorded']} recorded + {result['duplicates']} duplicates + "
        f"{result['rejected']} rejected; {result['findings_total']} findings and {result['events_total']} "
        f"maintenance events kept in {result['findings_path']}",
        soft_wrap=True,
    )


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered version to make the champion.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit record).")],
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "wearcast",
    force: Annotated[
        bool, typer.Option(help="Promote a version that failed its sanity checks when trained (audited).")
    ] = False,
) -> None:
    """Make VERSION the champion by hand (overrules the train flow's decision; audited)."""
    from pipelines.promotions import move_champion

    settings = _start(uses=("mlflow",))
    audit = move_champion(settings, model_name, version, "promote", reason, force=force)
    console.print(
        f"champion of '{model_name}': v{audit['champion_version'] or '-'} -> v{version} ({reason}); "
        f"audit in the registry tag 'promotion' and {settings.mlruns / 'promotions.jsonl'}",
        markup=False,
    )


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (kept in the audit record).")],
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "wearcast",
) -> None:
    """Give the champion alias back to the version that held it before the current champion (audited)."""
    from pipelines.promotions import move_champion, rollback_target

    settings = _start(uses=("mlflow",))
    target = rollback_target(settings, model_name)
    audit = move_champion(settings, model_name, target, "rollback", reason)
    console.print(
        f"champion of '{model_name}' rolled back: {_was(audit['champion_version'])} -> v{target} ({reason}); "
        f"audit in the registry tag 'promotion' and {settings.mlruns / 'promotions.jsonl'}",
        markup=False,
    )


def _was(version: object) -> str:
    return f"v{version}" if version is not None else "no champion (its version was deleted)"


@app.command()
def demo(
    machines: Annotated[int, typer.Option(help="Machines in the simulated fleet.")] = 200,
    days: Annotated[int, typer.Option(help="Days of simulated history.")] = 60,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 7,
    top: Annotated[
        int, typer.Option(help="How many of the top of the list to check against the hidden truth.")
    ] = 10,
) -> None:
    """Simulate a fleet, train, store its history, score the inbox's last day into a risk list and its report, and
    check the top of the list against the hidden truth."""
    settings = _start()
    started = time.perf_counter()
    base = settings.outputs / "demo"
    fleet = base / "fleet"
    shutil.rmtree(fleet, ignore_errors=True)
    summary = run_simulation(fleet, machines=machines, days=days, seed=seed, inbox_days=1)
    console.print(
        f"simulated {summary.machines} machines x {summary.days} days ({summary.failures} failures, "
        f"{summary.faulty_at_end} degrading at the end) in {fleet}"
    )
    print_training(run_training(fleet, "wearcast-demo"))
    store = base / "store"
    for stale in (store, base / "lists", base / "risk_list.parquet"):  # a fresh store and no earlier list
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    run_ingest(fleet, store)  # the history before the inbox
    result = run_scoring(None, None, base, "wearcast-demo", None, inbox=fleet / "inbox", store=store)
    print_scoring(result)
    print_truth_check(result, fleet, top)
    console.print(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}")
    console.print(f"Prefect runs: PREFECT_HOME={settings.prefect_home} .venv/bin/prefect server start")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")


def print_truth_check(result: dict, fleet: Path, top: int) -> None:
    import pandas as pd

    from models.evaluate import truth_check

    risk = pd.read_parquet(result["paths"]["risk_list_parquet"])
    check = truth_check(risk, pd.read_parquet(fleet / "truth.parquet"), top)
    console.print(
        f"hidden-truth check: {check['hits']} of the top {top} machines are truly degrading "
        f"(fleet base rate {check['base_rate']:.0%}, so chance would give {check['chance']:.1f}); "
        f"{check['found']} of {check['degrading']} degrading machines are in the top {top}"
    )


ScoreCron = Annotated[
    str | None,
    typer.Option(
        help="Cron of the hourly scoring of the inbox (env WEARCAST_SCORE_CRON; default 0 * * * *)."
    ),
]
TrainCron = Annotated[
    str | None,
    typer.Option(help="Cron of the weekly retraining (env WEARCAST_TRAIN_CRON; default 0 3 * * 1)."),
]
BacktestCron = Annotated[
    str | None,
    typer.Option(help="Cron of the daily backtest report (env WEARCAST_BACKTEST_CRON; default 30 4 * * *)."),
]
TimeZone = Annotated[
    str | None, typer.Option(help="IANA time zone of the crons (env WEARCAST_TIMEZONE; default UTC).")
]
InboxDir = Annotated[
    Path | None, typer.Option(help="Inbox of batch folders (env WEARCAST_INBOX; default inbox/).")
]
StoreDir = Annotated[Path | None, typer.Option(help="History store (env WEARCAST_STORE; default store/).")]
TrainData = Annotated[
    Path | None,
    typer.Option(help="Dataset to retrain and backtest on (env WEARCAST_TRAIN_DATA; default data/)."),
]
OutDir = Annotated[
    Path | None, typer.Option(help="Risk lists and reports (env WEARCAST_OUT; default outputs/).")
]
ModelName = Annotated[
    str | None, typer.Option(help="Registered model name (env WEARCAST_MODEL_NAME; default wearcast).")
]
Paused = Annotated[bool, typer.Option(help="Create the schedules paused (runs only when triggered).")]


@app.command()
def serve(
    score_cron: ScoreCron = None,
    train_cron: TrainCron = None,
    backtest_cron: BacktestCron = None,
    timezone: TimeZone = None,
    inbox: InboxDir = None,
    store: StoreDir = None,
    data: TrainData = None,
    out: OutDir = None,
    model_name: ModelName = None,
    paused: Paused = False,
    take_over: Annotated[
        bool,
        typer.Option(
            help="Take over deployments of the same names that `wearcast deploy` put in a work pool of this "
            "server (their schedules pause when serve stops)."
        ),
    ] = False,
) -> None:
    """Run the scheduled deployments (hourly scoring, weekly retraining, daily backtest) in this process."""
    settings = _start()
    from prefect.settings import PREFECT_API_URL

    from pipelines.deploy import load_deploy_settings, serve_deployments

    config = load_deploy_settings(
        settings,
        score_cron=score_cron,
        train_cron=train_cron,
        backtest_cron=backtest_cron,
        timezone=timezone,
        inbox=inbox,
        store=store,
        data=data,
        out=out,
        model_name=model_name,
        paused=paused,
    )
    if not PREFECT_API_URL.value():
        err.print(
            "PREFECT_API_URL is not set: runs go to Prefect's local API (PREFECT_HOME="
            f"{settings.prefect_home}); to watch them, start `prefect server start` and set PREFECT_API_URL",
            markup=False,
        )
    serve_deployments(config, take_over=take_over)


@app.command()
def deploy(
    pool: Annotated[str, typer.Option(help="Prefect work pool (type process; created if missing).")],
    score_cron: ScoreCron = None,
    train_cron: TrainCron = None,
    backtest_cron: BacktestCron = None,
    timezone: TimeZone = None,
    inbox: InboxDir = None,
    store: StoreDir = None,
    data: TrainData = None,
    out: OutDir = None,
    model_name: ModelName = None,
    paused: Paused = False,
) -> None:
    """Register the scheduled deployments in a process work pool of the Prefect server at PREFECT_API_URL."""
    settings = _start(uses=("prefect",))  # before prefect is imported: it reads PREFECT_HOME once
    from pipelines.deploy import deploy_to_pool, load_deploy_settings

    config = load_deploy_settings(
        settings,
        score_cron=score_cron,
        train_cron=train_cron,
        backtest_cron=backtest_cron,
        timezone=timezone,
        inbox=inbox,
        store=store,
        data=data,
        out=out,
        model_name=model_name,
        paused=paused,
    )
    names, kept = deploy_to_pool(config, pool)
    for name in names:
        paused_note = " (kept paused: it was paused on the server)" if name in kept else ""
        console.print(f"deployment {name} in work pool '{pool}'{paused_note}", markup=False)
    if kept:
        console.print(
            "resume a paused deployment with `prefect deployment resume NAME` (or its toggle in the UI)",
            markup=False,
        )
    console.print(
        f"schedules ({config.timezone}{', paused' if config.paused else ''}): score '{config.score_cron}', "
        f"train '{config.train_cron}', backtest '{config.backtest_cron}'; "
        f"start a worker: prefect worker start --pool {pool}",
        markup=False,
    )


def run_app() -> int:
    """Run the Typer app; turn errors into exit codes without tracebacks."""
    try:
        code = app(standalone_mode=False)  # Typer turns Ctrl-C into exit code 130, returned here
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("aborted")
        return 130
    except click.exceptions.ClickException as exc:
        exc.show()
        return 2
    except InputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"error: invalid setting: {problems}", markup=False, highlight=False)
        return 2
    except Exception as exc:
        if os.environ.get("WEARCAST_DEBUG"):
            traceback.print_exc()
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (set WEARCAST_DEBUG=1 for the traceback)",
            markup=False,
        )
        return 1
    if code == 130:
        err.print("aborted")
    return code if isinstance(code, int) else 0


def _caught(m: dict[str, float], min_lead_h: float, every_h: float) -> str:
    """The recall and lead part of the replay's summary line; without a replayed failure, why not."""
    if m["failures"]:
        return (
            f"{m[f'recall_lead_{min_lead_h:g}h']:.0%} caught with >= {min_lead_h:g} h lead "
            f"(median lead {_hours(m['lead_h_median'])} h, 10th percentile {_hours(m['lead_h_p10'])} h)"
        )
    missed = int(m.get("failure_events_in_period", 0))
    if missed:
        return (
            f"so no lead or recall to measure: DATA has {missed} failure event{'s' * (missed != 1)} in the "
            "replayed period, but each came before its machine's first scoring time (a life shorter than the "
            f"{every_h:g} h step between scoring times is never scored); fix: a smaller --every-h"
        )
    return "so no lead or recall to measure (DATA has no failure event inside the replayed period)"


def _hours(value: float) -> str:
    """Hours to read: whole hours from 10 h, two significant digits below (a bearing's life may be hours),
    'none' where undefined (no failure warned)."""
    if value != value:
        return "none"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def _or_none(value: float, spec: str) -> str:
    """A metric as text, or 'none' where it is undefined (NaN: no alarm, or a single class)."""
    return "none" if value != value else format(value, spec)


def drain_run_logs(timeout_s: float = 5.0) -> None:
    """Send the run logs still queued to Prefect's API while it is up: the temporary server stops at exit, and
    a log sent after that prints "Error logging to API ... All connection attempts failed"."""
    if "prefect.logging.handlers" not in sys.modules:
        return  # no flow ran (e.g. --help): nothing queued, and no reason to import Prefect
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # logs that cannot be sent must not change the exit code
        APILogWorker.drain_all(timeout=timeout_s)


def main() -> None:
    """Entry point. Exit handlers (Prefect's temporary server shutdown) run, then the process ends without the
    C++ static teardown in which pyarrow occasionally aborts ("terminate called without an active exception")."""
    code = run_app()
    drain_run_logs()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    logging.shutdown()
    os._exit(code)
