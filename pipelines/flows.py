"""Prefect flows: train (features, labels, XGBoost, MLflow, champion) and score (batch in, risk list out).

Tasks are thin, batch-sized wrappers over pure code in ``features`` and ``models``; nothing here runs per
machine. Flow parameters are paths and small pydantic models, never DataFrames.
"""

from __future__ import annotations

import getpass
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast

import numpy as np
import pandas as pd
from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict

from features.build import (
    FeatureConfig,
    FeatureTable,
    Progress,
    build_features,
    empty_feature_notes,
    explained_row_by_row,
    latest_as_of,
)
from features.checks import PlausibilityConfig, find_sensor_flags, sensor_flag_frame
from features.dataset import Dataset, combine, fingerprint, load_dataset
from features.errors import InputError
from models import plots, registry
from models.bundle import RiskModel
from models.distributed import dask_booster_fitter
from models.drift import drift_groups, drift_warnings, population_stability
from models.evaluate import calibration_table, evaluate, life_metrics
from models.labels import failure_within
from models.promotion import Comparison, compare_on_unseen, promotion_decision, sanity_problems
from models.risk import flagged_history, score_dataset
from models.rul import remaining_life
from models.split import labelled_holdout
from models.train import TrainConfig, train_risk_model
from pipelines.feedback import feedback_events, list_precision, load_findings, merge_events, read_lists
from pipelines.inbox import BatchReport, process_inbox, table_totals
from pipelines.logs import log_event, log_machines, quarantine_summary
from pipelines.notify import DeliveryResult, WebhookConfig, notify_new_high_risk
from pipelines.promotions import append_audit
from pipelines.report import render_report
from pipelines.scale import dask_client, featurize_fleet
from pipelines.settings import ScaleSettings, Settings, load_settings
from pipelines.store import LOG as STORE_LOG
from pipelines.store import default_store_path, open_store


class TrainParams(BaseModel):
    """Parameters of the train flow (shown as a form in the Prefect UI)."""

    model_config = ConfigDict(frozen=True)
    data: str
    model_name: str = "wearcast"
    train: TrainConfig = TrainConfig()
    features: FeatureConfig = FeatureConfig()
    promote_margin: float = 0.005  # PR AUC the challenger must gain over the champion to replace it
    feedback_dir: str | None = (
        None  # crew findings become maintenance events; default: feedback/ in the project
    )
    max_calibration_error: float = 0.1  # on the hold-out; above it a model is never promoted


class ScoreParams(BaseModel):
    """Parameters of the score flow: a batch PATH (read, never moved), or an INBOX of batches that are validated,
    stored in the history STORE and moved to processed/ or failed/, and then the store's machines are scored."""

    model_config = ConfigDict(frozen=True)
    path: str | None = None
    inbox: str | None = None
    store: str | None = None
    history: str | None = None
    model_name: str = "wearcast"
    model_version: str | None = None
    out: str | None = None
    stale_after_h: float = 48.0
    feedback_dir: str | None = None  # crew findings (wearcast feedback); default: feedback/ in the project


P = ParamSpec("P")
R = TypeVar("R")
UNUSABLE = "UnusableInput"
NOT_STORED = "BatchesNotStored"  # a Failed state: the list was written, but an inbox batch was not stored
ANNOUNCED = "announced.json"  # in the outputs folder: the machines the webhook got for the last list's time


class Unusable(NamedTuple):
    """What a task returns instead of raising when its input cannot be used (no traceback in the run logs)."""

    message: str


class _StopUnusable(Exception):
    pass


def guarded(fn: Callable[P, R]) -> Callable[P, R | Unusable]:
    """Turn an InputError of a task's pure call into an Unusable value."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | Unusable:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            return Unusable(str(exc))

    return run


def ok(value: R | Unusable) -> R:
    """The task's value, or stop the flow run (as Failed 'UnusableInput', with the message) if it was unusable."""
    if isinstance(value, Unusable):
        raise _StopUnusable(value.message)
    return value


def unusable_input_fails_the_run(body: Callable[P, R]) -> Callable[P, R | State]:
    """A flow body whose unusable input ends the run in a Failed state with one message, not a traceback."""

    @wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | State:
        try:
            return body(*args, **kwargs)
        except (_StopUnusable, InputError) as exc:
            get_run_logger().error("unusable input: %s", exc)
            return Failed(name=UNUSABLE, message=str(exc))

    return run


