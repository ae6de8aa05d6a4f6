"""Train the failure-within-horizon classifier: out-of-fold scores, calibration, thresholds, final fit."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import StratifiedGroupKFold

from features.build import FeatureConfig, FeatureSpec
from features.errors import InputError
from features.telemetry import HOUR_US, epoch_micros
from models.bundle import Calibrator, IsotonicCalibrator, PlattCalibrator, RiskModel
from models.distributed import BoosterFitter, fit_booster_locally
from models.drift import drift_groups, drift_reference
from models.rul import RulConfig, RulModel, train_rul_regressor
from models.search import SEARCHED, best_trial, random_search
from models.thresholds import (
    alert_counts,
    candidate_thresholds,
    capacity_threshold,
    cost_threshold,
    expected_cost,
)


class TrainConfig(BaseModel):
    """What a training run does; logged as MLflow parameters."""

    model_config = ConfigDict(frozen=True)
    horizon_h: Annotated[float, Field(gt=0)] = 168.0
    min_lead_h: Annotated[float, Field(ge=0)] = 0.0
    holdout: Literal["time", "machines"] = "time"
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    folds: Annotated[int, Field(ge=2)] = 4
    seed: int = 0
    n_estimators: int = 400
    learning_rate: float = 0.05
    max_depth: int = 4
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 30
    min_child_weight: Annotated[float, Field(ge=0)] = 1.0
    search_trials: Annotated[int, Field(ge=0, le=50)] = 6  # random search trials (0 or 1: the settings above)
    life_cap_h: Annotated[float, Field(gt=0)] = 720.0  # remaining-life targets are capped here ("at least")
    train_life: bool = True  # also fit the remaining-life regressor when remaining lives are given
    medium_recall: Annotated[float, Field(gt=0, le=1)] = 0.8
    alert_policy: Literal["cost", "capacity"] = "cost"
    miss_cost_ratio: Annotated[float, Field(gt=0)] = (
        20.0  # a missed failure costs as much as 20 needless inspections
    )
    capacity_per_day: Annotated[int, Field(ge=1)] = 10  # machines a crew can inspect in a day
    calibration: Literal["platt", "isotonic"] = "platt"
    nthread: int = 1  # threads per fit: 2 fight the other pools on a shared 2-core box (PITFALLS)


def xgb_params(config: TrainConfig, y: np.ndarray) -> dict:
    positives = max(float(y.sum()), 1.0)
    return {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "learning_rate": config.learning_rate,
        "max_depth": config.max_depth,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "min_child_weight": config.min_child_weight,
        "scale_pos_weight": (len(y) - positives) / positives,
        "seed": config.seed,
        "nthread": config.nthread,
    }


def feature_columns(frame: pd.DataFrame, labels: pd.Series, life: pd.Series | None) -> list[str]:
    """Every column but machine_id and timestamp is a feature; raises on what cannot be one: a label-length
    mismatch, a column that is not numeric, or a column that holds the labels or the remaining life (it
    would leak the answer and the model would look perfect)."""
    missing = [c for c in ("machine_id", "timestamp") if c not in frame]
    if missing:
        raise InputError(
            f"the feature table lacks column(s) {missing}; fix: pass a table from build_features"
        )
    for name, target in (("labels", labels), ("life", life)):
        if target is not None and len(target) != len(frame):
            raise InputError(
                f"{name} has {len(target)} rows and the feature table {len(frame)}; fix: one per row"
            )
    features = [c for c in frame.columns if c not in ("machine_id", "timestamp")]
    numeric = frame[features].select_dtypes(include=["number", "bool"]).columns
    other = [c for c in features if c not in numeric]
    if other:
        raise InputError(
            f"feature table column(s) {other} are not numeric; every column but machine_id and timestamp is a "
            "feature: fix: drop them (or encode them as numbers)"
        )
    leaks = [
        c for c in features for target in (labels, life) if target is not None and _holds(frame[c], target)
    ]
    if leaks:
        raise InputError(
            f"feature table column(s) {sorted(set(leaks))} hold the labels or the remaining life: they would leak "
            "the answer into the model; fix: drop them from the table"
        )
    return features


def _holds(column: pd.Series, target: pd.Series) -> bool:
    """True when ``column`` equals ``target`` row by row wherever the target is known and varies (a copied
    answer); a target with one value on its known rows tells nothing apart, so no column can copy it."""
    known = target.notna().to_numpy()
    answers = target.to_numpy(dtype=float, na_value=np.nan)[known]
    if len(np.unique(answers)) < 2:
        return False
    values = column.to_numpy(dtype=float, na_value=np.nan)[known]
    return bool(np.allclose(values, answers, rtol=1e-6, atol=1e-9))


def usable_columns(x: pd.DataFrame) -> list[str]:
    """Feature columns with at least one value in training (all-NaN features are left out of the spec)."""
    return [c for c in x.columns if x[c].notna().any()]


def too_few_labels_message(positives: int, labelled: int, horizon_h: float) -> str:
    """Why the labelled rows cannot train a classifier, and the fix that applies: a shorter horizon when every
    row precedes a failure within it (lives shorter than the horizon), a longer one or failure data otherwise."""
    counts = (
        f"of {labelled} labelled rows (after the hold-out split), {positives} precede a failure within "
        f"{horizon_h:g} h and {labelled - positives} do not"
    )
    if labelled == 0:
        fix = (
            "no row could be labelled: a row needs a failure within the horizon after it, or the horizon's length "
            "of data after it without one; fix: a shorter horizon (--horizon-h) than the data spans, or more "
            "history"
        )
    elif labelled - positives < 2 <= positives:
        fix = (
            "nearly every row lies within the horizon of a failure (lives shorter than it); fix: a shorter "
            "horizon (--horizon-h), below the machines' typical life"
        )
    else:
        fix = (
            "too few rows precede a failure (few or no failure events in the data, or its events were "
            "quarantined); fix: train on data with failure events, or a longer horizon (--horizon-h)"
        )
    return f"training needs at least 2 labelled rows of each kind; {counts}: {fix}"


def out_of_fold_scores(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, int]:
    """Raw scores of each row from a model that never saw its machine, and the median best iteration."""
    folds = min(config.folds, len(np.unique(groups)))
    if folds < 2:
        raise InputError(
            f"training needs at least 2 machines with labelled rows, got {len(np.unique(groups))} (after the "
            "hold-out split); fix: give more machines' history, or --holdout time to keep every machine in training"
        )
    scores, rounds = np.full(len(y), np.nan), []
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for fit_rows, val_rows in splitter.split(x, y, groups):
        dfit = xgb.DMatrix(x[fit_rows], label=y[fit_rows])
        dval = xgb.DMatrix(x[val_rows], label=y[val_rows])
        booster = xgb.train(
            xgb_params(config, y[fit_rows]),
            dfit,
            config.n_estimators,
            evals=[(dval, "val")],
            early_stopping_rounds=config.early_stopping_rounds,
            verbose_eval=False,
        )
        scores[val_rows] = booster.predict(dval, iteration_range=(0, booster.best_iteration + 1))
        rounds.append(booster.best_iteration + 1)
    return scores, int(np.median(rounds))


def failure_times(rows: pd.DataFrame, life: pd.Series | None, cap_h: float) -> np.ndarray:
    """Each row's next failure in hours since the epoch where its remaining life says it (below the cap), else
    NaN: tells apart two failures of one machine closer than the horizon (``thresholds.failure_windows``)."""
    if life is None:
        return np.full(len(rows), np.nan)
    hours = life.to_numpy(dtype=float, na_value=np.nan)
    return np.where(hours < cap_h, epoch_micros(rows["timestamp"]) / HOUR_US + hours, np.nan)


def choose_thresholds(
    rows: pd.DataFrame,
    probability: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
) -> tuple[dict[str, float], dict[str, float]]:
    """The alert ("high") threshold by the configured policy, with the other policy's threshold stored beside it;
    medium = the highest threshold that still reaches ``medium_recall`` of rows, at most half the alert one.
    Also returns the expected cost on the training rows (out of fold) at the alert threshold."""
    counts = alert_counts(rows, probability, y, candidate_thresholds(probability))
    by_cost = cost_threshold(counts, config.miss_cost_ratio)
    by_capacity = capacity_threshold(counts, config.capacity_per_day)
    high = by_cost if config.alert_policy == "cost" else by_capacity
    _, recall, cuts = precision_recall_curve(y, probability)
    reaching = cuts[recall[:-1] >= config.medium_recall]
    medium = float(reaching.max()) if len(reaching) else float(cuts.min())
    thresholds = {"high": high, "medium": min(medium, high / 2), "cost": by_cost, "capacity": by_capacity}
    return thresholds, expected_cost(counts, high, config.miss_cost_ratio)


def reference_statistics(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per feature: share missing, mean, std and quantiles of the training rows (for drift checks when scoring)."""
    quantiles = matrix.quantile([0.01, 0.05, 0.5, 0.95, 0.99]).T
    quantiles.columns = ["q01", "q05", "q50", "q95", "q99"]
    return pd.concat(
        [
            matrix.isna().mean().rename("missing"),
            matrix.mean().rename("mean"),
            matrix.std().rename("std"),
            quantiles,
        ],
        axis=1,
    )


