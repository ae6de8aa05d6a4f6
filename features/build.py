"""Assemble the feature table: one row per machine and as-of time, one column per feature.

Column names carry their kind, signal and parameters (``vib__acc_horizontal__envelope__bpfo_amp``,
``tel__temperature_bearing__slope__24h``), so a ``FeatureSpec`` stored with a model is enough to rebuild the
same columns at scoring time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from features.bearings import defect_orders
from features.checks import nominal_rates
from features.dataset import Dataset, id_strings
from features.iso import DEFAULT_CLASS, iso_zone, normalise_class
from features.telemetry import (
    MIN_FLEET,
    asof_join,
    hours_since_maintenance,
    machine_runs,
    telemetry_features_asof,
)
from features.vibration import VibrationConfig, nan_reasons, vibration_feature_names, vibration_features

KEYS = ["machine_id", "timestamp"]
Progress = Callable[[int, int], None]
TREND_SUFFIXES = ("rms", "kurtosis", "velocity_rms_mm_s", "order_1x_amp", "envelope__rms")
SLOPE_SUFFIXES = ("rms", "kurtosis", "velocity_rms_mm_s", "envelope__rms", "bpfo_snr", "bpfi_snr", "bsf_snr")
SNAPSHOTS_PER_CHUNK = 2048
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # a finite quantity above 0


class FeatureConfig(BaseModel):
    """How features are computed; stored with every model inside its FeatureSpec."""

    model_config = ConfigDict(frozen=True)
    windows_h: tuple[PositiveInt, ...] = (24, 168)
    bands_hz: tuple[tuple[float, float], ...] = ((10, 500), (500, 1000), (1000, 2000), (2000, 5000))
    # the envelope band (Hz); None: chosen per snapshot (features.vibration). Fix it to a resonance known from an
    # impact test, or when the automatic choice lands on a band without the bearing's impacts
    envelope_band_hz: tuple[float, float] | None = None
    baseline_snapshots: PositiveInt = 10
    regime_speed_step: Positive = 0.1
    regime_load_step_pct: Positive = 50.0
    load_column: str = "load_pct"
    vibration_max_age_h: Positive = 48.0
    # opt-in: trend slopes of vibration features over this many hours. Off by default: on PRONOSTIA they help
    # some held-out bearings and hurt others badly (benchmarks/trend_slopes_ablation.py), and with 2 training
    # bearings (tests/test_real_bearings.py) the ranking falls below chance.
    vibration_trend_h: PositiveInt | None = None
    # the vibration features whose slopes are computed (feature names as in features.vibration, e.g. "rms",
    # "band_energy__500_1000hz", "envelope__bpfo_snr"; a name also matches the features it ends: "rms" also
    # slopes "envelope__rms")
    vibration_trend_features: tuple[str, ...] = SLOPE_SUFFIXES
    telemetry_max_age_h: Positive = 24.0

    @model_validator(mode="after")
    def _check_windows_and_bands(self) -> FeatureConfig:
        """One column per window and per band: no repeats; bands checked as ``VibrationConfig`` checks them."""
        if len(set(self.windows_h)) < len(self.windows_h):
            raise ValueError(
                f"windows_h {self.windows_h} lists a window twice (each window is a set of columns)"
            )
        vibration = VibrationConfig(bands_hz=self.bands_hz, envelope_band_hz=self.envelope_band_hz)
        known = vibration_feature_names(vibration)
        unknown = [
            f for f in self.vibration_trend_features if not any(k == f or k.endswith(f"__{f}") for k in known)
        ]
        if unknown:
            raise ValueError(
                f"vibration_trend_features {unknown} name no vibration feature; fix: use names of "
                f"features.vibration.vibration_feature_names(), e.g. {', '.join(known[:4])}"
            )
        return self


class FeatureSpec(BaseModel):
    """The exact feature columns a model was trained on, and the configuration that computes them."""

    model_config = ConfigDict(frozen=True)
    config: FeatureConfig = FeatureConfig()
    columns: tuple[str, ...]
    contract_version: str = "v1"

    def missing_from(self, frame: pd.DataFrame) -> list[str]:
        """Spec columns the frame cannot provide (absent, or NaN in every row)."""
        return [c for c in self.columns if c not in frame or frame[c].isna().all()]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input: the spec's columns in the spec's order (absent ones as NaN), float32; an infinite
        value (a ratio to a zero baseline, or a number beyond float32) is missing, like NaN."""
        with np.errstate(over="ignore"):  # beyond float32: inf, then missing
            values = frame.reindex(columns=list(self.columns)).to_numpy(dtype=np.float32, na_value=np.nan)
        values[np.isinf(values)] = np.nan
        return pd.DataFrame(values, index=frame.index, columns=list(self.columns), copy=False)


