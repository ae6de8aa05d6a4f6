"""Backtest: replay a period day by day as scoring would have seen it, and count what a crew would have got.

Every scoring time sees only data stamped at or before it (the feature builder is as-of correct). Each machine's
risk goes through the alarm hysteresis of ``models.alarms`` (open at the model's alert threshold, clear below
its medium one). A failure is *warned* when an alarm episode is open at the last scoring time before it; its lead
is the time from that episode's start to the failure. An episode that clears before a failure is a false alarm,
unless a maintenance fell inside it (the crew acted on it); an episode still open at the end of the replay is
undecided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss

from features.build import FeatureConfig, build_features
from features.dataset import Dataset
from features.errors import InputError
from models.alarms import AlarmConfig, alarm_episodes, alarm_states
from models.bundle import RiskModel
from models.evaluate import DAYS_PER_MONTH, calibration_table, expected_calibration_error, life_metrics
from models.labels import failure_within
from models.risk import life_readings
from models.rul import remaining_life
from models.train import TrainConfig, train_risk_model

KEYS = ["machine_id", "timestamp"]


@dataclass
class Backtest:
    """The replay's timeline (one row per machine and scoring time), alarm episodes, failures and metrics."""

    timeline: pd.DataFrame
    episodes: pd.DataFrame
    failures: pd.DataFrame
    calibration: pd.DataFrame
    metrics: dict[str, float]


def scoring_times(
    start: pd.Timestamp, end: pd.Timestamp, every_h: float, warm_up_h: float = 0.0
) -> pd.DatetimeIndex:
    """Scoring times from ``start`` to ``end`` every ``every_h`` hours, preceded by whole steps covering
    ``warm_up_h`` hours before ``start``, and ``end`` itself when the steps miss it (the list a job would make
    from the last data)."""
    if every_h <= 0:
        raise InputError(f"--every-h {every_h:g}: must be positive; fix: e.g. 24 for a daily list")
    steps = int(np.ceil(warm_up_h / every_h))
    times = pd.date_range(start - pd.Timedelta(hours=every_h * steps), end, freq=pd.Timedelta(hours=every_h))
    if len(times) and end - times[-1] < pd.Timedelta(seconds=1):  # on the grid, up to the step's rounding
        return times
    return pd.DatetimeIndex([*times, end])


def replay_rows(dataset: Dataset, times: pd.DatetimeIndex) -> pd.DataFrame:
    """Every (machine, scoring time) at which the machine had reported at least once, with its latest reading
    at or before that time (``last_reading``)."""
    readings = pd.concat(
        [dataset.telemetry[KEYS], dataset.waveforms.meta[KEYS]], ignore_index=True
    ).drop_duplicates()
    readings = readings.assign(last_reading=readings["timestamp"]).sort_values("timestamp")
    grid = pd.MultiIndex.from_product([sorted(dataset.machines["machine_id"]), times], names=KEYS).to_frame(
        index=False
    )
    grid["timestamp"] = grid["timestamp"].astype(readings["timestamp"].dtype)
    grid = pd.merge_asof(grid.sort_values("timestamp"), readings, on="timestamp", by="machine_id")
    grid = grid.dropna(subset=["last_reading"])
    return grid.sort_values(KEYS).reset_index(drop=True)


def capped_risk(timeline: pd.DataFrame, alert: float, per_day: int | None) -> np.ndarray:
    """The risk the alarm sees: with a crew capacity, machines below the day's top ``per_day`` cannot open an
    alarm (their risk is held just under the alert threshold; an open alarm stays open while above clear)."""
    risk = timeline["failure_probability"].to_numpy(dtype=float).copy()
    if per_day is None:
        return risk
    rank = timeline.groupby("timestamp")["failure_probability"].rank(ascending=False, method="first")
    over = (rank > per_day).to_numpy() & (risk >= alert)
    risk[over] = np.nextafter(alert, -np.inf)
    return risk


