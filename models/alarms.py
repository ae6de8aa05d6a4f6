"""Alarm hysteresis: turn a risk timeline into alarm episodes, and score episodes against failures.

Per machine, in time order, an episode opens when the risk has been at or above ``alert`` for ``open_after``
consecutive points (it opens at the last of them) and stays open until the risk falls below ``clear``; the point
where it falls below is the first one out of alarm. A NaN risk neither opens nor closes an episode, and breaks a
run of points towards opening.
"""

from __future__ import annotations

from typing import Annotated, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

KEYS = ["machine_id", "timestamp"]
EPISODE_COLUMNS = ["machine_id", "start", "end", "open_at_end"]


class AlarmConfig(BaseModel):
    """Hysteresis of an alarm on a risk score: open at ``alert`` (held ``open_after`` points), close below ``clear``."""

    model_config = ConfigDict(frozen=True)
    alert: float
    clear: float
    open_after: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _clear_not_above_alert(self) -> Self:
        if self.clear > self.alert:
            raise ValueError(
                f"clear threshold {self.clear:g} is above the alert threshold {self.alert:g}; fix: clear <= alert"
            )
        return self


def hysteresis(risk: np.ndarray, config: AlarmConfig) -> np.ndarray:
    """Alarm state of one machine's risk sequence (in time order), as booleans."""
    state = np.zeros(len(risk), dtype=bool)
    on, run = False, 0
    for i, value in enumerate(np.asarray(risk, dtype=float)):
        if np.isnan(value):
            run = 0
        elif on:
            on = value >= config.clear
        else:
            run = run + 1 if value >= config.alert else 0
            on = run >= config.open_after
        if on:
            run = 0
        state[i] = on
    return state


def alarm_states(timeline: pd.DataFrame, config: AlarmConfig) -> pd.DataFrame:
    """The timeline (machine_id, timestamp, risk) with a boolean ``alarm`` column, in the timeline's row order."""
    missing = [c for c in (*KEYS, "risk") if c not in timeline]
    if missing:
        raise ValueError(
            f"alarm timeline lacks column(s) {missing}; fix: pass machine_id, timestamp and risk"
        )
    keys = timeline[[*KEYS, "risk"]].reset_index(drop=True)  # positions: any index, duplicated labels too
    order = keys.sort_values(KEYS, kind="stable").index
    alarm = np.zeros(len(keys), dtype=bool)
    risk = keys.loc[order, "risk"]
    for _, rows in risk.groupby(keys.loc[order, "machine_id"], sort=False):
        alarm[rows.index] = hysteresis(rows.to_numpy(dtype=float), config)
    return timeline.assign(alarm=alarm)


def alarm_episodes(states: pd.DataFrame) -> pd.DataFrame:
    """One row per alarm episode of a state table (machine_id, timestamp, alarm): machine_id, start (first point
    in alarm), end (last point in alarm) and open_at_end (still in alarm at the machine's last point)."""
    ordered = states.sort_values(KEYS, kind="stable")
    records = []
    for machine, rows in ordered.groupby("machine_id", sort=True):
        on = rows["alarm"].to_numpy(dtype=bool)
        times = rows["timestamp"].to_numpy()
        edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
        for first, last in zip(starts, stops, strict=True):
            records.append((machine, times[first], times[last], bool(last == len(on) - 1)))
    episodes = pd.DataFrame(records, columns=EPISODE_COLUMNS)
    if not records:
        dtype = states["timestamp"].dtype
        episodes = episodes.astype({"start": dtype, "end": dtype, "open_at_end": bool})
    return episodes


def evaluate_episodes(episodes: pd.DataFrame, failures: pd.Series, life_start: pd.Series) -> pd.DataFrame:
    """Per machine of ``failures`` (machine_id -> failure time, NaT for none): warned, lead and false alarms.

    The warning is the episode open at the failure (started at or before it, and still open at the end of the
    data or lasting to the failure or beyond); its lead runs from its start to the failure, in hours and as a
    fraction of the machine's life (``life_start`` -> failure). A false alarm is an episode that started after
    ``life_start`` and cleared before the failure (or any episode of a machine that did not fail).
    """
    records = []
    for machine, failure in failures.items():
        start = life_start.get(machine, pd.NaT)
        mine = episodes[(episodes["machine_id"] == machine)]
        if pd.notna(start):
            mine = mine[mine["start"] >= start]
        if pd.isna(failure):
            records.append((machine, False, pd.NaT, np.nan, np.nan, len(mine)))
            continue
        mine = mine[mine["start"] <= failure]
        open_at_failure = mine["open_at_end"] | (mine["end"] >= failure)
        warning = mine[open_at_failure].head(1)
        life_h = (failure - start).total_seconds() / 3600.0 if pd.notna(start) else np.nan
        if len(warning):
            opened = warning["start"].iloc[0]
            lead_h = (failure - opened).total_seconds() / 3600.0
            fraction = lead_h / life_h if life_h > 0 else np.nan
            records.append((machine, True, opened, lead_h, fraction, int((~open_at_failure).sum())))
        else:
            records.append((machine, False, pd.NaT, np.nan, np.nan, int((~open_at_failure).sum())))
    columns = ["machine_id", "warned", "warning_start", "lead_h", "lead_fraction", "false_alarms"]
    return pd.DataFrame(records, columns=columns)