@dataclass
class FeatureTable:
    frame: pd.DataFrame  # machine_id, timestamp, feature columns
    notes: pd.DataFrame  # machine_id, timestamp, feature, reason: why a feature is NaN

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in KEYS]


def default_as_of(dataset: Dataset) -> pd.DataFrame:
    """Training rows, per machine: its snapshot times where it has waveforms, else its telemetry times (a
    machine without a vibration sensor is not left out because others have one)."""
    snapshots = dataset.waveforms.meta[KEYS]
    readings = dataset.telemetry[KEYS]
    without = readings[~readings["machine_id"].isin(snapshots["machine_id"].unique())]
    rows = pd.concat([snapshots, without], ignore_index=True) if len(without) else snapshots
    return rows.drop_duplicates().sort_values(KEYS).reset_index(drop=True)


def latest_as_of(dataset: Dataset) -> pd.DataFrame:
    """Scoring rows: each machine as of its latest reading."""
    return dataset.latest_reading().rename("timestamp").reset_index()[KEYS]


def shaft_speed_hz(dataset: Dataset, max_age_h: float = 24.0) -> np.ndarray:
    """Shaft speed per snapshot: the snapshot's speed_rpm, else the latest telemetry speed_rpm, else rated speed."""
    meta = dataset.waveforms.meta
    rpm = meta["speed_rpm"].to_numpy(dtype=float)
    if "speed_rpm" in dataset.telemetry:
        speeds = dataset.telemetry[[*KEYS, "speed_rpm"]].dropna()
        from_tel = asof_join(meta[KEYS], speeds, max_age_h)["speed_rpm"].to_numpy(dtype=float)
        rpm = np.where(np.isnan(rpm), from_tel, rpm)
    if "rated_speed_rpm" in dataset.machines:
        rated = meta["machine_id"].map(dataset.machines.set_index("machine_id")["rated_speed_rpm"])
        rpm = np.where(np.isnan(rpm), rated.to_numpy(dtype=float), rpm)
    return rpm / 60.0


def snapshot_defect_orders(dataset: Dataset) -> dict[str, np.ndarray]:
    """Bearing defect orders (BPFO, BPFI, BSF, FTF per shaft revolution) for each snapshot's machine; NaN if unknown."""
    geometry = [
        "bearing_n_balls",
        "bearing_ball_diameter_mm",
        "bearing_pitch_diameter_mm",
        "bearing_contact_angle_deg",
    ]
    machines = dataset.machines.set_index("machine_id").reindex(columns=geometry)
    machines["bearing_contact_angle_deg"] = machines["bearing_contact_angle_deg"].fillna(0.0)
    per_snapshot = machines.reindex(dataset.waveforms.meta["machine_id"]).to_numpy(dtype=float)
    return defect_orders(*per_snapshot.T)


