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
from models.bundle import PlattCalibrator, RiskModel


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
    medium_recall: float = 0.8
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
        "scale_pos_weight": (len(y) - positives) / positives,
        "seed": config.seed,
        "nthread": config.nthread,
    }


def usable_columns(x: pd.DataFrame) -> list[str]:
    """Feature columns with at least one value in training (all-NaN features are left out of the spec)."""
    return [c for c in x.columns if x[c].notna().any()]


def out_of_fold_scores(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, int]:
    """Raw scores of each row from a model that never saw its machine, and the median best iteration."""
    folds = min(config.folds, len(np.unique(groups)))
    if folds < 2:
        raise InputError(
            "training needs at least 2 machines with labelled rows; fix: give more machines' history"
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


def choose_thresholds(probability: np.ndarray, y: np.ndarray, medium_recall: float) -> dict[str, float]:
    """High (the alert) = the probability that maximises F1; medium = the highest one that still reaches
    ``medium_recall``, and at most half the high threshold so that the medium band is never empty."""
    precision, recall, cuts = precision_recall_curve(y, probability)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    high = float(cuts[int(np.argmax(f1))])
    reaching = cuts[recall[:-1] >= medium_recall]
    medium = float(reaching.max()) if len(reaching) else float(cuts.min())
    return {"high": high, "medium": min(medium, high / 2)}


def train_risk_model(
    frame: pd.DataFrame, labels: pd.Series, feature_config: FeatureConfig, config: TrainConfig
) -> RiskModel:
    """Fit the classifier on labelled rows of a feature table (NaN labels are skipped)."""
    known = labels.notna().to_numpy()
    rows, y = frame.loc[known].reset_index(drop=True), labels[known].to_numpy(dtype=np.float32)
    if y.sum() < 2 or (1 - y).sum() < 2:
        raise InputError(
            f"training needs at least 2 labelled rows that precede a failure within {config.horizon_h:g} h and 2 that "
            f"do not; got {int(y.sum())} of {len(y)} (the rest: no failure events, or too little history after "
            "the hold-out split); fix: train on data with failure events, or a longer horizon (--horizon-h)"
        )
    features = [c for c in rows.columns if c not in ("machine_id", "timestamp")]
    spec = FeatureSpec(config=feature_config, columns=tuple(usable_columns(rows[features])))
    x = spec.matrix(rows).to_numpy()
    oof, n_rounds = out_of_fold_scores(x, y, rows["machine_id"].to_numpy(), config)
    calibrator = PlattCalibrator().fit(oof, y)
    thresholds = choose_thresholds(calibrator.predict(oof), y, config.medium_recall)
    booster = xgb.train(xgb_params(config, y), xgb.DMatrix(x, label=y), n_rounds)
    info = {
        "train_rows": len(y),
        "train_positives": int(y.sum()),
        "boosting_rounds": n_rounds,
        "train_machines": int(rows["machine_id"].nunique()),
        "train_start": str(rows["timestamp"].min()),
        "train_end": str(rows["timestamp"].max()),
        "train_machine_ids": sorted(rows["machine_id"].unique().tolist()),
        "holdout": config.holdout,
    }
    return RiskModel(booster, spec, calibrator, thresholds, config.horizon_h, info)
