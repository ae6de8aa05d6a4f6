"""What changes from one risk list to the next: alarms with hysteresis, how long a machine has been flagged,
what changed, and the crew-capacity cut-off.

A machine's alarm opens when its probability reaches the alert threshold and stays open while it remains at or
above the clear (medium) threshold, so a machine hovering at the threshold does not flap in and out of the list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHANGE_STEP = 0.05  # a probability move of at least this much is "rising" or "falling"


def previous_state(previous: pd.DataFrame | None) -> pd.DataFrame:
    """The last list's alarm, its start and the probability of each machine (empty when there is none)."""
    columns = ["alarm", "alarm_since", "failure_probability"]
    if previous is None or previous.empty or not set(columns) <= set(previous.columns):
        return pd.DataFrame(columns=columns, index=pd.Index([], name="machine_id"))
    return previous.set_index("machine_id")[columns]


def alarms(
    probability: np.ndarray, scored: np.ndarray, was_on: np.ndarray, alert: float, clear: float
) -> np.ndarray:
    """Alarm now: scored and at or above ``alert``, or already on and still at or above ``clear``. A machine
    not scored now keeps its alarm (no data neither opens nor clears one)."""
    p = np.nan_to_num(probability, nan=-1.0)
    on = scored & ((p >= alert) | (was_on & (p >= clear)))
    return np.where(scored, on, was_on)


def crew_cut(alarm: np.ndarray, probability: np.ndarray, capacity: int | None) -> np.ndarray:
    """``flagged``: the machines in alarm the crew is asked to look at, the riskiest ``capacity`` of them."""
    flagged = alarm.copy()
    if capacity is not None:
        on = np.flatnonzero(alarm)
        flagged[on[np.argsort(-np.nan_to_num(probability[on], nan=-1.0), kind="stable")][capacity:]] = False
    return flagged


def changes(alarm: np.ndarray, was_on: np.ndarray, probability: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``new`` (alarm opened), ``cleared`` (alarm closed), ``rising``/``falling`` (probability moved by at least
    CHANGE_STEP since the last list), else ''."""
    delta = probability - before
    result = np.full(len(alarm), "", dtype=object)
    result[np.nan_to_num(delta) >= CHANGE_STEP] = "rising"
    result[np.nan_to_num(delta) <= -CHANGE_STEP] = "falling"
    result[alarm & ~was_on] = "new"
    result[~alarm & was_on] = "cleared"
    return result


def carry_over(
    out: pd.DataFrame, previous: pd.DataFrame | None, alert: float, clear: float, capacity: int | None
) -> pd.DataFrame:
    """Add ``alarm``, ``flagged``, ``change``, ``alarm_since`` and ``days_flagged`` to a ranked list
    (machine_id, as_of, status, failure_probability), given the previous list."""
    state = previous_state(previous).reindex(out["machine_id"])
    was_on = state["alarm"].eq(True).to_numpy(dtype=bool)  # absent before: not in alarm
    probability = out["failure_probability"].to_numpy(dtype=float)
    scored = (out["status"] == "scored").to_numpy()
    down = (
        out["status"] == "failed"
    ).to_numpy()  # a failed machine is not at risk: its alarm ends, unflagged
    alarm = alarms(probability, scored, was_on, alert, clear) & ~down
    before = state["failure_probability"].to_numpy(dtype=float)
    as_of = pd.DatetimeIndex(pd.to_datetime(out["as_of"], utc=True))
    since = pd.DatetimeIndex(pd.to_datetime(state["alarm_since"], utc=True)).as_unit(as_of.unit)
    # as integers (NaT is int64 min): tz-aware datetimes turned into numpy arrays are Python objects, ~1 us each
    opened = np.where(alarm & was_on, since.asi8, as_of.asi8).view(f"datetime64[{as_of.unit}]")
    alarm_since = pd.Series(pd.DatetimeIndex(opened).tz_localize("UTC"), index=out.index).where(alarm)
    days = ((pd.Series(as_of, index=out.index) - alarm_since).dt.total_seconds() / 86400.0).round(1)
    return out.assign(
        alarm=alarm,
        flagged=crew_cut(alarm, probability, capacity),
        change=np.where(down, "", changes(alarm, was_on, probability, before)),
        alarm_since=alarm_since,
        days_flagged=days,
    )
