"""The risk list: one row per known machine, ranked, with a risk band and the drivers in words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.describe import driver_base, driver_phrase
from models.bundle import RiskModel

RISK_LIST_COLUMNS = [
    "rank",
    "machine_id",
    "site",
    "machine_type",
    "as_of",
    "status",
    "failure_probability",
    "risk_band",
    "remaining_life_h",
    "drivers",
    "model_name",
    "model_version",
]
STATUS_ORDER = {"scored": 0, "insufficient_history": 1, "no_recent_data": 2}


def feature_coverage(model: RiskModel, frame: pd.DataFrame) -> np.ndarray:
    """Share of the model's features that each row has a value for."""
    return model.spec.matrix(frame).notna().mean(axis=1).to_numpy()


def fleet_reference_time(latest: pd.Series) -> pd.Timestamp:
    """'Now' for the fleet: the 90th percentile of the machines' latest readings, so that a few bogus future
    timestamps do not make every other machine look silent."""
    return latest.sort_values().iloc[int(np.ceil(0.9 * (len(latest) - 1)))]


def row_status(
    frame: pd.DataFrame, coverage: np.ndarray, stale_after_h: float, min_coverage: float
) -> np.ndarray:
    """``no_recent_data`` if the latest reading is older than ``stale_after_h`` before the fleet's latest one,
    ``insufficient_history`` if too few features can be computed, else ``scored``."""
    newest = fleet_reference_time(frame["timestamp"])
    stale = (frame["timestamp"] < newest - pd.Timedelta(hours=stale_after_h)).to_numpy()
    status = np.where(coverage < min_coverage, "insufficient_history", "scored").astype(object)
    status[stale] = "no_recent_data"
    return status


def unscored_reasons(frame: pd.DataFrame, status: np.ndarray, coverage: np.ndarray) -> list[str]:
    """Why a machine has no score, in words (empty for scored machines)."""
    newest = fleet_reference_time(frame["timestamp"])
    reasons = []
    for when, state, share in zip(frame["timestamp"], status, coverage, strict=True):
        if state == "no_recent_data":
            reasons.append(
                f"no reading for {(newest - when).total_seconds() / 3600:.0f} h before the fleet's latest"
            )
        elif state == "insufficient_history":
            reasons.append(f"only {share:.0%} of the model's features could be computed: needs more history")
        else:
            reasons.append("")
    return reasons


def top_drivers(model: RiskModel, frame: pd.DataFrame, how_many: int = 3) -> list[str]:
    """The features that most raised each row's risk, as phrases a crew reads (one phrase per feature)."""
    if frame.empty:
        return []
    contrib = model.contributions(frame).to_numpy()
    values = model.spec.matrix(frame).to_numpy()
    names = list(model.spec.columns)
    phrases = []
    for row, value in zip(contrib, values, strict=True):
        chosen: list[str] = []
        seen: set[str] = set()
        for j in np.argsort(-row):
            if row[j] <= 0 or len(chosen) == how_many:
                break
            if np.isfinite(value[j]) and driver_base(names[j]) not in seen:
                seen.add(driver_base(names[j]))
                chosen.append(driver_phrase(names[j], float(value[j])))
        phrases.append("; ".join(chosen))
    return phrases


def crew_capacity(model: RiskModel) -> int | None:
    """Machines per day the crew can inspect, when the model's alert threshold was chosen by capacity."""
    info = getattr(model, "info", {})
    return int(info["capacity_per_day"]) if info.get("alert_policy") == "capacity" else None


def within_capacity(band: np.ndarray, probability: np.ndarray, capacity: int | None) -> np.ndarray:
    """At most ``capacity`` machines in the high band (the riskiest); the others above the threshold go to medium."""
    if capacity is None:
        return band
    high = np.flatnonzero(band == "high")
    beyond = high[np.argsort(-probability[high], kind="stable")][capacity:]
    band = band.copy()
    band[beyond] = "medium"
    return band


def build_risk_list(
    model: RiskModel,
    frame: pd.DataFrame,
    machines: pd.DataFrame,
    model_name: str,
    model_version: str,
    stale_after_h: float = 48.0,
    min_coverage: float = 0.5,
    explain_top: int = 100,
) -> pd.DataFrame:
    """Rank machines by failure probability; drivers for the ``explain_top`` highest that are not low risk."""
    frame = frame.reset_index(drop=True)
    coverage = feature_coverage(model, frame)
    status = row_status(frame, coverage, stale_after_h, min_coverage)
    probability = np.where(status == "scored", model.predict_proba(frame), np.nan)
    life = np.where(status == "scored", model.remaining_life_h(frame), np.nan)
    band = np.where(status == "scored", model.risk_band(np.nan_to_num(probability, nan=-1.0)), "")
    band = within_capacity(band, probability, crew_capacity(model))
    out = pd.DataFrame(
        {
            "machine_id": frame["machine_id"],
            "as_of": frame["timestamp"],
            "status": status,
            "failure_probability": probability,
            "risk_band": band,
            "remaining_life_h": life,
            "drivers": unscored_reasons(frame, status, coverage),
        }
    )
    silent = sorted(set(machines["machine_id"]) - set(frame["machine_id"]))
    if silent:
        never = pd.DataFrame(
            {
                "machine_id": silent,
                "as_of": pd.NaT,
                "status": "no_recent_data",
                "failure_probability": np.nan,
                "risk_band": "",
                "remaining_life_h": np.nan,
                "drivers": "no reading at all",
            }
        )
        out = pd.concat([out, never], ignore_index=True)
    attributes = machines.set_index("machine_id").reindex(columns=["site", "machine_type"])
    out = out.join(attributes, on="machine_id").fillna({"site": "", "machine_type": ""})
    out = out.assign(_order=out["status"].map(STATUS_ORDER), _p=-out["failure_probability"].fillna(1.0))
    out = out.sort_values(["_order", "_p", "machine_id"]).reset_index(drop=True)
    explain = out.index[(out["status"] == "scored") & (out["risk_band"] != "low")][:explain_top]
    by_id = frame.set_index("machine_id")
    out.loc[explain, "drivers"] = top_drivers(model, by_id.loc[out.loc[explain, "machine_id"]].reset_index())
    out["rank"] = np.arange(1, len(out) + 1)
    out["model_name"], out["model_version"] = model_name, str(model_version)
    return out[RISK_LIST_COLUMNS]
