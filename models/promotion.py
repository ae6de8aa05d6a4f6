"""Champion/challenger: promote a new model only when it beats the champion on the same, fair hold-out rows."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.bundle import RiskModel
from models.evaluate import evaluate

PROMOTION_METRIC = "pr_auc"
MAX_CALIBRATION_ERROR = 0.1
MIN_HOLDOUT_ROWS = 20  # fewer labelled hold-out rows cannot judge a model (nor tell it from the champion)


@dataclass
class Comparison:
    """Both models' metrics on the same hold-out rows, or why they could not be compared."""

    champion_version: str
    comparable: bool
    reason: str = ""
    rows: int = 0
    champion: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, float] = field(default_factory=dict)


def unseen_by(model: RiskModel, rows: pd.DataFrame) -> np.ndarray:
    """Rows a model never trained on: after its training period, or on machines it never saw."""
    end = model.info.get("train_end")
    machines = set(model.info.get("train_machine_ids", []))
    later = rows["timestamp"] > _utc(end) if end else np.zeros(len(rows), bool)
    other = ~rows["machine_id"].isin(machines)
    return np.asarray(later | other, dtype=bool)


def _utc(text: str) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def comparability(champion: RiskModel, challenger: RiskModel, rows: pd.DataFrame, labels: pd.Series) -> str:
    """Why the two models cannot be compared on these rows ('' when they can)."""
    if champion.horizon_h != challenger.horizon_h:
        return (
            f"champion predicts failure within {champion.horizon_h:g} h, the challenger within "
            f"{challenger.horizon_h:g} h: not the same question"
        )
    if labels.nunique() < 2:
        return "the hold-out rows the champion never trained on hold only one class"
    return ""


def compare_on_unseen(
    version: str,
    champion: RiskModel,
    challenger: RiskModel,
    test: pd.DataFrame,
    labels: pd.Series,
    events: pd.DataFrame,
    champion_features: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Comparison:
    """Champion ``version`` and the challenger on the hold-out rows neither trained on, in maintenance terms.

    ``champion_features(rows)`` rebuilds the rows' features with the champion's configuration when it differs
    from the challenger's (default: the same feature columns serve both)."""
    fair = unseen_by(champion, test) & unseen_by(challenger, test)
    rows, y = test[fair].reset_index(drop=True), labels[fair].reset_index(drop=True)
    if reason := comparability(champion, challenger, rows, y):
        return Comparison(version, False, reason, len(rows))
    champion_rows = champion_features(rows) if champion_features is not None else rows
    missing = champion.spec.missing_from(champion_rows)
    if len(missing) > len(champion.spec.columns) / 2:
        reason = (
            f"this data cannot provide {len(missing)} of the champion's {len(champion.spec.columns)} features"
        )
        return Comparison(version, False, reason, len(rows))

    def metrics(model: RiskModel, frame: pd.DataFrame) -> dict:
        p = model.predict_proba(frame)
        return evaluate(frame, y.to_numpy(), p, model.thresholds["high"], events, model.horizon_h)

    return Comparison(
        version, True, "", len(rows), metrics(champion, champion_rows), metrics(challenger, rows)
    )


def sanity_problems(
    model: RiskModel,
    holdout: pd.DataFrame,
    metrics: dict[str, float],
    max_calibration_error: float = MAX_CALIBRATION_ERROR,
    labels: pd.Series | None = None,
) -> list[str]:
    """Why a trained model must not become champion, whatever its score: a hold-out too small to judge it
    (fewer than MIN_HOLDOUT_ROWS labelled rows, or rows of one class only: then every other figure is noise, so
    this one is named first), features of its spec that the hold-out lacks or has only NaN for, a ranking no
    better than chance, or probabilities that are badly calibrated on the hold-out."""
    problems = []
    if labels is not None:
        n_rows, positives = len(labels), int(np.nansum(labels.to_numpy(dtype=float)))
        if n_rows < MIN_HOLDOUT_ROWS or positives in (0, n_rows):
            problems.append(
                f"the hold-out has {n_rows} labelled rows, {positives} of them with a failure within the horizon: "
                "too few to judge the model (its PR AUC and calibration are noise); fix: more history, "
                "`--holdout machines`, or a shorter `--horizon-h`"
            )
    missing = [c for c in model.spec.columns if c not in holdout.columns]
    if missing:
        problems.append(
            f"{len(missing)} features of the spec are missing from the hold-out (e.g. {missing[0]})"
        )
    present = [c for c in model.spec.columns if c in holdout.columns]
    empty = [c for c in present if holdout[c].isna().all()]
    if empty:
        problems.append(f"{len(empty)} features are all-NaN in the hold-out (e.g. {empty[0]})")
    chance = _no_better_than_chance(metrics, labels)
    if chance:
        problems.append(chance)
    error = metrics.get("calibration_error", math.nan)
    if not math.isfinite(error) or error > max_calibration_error:
        problems.append(f"calibration error {error:.3f} on the hold-out exceeds {max_calibration_error}")
    return problems


def _no_better_than_chance(metrics: dict[str, float], labels: pd.Series | None) -> str | None:
    """Why the model ranks the hold-out no better than chance (ROC AUC at most 0.5, or PR AUC at most the share
    of rows with a failure ahead), else None."""
    roc, pr = metrics.get("roc_auc", math.nan), metrics.get("pr_auc", math.nan)
    if math.isfinite(roc) and roc <= 0.5:
        return f"ROC AUC {roc:.3f} on the hold-out: the model ranks machines no better than chance"
    if labels is not None and len(labels) and math.isfinite(pr):
        share = float(np.nanmean(labels.to_numpy(dtype=float)))
        if pr <= share:
            return (
                f"PR AUC {pr:.3f} on the hold-out is no better than the share of rows with a failure ahead "
                f"({share:.3f}): the model ranks machines no better than chance"
            )
    return None


def promotion_decision(
    comparison: Comparison | None,
    margin: float = 0.0,
    metric: str = PROMOTION_METRIC,
    problems: list[str] | None = None,
) -> tuple[bool, str]:
    """Whether to promote, and why: never with a failed sanity check; then only by beating the champion by more
    than ``margin`` in ``metric`` (higher is better) on a fair comparison."""
    if problems:
        return False, "failed sanity checks: " + "; ".join(problems)
    if comparison is None:
        return True, "no champion yet"
    if not comparison.comparable:
        return False, f"not compared with champion v{comparison.champion_version}: {comparison.reason}"
    new, old = comparison.challenger.get(metric, math.nan), comparison.champion.get(metric, math.nan)
    if not (math.isfinite(new) and math.isfinite(old)):
        return False, f"{metric} undefined on the {comparison.rows} shared hold-out rows"
    verdict = "beats" if new > old + margin else "does not beat"
    return new > old + margin, (
        f"challenger {metric} {new:.4f} {verdict} champion v{comparison.champion_version} "
        f"{old:.4f} by more than {margin} on {comparison.rows} hold-out rows unseen by both"
    )
