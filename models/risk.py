"""The risk list: one row per known machine, ranked, with a risk band and the drivers in words."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.build import MAINTENANCE_FEATURE, build_features, default_as_of, latest_as_of
from features.dataset import Dataset
from features.describe import driver_base, driver_phrase
from features.errors import InputError
from models.bundle import RiskModel
from models.faults import likely_faults
from models.listing import carry_over

RISK_LIST_COLUMNS = [
    "rank",
    "machine_id",
    "site",
    "machine_type",
    "as_of",
    "status",
    "failure_probability",
    "risk_band",
    "flagged",
    "alarm",
    "change",
    "days_flagged",
    "alarm_since",
    "remaining_life_hours",
    "likely_fault",
    "drivers",
    "model_name",
    "model_version",
]
STATUS_ORDER = {"scored": 0, "check_sensor": 1, "failed": 2, "insufficient_history": 3, "no_recent_data": 4}


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


def missing_signals(matrix: pd.DataFrame, rows: np.ndarray) -> list[list[str]]:
    """Per row of ``rows``, the signals (``<kind>__<signal>`` of ``<kind>__<signal>__<feature>`` names) of
    which the model uses features but the row has none: a channel or sensor the machine does not send, which
    more history never brings. Features from the events (time since maintenance) are no signal."""
    names = [c for c in matrix.columns if c.count("__") >= 2 and c != MAINTENANCE_FEATURE]
    if not names:
        return [[] for _ in rows]
    signals = ["__".join(name.split("__")[:2]) for name in names]
    present = matrix.iloc[rows][names].notna().T.groupby(signals).any().T
    return [[str(s) for s in present.columns[~row]] for row in present.to_numpy()]


def unscored_reasons(
    frame: pd.DataFrame, status: np.ndarray, coverage: np.ndarray, matrix: pd.DataFrame | None = None
) -> list[str]:
    """Why a machine has no score, in words (empty for scored machines); with the model's feature ``matrix``,
    an insufficient history also names the signals the model uses that the machine sent nothing of."""
    newest = fleet_reference_time(frame["timestamp"])
    reasons = [""] * len(frame)
    silent = np.flatnonzero(status == "no_recent_data")
    hours = (newest - frame["timestamp"].iloc[silent]).dt.total_seconds().to_numpy() / 3600
    for row, gap in zip(silent, hours, strict=True):
        reasons[row] = f"no reading for {gap:.0f} h before the fleet's latest"
    short = np.flatnonzero(status == "insufficient_history")
    absent = missing_signals(matrix, short) if matrix is not None else [[] for _ in short]
    for row, signals in zip(short, absent, strict=True):
        share = f"only {coverage[row]:.0%} of the model's features could be computed"
        reasons[row] = (
            f"{share}: no feature of {', '.join(signals)}, which the model uses; fix: send that channel or "
            "sensor, or train a model without it"
            if signals
            else f"{share}: needs more history"
        )
    return reasons


def top_drivers(model: RiskModel, frame: pd.DataFrame, how_many: int = 3) -> tuple[list[str], list[str]]:
    """The features that most raised each row's risk, as phrases a crew reads (one phrase per feature), and the
    likely fault their families point to. Contributions are costly: call this only for the rows shown."""
    if frame.empty:
        return [], []
    contributions = model.contributions(frame)
    matrix = model.spec.matrix(frame)
    contrib, values = contributions.to_numpy(), matrix.to_numpy()
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
    return phrases, likely_faults(contributions, matrix.set_axis(contributions.index))


def crew_capacity(model: RiskModel) -> int | None:
    """Machines per list the crew can inspect (``flagged`` is cut there); None when the model has no capacity."""
    capacity = getattr(model, "info", {}).get("capacity_per_day")
    return int(capacity) if capacity else None


def failed_since_last_reading(events: pd.DataFrame, latest: pd.Series) -> pd.Series:
    """Machines whose latest failure is at or after their latest reading of a new life (``life_readings``):
    down, awaiting restart; the failure time. A reading stamped at the failure itself is the last one of that
    life (a run-to-failure record ends so)."""
    failures = events[events["kind"] == "failure"].groupby("machine_id")["timestamp"].max()
    later = failures[failures >= latest.reindex(failures.index)]
    return later


def life_readings(dataset: Dataset) -> pd.DataFrame:
    """The readings that show a machine in a life after a failure: its vibration snapshots where it has any
    (its risk is built from them: a temperature reading a second after the failure, with the last snapshot
    before it, would score the life that ended), else its telemetry rows: the feature table's default rows
    (``default_as_of``). Columns machine_id, timestamp."""
    return default_as_of(dataset)


def latest_life_reading(dataset: Dataset) -> pd.Series:
    """Each machine's latest ``life_readings`` time."""
    return life_readings(dataset).groupby("machine_id")["timestamp"].max()