def run_flow(flow_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a flow; unusable input raises InputError (the CLI's exit code 2), other failures their exception; a
    scoring run whose list was written although a batch was not stored returns its result."""
    state = flow_fn(*args, return_state=True, **kwargs)
    if state.is_failed() and state.name == UNUSABLE:
        raise InputError(state.message)
    if state.is_failed() and state.name == NOT_STORED:  # the run's result, with the batches' reports
        return state.result(raise_on_failure=False)
    return state.result()


@task(cache_policy=NO_CACHE)
@guarded
def load(path: str) -> Dataset:
    return load_dataset(path)


@task(cache_policy=NO_CACHE)
def label(frame: pd.DataFrame, dataset: Dataset, config: TrainConfig) -> tuple[pd.Series, pd.Series]:
    """Failure within the horizon (the classifier's label) and remaining life in hours (the regressor's)."""
    end = dataset.latest_reading()
    return (
        failure_within(frame, dataset.events, end, config.horizon_h, config.min_lead_h),
        remaining_life(frame, dataset.events, end, config.life_cap_h).reset_index(drop=True),
    )


@task(cache_policy=NO_CACHE)
@guarded
def fit(
    frame: pd.DataFrame,
    labels: pd.Series,
    features: FeatureConfig,
    config: TrainConfig,
    life: pd.Series,
    machines: pd.DataFrame,
    scale: ScaleSettings,
) -> RiskModel:
    """The risk model; its final booster fitted with xgboost.dask when WEARCAST_DASK_TRAIN asks for it."""
    if not (scale.enabled and scale.train_on_dask):
        return train_risk_model(frame, labels, features, config, life, machines)
    with dask_client(scale) as client:
        log_event("train", booster="xgboost.dask", workers=len(client.scheduler_info()["workers"]))
        return train_risk_model(
            frame, labels, features, config, life, machines, fit_booster=dask_booster_fitter(client)
        )


@task(cache_policy=NO_CACHE)
def evaluate_on(
    model: RiskModel, frame: pd.DataFrame, labels: pd.Series, dataset: Dataset, life: pd.Series
) -> dict[str, float]:
    probability = model.predict_proba(frame)
    metrics = evaluate(
        frame, labels.to_numpy(), probability, model.thresholds["high"], dataset.events, model.horizon_h
    )
    return {**metrics, **life_metrics(model.remaining_life_h(frame), life.to_numpy())}


@task(cache_policy=NO_CACHE)
def connect_registry(settings: Settings) -> str:
    return registry.connect(settings.tracking_uri, settings.experiment, settings.artifact_location)


@task(cache_policy=NO_CACHE)
def register(
    model: RiskModel,
    params: TrainParams,
    experiment_id: str,
    metrics: dict,
    data_info: dict,
    sample: pd.DataFrame,
    holdout: pd.DataFrame,
    holdout_labels: pd.Series,
) -> registry.RegisteredRun:
    flat = {
        "data_path": params.data,
        "model_name": params.model_name,
        "promote_margin": params.promote_margin,
        **{f"train.{k}": v for k, v in params.train.model_dump().items()},
        **{f"features.{k}": v for k, v in params.features.model_dump().items()},
        **{f"data.{k}": v for k, v in data_info.items() if k != "fingerprint"},
    }
    tags = {"data_fingerprint": data_info["fingerprint"], "contract_version": data_info["contract_version"]}
    with tempfile.TemporaryDirectory() as tmp:
        files = holdout_figures(model, holdout, holdout_labels, Path(tmp))
        return registry.log_training_run(
            model, params.model_name, experiment_id, flat, metrics, tags, sample, files
        )


def holdout_figures(
    model: RiskModel, frame: pd.DataFrame, labels: pd.Series, folder: Path
) -> dict[str, Path]:
    """PR curve and calibration of the hold-out, as files to log with the training run."""
    y, p = labels.to_numpy(), model.predict_proba(frame)
    return {
        "holdout": plots.pr_curve(y, p, model.thresholds["high"], folder / "pr_curve.png"),
        "holdout_calibration": plots.calibration(calibration_table(y, p), folder / "calibration.png"),
    }


def holdout_rows(
    frame: pd.DataFrame, labels: pd.Series, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of labelled training and hold-out rows."""
    return labelled_holdout(
        frame, labels, config.holdout, config.test_fraction, config.horizon_h, config.seed
    )


def compare_with_champion(
    params: TrainParams, dataset: Dataset, challenger: RiskModel, test: pd.DataFrame, labels: pd.Series
) -> Comparison | None:
    """Both models on the hold-out rows neither trained on (None when there is no champion yet)."""
    version = registry.champion_version(params.model_name)
    if version is None:
        return None
    champion, _ = registry.load_model(params.model_name, version)

    def champion_features(rows: pd.DataFrame) -> pd.DataFrame:
        if champion.spec.config == params.features:
            return rows
        return build_features(dataset, rows[["machine_id", "timestamp"]], champion.spec.config).frame

    return compare_on_unseen(version, champion, challenger, test, labels, dataset.events, champion_features)


@task(cache_policy=NO_CACHE)
def decide_promotion(
    params: TrainParams,
    settings: Settings,
    run: registry.RegisteredRun,
    metrics: dict,
    comparison: Comparison | None,
    problems: list[str],
) -> dict:
    promote, reason = promotion_decision(comparison, params.promote_margin, problems=problems)
    audit = {
        "at": datetime.now(UTC).isoformat(),
        "by": f"{getpass.getuser()} (wearcast train flow)",
        "action": "promote" if promote else "keep",
        "model_name": params.model_name,
        "challenger_version": run.version,
        "champion_version": comparison.champion_version if comparison else None,
        "promoted": promote,
        "reason": reason,
        "margin": params.promote_margin,
        "sanity_problems": problems,
        "challenger_holdout_metrics": metrics,
        "comparison": asdict(comparison) if comparison else None,
    }
    if promote:
        registry.set_champion(params.model_name, run.version, audit)
    else:
        registry.tag_version(params.model_name, run.version, "promotion", json.dumps(audit, default=str))
    append_audit(settings, audit)
    return audit


@flow(name="wearcast-train", log_prints=True)
@unusable_input_fails_the_run
def train_flow(params: TrainParams) -> dict:
    """Load and validate DATA, build features, label, train, evaluate on a hold-out, log, register, promote."""
    settings = load_settings()
    experiment_id = connect_registry(settings)
    dataset = ok(load(params.data))
    log_machines("validate", quarantine_summary(dataset.quarantine), logging.WARNING, data=params.data)
    feedback_dir = Path(params.feedback_dir) if params.feedback_dir else settings.root / "feedback"
    dataset = replace(dataset, events=merge_events(dataset.events, feedback_events(feedback_dir)))
    table = featurize_fleet(settings.scale, dataset, params.features)
    labels, life = cast(
        tuple[pd.Series, pd.Series], label(table.frame, dataset, params.train)
    )  # mypy reads Prefect's overloads wrongly
    train_rows, test_rows = holdout_rows(table.frame, labels, params.train)
    log_event(
        "train",
        data=params.data,
        feature_rows=len(table.frame),
        machines=int(table.frame["machine_id"].nunique()),
        train_rows=len(train_rows),
        holdout_rows=len(test_rows),
    )
    train_frame, test_frame = table.frame.iloc[train_rows], table.frame.iloc[test_rows].reset_index(drop=True)
    train_life = life.iloc[train_rows].reset_index(drop=True)
    model = ok(
        fit(
            train_frame,
            labels.iloc[train_rows],
            params.features,
            params.train,
            train_life,
            dataset.machines,
            settings.scale,
        )
    )
    test_labels = labels.iloc[test_rows].reset_index(drop=True)
    metrics = evaluate_on(
        model, test_frame, test_labels, dataset, life.iloc[test_rows].reset_index(drop=True)
    )
    comparison = compare_with_champion(params, dataset, model, test_frame, test_labels)
    data_info = {
        "fingerprint": fingerprint(params.data),
        "contract_version": dataset.contract_version,
        "feature_rows": len(table.frame),
        "train_rows": len(train_rows),
        "holdout_rows": len(test_rows),
        "machines": len(dataset.machines),
        "rows_quarantined": len(dataset.quarantine),
    }
    run = register(
        model, params, experiment_id, metrics, data_info, test_frame.head(200), test_frame, test_labels
    )
    problems = sanity_problems(model, test_frame, metrics, params.max_calibration_error, test_labels)
    audit = decide_promotion(params, settings, run, metrics, comparison, problems)
    log_event(
        "promote",
        model=params.model_name,
        version=run.version,
        promoted=audit["promoted"],
        champion=audit["champion_version"],
        pr_auc=metrics.get("pr_auc"),
        reason=audit["reason"],
    )
    create_markdown_artifact(key="training-summary", markdown=_training_markdown(params, run, metrics, audit))
    return {
        "run_id": run.run_id,
        "version": run.version,
        "metrics": metrics,
        "promotion": audit,
        "features": len(model.spec.columns),
        "thresholds": model.thresholds,
        "alert_policy": params.train.alert_policy,
        **data_info,
    }


def _training_markdown(params: TrainParams, run: registry.RegisteredRun, metrics: dict, audit: dict) -> str:
    lines = [
        f"# {params.model_name} v{run.version}",
        "",
        f"Promoted: **{audit['promoted']}** ({audit['reason']})",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items()]
    return "\n".join(lines)


@task(cache_policy=NO_CACHE)
@guarded
def load_model(params: ScoreParams) -> tuple[RiskModel, str]:
    return registry.load_model(params.model_name, params.model_version)


def run_or_module_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run's logger inside a flow or task, else this module's (a benchmark calling a step directly)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def check_features(model: RiskModel, frame: pd.DataFrame, model_name: str, version: str) -> list[str]:
    """Refuse to score when the data cannot provide most of the model's features; say which ones it lacks
    otherwise (the model scores them as missing values). Returns the missing features."""
    missing = model.spec.missing_from(frame)
    fix = (
        "score data with the same tables and sensors the model was trained on, pass --history with earlier "
        "readings, or train a model on this data"
    )
    if len(missing) > len(model.spec.columns) / 2:
        raise InputError(
            f"model '{model_name}' v{version} needs {len(model.spec.columns)} features and this data cannot provide "
            f"{len(missing)} of them (e.g. {', '.join(missing[:3])}); fix: {fix}"
        )
    if missing:
        run_or_module_logger().warning(
            "this data cannot provide %d of the %d features of model '%s' v%s (%s%s): they are scored as missing "
            "values, which weakens the ranking; fix: %s",
            len(missing),
            len(model.spec.columns),
            model_name,
            version,
            ", ".join(missing[:5]),
            f" and {len(missing) - 5} more" if len(missing) > 5 else "",
            fix,
        )
    return missing


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Write through a temporary name in the same folder, then rename: a run killed mid-way leaves the previous
    file whole, never a partial one."""
    temporary = path.with_name(f".{path.name}.partial")
    write(temporary)
    temporary.replace(path)
    return path


def list_stamp(as_of: pd.Series | pd.Timestamp | None) -> str:
    """The time a list is made as of, as in its dated copy's name (``lists/risk_list_<stamp>.parquet``): its
    newest reading, to the minute ('none' without one)."""
    newest = pd.Series(as_of).max() if as_of is not None else pd.NaT
    return pd.Timestamp(newest).strftime("%Y%m%dT%H%M") if pd.notna(newest) else "none"


def previous_list(out: Path, as_of: pd.Series | pd.Timestamp | None = None) -> pd.DataFrame | None:
    """The list that alarms and changes carry over from: the last one written to ``out`` made as of an earlier
    time than ``as_of`` (the newest readings of the list to make). A run on the same readings again (an hourly
    run with no new batch) compares with the list before, as the first run did, so its ``new`` and ``rising``
    stay; without ``as_of``, the last list written."""
    stamp = list_stamp(as_of)
    current = _read_list(out / "risk_list.parquet")
    if current is None or stamp == "none" or list_stamp(current.get("as_of")) < stamp:
        return current
    earlier = sorted(
        p for p in (out / "lists").glob("risk_list_*.parquet") if p.stem.removeprefix("risk_list_") < stamp
    )
    return _read_list(earlier[-1]) if earlier else None


def _read_list(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path) if path.is_file() else None
    except (OSError, ValueError):
        get_run_logger().warning("previous risk list %s is unreadable: alarms start afresh", path)
        return None


def dated_copy(folder: Path, stamp: str, risk: pd.DataFrame) -> Path:
    """Where the list's dated copy goes: ``risk_list_<stamp>.parquet``. When a copy of that time exists and says
    something else (a late batch of older readings changed the list without a newer reading), a revision
    ``risk_list_<stamp>_r002.parquet`` ...: a list a crew received is never rewritten. The same list again
    (an hourly run without a new batch) goes over its own copy."""
    copies = sorted(folder.glob(f"risk_list_{stamp}_r*.parquet"))
    latest = copies[-1] if copies else folder / f"risk_list_{stamp}.parquet"
    if not latest.is_file():
        return latest
    try:
        pd.testing.assert_frame_equal(
            pd.read_parquet(latest).reset_index(drop=True), risk.reset_index(drop=True), check_dtype=False
        )
        return latest
    except (AssertionError, OSError, ValueError):
        return folder / f"risk_list_{stamp}_r{len(copies) + 2:03d}.parquet"


@task(cache_policy=NO_CACHE)
def write_outputs(risk: pd.DataFrame, dataset: Dataset, out: Path) -> dict[str, str]:
    """The list (CSV, Parquet), a dated copy in ``lists/`` (the history of lists) and the quarantine."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "lists").mkdir(exist_ok=True)
    stamp = list_stamp(risk["as_of"])
    paths = {
        "risk_list_csv": write_atomically(out / "risk_list.csv", lambda p: risk.to_csv(p, index=False)),
        "risk_list_parquet": write_atomically(
            out / "risk_list.parquet", lambda p: risk.to_parquet(p, index=False)
        ),
        "dated_list": write_atomically(
            dated_copy(out / "lists", stamp, risk), lambda p: risk.to_parquet(p, index=False)
        ),
        "quarantine": write_atomically(
            out / "quarantine.parquet", lambda p: dataset.quarantine.to_parquet(p, index=False)
        ),
    }
    return {k: str(v) for k, v in paths.items()}


@task(cache_policy=NO_CACHE)
@guarded
def ingest_inbox(inbox: str, store_path: str) -> tuple[Dataset, dict, list[dict]]:
    """Store every batch of the inbox, then read the store's history (with its stuck or dead sensors flagged).
    Unusable when no batch could be stored and the store is empty."""
    new_store = not Path(store_path, STORE_LOG).exists()
    store = open_store(store_path)
    if new_store:  # a typo in --store would otherwise quietly start an empty history beside the real one
        log_event(
            "store",
            logging.WARNING,
            created=store_path,
            note="no store was there: a new, empty one was made; "
            "if the history should be there, check --store (the batches of this run went into the new one)",
        )
    reports = process_inbox(inbox, store)
    for report in reports:
        for table, names in report.new_signals.items():
            log_event(
                "ingest",
                logging.WARNING,
                batch=report.batch,
                new_signals=f"{table}: {', '.join(names)}",
                note="signals the store never had: a renamed column or channel? the old one will read as dead",
            )
        log_event(
            "ingest",
            logging.WARNING if report.error else logging.INFO,
            batch=report.batch,
            status=report.status,
            **report.totals(),
            moved_to=report.moved_to,
            store_version=report.store_version,
            error=report.error,
        )
    if store.version == 0:
        failed = "; ".join(f"{r.batch}: {r.error}" for r in reports if r.error) or "the inbox is empty"
        raise InputError(
            f"nothing stored in {store_path} from {inbox}: {failed}; fix: put batch folders in the inbox"
        )
    history = store.read()
    stored = [r.batch_id for r in reports if r.status == "stored" and r.batch_id]
    readings = [r.tables.get(t, {}).get("stored", 0) for r in reports for t in ("telemetry", "waveforms")]
    if not any(readings):  # a stopped feed must not go unnoticed (register rows or events are no readings)
        newest = history.latest_reading().max()
        age = pd.Timestamp.now(tz="UTC") - newest if pd.notna(newest) else None
        log_event(
            "ingest",
            logging.WARNING,
            result="no_new_readings",
            batches=len(reports),
            newest_reading=newest,
            hours_ago=None if age is None else round(age.total_seconds() / 3600.0, 1),
            note="no batch of this run stored a reading: the list is the store's as it was; if batches are "
            "due, check the feed into the inbox",
        )
    rejected = [
        store.quarantine(batch_id) for batch_id in stored
    ]  # this run's rejected rows, with their reasons
    quarantine = pd.concat(rejected, ignore_index=True) if rejected else history.quarantine
    flags = pd.concat(
        [f for f in (sensor_flags_of(history), open_spikes(reports, history.telemetry)) if len(f)]
        or [sensor_flags_of(history)],
        ignore_index=True,
    )
    history = replace(history, sensor_flags=flags, quarantine=quarantine)
    log_machines("validate", quarantine_summary(quarantine), logging.WARNING, result="quarantined")
    totals = table_totals({r.batch: r.totals() for r in reports})
    return history, {"inbox": totals}, [r.to_dict() for r in reports]


def open_spikes(reports: list[BatchReport], telemetry: pd.DataFrame) -> pd.DataFrame:
    """The unconfirmed ``spike`` flags this run's batches reported that still reach their machine's latest
    stored reading of the column (a later batch of the same run may have ended the burst: then it is
    withdrawn instead)."""
    rows = [f for report in reports for f in report.sensor_flags if f.get("flag") == "spike"]
    spikes = sensor_flag_frame(rows)
    if spikes.empty or telemetry.empty:
        return sensor_flag_frame()
    spikes = spikes.drop_duplicates(["machine_id", "column"], keep="last").reset_index(drop=True)
    still_open = np.zeros(len(spikes), bool)
    for i, (machine, column, until) in enumerate(
        spikes[["machine_id", "column", "until"]].itertuples(index=False)
    ):
        if column in telemetry:
            stamps = telemetry.loc[
                (telemetry["machine_id"] == machine) & telemetry[column].notna(), "timestamp"
            ]
            still_open[i] = len(stamps) > 0 and until >= stamps.max()
    return spikes[still_open].reset_index(drop=True)


def sensor_flags_of(history: Dataset) -> pd.DataFrame:
    """Stuck or dead telemetry sensors over the whole stored history (active ones make a machine check_sensor)."""
    telemetry = history.telemetry.sort_values(["machine_id", "timestamp"], kind="stable").reset_index(
        drop=True
    )
    columns = [
        c
        for c in telemetry.columns
        if c not in ("machine_id", "timestamp") and telemetry[c].dtype.kind == "f"
    ]
    return find_sensor_flags(telemetry, columns, PlausibilityConfig())


@task(cache_policy=NO_CACHE)
def notify(
    risk: pd.DataFrame, webhook: WebhookConfig | None, out: Path, list_path: str
) -> DeliveryResult | None:
    """Post the new flagged machines to the webhook (never fails the run; undelivered payloads wait in outbox/),
    except those already posted or queued for a list made as of the same time (``announced.json``: a run on the
    same readings again keeps them ``new``)."""
    stamp = list_stamp(risk["as_of"])
    done = announced(out, stamp)
    result = notify_new_high_risk(risk, webhook, out / "outbox", list_path=list_path, announced=done)
    if result is not None and (result.delivered or result.outbox_path is not None):
        new = risk.loc[risk["flagged"].eq(True) & risk["change"].eq("new"), "machine_id"].astype(str)
        record = json.dumps({"stamp": stamp, "machines": sorted(done | set(new))})
        write_atomically(out / ANNOUNCED, lambda path: path.write_text(record))
    return result


def announced(out: Path, stamp: str) -> set[str]:
    """Machines posted (or queued in outbox/) for the list made as of ``stamp``; none for another time."""
    try:
        record = json.loads((out / ANNOUNCED).read_text())
    except (OSError, ValueError):
        return set()
    return set(record.get("machines", [])) if record.get("stamp") == stamp else set()


@task(cache_policy=NO_CACHE)
def check_drift(model: RiskModel, frame: pd.DataFrame, risk: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """PSI of each feature and of the scores of the scored machines against the model's training profile."""
    if model.drift is None:
        return pd.DataFrame()
    scored = risk.loc[risk["status"] == "scored", "machine_id"]
    rows = frame[frame["machine_id"].isin(scored)].reset_index(drop=True)
    if rows.empty:
        return pd.DataFrame()
    groups = drift_groups(rows, dataset.machines)
    return population_stability(model.drift, model.spec.matrix(rows), model.predict_proba(rows), groups)


@task(cache_policy=NO_CACHE)
def log_scoring(
    params: ScoreParams, settings: Settings, version: str, risk: pd.DataFrame, drift: pd.DataFrame, out: Path
) -> str:
    """The scoring run in MLflow: statuses, flagged count, drift (worst PSI, drifted features) and the tables."""
    path = write_atomically(out / "drift.csv", lambda p: drift.to_csv(p, index=False))
    judged = drift[drift["level"].isin(["ok", "watch", "drift"])] if len(drift) else drift
    metrics = {
        "machines": float(len(risk)),
        "flagged": float(risk["flagged"].sum()),
        **{f"status_{k}": float(v) for k, v in risk["status"].value_counts().items()},
        "drift_max_psi": float(judged["psi"].max()) if len(judged) else float("nan"),
        "drifted_features": float(judged.loc[judged["level"] == "drift", "feature"].nunique())
        if len(judged)
        else 0.0,
    }
    warnings = drift_warnings(drift) if len(drift) else []
    for line in warnings:
        log_event("drift", logging.WARNING, warning=line)
    experiment_id = registry.connect(settings.tracking_uri, settings.experiment, settings.artifact_location)
    tags = {"wearcast.kind": "score", "model_version": version, "drift_warnings": "\n".join(warnings)[:4000]}
    flat = {
        "model_name": params.model_name,
        "model_version": version,
        "source": params.inbox or params.path or "",
    }
    registry.log_evaluation_run(
        experiment_id, f"score {params.model_name} v{version}", flat, metrics, tags, [path]
    )
    return str(path)


@task(cache_policy=NO_CACHE)
def write_report(
    model: RiskModel,
    risk: pd.DataFrame,
    dataset: Dataset,
    model_name: str,
    version: str,
    out: Path,
    drift: pd.DataFrame,
    precision: pd.DataFrame,
) -> str:
    """The self-contained HTML report: the flagged machines, their risk and main drivers over the last weeks."""
    history, drivers = flagged_history(
        model, risk, lambda rows: build_features(dataset, rows, model.spec.config).frame
    )
    meta = {
        "model_name": model_name,
        "model_version": version,
        "thresholds": model.thresholds,
        "horizon_h": model.horizon_h,
        "remaining_life_cap_h": model.life.cap if model.life is not None else None,
        "driver_features": drivers,
        "drift": drift_warnings(drift) if len(drift) else [],
        "precision": precision,
    }
    return str(render_report(risk, history, meta, out / "risk_report.html"))


@flow(name="wearcast-score", log_prints=True)
@unusable_input_fails_the_run
def score_flow(params: ScoreParams) -> dict | State:
    """Validate a batch, rebuild the champion's features for each machine as of its latest reading, rank them.

    With an inbox, a batch that could not be stored (bad input: moved to failed/; a store error: left in the
    inbox) ends the run in the Failed state ``BatchesNotStored`` once the list of the rest is written: the run's
    result is its data."""
    settings = load_settings()
    webhook = WebhookConfig.from_env()  # read once, when the flow starts
    connect_registry(settings)
    model, version = ok(load_model(params))
    if params.inbox:
        dataset, counts, batches = ok(
            ingest_inbox(params.inbox, params.store or str(default_store_path(settings.root)))
        )
    elif params.path:
        batch = ok(load(params.path))
        log_machines("validate", quarantine_summary(batch.quarantine), logging.WARNING, batch=params.path)
        dataset = combine(ok(load(params.history)), batch) if params.history else batch
        counts, batches = batch.counts, []
    else:
        raise InputError("nothing to score; fix: give a batch PATH or --inbox DIR")
    table = featurize_fleet(settings.scale, dataset, model.spec.config, latest_as_of(dataset))
    check_features(model, table.frame, params.model_name, version)
    out = Path(params.out) if params.out else settings.outputs
    risk = score_dataset(
        model,
        dataset,
        params.model_name,
        version,
        frame=table.frame,
        stale_after_h=params.stale_after_h,
        previous=previous_list(out, dataset.latest_reading()),
    )
    log_scored(risk, params.model_name, version)
    drift = check_drift(model, table.frame, risk, dataset)
    paths = write_outputs(risk, dataset, out)
    feedback_dir = Path(params.feedback_dir) if params.feedback_dir else settings.root / "feedback"
    precision = list_precision(load_findings(feedback_dir), read_lists(out / "lists"))
    paths["report"] = write_report(model, risk, dataset, params.model_name, version, out, drift, precision)
    delivery = notify(risk, webhook, out, paths["risk_list_csv"])
    if delivery is not None:
        log_event("notify", **{k: v for k, v in asdict(delivery).items() if not isinstance(v, (list, dict))})
    paths["drift"] = log_scoring(params, settings, version, risk, drift, out)
    shown = risk.head(100).astype({"as_of": str, "alarm_since": str}).replace({np.nan: None})
    create_table_artifact(
        key="risk-list",
        table=cast(list[dict[str, Any]], shown.to_dict("records")),
        description=f"Top of the risk list ({params.model_name} v{version})",
    )
    create_markdown_artifact(key="risk-summary", markdown=scoring_markdown(risk, counts, batches, paths))
    result = {
        "paths": paths,
        "counts": counts,
        "batches": batches,
        "model_version": version,
        "life_cap_h": model.life.cap if model.life is not None else None,
        "rows": len(risk),
        "statuses": risk["status"].value_counts().to_dict(),
        "notification": None if delivery is None else asdict(delivery),
        "top": risk.head(10).to_dict("records"),
    }
    unstored = [b for b in batches if b["status"] in ("failed", "error")]
    if unstored:
        message = not_stored_message(unstored)
        get_run_logger().error(message)
        return Failed(name=NOT_STORED, message=message, data=result)
    return result


def not_stored_message(batches: list[dict]) -> str:
    """One line for the batches of a run that were not stored: what happened to each, where it is, the fix."""
    parts = [
        f"{b['batch']} ({b['status']}: {b.get('error')}; kept in {b.get('moved_to') or 'the inbox'})"
        for b in batches
    ]
    return (
        f"the risk list was written, but {len(batches)} batch(es) were not stored: {'; '.join(parts)}; fix: a "
        "batch in failed/ as its error says, then move it back into the inbox; a store error is tried again by "
        "the next run"
    )


def log_scored(risk: pd.DataFrame, model_name: str, version: str) -> None:
    """The scoring step in the run's log: statuses, then each flagged machine and each machine to check."""
    statuses = {f"status_{k}": int(v) for k, v in risk["status"].value_counts().items()}
    log_event(
        "score",
        model=model_name,
        version=version,
        machines=len(risk),
        flagged=int(risk["flagged"].sum()),
        **statuses,
    )
    flagged = risk.loc[
        risk["flagged"], ["machine_id", "rank", "failure_probability", "likely_fault", "change"]
    ]
    log_machines("score", flagged.rename(columns={"machine_id": "machine"}), result="flagged")
    unscored = risk.loc[risk["status"] != "scored", ["machine_id", "status", "as_of"]]
    log_machines(
        "score", unscored.rename(columns={"machine_id": "machine"}), logging.WARNING, result="not_scored"
    )


def scoring_markdown(risk: pd.DataFrame, counts: dict, batches: list[dict], paths: dict) -> str:
    """What a scoring run did, for the Prefect UI: batches and their balance, statuses, the flagged machines."""
    lines = ["# Scoring run", ""]
    for batch in batches:
        t = table_totals(batch["tables"])
        lines.append(
            f"- batch `{batch['batch']}`: {batch['status']}, rows in {t['rows_in']} = stored {t['stored']} + "
            f"quarantined {t['quarantined']} + duplicates {t['duplicates']}"
            + (f" ({batch['error']})" if batch.get("error") else "")
        )
    statuses = ", ".join(f"{n} {s}" for s, n in risk["status"].value_counts().items())
    lines += ["", f"{len(risk)} machines: {statuses}; {int(risk['flagged'].sum())} flagged", ""]
    lines += ["| rank | machine | p(fail) | likely fault | change | drivers |", "|---|---|---|---|---|---|"]
    for row in risk[risk["flagged"]].itertuples(index=False):
        lines.append(
            f"| {row.rank} | {row.machine_id} | {row.failure_probability:.2f} | {row.likely_fault} | {row.change} | "
            f"{str(row.drivers).replace('|', '/')} |"
        )
    lines += ["", f"Report: `{paths.get('report', '')}`"]
    return "\n".join(lines)


class FeaturesParams(BaseModel):
    """Parameters of the features flow."""

    model_config = ConfigDict(frozen=True)
    data: str
    out: str
    features: FeatureConfig = FeatureConfig()


@task(cache_policy=NO_CACHE)
def write_feature_table(
    table: FeatureTable, dataset: Dataset, out: Path, config: FeatureConfig
) -> dict[str, str]:
    """The feature table, its notes (why features are NaN: per snapshot, and per feature where no machine has a
    value, machine_id '*'; the loader's notes) and the quarantine, beside each other."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {
        "features": out,
        "notes": out.with_suffix(".notes.parquet"),
        "quarantine": out.with_suffix(".quarantine.parquet"),
    }
    table.frame.to_parquet(paths["features"], index=False)
    empty = empty_feature_notes(table.frame, config, noted=explained_row_by_row(table))
    feature_notes = pd.concat([n for n in (table.notes, empty) if len(n)] or [table.notes], ignore_index=True)
    notes = pd.concat(  # the feature notes' columns always, the loader's beside them
        [feature_notes.astype({"timestamp": "string"}), dataset.notes.astype(str)], ignore_index=True
    )
    notes.astype(str).to_parquet(paths["notes"], index=False)
    dataset.quarantine.to_parquet(paths["quarantine"], index=False)
    return {k: str(v) for k, v in paths.items()}


@flow(name="wearcast-features", log_prints=True)
@unusable_input_fails_the_run
def features_flow(params: FeaturesParams, progress: Progress | None = None) -> dict:
    """Validate DATA and write its feature table: one row per machine and snapshot (else telemetry) time."""
    dataset = ok(load(params.data))
    table = featurize_fleet(load_settings().scale, dataset, params.features, progress=progress)
    paths = write_feature_table(table, dataset, Path(params.out), params.features)
    return {
        "paths": paths,
        "counts": dataset.counts,
        "rows": len(table.frame),
        "features": len(table.feature_columns),
        "machines": int(table.frame["machine_id"].nunique()),
    }