def train_risk_model(
    frame: pd.DataFrame,
    labels: pd.Series,
    feature_config: FeatureConfig,
    config: TrainConfig,
    life: pd.Series | None = None,
    machines: pd.DataFrame | None = None,
    fit_booster: BoosterFitter = fit_booster_locally,
) -> RiskModel:
    """Fit the classifier on labelled rows of a feature table (NaN labels are skipped), and, given each row's
    remaining life in hours (``models.rul.remaining_life``, NaN where unknown), the remaining-life regressor.
    ``fit_booster`` fits the final booster (``models.distributed.dask_booster_fitter`` for a Dask cluster)."""
    features = feature_columns(frame, labels, life)
    known = labels.notna().to_numpy()
    rows, y = frame.loc[known].reset_index(drop=True), labels[known].to_numpy(dtype=np.float32)
    if y.sum() < 2 or (1 - y).sum() < 2:
        raise InputError(too_few_labels_message(int(y.sum()), len(y), config.horizon_h))
    failed_machines = pd.unique(rows.loc[y == 1, "machine_id"])
    if len(failed_machines) < 2:
        raise InputError(
            f"every row that precedes a failure belongs to one machine ({failed_machines[0]}): a model that "
            "never sees a failure of another machine cannot be scored out of fold, nor trusted on one; fix: "
            "train on the history of at least 2 machines that failed (in train, --holdout time keeps every "
            "machine in training; in backtest, replay fewer days so that more failures come before its start)"
        )
    usable = usable_columns(rows[features])
    if not usable:
        raise InputError(
            f"none of the {len(features)} feature columns has a value in the {len(rows)} labelled rows; fix: "
            "build features from data with waveforms or telemetry (wearcast features DATA), or check the "
            "notes file beside the features for why they are NaN"
        )
    spec = FeatureSpec(config=feature_config, columns=tuple(usable))
    matrix = spec.matrix(rows)
    x = matrix.to_numpy()
    groups = rows["machine_id"].to_numpy()
    trials, scores = random_search(
        lambda settings: out_of_fold_scores(x, y, groups, config.model_copy(update=settings)),
        y,
        config.model_dump(),
        config.search_trials,
        config.seed,
    )
    chosen = best_trial(trials)
    config = config.model_copy(update={k: chosen[k] for k in SEARCHED})
    oof, n_rounds = scores[chosen["trial"]], chosen["rounds"]
    calibrator = make_calibrator(config).fit(oof, y)
    # out-of-fold scores: the final booster's scores on its own training rows are more extreme than on new data
    drift = drift_reference(matrix, calibrator.predict(oof), drift_groups(rows, machines))
    failure_at = failure_times(rows, life[known] if life is not None else None, config.life_cap_h)
    thresholds, cost = choose_thresholds(
        rows.assign(failure_at=failure_at), calibrator.predict(oof), y, config
    )
    booster = fit_booster(xgb_params(config, y), x, y, n_rounds)
    info = {
        "train_rows": len(y),
        "train_positives": int(y.sum()),
        "boosting_rounds": n_rounds,
        "train_machines": int(rows["machine_id"].nunique()),
        "train_start": str(rows["timestamp"].min()),
        "train_end": str(rows["timestamp"].max()),
        "train_machine_ids": sorted(rows["machine_id"].unique().tolist()),
        "holdout": config.holdout,
        "alert_policy": config.alert_policy,
        "miss_cost_ratio": config.miss_cost_ratio,
        "capacity_per_day": config.capacity_per_day,
        "train_expected_cost": cost,
        "search": trials,
        "chosen": {k: chosen[k] for k in SEARCHED},
    }
    regressor, note = fit_life(frame, life, spec, config) if life is not None else (None, "not asked")
    info["life_model"] = note
    return RiskModel(
        booster,
        spec,
        calibrator,
        thresholds,
        config.horizon_h,
        info,
        reference_statistics(matrix),
        regressor,
        drift,
    )


