"""Labels from events: does the machine fail within the horizon after each as-of time?"""

from __future__ import annotations

import numpy as np
import pandas as pd


def next_failure(rows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Time of each row's machine's next failure at or after the row's timestamp (NaT if none)."""
    failures = events.loc[events["kind"] == "failure", ["machine_id", "timestamp"]]
    failures = failures.assign(_failure=failures["timestamp"]).sort_values("timestamp")
    left = rows[["machine_id", "timestamp"]].reset_index(names="_order").sort_values("timestamp")
    merged = pd.merge_asof(left, failures, on="timestamp", by="machine_id", direction="forward")
    return merged.set_index("_order")["_failure"].sort_index().reset_index(drop=True)


def failure_within(
    rows: pd.DataFrame,
    events: pd.DataFrame,
    end_of_data: pd.Series,
    horizon_h: float,
    min_lead_h: float = 0.0,
) -> pd.Series:
    """1 if the machine fails within ``horizon_h`` hours (but not sooner than ``min_lead_h``), 0 if it does not, NaN if unknown.

    A row is unknown (censored) when no failure follows and the data of its machine ends before the horizon
    does, and masked when the failure is closer than the minimum lead time (a warning then is useless).
    """
    t = rows["timestamp"].reset_index(drop=True)
    lead_h = (next_failure(rows, events) - t).dt.total_seconds() / 3600.0
    end = rows["machine_id"].map(end_of_data).reset_index(drop=True)
    observed_h = (end - t).dt.total_seconds() / 3600.0
    label = np.full(len(rows), np.nan)
    label[(lead_h > horizon_h).to_numpy()] = 0.0
    label[lead_h.isna().to_numpy() & (observed_h >= horizon_h).to_numpy()] = 0.0
    label[((lead_h >= min_lead_h) & (lead_h <= horizon_h)).to_numpy()] = 1.0
    return pd.Series(label, name="label")
