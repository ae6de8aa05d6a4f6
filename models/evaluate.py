"""Hold-out evaluation in maintenance terms: failures caught, alerts that were false, ranking quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.rul import phm08_score, rmse

DAYS_PER_MONTH = 30.44


def false_alarm_rate(rows: pd.DataFrame, alert: np.ndarray, y: np.ndarray) -> float:
    """False alarms per machine-month: distinct machine-days with an alert on a row whose machine did not fail soon."""
    days = rows["timestamp"].dt.floor("D")
    false = rows.loc[alert & (y == 0)].assign(day=days[alert & (y == 0)])
    span_days = rows.assign(day=days).groupby("machine_id")["day"].agg(lambda d: (d.max() - d.min()).days + 1)
    months = span_days.sum() / DAYS_PER_MONTH
    return (
        float(false[["machine_id", "day"]].drop_duplicates().shape[0] / months)
        if months > 0
        else float("nan")
    )


def failures_caught(
    rows: pd.DataFrame, alert: np.ndarray, events: pd.DataFrame, horizon_h: float
) -> tuple[int, int]:
    """Failures inside the evaluated period, and how many had an alert in the horizon before them."""
    start, end = rows["timestamp"].min(), rows["timestamp"].max() + pd.Timedelta(hours=horizon_h)
    failures = events[(events["kind"] == "failure") & events["machine_id"].isin(rows["machine_id"])]
    failures = failures[(failures["timestamp"] > start) & (failures["timestamp"] <= end)]  # after a first row
    alerts = rows.loc[alert, ["machine_id", "timestamp"]]
    caught = 0
    for machine, when in failures[["machine_id", "timestamp"]].itertuples(index=False):
        lead = when - alerts.loc[alerts["machine_id"] == machine, "timestamp"]
        caught += bool(((lead >= pd.Timedelta(0)) & (lead <= pd.Timedelta(hours=horizon_h))).any())
    return len(failures), caught


def evaluate(
    rows: pd.DataFrame,
    y: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    events: pd.DataFrame,
    horizon_h: float,
) -> dict[str, float]:
    """Metrics of calibrated probabilities on labelled hold-out rows (``rows`` holds machine_id, timestamp)."""
    alert = probability >= threshold
    both = len(np.unique(y)) == 2
    tp = float((alert & (y == 1)).sum())
    n_failures, n_caught = failures_caught(rows, alert, events, horizon_h)
    return {
        "roc_auc": float(roc_auc_score(y, probability)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, probability)) if both else float("nan"),
        "brier": float(brier_score_loss(y, probability)) if len(y) else float("nan"),  # one class too
        "calibration_error": expected_calibration_error(y, probability),
        "recall_at_alert": tp / max(float((y == 1).sum()), 1.0),
        "precision_at_alert": tp / max(float(alert.sum()), 1.0),
        "false_alarms_per_machine_month": false_alarm_rate(rows, alert, y),
        "failures_in_holdout": float(n_failures),
        "failures_caught": float(n_caught),
        "holdout_rows": float(len(y)),
        "holdout_positive_rate": float(np.mean(y)) if len(y) else float("nan"),
    }


def calibration_table(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability curve: per equal-width probability bin, the mean predicted probability, the observed failure
    rate and the number of rows (empty bins left out)."""
    p, observed = np.asarray(probability, float), np.asarray(y, float)
    known = np.isfinite(p) & np.isfinite(
        observed
    )  # an unscored row or an unknown label has no place in a bin
    p, observed = np.clip(p[known], 0.0, 1.0), observed[known]
    which = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": which, "predicted": p, "observed": observed})
    table = frame.groupby("bin").agg(
        predicted=("predicted", "mean"), observed=("observed", "mean"), rows=("predicted", "size")
    )
    return table.reset_index()


def expected_calibration_error(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between predicted probability and observed failure rate over the bins."""
    table = calibration_table(y, probability, bins)
    if table.empty:
        return float("nan")
    return float((table["rows"] * (table["predicted"] - table["observed"]).abs()).sum() / table["rows"].sum())


def life_metrics(predicted_h: np.ndarray, true_h: np.ndarray) -> dict[str, float]:
    """Remaining-life error on rows whose true remaining life is known: RMSE in hours, and NASA's PHM08 score
    computed in days (late predictions cost more; its constants were set for cycles, so compare it only
    between models on the same data)."""
    known = np.isfinite(predicted_h) & np.isfinite(true_h)
    if not known.any():
        return {}
    predicted, true = predicted_h[known], true_h[known]
    return {
        "life_rmse_h": rmse(predicted, true),
        "life_phm08_days": phm08_score(predicted / 24.0, true / 24.0),
        "life_rows": float(known.sum()),
    }


def degrading_at(truth: pd.DataFrame, machine_ids: pd.Series, times: pd.Series) -> np.ndarray:
    """Whether each machine had a machine fault running (onset passed, not yet ended) at the given time."""
    faults = truth[~truth["mode"].astype(str).str.startswith("sensor_")]
    result = np.zeros(len(machine_ids), dtype=bool)
    for i, (machine, when) in enumerate(zip(machine_ids, times, strict=True)):
        rows = faults[faults["machine_id"] == machine]
        running = (rows["onset"] <= when) & (rows["end"].isna() | (rows["end"] > when))
        result[i] = bool(running.any())
    return result


def truth_check(risk: pd.DataFrame, truth: pd.DataFrame, top: int) -> dict[str, float]:
    """How many of the top-ranked scored machines the hidden truth says are degrading, against chance."""
    scored = risk[risk["status"] == "scored"].sort_values("rank")
    degrading = degrading_at(truth, scored["machine_id"], scored["as_of"])
    hits = int(degrading[:top].sum())
    base_rate = float(degrading.mean()) if len(degrading) else float("nan")
    return {
        "hits": hits,
        "top": top,
        "degrading": int(degrading.sum()),
        "found": hits,
        "base_rate": base_rate,
        "chance": base_rate * min(top, len(scored)),
    }
