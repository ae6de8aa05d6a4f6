"""Labels from events: does the machine fail within the horizon after each as-of time?"""

from __future__ import annotations

import numpy as np
import pandas as pd


def next_event(
    rows: pd.DataFrame, events: pd.DataFrame, kind: str, include_same_time: bool = True
) -> pd.Series:
    """Time of each row's machine's next event of ``kind`` at (or strictly after) the row's timestamp; NaT if none."""
    found = events.loc[events["kind"] == kind, ["machine_id", "timestamp"]]
    found = found.assign(_event=found["timestamp"]).sort_values("timestamp")
    left = rows[["machine_id", "timestamp"]].reset_index(names="_order").sort_values("timestamp")
    merged = pd.merge_asof(
        left,
        found,
        on="timestamp",
        by="machine_id",
        direction="forward",
        allow_exact_matches=include_same_time,
    )
    return merged.set_index("_order")["_event"].sort_index().reset_index(drop=True)


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
    t = rows["timestamp"].reset_index(drop=True)
    lead_h = (next_failure(rows, events) - t).dt.total_seconds() / 3600.0
    end = rows["machine_id"].map(end_of_data).reset_index(drop=True)
    observed_h = (end - t).dt.total_seconds() / 3600.0
    label = np.full(len(rows), np.nan)
    label[(lead_h > horizon_h).to_numpy()] = 0.0
    label[lead_h.isna().to_numpy() & (observed_h >= horizon_h).to_numpy()] = 0.0
    label[((lead_h >= min_lead_h) & (lead_h <= horizon_h)).to_numpy()] = 1.0
    maintenance_h = (
        next_event(rows, events, "maintenance", include_same_time=False) - t
    ).dt.total_seconds() / 3600
    repaired_first = (maintenance_h <= horizon_h) & ~(lead_h <= maintenance_h)
    label[repaired_first.to_numpy()] = np.nan
    return pd.Series(label, name="label")