def _ns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame with its time columns in one unit (as-of joins need equal dtypes)."""
    return frame.assign(**{c: frame[c].astype("datetime64[ns, UTC]") for c in columns})


def failure_table(
    events: pd.DataFrame,
    timeline: pd.DataFrame,
    states: pd.DataFrame,
    episodes: pd.DataFrame,
    every_h: float,
) -> pd.DataFrame:
    """Each failure inside the replay of its machine (after its first scoring time, and no later than one
    interval after its last): warned or not, and the lead of its warning in hours."""
    step = pd.Timedelta(hours=every_h)
    events, states, episodes = (
        _ns(events, ["timestamp"]),
        _ns(states, ["timestamp"]),
        _ns(episodes, ["start", "end"]),
    )
    span = timeline.groupby("machine_id")["timestamp"].agg(["min", "max"])
    failures = events[(events["kind"] == "failure") & events["machine_id"].isin(span.index)]
    first, last = (
        failures["machine_id"].map(span[c]).astype(failures["timestamp"].dtype) for c in ("min", "max")
    )
    failures = failures[(failures["timestamp"] > first) & (failures["timestamp"] <= last + step)]
    failures = failures[KEYS].rename(columns={"timestamp": "failure_at"}).sort_values("failure_at")
    scored = states[[*KEYS, "alarm"]].rename(columns={"timestamp": "scored_at"}).sort_values("scored_at")
    found = pd.merge_asof(
        failures,
        scored,
        left_on="failure_at",
        right_on="scored_at",
        by="machine_id",
        allow_exact_matches=False,
    )
    opened = episodes[["machine_id", "start"]].sort_values("start")
    found = pd.merge_asof(
        found.sort_values("failure_at"),
        opened,
        left_on="failure_at",
        right_on="start",
        by="machine_id",
        allow_exact_matches=False,
    )
    warned = found["alarm"].fillna(False).astype(bool)
    lead_h = (found["failure_at"] - found["start"]).dt.total_seconds() / 3600.0
    return pd.DataFrame(
        {
            "machine_id": found["machine_id"],
            "failure_at": found["failure_at"],
            "warned": warned,
            "warning_start": found["start"].where(warned),
            "lead_h": lead_h.where(warned),
        }
    ).reset_index(drop=True)


def classify_episodes(episodes: pd.DataFrame, events: pd.DataFrame, every_h: float) -> pd.DataFrame:
    """Each episode's outcome: ``failure`` (open when its machine failed), ``maintenance`` (a maintenance fell
    inside it), ``open`` (still open at its machine's last scoring time, with no failure within a step after
    it: undecided) or ``false`` (cleared with neither)."""
    outcome = []
    step = pd.Timedelta(hours=every_h)
    for machine, start, stop, open_at_end in episodes[
        ["machine_id", "start", "end", "open_at_end"]
    ].itertuples(index=False):
        mine = events[events["machine_id"] == machine]
        # as ``failure_table`` counts a warning: an event after the episode's first point in alarm and no later
        # than the next scoring time after its last one (a failure stamped at that time was warned by the
        # alarm before it; one open at the machine's last scoring time is counted up to one step after it)
        inside = mine[(mine["timestamp"] > start) & (mine["timestamp"] <= stop + step)]
        if (inside["kind"] == "failure").any():
            outcome.append("failure")
        elif (inside["kind"] == "maintenance").any():
            outcome.append("maintenance")
        elif open_at_end:
            outcome.append("open")
        else:
            outcome.append("false")
    return episodes.assign(outcome=outcome)


def backtest_metrics(
    timeline: pd.DataFrame,
    episodes: pd.DataFrame,
    failures: pd.DataFrame,
    min_lead_h: float,
    miss_cost_ratio: float,
) -> dict[str, float]:
    """What a maintenance manager asks of a replay, plus ranking and calibration quality of the labelled rows."""
    scored = timeline[timeline["status"] == "scored"]
    times = scored.groupby("machine_id")["timestamp"]
    machine_months = (times.max() - times.min()).dt.total_seconds().sum() / 86400.0 / DAYS_PER_MONTH
    false = int((episodes["outcome"] == "false").sum()) if len(episodes) else 0
    true = int((episodes["outcome"] == "failure").sum()) if len(episodes) else 0
    leads = failures.loc[failures["warned"], "lead_h"].to_numpy(dtype=float)
    caught = int((failures["lead_h"] >= min_lead_h).sum())
    labelled = scored.dropna(subset=["label"])
    y, p = labelled["label"].to_numpy(), labelled["failure_probability"].to_numpy()
    both = len(np.unique(y)) == 2
    n = len(failures)
    return {
        "failures": float(n),
        "failures_warned": float(failures["warned"].sum()),
        f"recall_lead_{min_lead_h:g}h": caught / n if n else float("nan"),
        "recall_any_lead": float(failures["warned"].mean()) if n else float("nan"),
        "lead_h_median": float(np.median(leads)) if len(leads) else float("nan"),
        "lead_h_p10": float(np.quantile(leads, 0.1)) if len(leads) else float("nan"),
        "alarm_episodes": float(len(episodes)),
        "false_alarms": float(false),
        "false_alarms_per_machine_month": false / machine_months if machine_months > 0 else float("nan"),
        "alarm_precision": true / (true + false) if true + false else float("nan"),
        "cost_in_inspections": float(miss_cost_ratio * (n - caught) + false),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),  # defined for one class too
        "calibration_error": expected_calibration_error(y, p) if len(y) else float("nan"),
        "labelled_rows": float(len(y)),
        "machine_months": float(machine_months),
    }


def failure_events_in_period(
    events: pd.DataFrame, timeline: pd.DataFrame, every_h: float, count_from: pd.Timestamp | None
) -> int:
    """Failure events of the replayed machines between the first scoring time (or ``count_from``) and one step
    after the last: when ``failures`` counts none of them, their machines' lives fell between scoring times."""
    if timeline.empty:
        return 0
    stamps = events.loc[
        (events["kind"] == "failure") & events["machine_id"].isin(timeline["machine_id"]), "timestamp"
    ]
    start = (
        timeline["timestamp"].min() if count_from is None else max(timeline["timestamp"].min(), count_from)
    )
    end = timeline["timestamp"].max() + pd.Timedelta(hours=every_h)
    return int(((stamps > start) & (stamps <= end)).sum())


