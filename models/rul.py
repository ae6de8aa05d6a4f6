"""Remaining useful life (RUL): targets from failure events, an XGBoost regressor, and the RUL metrics.

Targets are remaining hours to the machine's next failure, capped: far from failure the sensors cannot tell
300 h from 400 h, so the model learns a piecewise-linear target that is flat at the cap. A row whose
machine never fails afterwards is censored (NaN) unless its machine was observed for longer than the cap
after it (then its capped remaining life is known to be the cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import GroupKFold

from features.errors import InputError
from features.telemetry import epoch_micros, hours_between
from models.labels import next_event


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{what}: column '{missing[0]}' is missing (columns present: {', '.join(map(str, frame.columns))}); "
            f"fix: pass a frame with columns {', '.join(columns)}"
        )


def remaining_life(
    rows: pd.DataFrame, events: pd.DataFrame, end_of_data: pd.Series, cap_h: float
) -> pd.Series:
    """Hours from each (machine_id, timestamp) row to its machine's next failure, capped at ``cap_h``.

    NaN (unknown) when no failure follows before the machine's data ends (``end_of_data``: last reading per
    machine_id) or a maintenance intervenes, unless that observed stretch already exceeds the cap (then the
    value is the cap). A row stamped at a failure is NaN: the machine is down. The contract records no start
    events and a stopped machine sends no readings, so a row after a failure is a restarted machine."""
    if not cap_h > 0:
        raise InputError(f"remaining_life: cap_h must be a positive number of hours, got {cap_h!r}")
    _require_columns(rows, ("machine_id", "timestamp"), "remaining_life rows")
    _require_columns(events, ("machine_id", "timestamp", "kind"), "remaining_life events")
    t = rows["timestamp"]
    to_failure = hours_between(next_event(rows, events, "failure", include_same_time=False), t)
    to_maintenance = hours_between(next_event(rows, events, "maintenance", include_same_time=False), t)
    observed = np.fmin(hours_between(rows["machine_id"].map(end_of_data), t), to_maintenance)  # seen running
    repaired_first = to_maintenance < to_failure  # false where either is NaN
    life = np.where(repaired_first, np.nan, to_failure)
    out = np.minimum(life, cap_h)
    out[np.isnan(life) & (observed >= cap_h)] = cap_h
    out[_at_failure(rows, events)] = np.nan
    return pd.Series(out, index=rows.index, name="remaining_life_h")


def _at_failure(rows: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """True where a row is stamped exactly at a failure of its machine."""
    failures = events.loc[events["kind"] == "failure", ["machine_id", "timestamp"]]
    keys = pd.MultiIndex.from_arrays([failures["machine_id"], epoch_micros(failures["timestamp"])])
    return pd.MultiIndex.from_arrays([rows["machine_id"], epoch_micros(rows["timestamp"])]).isin(keys)


class RulConfig(BaseModel):
    """How the remaining-life regressor is fitted; ``cap`` is in the target's own unit (hours, cycles)."""

    model_config = ConfigDict(frozen=True)
    cap: Annotated[float, Field(gt=0)] = 125.0
    folds: Annotated[int, Field(ge=2)] = 5
    seed: int = 0
    n_estimators: int = 3000
    learning_rate: float = 0.02
    max_depth: int = 4
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    early_stopping_rounds: int = 150
    nthread: int = 1  # threads per fit: 2 fight the other pools on a shared 2-core box (PITFALLS)


def rul_params(config: RulConfig) -> dict:
    return {
        "objective": "reg:squarederror",
        "eval_metric": "rmse",
        "tree_method": "hist",
        "learning_rate": config.learning_rate,
        "max_depth": config.max_depth,
        "min_child_weight": config.min_child_weight,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "seed": config.seed,
        "nthread": config.nthread,
    }


