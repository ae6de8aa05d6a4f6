"""Slow-telemetry features per machine as of given times (level, window statistics, slope, rise over ambient).

As-of correctness: a feature at time t uses only readings stamped at or before t. Windows are in hours of
time, not row counts, so an irregular or gappy telemetry stream is summarised over the same span.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AMBIENT = "temperature_ambient"
WINDOW_STATS = ("mean", "std", "min", "max", "slope")


def _hours(stamps: pd.Series) -> np.ndarray:
    """Timestamps as float hours since the epoch (float64 keeps 1-second resolution for centuries)."""
    return stamps.to_numpy(dtype="datetime64[us]").astype(np.int64) / 3.6e9


def _window_stats(tel: pd.DataFrame, sensors: list[str], hours: int) -> pd.DataFrame:
    """Rolling mean, std, min, max and least-squares slope (per hour) over the past ``hours`` hours."""
    rolled = tel.groupby("machine_id", sort=False).rolling(f"{hours}h", on="timestamp")
    stats = {}
    for stat in ("mean", "std", "min", "max"):
        frame = getattr(rolled[sensors], stat)()
        for col in sensors:
            stats[f"tel__{col}__{stat}__{hours}h"] = frame[col].to_numpy()
    stats.update(_window_slopes(tel, sensors, hours))
    return pd.DataFrame(stats, index=tel.index)


def _window_slopes(tel: pd.DataFrame, sensors: list[str], hours: int) -> dict[str, np.ndarray]:
    """Least-squares slope of each sensor against time (unit per hour) over a time window, NaN-aware."""
    t = _hours(tel["timestamp"])
    t = t - t.min() if len(t) else t
    parts = {}
    for col in sensors:
        x = tel[col].to_numpy(dtype=float)
        valid = np.isfinite(x)
        tv = np.where(valid, t, 0.0)
        xv = np.where(valid, x, 0.0)
        parts[col] = pd.DataFrame(
            {"n": valid * 1.0, "t": tv, "x": xv, "tx": tv * xv, "tt": tv * tv},
            index=tel.index,
        ).assign(machine_id=tel["machine_id"].to_numpy(), timestamp=tel["timestamp"].to_numpy())
    out = {}
    for col, frame in parts.items():
        s = (
            frame.groupby("machine_id", sort=False)
            .rolling(f"{hours}h", on="timestamp")[["n", "t", "x", "tx", "tt"]]
            .sum()
        )
        n, st, sx, stx, stt = (s[k].to_numpy() for k in ("n", "t", "x", "tx", "tt"))
        denom = n * stt - st * st
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (n * stx - st * sx) / denom
        slope[(n < 3) | (denom <= 1e-9 * np.maximum(n * stt, 1.0))] = np.nan
        out[f"tel__{col}__slope__{hours}h"] = slope
    return out


def telemetry_feature_rows(telemetry: pd.DataFrame, windows_h: tuple[int, ...]) -> pd.DataFrame:
    """Features at every telemetry row (each row's features use that row and earlier ones only)."""
    sensors = [c for c in telemetry.columns if c not in ("machine_id", "timestamp")]
    tel = telemetry.sort_values(["machine_id", "timestamp"]).reset_index(drop=True)
    levels = tel.groupby("machine_id", sort=False)[sensors].ffill()
    frame = {"machine_id": tel["machine_id"], "timestamp": tel["timestamp"]}
    for col in sensors:
        frame[f"tel__{col}__last"] = levels[col].to_numpy()
    if AMBIENT in sensors:
        for col in sensors:
            if col.startswith("temperature") and col != AMBIENT:
                frame[f"tel__{col}__rise_over_ambient"] = (levels[col] - levels[AMBIENT]).to_numpy()
    out = pd.DataFrame(frame)
    # the rolling frames come back grouped by machine in the same order as ``tel``
    stats = [_window_stats(tel, sensors, h).reset_index(drop=True) for h in windows_h]
    return pd.concat([out, *stats], axis=1)


def asof_join(
    as_of: pd.DataFrame, rows: pd.DataFrame, max_age_h: float | None, include_same_time: bool = True
) -> pd.DataFrame:
    """For each (machine_id, timestamp) in ``as_of``, the latest row of ``rows`` at or before it (within max age)."""
    left = as_of[["machine_id", "timestamp"]].reset_index(names="_order").sort_values("timestamp")
    right = rows.rename(columns={"timestamp": "_source_ts"}).sort_values("_source_ts")
    tolerance = pd.Timedelta(hours=max_age_h) if max_age_h is not None else None
    merged = pd.merge_asof(
        left,
        right,
        left_on="timestamp",
        right_on="_source_ts",
        by="machine_id",
        direction="backward",
        allow_exact_matches=include_same_time,
        tolerance=tolerance,
    )
    return merged.sort_values("_order").drop(columns=["_order", "_source_ts"]).reset_index(drop=True)


def hours_since_maintenance(as_of: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Hours since the machine's last maintenance or failure (a repair) strictly before each as-of time; NaN if none.

    Strictly before: an event stamped at the as-of time itself would tell the model about a failure it is asked
    to predict."""
    repairs = events[["machine_id", "timestamp"]].assign(_repair=events["timestamp"])
    joined = asof_join(as_of, repairs, None, include_same_time=False)
    delta = joined["timestamp"] - joined["_repair"]
    return (delta.dt.total_seconds() / 3600.0).to_numpy(dtype=float)