def run_backtest(
    timeline: pd.DataFrame,
    events: pd.DataFrame,
    thresholds: dict[str, float],
    every_h: float,
    min_lead_h: float = 24.0,
    capacity_per_day: int | None = None,
    miss_cost_ratio: float = 20.0,
    count_from: pd.Timestamp | None = None,
) -> Backtest:
    """Alarms, episodes, failures and metrics from a scored timeline (machine_id, timestamp, status,
    failure_probability, label); unscored rows neither open nor close an alarm. Failures before ``count_from``
    are left out (the timeline before it is a warm-up, so that a failure early in the period could have been
    warned ``min_lead_h`` ahead)."""
    alarm = AlarmConfig(alert=thresholds["high"], clear=min(thresholds["medium"], thresholds["high"]))
    risk = np.where(
        timeline["status"] == "scored", capped_risk(timeline, alarm.alert, capacity_per_day), np.nan
    )
    states = alarm_states(timeline[KEYS].assign(risk=risk), alarm)
    timeline = timeline.assign(alarm=states["alarm"].to_numpy())
    episodes = classify_episodes(alarm_episodes(states), events, every_h)
    failures = failure_table(events, timeline, states, episodes, every_h)
    if count_from is not None:  # the warm-up's failures and the alarms that ended in it are not counted
        failures = failures[failures["failure_at"] > count_from].reset_index(drop=True)
        episodes = episodes[episodes["end"] > count_from].reset_index(drop=True)
    metrics = backtest_metrics(timeline, episodes, failures, min_lead_h, miss_cost_ratio)
    metrics["failure_events_in_period"] = float(
        failure_events_in_period(events, timeline, every_h, count_from)
    )
    if "remaining_life_h" in timeline:
        on = timeline[timeline["status"] == "scored"]
        metrics.update(
            life_metrics(on["remaining_life_h"].to_numpy(float), on["true_life_h"].to_numpy(float))
        )
    scored = timeline[(timeline["status"] == "scored") & timeline["label"].notna()]
    calibration = calibration_table(scored["label"].to_numpy(), scored["failure_probability"].to_numpy())
    return Backtest(timeline, episodes, failures, calibration, metrics)


def replay_status(
    rows: pd.DataFrame, coverage: np.ndarray, stale_after_h: float, min_coverage: float
) -> np.ndarray:
    """As scoring would have said at each time: ``failed`` when it failed at or after its latest reading (down, awaiting
    a restart), ``no_recent_data`` when its latest reading is older than ``stale_after_h``,
    ``insufficient_history`` when too few of the model's features exist, else ``scored``."""
    stale = (rows["timestamp"] - rows["last_reading"]) > pd.Timedelta(hours=stale_after_h)
    status = np.where(coverage < min_coverage, "insufficient_history", "scored").astype(object)
    status[stale.to_numpy()] = "no_recent_data"
    status[rows["failed_since_reading"].to_numpy(dtype=bool)] = "failed"
    return status