def unscored_statuses(
    status: np.ndarray, machine_ids: pd.Series, sensor_flags: pd.DataFrame | None, failed: pd.Series | None
) -> tuple[np.ndarray, dict[str, str]]:
    """``failed`` (a failure at or after its latest reading: down, awaiting restart) and ``check_sensor`` (an active
    stuck or dead sensor: its score would be garbage) override ``scored``; with the reason in words. An
    unconfirmed ``spike`` does not (``spike_notes``): a real jump must not drop out of the ranking."""
    status = status.copy()
    reasons: dict[str, str] = {}
    if sensor_flags is not None and not sensor_flags.empty:
        active = (
            sensor_flags[sensor_flags["active"].astype(bool)] if "active" in sensor_flags else sensor_flags
        )
        active = active[active["flag"] != "spike"]
        for machine, rows in active.groupby("machine_id"):
            reasons[str(machine)] = "; ".join(
                f"{flag} {column} since {since}"
                for column, flag, since in rows[["column", "flag", "since"]].itertuples(index=False)
            )
        status[machine_ids.isin(list(reasons)).to_numpy() & (status == "scored")] = "check_sensor"
    if failed is not None and not failed.empty:
        down = machine_ids.isin(failed.index).to_numpy()
        status[down] = "failed"
        for machine in machine_ids[down]:
            reasons[str(machine)] = (
                f"failed at {failed[machine]}, no reading of a new life since (for a machine with vibration, a "
                "snapshot): awaiting restart"
            )
    return status, reasons


def spike_notes(sensor_flags: pd.DataFrame | None) -> dict[str, str]:
    """Machine -> the detail of its active ``spike`` flags (a far reading in its latest readings, not yet
    known to be a glitch or a real change), added to the drivers of its row whatever its status."""
    if sensor_flags is None or sensor_flags.empty:
        return {}
    active = sensor_flags["active"].astype(bool) if "active" in sensor_flags else True
    spikes = sensor_flags[(sensor_flags["flag"] == "spike") & active]
    return {str(m): "; ".join(rows["detail"]) for m, rows in spikes.groupby("machine_id")}


