"""Alert thresholds in maintenance terms: a crew's capacity (machines per day) or the cost of a missed failure
against a needless inspection.

Both are chosen on out-of-fold probabilities of the training rows, counted the way a maintenance manager counts:
a failure is caught when any of its rows in the horizon before it alerts; a needless inspection is a machine-day
with an alert on a row whose machine did not fail within the horizon; the crew's load is the number of distinct
machines alerting on a day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class AlertCounts:
    """For each candidate threshold: failures missed, needless machine-day inspections, machines flagged per day."""

    thresholds: np.ndarray
    failures: int
    missed: np.ndarray
    false_machine_days: np.ndarray
    flagged_per_day: np.ndarray  # the 90th percentile over days of the machines alerting that day
    days: int


_SAME_FAILURE_H = 1 / 60  # failure times from two rows' remaining lives this close are one failure


def _count_at_or_above(maxima: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``maxima`` are >= each threshold."""
    ordered = np.sort(maxima)
    return len(ordered) - np.searchsorted(ordered, thresholds, side="left")


def candidate_thresholds(probability: np.ndarray, how_many: int = 400) -> np.ndarray:
    """Probabilities to try: the distinct scores (at most ``how_many``, spread by quantile), plus one above all of
    them (alert never)."""
    finite = probability[np.isfinite(probability)]
    if len(finite) == 0:
        return np.array([1.0])
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, how_many), method="inverted_cdf"))
    return np.append(cuts, np.nextafter(finite.max(), np.inf))


def failure_windows(frame: pd.DataFrame) -> np.ndarray:
    """An id per failure for each row: a run of consecutive positive rows of one machine (in time order) is the
    horizon before one failure, split where an optional ``failure_at`` column (each row's next failure, hours
    since the epoch; NaN where unknown) changes between positive rows: two failures closer than the horizon
    make one run of positive rows. -1 for negative rows."""
    order = np.lexsort((frame["timestamp"].to_numpy(), frame["machine_id"].to_numpy()))
    machine, y = frame["machine_id"].to_numpy()[order], frame["y"].to_numpy()[order]
    new_machine = np.r_[True, machine[1:] != machine[:-1]]
    starts = (y == 1) & (new_machine | np.r_[True, y[:-1] != 1])
    if "failure_at" in frame:
        at = frame["failure_at"].to_numpy(dtype=float)[order]
        run = np.cumsum(starts)  # a run of positive rows (with the negative rows after it)
        known = (
            pd.Series(np.where(y == 1, at, np.nan)).groupby(run).ffill().to_numpy()
        )  # its latest known failure
        before = np.r_[np.nan, known[:-1]]
        before[starts] = np.nan  # a run's first row starts a window anyway
        starts |= (y == 1) & np.isfinite(at) & (np.abs(at - before) > _SAME_FAILURE_H)
    ids = np.where(y == 1, np.cumsum(starts) - 1, -1)
    result = np.empty(len(order), dtype=np.int64)
    result[order] = ids
    return result


def alert_counts(
    rows: pd.DataFrame, probability: np.ndarray, y: np.ndarray, thresholds: np.ndarray
) -> AlertCounts:
    """Maintenance counts at every threshold, from labelled rows (machine_id, timestamp), their probabilities and
    labels (1: fails within the horizon, 0: does not)."""
    frame = rows[["machine_id", "timestamp", *(["failure_at"] if "failure_at" in rows else [])]]
    frame = frame.reset_index(drop=True)
    frame = frame.assign(
        p=np.asarray(probability, float), y=np.asarray(y), day=frame["timestamp"].dt.floor("D")
    )
    frame["failure"] = failure_windows(frame)
    per_failure = frame[frame["failure"] >= 0].groupby("failure")["p"].max()
    caught = _count_at_or_above(per_failure.to_numpy(), thresholds)
    negatives = frame[frame["y"] == 0].groupby(["machine_id", "day"])["p"].max().to_numpy()
    machine_day = frame.groupby(["day", "machine_id"])["p"].max()
    daily_max = machine_day.groupby(level="day").apply(lambda s: np.sort(s.to_numpy())).to_list()
    per_day = np.stack([_count_at_or_above(m, thresholds) for m in daily_max]) if daily_max else None
    # the count that 9 days in 10 stay at or under: the ceil(0.9 * days)-th smallest (no interpolation)
    flagged = (
        np.quantile(per_day, 0.9, axis=0, method="inverted_cdf")
        if per_day is not None
        else np.zeros(len(thresholds))
    )
    return AlertCounts(
        thresholds=thresholds,
        failures=len(per_failure),
        missed=len(per_failure) - caught,
        false_machine_days=_count_at_or_above(negatives, thresholds),
        flagged_per_day=flagged,
        days=len(daily_max),
    )


def cost_threshold(counts: AlertCounts, miss_cost_ratio: float) -> float:
    """The threshold with the lowest cost, counting a missed failure as ``miss_cost_ratio`` needless inspections
    (ties go to the higher threshold: fewer alerts for the same cost)."""
    cost = miss_cost_ratio * counts.missed + counts.false_machine_days
    best = np.flatnonzero(cost == cost.min())
    return float(counts.thresholds[best[-1]])


def capacity_threshold(counts: AlertCounts, per_day: int) -> float:
    """The lowest threshold at which, on 9 days in 10, the crew is asked to look at no more than ``per_day``
    machines (scoring also never flags more than ``per_day``)."""
    fits = np.flatnonzero(counts.flagged_per_day <= per_day)
    return float(counts.thresholds[fits[0]]) if len(fits) else float(counts.thresholds[-1])


def expected_cost(counts: AlertCounts, threshold: float, miss_cost_ratio: float) -> dict[str, float]:
    """Missed failures, needless inspections and their cost (in inspections) at one threshold."""
    i = int(np.clip(np.searchsorted(counts.thresholds, threshold), 0, len(counts.thresholds) - 1))
    return {
        "failures": float(counts.failures),
        "missed": float(counts.missed[i]),
        "needless_inspections": float(counts.false_machine_days[i]),
        "cost_in_inspections": float(miss_cost_ratio * counts.missed[i] + counts.false_machine_days[i]),
    }