def failed_since_last_reading(rows: pd.DataFrame, events: pd.DataFrame, life: pd.DataFrame) -> np.ndarray:
    """Whether the machine failed at or after its latest reading of a new life (``models.risk.life_readings``:
    a snapshot, for a machine with vibration; ``life``) and by the scoring time: it is down, not at risk."""
    failures = events.loc[events["kind"] == "failure", KEYS].rename(columns={"timestamp": "failed_at"})
    failures = _ns(failures, ["failed_at"]).sort_values("failed_at")
    life = life[KEYS].drop_duplicates()
    life = _ns(life.assign(last_reading=life["timestamp"]), ["timestamp", "last_reading"]).sort_values(
        "timestamp"
    )
    probe = _ns(rows[KEYS], ["timestamp"]).reset_index(names="_row").sort_values("timestamp")
    probe = pd.merge_asof(probe, life, on="timestamp", by="machine_id")
    found = (
        pd.merge_asof(
            probe.sort_values("timestamp"),
            failures,
            left_on="timestamp",
            right_on="failed_at",
            by="machine_id",
        )
        .set_index("_row")
        .sort_index()
    )
    return (found["failed_at"] >= found["last_reading"]).to_numpy()


def replay(
    dataset: Dataset,
    model: RiskModel,
    times: pd.DatetimeIndex,
    stale_after_h: float = 48.0,
    min_coverage: float = 0.5,
) -> pd.DataFrame:
    """The timeline a scoring job would have produced at ``times``: probability, status and the true label (did the
    machine fail within the model's horizon) of every machine that had reported by then."""
    rows = replay_rows(dataset, times)
    if rows.empty:
        raise InputError(
            "no machine had reported by any scoring time of the replay; fix: choose a period inside the data"
        )
    frame = build_features(dataset, rows[KEYS], model.spec.config).frame
    coverage = model.spec.matrix(frame).notna().mean(axis=1).to_numpy()
    rows = rows.assign(
        failed_since_reading=failed_since_last_reading(rows, dataset.events, life_readings(dataset))
    )
    status = replay_status(rows, coverage, stale_after_h, min_coverage)
    scored = status == "scored"
    probability = np.where(scored, model.predict_proba(frame), np.nan)
    end = dataset.latest_reading()
    label = failure_within(rows[KEYS], dataset.events, end, model.horizon_h)
    cap = model.life.cap if model.life is not None else model.horizon_h
    return rows.assign(
        status=status,
        failure_probability=probability,
        label=label.to_numpy(),
        remaining_life_h=np.where(scored, model.remaining_life_h(frame), np.nan),
        true_life_h=remaining_life(rows[KEYS], dataset.events, end, cap).to_numpy(),
    )


def walk_forward_model(
    dataset: Dataset, start: pd.Timestamp, feature_config: FeatureConfig, config: TrainConfig
) -> RiskModel:
    """A model trained only on what was known before ``start``: rows up to ``start`` minus the horizon, labelled
    with the failures before ``start`` (a machine's data is taken to end at ``start``)."""
    table = build_features(dataset, config=feature_config).frame
    before = dataset.events[dataset.events["timestamp"] < start]
    latest = dataset.latest_reading()
    end = latest.where(latest < start, start)
    labels = failure_within(table, before, end, config.horizon_h, config.min_lead_h)
    life = remaining_life(table, before, end, config.life_cap_h).reset_index(drop=True)
    keep = (table["timestamp"] <= start - pd.Timedelta(hours=config.horizon_h)).to_numpy()
    if not keep.any():
        raise InputError(
            f"no data before {start - pd.Timedelta(hours=config.horizon_h)} (the replay start minus the "
            f"{config.horizon_h:g} h horizon) to train on; fix: replay fewer days (--days) or a shorter horizon"
        )
    return train_risk_model(
        table.loc[keep].reset_index(drop=True),
        labels[keep].reset_index(drop=True),
        feature_config,
        config,
        life[keep].reset_index(drop=True),
        dataset.machines,
    )