def build_risk_list(
    model: RiskModel,
    frame: pd.DataFrame,
    machines: pd.DataFrame,
    model_name: str,
    model_version: str,
    stale_after_h: float = 48.0,
    min_coverage: float = 0.5,
    explain_top: int = 100,
    previous: pd.DataFrame | None = None,
    sensor_flags: pd.DataFrame | None = None,
    failed: pd.Series | None = None,
) -> pd.DataFrame:
    """Rank machines by failure probability; drivers and likely fault for the ``explain_top`` highest that are
    not low risk; alarms, changes and the crew cut-off carried over from the ``previous`` list."""
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise InputError("no rows to score; fix: pass one row per machine (features.build.latest_as_of)")
    repeated = frame["machine_id"][frame["machine_id"].duplicated()]
    if len(repeated):
        raise InputError(
            f"a risk list ranks one row per machine, and {repeated.nunique()} machine(s) have more (first: "
            f"{repeated.iloc[0]}); fix: score each machine's latest row (build_features with latest_as_of)"
        )
    matrix = model.spec.matrix(frame)
    coverage = matrix.notna().mean(axis=1).to_numpy()  # share of the model's features each row has
    status = row_status(frame, coverage, stale_after_h, min_coverage)
    status, reasons = unscored_statuses(status, frame["machine_id"], sensor_flags, failed)
    scored = status == "scored"
    probability = np.where(scored, model.predict_proba(frame), np.nan)
    life = np.where(scored, model.remaining_life_h(frame), np.nan)
    band = np.where(scored, model.risk_band(np.nan_to_num(probability, nan=-1.0)), "")
    drivers = unscored_reasons(frame, status, coverage, matrix)
    if reasons:
        drivers = [reasons.get(str(m), d) for m, d in zip(frame["machine_id"], drivers, strict=True)]
    out = pd.DataFrame(
        {
            "machine_id": frame["machine_id"],
            "as_of": frame["timestamp"],
            "status": status,
            "failure_probability": probability,
            "risk_band": band,
            "remaining_life_hours": life,
            "likely_fault": "",
            "drivers": drivers,
        }
    )
    silent = sorted(set(machines["machine_id"]) - set(frame["machine_id"]))
    if silent:  # rows added by reindexing (NaT and NaN where unknown), so every column keeps its dtype
        known = len(out)
        out = out.reindex(range(known + len(silent)))
        never = out.index >= known
        out.loc[never, "machine_id"] = silent
        out.loc[never, ["status", "risk_band", "likely_fault", "drivers"]] = [
            "no_recent_data",
            "",
            "",
            "no reading at all",
        ]
    attributes = machines.set_index("machine_id").reindex(columns=["site", "machine_type"])
    out = out.join(attributes, on="machine_id").fillna({"site": "", "machine_type": ""})
    out = out.assign(_order=out["status"].map(STATUS_ORDER), _p=-out["failure_probability"].fillna(1.0))
    out = out.sort_values(["_order", "_p", "machine_id"]).reset_index(drop=True)
    explain = out.index[(out["status"] == "scored") & (out["risk_band"] != "low")][:explain_top]
    by_id = frame.set_index("machine_id")
    phrases, faults = top_drivers(model, by_id.loc[out.loc[explain, "machine_id"]].reset_index())
    out.loc[explain, "drivers"], out.loc[explain, "likely_fault"] = phrases, faults
    notes = out["machine_id"].astype(str).map(spike_notes(sensor_flags))
    noted = notes.notna().to_numpy()
    if noted.any():
        before = out.loc[noted, "drivers"].fillna("")
        out.loc[noted, "drivers"] = before.where(before == "", before + "; ") + notes[noted]
    thresholds = model.thresholds
    out = carry_over(
        out, previous, thresholds["high"], min(thresholds["medium"], thresholds["high"]), crew_capacity(model)
    )
    out["rank"] = np.arange(1, len(out) + 1)
    out["model_name"], out["model_version"] = model_name, str(model_version)
    return out[RISK_LIST_COLUMNS]


def score_dataset(
    model: RiskModel,
    dataset: Dataset,
    model_name: str,
    model_version: str,
    *,
    frame: pd.DataFrame | None = None,
    stale_after_h: float = 48.0,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The risk list of every machine of ``dataset`` as of its latest reading: the model's features (``frame``
    when they were built elsewhere, such as on Dask workers), failures since the last reading (``failed``) and
    active stuck or dead sensors (``check_sensor``). What the score flow does, without Prefect or MLflow."""
    if frame is None:
        frame = build_features(dataset, latest_as_of(dataset), model.spec.config).frame
    return build_risk_list(
        model,
        frame,
        dataset.machines,
        model_name,
        model_version,
        stale_after_h,
        previous=previous,
        sensor_flags=dataset.sensor_flags,
        failed=failed_since_last_reading(dataset.events, latest_life_reading(dataset)),
    )


def flagged_history(
    model: RiskModel,
    risk: pd.DataFrame,
    build: Callable[[pd.DataFrame], pd.DataFrame],
    weeks: float = 4.0,
    how_many: int = 3,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Daily risk of each flagged machine over the last ``weeks`` (features rebuilt as of each day by ``build``,
    which maps (machine_id, timestamp) rows to a feature table), and the names of its ``how_many`` main drivers
    today, whose values come along as columns."""
    flagged = risk[risk["flagged"].astype(bool) & risk["as_of"].notna()]
    if flagged.empty:
        return pd.DataFrame(columns=["machine_id", "timestamp", "failure_probability"]), {}
    days = np.arange(-int(7 * weeks), 1)
    rows = pd.DataFrame(
        {
            "machine_id": np.repeat(flagged["machine_id"].to_numpy(), len(days)),
            "timestamp": np.concatenate(
                [when + pd.to_timedelta(days, unit="D") for when in flagged["as_of"]]
            ),
        }
    )
    frame = build(rows).reset_index(drop=True)
    today = frame.groupby("machine_id").tail(1)
    contributions = model.contributions(today)
    drivers = {
        str(machine): list(contributions.columns[np.argsort(-row)[:how_many]])
        for machine, row in zip(today["machine_id"], contributions.to_numpy(), strict=True)
    }
    columns = sorted({c for names in drivers.values() for c in names})
    history = frame.reindex(columns=["machine_id", "timestamp", *columns]).assign(  # a missing sensor: NaN
        failure_probability=model.predict_proba(frame)
    )
    return history, drivers