@dataclass
class RulModel:
    """A fitted remaining-life regressor: the booster, the columns it reads (in order) and the target cap.

    ``predict`` averages the booster fitted on all rows with the cross-validation boosters (each cut at its
    early-stopping point): a bagged ensemble at no extra fitting cost."""

    booster: xgb.Booster
    feature_columns: tuple[str, ...]
    cap: float
    rounds: int
    oof: np.ndarray = field(repr=False)  # out-of-fold prediction of every training row (its machine unseen)
    fold_boosters: list[xgb.Booster] = field(default_factory=list, repr=False)  # already cut to their best


def _training_matrix(x: pd.DataFrame, y: np.ndarray, groups: np.ndarray) -> None:
    if len(y) != len(x) or len(groups) != len(x):
        raise InputError(
            f"train_rul_regressor: x has {len(x)} rows, y {len(y)} and groups {len(groups)}; fix: pass one "
            "target and one machine id per feature row"
        )
    if np.isnan(y).any():
        raise InputError(
            f"train_rul_regressor: {int(np.isnan(y).sum())} targets are NaN (censored rows); fix: drop the rows "
            "whose remaining life is unknown before fitting"
        )


def train_rul_regressor(
    x: pd.DataFrame, y: np.ndarray | pd.Series, groups: np.ndarray | pd.Series, config: RulConfig
) -> RulModel:
    """Fit on targets capped at ``config.cap``; the number of trees is the median early-stopping point of a
    GroupKFold over machines (``groups``), whose held-out predictions are kept as ``oof``."""
    target = np.minimum(np.asarray(y, dtype=float), config.cap)
    machines = np.asarray(groups)
    _training_matrix(x, target, machines)
    folds = min(config.folds, len(np.unique(machines)))
    if folds < 2:
        raise InputError(
            "train_rul_regressor needs at least 2 machines with known remaining life; fix: add run-to-failure "
            "history of more machines"
        )
    values = x.to_numpy(dtype=np.float32)
    oof, rounds, fold_boosters = np.full(len(target), np.nan), [], []
    for fit_rows, val_rows in GroupKFold(n_splits=folds).split(values, target, machines):
        dfit = xgb.DMatrix(values[fit_rows], label=target[fit_rows])
        dval = xgb.DMatrix(values[val_rows], label=target[val_rows])
        booster = xgb.train(
            rul_params(config),
            dfit,
            config.n_estimators,
            evals=[(dval, "val")],
            early_stopping_rounds=config.early_stopping_rounds,
            verbose_eval=False,
        )
        best = booster.best_iteration + 1
        oof[val_rows] = np.clip(booster.predict(dval, iteration_range=(0, best)), 0.0, config.cap)
        rounds.append(best)
        fold_boosters.append(booster[:best])
    n_rounds = int(np.median(rounds))
    booster = xgb.train(rul_params(config), xgb.DMatrix(values, label=target), n_rounds)
    return RulModel(booster, tuple(map(str, x.columns)), config.cap, n_rounds, oof, fold_boosters)


def predict(model: RulModel, x: pd.DataFrame) -> np.ndarray:
    """Remaining life of each row of ``x`` (in the target's unit, within [0, cap])."""
    missing = [c for c in model.feature_columns if c not in x.columns]
    if missing:
        raise InputError(
            f"predict: feature column '{missing[0]}' (and {len(missing) - 1} more) missing; fix: build the "
            "features with the configuration the model was trained on"
        )
    values = x[list(model.feature_columns)].to_numpy(dtype=np.float32)
    members = [model.booster, *model.fold_boosters]
    mean = np.mean([member.inplace_predict(values) for member in members], axis=0)
    return np.clip(mean, 0.0, model.cap)


def rmse(pred: np.ndarray | pd.Series, truth: np.ndarray | pd.Series) -> float:
    """Root mean squared error."""
    d = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
    return float(np.sqrt(np.mean(d * d)))


def phm08_score(pred: np.ndarray | pd.Series, truth: np.ndarray | pd.Series) -> float:
    """NASA PHM08 score: sum of exp(-d/13) - 1 for early (d < 0) and exp(d/10) - 1 for late predictions,
    d = pred - truth; late predictions cost more. Lower is better, 0 is perfect."""
    d = np.asarray(pred, dtype=float) - np.asarray(truth, dtype=float)
    return float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))