def snapshot_regimes(dataset: Dataset, shaft_hz: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Operating regime of each snapshot: its speed band (10 % steps of shaft speed) and load band (50 % steps of
    the latest ``load_pct`` reading), so baselines compare a machine with itself at the same speed and load."""
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = _band_labels(np.round(np.log(shaft_hz) / np.log(1.0 + config.regime_speed_step)))
    load = np.full(len(speed), "?", dtype=object)
    if config.load_column in dataset.telemetry and len(speed):
        loads = dataset.telemetry[[*KEYS, config.load_column]].dropna()
        level = asof_join(dataset.waveforms.meta[KEYS], loads, config.telemetry_max_age_h)[config.load_column]
        load = _band_labels(np.floor(level.to_numpy(dtype=float) / config.regime_load_step_pct))
    return np.array([f"{s}|{v}" for s, v in zip(speed, load, strict=True)], dtype=object)


def _band_labels(bands: np.ndarray) -> np.ndarray:
    """Integer band numbers as strings, '?' where unknown."""
    return np.array([str(int(b)) if np.isfinite(b) else "?" for b in bands], dtype=object)


def snapshot_features(
    dataset: Dataset, config: FeatureConfig, progress: Progress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Vibration features per snapshot (long: one row per snapshot and channel), its regime, and NaN reasons.

    ``progress(done, total)`` is called after each batch with the number of snapshots done."""
    meta = dataset.waveforms.meta
    if meta.empty:
        return pd.DataFrame(columns=[*KEYS, "channel", "regime"]), _empty_notes()
    shaft, orders = shaft_speed_hz(dataset, config.telemetry_max_age_h), snapshot_defect_orders(dataset)
    vib_config = VibrationConfig(bands_hz=config.bands_hz, envelope_band_hz=config.envelope_band_hz)
    parts, notes = [], []
    rates = nominal_rates(meta["sample_rate_hz"])  # a logger's measured rates (25600.3 Hz ...) as one rate
    for (rate, _), group in meta.assign(_rate=rates).groupby(["_rate", "n_samples"], sort=True):
        rows = group.index.to_numpy()
        for start in range(0, len(rows), SNAPSHOTS_PER_CHUNK):
            chunk = rows[start : start + SNAPSHOTS_PER_CHUNK]
            chunk_orders = {k: v[chunk] for k, v in orders.items()}
            values = vibration_features(
                dataset.waveforms.batch(chunk),
                float(cast(float, rate)),
                shaft[chunk],
                chunk_orders,
                vib_config,
            )
            parts.append(pd.DataFrame(values, index=chunk))
            if progress is not None:
                progress(sum(len(p) for p in parts), len(meta))
            notes.append(_reason_notes(meta.loc[chunk], nan_reasons(shaft[chunk], chunk_orders)))
    features = pd.concat(parts).sort_index()
    if "velocity_rms_mm_s" in features:
        features["iso_zone"] = iso_zone(features["velocity_rms_mm_s"].to_numpy(), machine_classes(dataset))
    regime = meta["regime"] if "regime" in meta else snapshot_regimes(dataset, shaft, config)
    keys = meta[[*KEYS, "channel"]].assign(regime=np.asarray(regime))
    found = [n for n in notes if len(n)]  # empty note frames would only blur the dtypes of the concat
    return pd.concat([keys, features], axis=1), pd.concat(
        found, ignore_index=True
    ) if found else _empty_notes()


def machine_classes(dataset: Dataset) -> pd.Series:
    """ISO vibration class of each snapshot's machine (the default class where the machines table has none)."""
    machines = dataset.machines.drop_duplicates("machine_id").set_index("machine_id")
    classes = normalise_class(machines.reindex(columns=["vibration_class"])["vibration_class"])
    ids = dataset.waveforms.meta["machine_id"]
    return ids.map(classes).fillna(DEFAULT_CLASS).astype(object)  # a machine known by its readings alone


def _empty_notes() -> pd.DataFrame:
    return pd.DataFrame(columns=[*KEYS, "feature", "reason"])


EVERY_MACHINE = "*"  # machine_id of a note about a feature that is NaN for every machine
MAINTENANCE_FEATURE = (
    "tel__maintenance__hours_since"  # from the events, not a sensor: NaN until the first one
)


def explained_row_by_row(table: FeatureTable) -> set[str]:
    """The feature columns whose NaN values the per-snapshot notes already explain (``_reason_notes``: a
    channel's envelope and order features)."""
    notes = table.notes["feature"].dropna().astype(str)
    channels = {  # notes name 'vib__<channel>__envelope__* ...' or 'vib__<channel>__order_* ...'
        re.split(r"__(?:envelope__|order_)", note.removeprefix("vib__"))[0]
        for note in notes.unique()
        if note.startswith("vib__")
    }
    prefixes = tuple(p for c in channels for p in (f"vib__{c}__envelope__", f"vib__{c}__order_"))
    return {c for c in table.frame.columns if prefixes and c.startswith(prefixes)}


def empty_feature_notes(
    frame: pd.DataFrame, config: FeatureConfig, noted: set[str] | None = None
) -> pd.DataFrame:
    """A note for each feature column that is NaN in every row (machine_id ``EVERY_MACHINE``, no timestamp),
    with the reason its kind implies, unless ``noted`` (features already explained row by row) holds it."""
    skip = set(KEYS) | (noted or set())
    empty = [
        c
        for c in frame.columns
        if len(frame) and c not in skip and frame[c].isna().all() and not _unneeded_rise(frame, c)
    ]  # no rows: none
    return pd.DataFrame(
        {
            "machine_id": [EVERY_MACHINE] * len(empty),
            "timestamp": pd.Series(pd.NaT, index=range(len(empty)), dtype="datetime64[ns, UTC]"),
            "feature": empty,
            "reason": [_empty_reason(c, config) for c in empty],
        }
    )


def _unneeded_rise(frame: pd.DataFrame, column: str) -> bool:
    """True for a rise over the fleet that no row needed: every row with the temperature rises over ambient."""
    if not column.endswith("__rise_over_fleet"):
        return False
    stem = column.removesuffix("__rise_over_fleet")
    level, over_ambient = f"{stem}__last", f"{stem}__rise_over_ambient"
    return (
        level in frame
        and over_ambient in frame
        and not (frame[level].notna() & frame[over_ambient].isna()).any()
    )


def _empty_reason(column: str, config: FeatureConfig) -> str:
    """Why a feature of this kind has no value anywhere."""
    if column.endswith("__ratio_to_baseline"):
        return (
            f"a ratio to the healthy baseline needs {config.baseline_snapshots} earlier snapshots of the machine "
            "and channel (its baseline period, FeatureConfig.baseline_snapshots); no machine has more here"
        )
    if column == MAINTENANCE_FEATURE:
        return "no maintenance or failure event before any as-of time (events table)"
    if "__slope__" in column:
        return "a slope needs at least 3 readings inside its window; no machine has them here"
    if column.endswith("__rise_over_fleet"):
        return (
            f"a rise over the fleet needs at least {MIN_FLEET} machines of the same machine_type (machines table) "
            "reporting the sensor in the same hour; no hour here has them (or there is no machine_type), and "
            "there is no temperature_ambient reading to rise over instead"
        )
    if "__envelope__" in column or "__order_" in column:
        return "no shaft speed or bearing geometry, or the envelope band lies above the Nyquist frequency"
    return "no reading this feature is computed from falls inside its window for any machine"


def _reason_notes(meta: pd.DataFrame, reasons: list[str | None]) -> pd.DataFrame:
    """One note per snapshot with a reason (``nan_reasons``), naming the features it leaves NaN: without
    bearing geometry alone, only the envelope's defect-line features; without speed, the order ones too."""
    rows = [
        (m, t, _features_left_out(c, r), r)
        for (m, t, c), r in zip(meta[[*KEYS, "channel"]].itertuples(index=False), reasons, strict=True)
        if r
    ]
    return pd.DataFrame(rows, columns=[*KEYS, "feature", "reason"])


def _features_left_out(channel: str, reason: str) -> str:
    """The features of a channel that a ``nan_reasons`` reason leaves NaN, as a pattern."""
    if reason == "no bearing geometry":
        return f"vib__{channel}__envelope__* (defect lines)"
    return f"vib__{channel}__envelope__* and vib__{channel}__order_*"


def _expanding_median(values: pd.DataFrame, groups: list[pd.Series]) -> pd.DataFrame:
    """Median of each group's values so far (NaN-skipping), aligned with ``values``."""
    grouped = values.groupby(groups, sort=False).expanding().median()
    return grouped.reset_index(level=list(range(len(groups))), drop=True).sort_index()


def add_baseline_ratios(snapshots: pd.DataFrame, baseline_snapshots: int) -> pd.DataFrame:
    """Add ``<feature>__ratio_to_baseline``: the value over the machine's healthy baseline as of t.

    The baseline period is the machine's first ``baseline_snapshots`` snapshots (assumed healthy); ratios are NaN
    until it is complete (a batch scored without its history has no baseline, not a ratio of 1). The baseline of a
    later snapshot is the median of the baseline-period snapshots in the same operating regime, or in all regimes
    when none matches, so a machine running faster is not mistaken for a worse one.
    """
    columns = [
        c for c in snapshots.columns if c.endswith(TREND_SUFFIXES) or "_amp" in c or "band_energy" in c
    ]
    ordered = snapshots.sort_values([*KEYS]).reset_index(drop=True)
    rank = ordered.groupby("machine_id").cumcount()
    early = ordered[columns].where(rank < baseline_snapshots)
    baseline = _expanding_median(early, [ordered["machine_id"]])
    if "regime" in ordered:
        same_regime = _expanding_median(early, [ordered["machine_id"], ordered["regime"]])
        baseline = same_regime.fillna(baseline)
    baseline = baseline.where((baseline > 0) & (rank >= baseline_snapshots).to_numpy()[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ordered[columns] / baseline
    ratios.columns = [f"{c}__ratio_to_baseline" for c in columns]
    return pd.concat([ordered.drop(columns=["regime"], errors="ignore"), ratios], axis=1)


def vibration_by_channel(snapshots: pd.DataFrame, baseline_snapshots: int) -> list[pd.DataFrame]:
    """One frame per channel: machine_id, timestamp and ``vib__<channel>__<feature>`` columns with their
    baseline ratios. Channels are joined to the as-of rows one by one, so channels stamped a second apart
    still meet in one row."""
    frames = []
    for channel, group in snapshots.groupby("channel", sort=True):
        group = add_baseline_ratios(group.drop(columns="channel"), baseline_snapshots)
        frames.append(group.set_index(KEYS).add_prefix(f"vib__{channel}__").reset_index())
    return frames


def _recent_telemetry(telemetry: pd.DataFrame, start: pd.Series) -> pd.DataFrame:
    """The rows at or after their machine's ``start`` (machines without one are dropped). The table itself when
    no row is older than the earliest start (scoring over a short history: the features of the as-of rows never
    read other machines' rows, so keeping them changes nothing); else one comparison per row, without a per-row
    lookup of the machine when each machine's rows are together (as ``load_dataset`` returns them)."""
    if telemetry.empty:
        return telemetry
    stamps = pd.DatetimeIndex(telemetry["timestamp"])
    if start.notna().any() and stamps.min() >= start.min():
        return telemetry  # every row is recent enough for every machine (rows of other machines are unused)
    runs = machine_runs(telemetry)
    if runs is None:
        keep = (telemetry["timestamp"] >= telemetry["machine_id"].map(start)).to_numpy()
        return telemetry[keep].reset_index(drop=True)
    machines, bounds = runs
    first = pd.DatetimeIndex(start.reindex(machines)).as_unit(stamps.unit).asi8
    first = np.where(first == np.iinfo(np.int64).min, np.iinfo(np.int64).max, first)  # no start: drop all
    per_row = np.repeat(first, np.diff(bounds))
    keep = stamps.asi8 >= per_row
    return telemetry if keep.all() else telemetry[keep].reset_index(drop=True)


def restrict_to_needed(dataset: Dataset, as_of: pd.DataFrame, config: FeatureConfig) -> Dataset:
    """Only the readings the features at ``as_of`` can use: telemetry inside the longest window before the
    earliest as-of time of each machine, each machine's baseline snapshots, and its recent snapshots.

    Snapshot shaft speeds and regimes are resolved on the full data first, so the features are exactly those of
    the full data.
    """
    earliest = as_of.groupby("machine_id")["timestamp"].min()
    reach = pd.Timedelta(hours=max(config.windows_h, default=0) + config.telemetry_max_age_h)
    tel = _recent_telemetry(dataset.telemetry, earliest - reach)
    if dataset.waveforms.meta.empty:  # telemetry only: no snapshot needs a speed or a regime
        return replace(dataset, telemetry=tel)
    shaft = shaft_speed_hz(dataset, config.telemetry_max_age_h)
    meta = dataset.waveforms.meta.assign(
        speed_rpm=shaft * 60.0, regime=snapshot_regimes(dataset, shaft, config)
    )
    first = meta.groupby(["machine_id", "channel"]).cumcount() < config.baseline_snapshots
    reach_h = (
        config.vibration_trend_h or 0
    ) + config.vibration_max_age_h  # the latest snapshot's trend window
    recent = meta["timestamp"] >= meta["machine_id"].map(earliest) - pd.Timedelta(hours=reach_h)
    meta = meta[(first | recent).to_numpy()].reset_index(drop=True)
    waveforms = replace(dataset.waveforms, meta=meta)
    return replace(dataset, telemetry=tel, waveforms=waveforms)


def vibration_slopes(
    channel: pd.DataFrame,
    as_of: pd.DataFrame,
    hours: int,
    max_age_h: float,
    features: tuple[str, ...] = SLOPE_SUFFIXES,
) -> pd.DataFrame:
    """``<feature>__slope__<h>h``: least-squares trend per hour of a channel's ``features`` (by default its
    health indicators) over the trend window ending at the latest snapshot at or before each as-of time (NaN
    with fewer than 3 snapshots)."""
    columns = [c for c in channel.columns if c.endswith(tuple(f"__{f}" for f in features))]
    if not columns:  # no feature chosen: no slope columns
        return pd.DataFrame(index=range(len(as_of)))
    stats = telemetry_features_asof(channel[[*KEYS, *columns]], as_of, (hours,), max_age_h)
    names = {f"tel__{c}__slope__{hours}h": f"{c}__slope__{hours}h" for c in columns}
    return stats[list(names)].rename(columns=names).reset_index(drop=True)


def reading_time_dtype(dataset: Dataset) -> Any:
    """The timestamp dtype of the dataset's readings (as-of joins need both sides in the same unit)."""
    for table in (dataset.telemetry, dataset.waveforms.meta):
        if len(table):
            return table["timestamp"].dtype
    return "datetime64[us, UTC]"


def build_features(
    dataset: Dataset,
    as_of: pd.DataFrame | None = None,
    config: FeatureConfig | None = None,
    trim: bool = True,
    progress: Progress | None = None,
    fleet_medians: pd.DataFrame | None = None,
) -> FeatureTable:
    """Feature table for ``as_of`` rows (default: every snapshot time, else every telemetry time).

    ``fleet_medians`` (from ``features.partition.fleet_reference``) is the fleet a partition of it compares its
    temperatures with; by default the dataset is the whole fleet."""
    config = config or FeatureConfig()
    fleet_telemetry = dataset.telemetry  # before trimming: fleet medians need every machine's readings
    if as_of is None:
        as_of = default_as_of(dataset)
    else:
        as_of = as_of[KEYS].reset_index(drop=True)
        as_of["machine_id"] = id_strings(as_of["machine_id"]).to_numpy(dtype=object)  # 7 -> "7", as loaded
        as_of["timestamp"] = pd.to_datetime(as_of["timestamp"], utc=True).astype(reading_time_dtype(dataset))
        dataset = restrict_to_needed(dataset, as_of, config) if trim else dataset
    parts = [as_of]
    snapshots, notes = snapshot_features(dataset, config, progress)
    for channel in vibration_by_channel(snapshots, config.baseline_snapshots):
        parts.append(asof_join(as_of, channel, config.vibration_max_age_h).drop(columns=KEYS))
        if config.vibration_trend_h:
            parts.append(
                vibration_slopes(
                    channel,
                    as_of,
                    config.vibration_trend_h,
                    config.vibration_max_age_h,
                    config.vibration_trend_features,
                )
            )
    if not dataset.telemetry.empty:
        parts.append(
            telemetry_features_asof(
                dataset.telemetry,
                as_of,
                config.windows_h,
                config.telemetry_max_age_h,
                dataset.machines,
                fleet_telemetry=fleet_telemetry,
                fleet_medians=fleet_medians,
            ).reset_index(drop=True)
        )
    frame = pd.concat(parts, axis=1)
    frame[MAINTENANCE_FEATURE] = hours_since_maintenance(as_of, dataset.events)
    return FeatureTable(frame, notes)
