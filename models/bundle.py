"""The trained risk model as one object: booster, feature spec, calibrator and alert thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.build import FeatureSpec
from models.drift import DriftReference
from models.rul import RulModel
from models.rul import predict as predict_life


class PlattCalibrator:
    """Maps raw classifier scores to failure probabilities with a logistic fit on out-of-fold scores."""

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps

    def _logit(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), self.eps, 1 - self.eps)
        return np.log(p / (1 - p)).reshape(-1, 1)

    def fit(self, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        self.model_ = LogisticRegression(C=1e4).fit(self._logit(raw), y)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(self._logit(raw))[:, 1]


class IsotonicCalibrator:
    """Maps raw scores to probabilities with a monotone step fit on out-of-fold scores (needs many positives)."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        self.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(np.asarray(raw, dtype=float)), dtype=float)


Calibrator = PlattCalibrator | IsotonicCalibrator


@dataclass
class RiskModel:
    """Everything scoring needs: predict failure probabilities and explain them from a feature table."""

    booster: xgb.Booster
    spec: FeatureSpec
    calibrator: Calibrator
    thresholds: dict[str, float]  # "high" (the alert threshold) and "medium", on calibrated probabilities
    horizon_h: float
    info: dict = field(default_factory=dict)
    reference: pd.DataFrame | None = None  # per-feature statistics of the training rows (drift checks)
    life: RulModel | None = (
        None  # remaining-life regressor (hours, capped at life.cap), if it could be fitted
    )
    drift: DriftReference | None = None  # decile profiles of the training features and scores (drift checks)

    def __getstate__(self) -> dict:
        """Pickle the spec as plain data, so a bundle outlives changes to the FeatureSpec class."""
        return {**self.__dict__, "spec": self.spec.model_dump(mode="json")}

    def __setstate__(self, state: dict) -> None:
        spec = state["spec"]
        if isinstance(spec, FeatureSpec):  # bundles written before specs were stored as plain data
            spec = {**spec.__dict__, "config": dict(spec.config.__dict__)}
        state["spec"] = FeatureSpec.model_validate(spec)  # settings added since take their defaults
        state.setdefault("reference", None)
        state.setdefault("life", None)
        state.setdefault("drift", None)
        self.__dict__.update(state)

    def raw_scores(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.inplace_predict(self.spec.matrix(frame).to_numpy())

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability that each row's machine fails within the horizon."""
        if len(frame) == 0:
            return np.zeros(0)
        return self.calibrator.predict(self.raw_scores(frame))

    def remaining_life_h(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted hours to failure of each row, at most the regressor's cap (NaN without a regressor)."""
        if self.life is None or len(frame) == 0:
            return np.full(len(frame), np.nan)
        return predict_life(self.life, self.spec.matrix(frame))

    def risk_band(self, probability: np.ndarray) -> np.ndarray:
        bands = np.full(len(probability), "low", dtype=object)
        bands[probability >= self.thresholds["medium"]] = "medium"
        bands[probability >= self.thresholds["high"]] = "high"
        return bands

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions (SHAP values, log-odds) to each row's score; costly, so only for shown rows."""
        matrix = xgb.DMatrix(self.spec.matrix(frame), missing=np.nan)
        values = self.booster.predict(matrix, pred_contribs=True)[:, :-1]
        return pd.DataFrame(values, columns=list(self.spec.columns), index=frame.index)
