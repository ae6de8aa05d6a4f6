"""The backtest and evaluate flows: replay history as scoring would have seen it, and report in maintenance terms.

``backtest``: by default a walk-forward model trained only on what was known before the replayed period (or a
registered version); ``evaluate``: a registered version (the champion by default) on every row it never
trained on. Both write the timeline, the report (metrics, failures, episodes, calibration, figures) and log them
to MLflow as a run.
"""

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from features.build import FeatureConfig
from features.dataset import Dataset, fingerprint
from features.errors import InputError
from models import plots, registry
from models.backtest import Backtest, replay, run_backtest, scoring_times, walk_forward_model
from models.bundle import RiskModel
from models.promotion import unseen_by
from models.train import TrainConfig
from pipelines.flows import connect_registry, load, ok, unusable_input_fails_the_run
from pipelines.settings import load_settings


class BacktestParams(BaseModel):
    """Parameters of the backtest and evaluate flows (a form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True)
    data: str
    out: str
    days: Annotated[float | None, Field(gt=0)] = 30.0  # replay the last DAYS (None: the whole data)
    every_h: Annotated[float, Field(gt=0)] = 24.0
    min_lead_h: Annotated[float, Field(ge=0)] = 24.0
    model_name: str = "wearcast"
    model_version: str | None = (
        None  # a registered version; None: walk-forward (backtest) / champion (evaluate)
    )
    stale_after_h: Annotated[float, Field(gt=0)] = 48.0
    train: TrainConfig = TrainConfig()
    features: FeatureConfig = FeatureConfig()


def replay_period(dataset: Dataset, days: float | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """From ``days`` before the last day of data (midnight UTC, where the daily scoring times start) to the
    latest reading, the last scoring time."""
    latest = dataset.latest_reading()
    if latest.empty:
        raise InputError(
            "the data has no telemetry or waveform readings to replay; fix: give a dataset with readings"
        )
    first = min(
        t.min() for t in (dataset.telemetry["timestamp"], dataset.waveforms.meta["timestamp"]) if len(t)
    )
    end = latest.max()
    start = first.ceil("D") if days is None else end.floor("D") - pd.Timedelta(days=days)
    if start < first:
        raise InputError(
            f"--days {days}: the data only covers {(end - first).total_seconds() / 86400:.0f} days "
            f"({first} to {latest.max()}); fix: replay fewer days (`--days`; `days` in a deployment's parameters)"
        )
    if start >= end:
        raise InputError(
            f"--days {days} leaves nothing to replay in data from {first} to {latest.max()}; fix: replay fewer "
            "days (`--days`; `days` in a deployment's parameters)"
        )
    return start, end


@task(cache_policy=NO_CACHE)
def model_for_backtest(
    params: BacktestParams, dataset: Dataset, start: pd.Timestamp
) -> tuple[RiskModel, str]:
    if params.model_version:
        return registry.load_model(params.model_name, params.model_version)
    return walk_forward_model(dataset, start, params.features, params.train), "walk-forward"


@task(cache_policy=NO_CACHE)
def replay_and_count(
    params: BacktestParams,
    dataset: Dataset,
    model: RiskModel,
    times: pd.DatetimeIndex,
    only_unseen: bool,
    count_from: pd.Timestamp,
) -> Backtest:
    timeline = replay(dataset, model, times, params.stale_after_h)
    if only_unseen:
        seen = ~unseen_by(model, timeline)
        timeline = timeline.loc[~seen].reset_index(drop=True)
        if timeline.empty:
            raise InputError(
                "every machine and time of this data was used to train the model; fix: evaluate it on later data "
                "or on other machines"
            )
    return run_backtest(
        timeline,
        dataset.events,
        model.thresholds,
        params.every_h,
        params.min_lead_h,
        model.info.get("capacity_per_day") if model.info.get("alert_policy") == "capacity" else None,
        float(model.info.get("miss_cost_ratio", params.train.miss_cost_ratio)),
        count_from,
    )


@task(cache_policy=NO_CACHE)
def write_report(result: Backtest, model: RiskModel, params: BacktestParams, label: str) -> list[Path]:
    """The timeline at ``out``; metrics, tables and figures in ``<out stem>_report/`` beside it."""
    out = Path(params.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.timeline.to_parquet(out, index=False)
    folder = out.with_name(out.stem + "_report")
    folder.mkdir(exist_ok=True)
    scored = result.timeline[(result.timeline["status"] == "scored") & result.timeline["label"].notna()]
    y, p = scored["label"].to_numpy(), scored["failure_probability"].to_numpy()
    files = [
        _write_json(folder / "metrics.json", {"model": label, **result.metrics}),
        _write_parquet(folder / "failures.parquet", result.failures),
        _write_parquet(folder / "episodes.parquet", result.episodes),
        _write_csv(folder / "calibration.csv", result.calibration),
        plots.pr_curve(y, p, model.thresholds["high"], folder / "pr_curve.png"),
        plots.calibration(result.calibration, folder / "calibration.png"),
        plots.lead_times(result.failures, params.min_lead_h, folder / "lead_times.png"),
        plots.risk_timelines(
            result.timeline, result.failures, model.thresholds, folder / "risk_timelines.png"
        ),
    ]
    report = folder / "report.md"
    report.write_text(report_markdown(result.metrics, label, params))
    return [out, report, *files]


def _write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def _write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path, index=False)
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def report_markdown(metrics: dict, label: str, params: BacktestParams) -> str:
    m = metrics
    recall_key = f"recall_lead_{params.min_lead_h:g}h"
    lines = [
        f"# Backtest of {label}",
        "",
        f"Replayed every {params.every_h:g} h; a failure counts as caught when an alarm was open before it with at "
        f"least {params.min_lead_h:g} h lead.",
        "",
        "| what | value |",
        "|---|---|",
        f"| failures | {m['failures']:.0f} |",
        f"| caught with >= {params.min_lead_h:g} h lead | {m[recall_key]:.1%} |",
        f"| warned at all | {m['recall_any_lead']:.1%} |",
        f"| lead time median / 10th percentile | {m['lead_h_median']:.0f} h / {m['lead_h_p10']:.0f} h |",
        f"| false alarms per machine-month | {m['false_alarms_per_machine_month']:.2f} |",
        f"| alarm precision | {m['alarm_precision']:.1%} |",
        f"| cost (in inspections) | {m['cost_in_inspections']:.0f} |",
        f"| PR AUC / Brier / calibration error | {m['pr_auc']:.3f} / {m['brier']:.4f} / {m['calibration_error']:.3f} |",
    ]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def log_report(params: BacktestParams, metrics: dict, files: list[Path], label: str, kind: str) -> str:
    settings = load_settings()
    experiment_id = connect_registry(settings)
    flat = {
        "data_path": params.data,
        "days": params.days,
        "every_h": params.every_h,
        "min_lead_h": params.min_lead_h,
        "model": label,
        **(
            {f"train.{k}": v for k, v in params.train.model_dump().items()} if label == "walk-forward" else {}
        ),
    }
    tags = {"wearcast.kind": kind, "data_fingerprint": fingerprint(params.data)}
    return registry.log_evaluation_run(experiment_id, f"{kind} {label}", flat, metrics, tags, files)


def _replay(params: BacktestParams, kind: str) -> dict:
    logger = get_run_logger()
    connect_registry(load_settings())
    dataset = ok(load(params.data))
    start, end = replay_period(dataset, params.days)
    if kind == "evaluate":
        version = params.model_version or registry.champion_version(params.model_name)
        model, version = registry.load_model(params.model_name, version)
        label = f"{params.model_name} v{version}"
    else:
        model, version = model_for_backtest(params, dataset, start)
        label = "walk-forward model" if version == "walk-forward" else f"{params.model_name} v{version}"
    times = scoring_times(start, end, params.every_h, warm_up_h=params.min_lead_h)
    logger.info("replaying %d scoring times from %s to %s with %s", len(times), start, end, label)
    result = replay_and_count(
        params,
        dataset,
        model,
        times,
        only_unseen=kind == "evaluate" or version != "walk-forward",
        count_from=start,
    )
    files = write_report(result, model, params, label)
    run_id = log_report(
        params, result.metrics, files, "walk-forward" if version == "walk-forward" else label, kind
    )
    create_markdown_artifact(key=f"{kind}-report", markdown=report_markdown(result.metrics, label, params))
    return {"metrics": result.metrics, "files": [str(f) for f in files], "run_id": run_id, "model": label}


@flow(name="wearcast-backtest", log_prints=True)
@unusable_input_fails_the_run
def backtest_flow(params: BacktestParams) -> dict:
    """Replay the last DAYS of DATA day by day with a walk-forward (or a registered) model, and report."""
    return _replay(params, "backtest")


@flow(name="wearcast-evaluate", log_prints=True)
@unusable_input_fails_the_run
def evaluate_flow(params: BacktestParams) -> dict:
    """Replay DATA with a registered model (the champion by default) on every row it never trained on."""
    return _replay(params, "evaluate")
