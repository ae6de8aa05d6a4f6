"""Labels from events: does the machine fail within the horizon after each as-of time?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.telemetry import asof_join, hours_between


def next_event(
    rows: pd.DataFrame, events: pd.DataFrame, kind: str, include_same_time: bool = True
) -> pd.Series:
    """Time of each row's machine's next event of ``kind`` at (or strictly after) the row's timestamp; NaT if none.
    In the rows' order (a RangeIndex), whatever their index or the datetime unit and time zone of either table."""
    found = events.loc[events["kind"] == kind, ["machine_id", "timestamp"]]
    found = found.assign(_event=found["timestamp"])
    joined = asof_join(rows, found, None, include_same_time=include_same_time, direction="forward")
    return joined["_event"]


def next_failure(rows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Time of each row's machine's next failure at or after the row's timestamp (NaT if none)."""
    return next_event(rows, events, "failure")


def failure_within(
    rows: pd.DataFrame,
    events: pd.DataFrame,
    end_of_data: pd.Series,
    horizon_h: float,
    min_lead_h: float = 0.0,
) -> pd.Series:
    """1 if the machine fails within ``horizon_h`` hours (but not sooner than ``min_lead_h``), 0 if it does not, NaN if unknown.

    A row is unknown (censored) when no failure follows and the data of its machine ends before the horizon
    does, or when a maintenance comes within the horizon before any failure (it may have repaired a fault that
    would have failed); masked when the failure is closer than the minimum lead time (a warning is useless).
    """
    t = rows["timestamp"]
    lead_h = hours_between(next_failure(rows, events), t)
    observed_h = hours_between(rows["machine_id"].map(end_of_data), t)
    label = np.full(len(rows), np.nan)
    label[lead_h > horizon_h] = 0.0
    label[np.isnan(lead_h) & (observed_h >= horizon_h)] = 0.0
    label[(lead_h >= min_lead_h) & (lead_h <= horizon_h)] = 1.0
    maintenance_h = hours_between(next_event(rows, events, "maintenance", include_same_time=False), t)
    repaired_first = (maintenance_h <= horizon_h) & ~(lead_h <= maintenance_h)
    label[repaired_first] = np.nan
    return pd.Series(label, name="label")