def fit_life(
    frame: pd.DataFrame, life: pd.Series, spec: FeatureSpec, config: TrainConfig
) -> tuple[RulModel | None, str]:
    """The remaining-life regressor on the rows whose remaining life is known, or None and why not."""
    known = life.notna().to_numpy()
    rows = frame.loc[known].reset_index(drop=True)
    failing = rows.loc[life[known].to_numpy() < config.life_cap_h, "machine_id"].nunique()
    if not config.train_life or failing < 2:
        return None, f"skipped: {failing} machines with a failure within {config.life_cap_h:g} h (needs 2)"
    rul_config = RulConfig(
        cap=config.life_cap_h,
        folds=config.folds,
        seed=config.seed,
        n_estimators=1000,
        learning_rate=0.05,
        early_stopping_rounds=50,
        nthread=config.nthread,
    )
    model = train_rul_regressor(
        spec.matrix(rows), life[known].to_numpy(), rows["machine_id"].to_numpy(), rul_config
    )
    return (
        model,
        f"fitted on {len(rows)} rows of {rows['machine_id'].nunique()} machines, {model.rounds} trees",
    )


def make_calibrator(config: TrainConfig) -> Calibrator:
    return IsotonicCalibrator() if config.calibration == "isotonic" else PlattCalibrator()
