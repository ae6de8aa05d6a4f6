"""Slow-telemetry features per machine as of given times (level, window statistics, slope, rise over ambient).

As-of correctness: a feature at time t uses only readings stamped at or before t. Windows are in hours of
time, not row counts, so an irregular or gappy telemetry stream is summarised over the same span.

``telemetry_features_asof`` is the fast path (numpy on machine-grouped, time-sorted arrays; one row per as-of
time). ``telemetry_feature_rows`` + ``asof_join`` is the original pandas path (features at every telemetry
row, then joined); it stays as the reference the fast path is tested against.

Rules of the fast path, for an as-of time T of a machine:

- Source time t_src: the machine's latest reading (any sensor, even all-NaN) at or before T and no older than
  ``max_age_h``; every feature is NaN when there is none.
- ``tel__<sensor>__<stat>__<h>h``: over the sensor's non-NaN readings in (t_src - h, t_src]: mean, std
  (ddof=1, NaN under 2 readings, exactly 0 when all equal), min, max, and the least-squares slope in units
  per hour (NaN under 3 readings or when their times spread (std) under a second; exactly 0 when all equal).
- ``tel__<sensor>__last``: the latest non-NaN reading of the sensor at or before t_src, no older than the
  longest window (in (t_src - max(windows_h), t_src]; ``max_age_h`` when there are no windows). The pandas
  path forward-fills without limit; bounding the level by the longest window keeps a months-old reading
  from posing as current, and makes the features of trimmed history exactly those of the full history.
- ``tel__<temperature>__rise_over_ambient``: level minus the ``temperature_ambient`` level.
- ``tel__<temperature>__rise_over_fleet`` (for an as-of row without an ambient level: every row when there is
  no ``temperature_ambient`` column; with one, the rows of a machine without an ambient sensor or with no
  recent ambient reading, and NaN on the rows that rise over ambient): level minus
  the median of the same sensor over the machines of the same ``machine_type`` (from ``machines``) at the
  hour of the level's reading. The fleet at hour H takes each machine's latest non-NaN reading in
  (H - 1 h, H]; a reading at time t is compared with the fleet at H = t floored to the hour, so no other
  machine's reading after t is used (hourly readings on the hour meet the fleet's readings of the same
  timestamp). NaN when the machine's type is unknown or fewer than 3 machines of the type report at H.

How it is computed: one sort by (machine, time), skipped when the rows are already grouped and in order (as
``load_dataset`` returns them); then, chunk by chunk, ``searchsorted`` finds each as-of row's source and
window starts, and window sums of 1, t, t^2, x, x^2, t*x over non-NaN readings give mean, std and slope. The
sums are direct ``np.add.reduceat`` sums when the windows barely overlap (scoring: one as-of row per machine)
and differences of cumulative sums when they overlap heavily (training: as-of rows hours apart); min and max
come from ``reduceat`` or sparse tables alike. For precision, each machine's as-of rows are cut into segments
(about 4 longest windows of as-of times) with their own time origin and value centre, cumulative sums restart
at each segment, and windows whose one-pass sums would still cancel are recomputed in two passes: results
agree with a two-pass fit to ~1e-10, also over years of history. Against the pandas path, values agree to
~1e-9 except where that path rounds (slopes of flat windows are exactly 0 here) and for the level rule above.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

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
    frame: dict[str, pd.Series | np.ndarray] = {
        "machine_id": tel["machine_id"],
        "timestamp": tel["timestamp"],
    }
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
    as_of: pd.DataFrame,
    rows: pd.DataFrame,
    max_age_h: float | None,
    include_same_time: bool = True,
    direction: str = "backward",
) -> pd.DataFrame:
    """For each (machine_id, timestamp) in ``as_of``, the latest row of ``rows`` at or before it (within max age);
    with ``direction="forward"`` the earliest at or after it. One row per ``as_of`` row, in its row order (a
    RangeIndex), whatever the index, datetime unit or time zone of either side."""
    left = as_of[["machine_id", "timestamp"]].reset_index(drop=True).reset_index(names="_order")
    left = left.assign(_key=epoch_micros(left["timestamp"]))
    timed = left["_key"] != NAT_US  # an as-of row at no time matches nothing: NaN
    right = (
        rows.drop(columns="timestamp")
        .assign(_source_key=epoch_micros(rows["timestamp"]))
        .sort_values("_source_key")
    )
    tolerance = round(max_age_h * HOUR_US) if max_age_h is not None else None
    right = right[right["_source_key"] != NAT_US]  # a row at no time matches nothing either
    merged = pd.merge_asof(  # on int64 microseconds: any unit or time zone on either side (naive read as UTC)
        left[timed].sort_values("_key"),
        right,
        left_on="_key",
        right_on="_source_key",
        by="machine_id",
        direction=direction,  # type: ignore[arg-type]
        allow_exact_matches=include_same_time,
        tolerance=tolerance,
    )
    merged = merged if timed.all() else pd.concat([merged, left[~timed]])
    return merged.sort_values("_order").drop(columns=["_order", "_key", "_source_key"]).reset_index(drop=True)


def hours_since_maintenance(as_of: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Hours since the machine's last maintenance or failure (a repair) strictly before each as-of time; NaN if none.

    Strictly before: an event stamped at the as-of time itself would tell the model about a failure it is asked
    to predict."""
    if events.empty:
        return np.full(len(as_of), np.nan)
    repairs = events[["machine_id", "timestamp"]].assign(_repair=epoch_micros(events["timestamp"]))
    joined = asof_join(as_of, repairs, None, include_same_time=False)
    repaired = joined["_repair"].to_numpy(dtype=float, na_value=np.nan)
    at = epoch_micros(as_of["timestamp"])
    return np.where(at == NAT_US, np.nan, (at - repaired) / HOUR_US)


def hours_between(later: pd.Series | pd.Index, earlier: pd.Series | pd.Index) -> np.ndarray:
    """``later - earlier`` in hours, element by element (positions, not index labels); NaN where either is NaT.
    Any datetime unit or time zone on either side (naive times are read as UTC)."""
    a, b = epoch_micros(later), epoch_micros(earlier)
    return np.where((a == NAT_US) | (b == NAT_US), np.nan, (a - b) / HOUR_US)


HOUR_US = 3_600_000_000
NAT_US = np.iinfo(np.int64).min  # NaT as int64 microseconds
ROWS_PER_CHUNK = 1 << 17  # readings processed at once: bounds memory and keeps the cumulative sums short
CUMSUM_OVERLAP = 4  # windows covering their rows more than this many times over: cumulative sums, not sums
SEGMENT_REACHES = 4  # a segment spans this many level reaches of as-of times (bounds time offsets)
STEPS_BACK = 4  # a level searched this many readings back from its source before a running maximum
CONDITION = 1e4  # one-pass sums over this many times the spread: recomputed in two passes
MIN_TIME_SPREAD_H = 1 / 3600  # a slope needs readings whose times spread (std) at least a second
MIN_FLEET = 3  # machines of a type that must report for a fleet median
MOMENTS = ("n", "t", "tt", "x", "xx", "tx")  # window sums behind mean, std and slope


def telemetry_feature_names(sensors: list[str], windows_h: tuple[int, ...]) -> list[str]:
    """Telemetry feature columns for these sensors and windows, in table order (the columns depend on the
    sensors alone, never on which rows are asked or have values)."""
    temperatures = [c for c in sensors if _fleet_sensor(c)]
    rises = ["rise_over_ambient", "rise_over_fleet"] if AMBIENT in sensors else ["rise_over_fleet"]
    names = [f"tel__{c}__last" for c in sensors] + [f"tel__{c}__{r}" for r in rises for c in temperatures]
    for h in windows_h:
        names += [f"tel__{c}__{stat}__{h}h" for stat in WINDOW_STATS for c in sensors]
    return names


def telemetry_features_asof(
    telemetry: pd.DataFrame,
    as_of: pd.DataFrame,
    windows_h: tuple[int, ...],
    max_age_h: float | None,
    machines: pd.DataFrame | None = None,
    fleet_telemetry: pd.DataFrame | None = None,
    fleet_medians: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Telemetry features of each (machine_id, timestamp) row of ``as_of`` (same order and index), by the rules
    above. Only the rise over the fleet reads ``machines`` (machine_id, machine_type) and ``fleet_telemetry``,
    the readings its medians come from (default ``telemetry``; pass the full telemetry when ``telemetry`` was
    trimmed to each machine's own recent history, or the medians would change with the trimming), or
    ``fleet_medians`` (the table of ``fleet_medians``, computed once over a fleet split into partitions)."""
    if not all(0 < h < np.inf for h in windows_h) or not (max_age_h is None or 0 < max_age_h < np.inf):
        raise ValueError(f"windows_h {windows_h} and max_age_h {max_age_h} must be positive, finite hours")
    sensors = [c for c in telemetry.columns if c not in ("machine_id", "timestamp")]
    readings = _group_by_machine(telemetry, sensors)
    rows, codes, micros = _sorted_queries(readings, as_of)
    names = telemetry_feature_names(sensors, windows_h)
    block = np.full((len(names), len(as_of)), np.nan)  # one row per feature: the frame's single block
    out = dict(zip(names, block, strict=True))
    level_rows = np.full((len(sensors), len(as_of)), -1, dtype=np.int64)
    spans = _Spans(windows_h, max_age_h)
    bounds = _chunk_bounds(readings.starts, ROWS_PER_CHUNK)
    cuts = np.searchsorted(codes, bounds)
    for g0, g1, q0, q1 in zip(bounds[:-1], bounds[1:], cuts[:-1], cuts[1:], strict=True):
        if q1 > q0:
            chunk = _Chunk(readings, int(g0), int(g1))
            chunk.fill(rows[q0:q1], codes[q0:q1] - g0, micros[q0:q1], spans, sensors, out, level_rows)
    # rows without an ambient level (every row without the sensor) rise over their fleet instead
    fleet_rows = level_rows if AMBIENT not in sensors else _without_ambient(level_rows, sensors)
    if AMBIENT not in sensors or (fleet_rows[[_fleet_sensor(c) for c in sensors]] >= 0).any():
        _rise_over_fleet(readings, fleet_rows, sensors, as_of, machines, fleet_telemetry, fleet_medians, out)
    return pd.DataFrame(block.T, index=as_of.index, columns=names, copy=False)


def _fleet_sensor(column: str) -> bool:
    """A temperature that can rise over the fleet (not the ambient one)."""
    return column.startswith("temperature") and column != AMBIENT


def _without_ambient(level_rows: np.ndarray, sensors: list[str]) -> np.ndarray:
    """``level_rows`` with -1 (no level) on the as-of rows that have an ambient level."""
    return np.where(level_rows[sensors.index(AMBIENT)] < 0, level_rows, -1)


def epoch_micros(stamps: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (tz-aware in UTC, naive read as UTC); NaT is int64 min."""
    return pd.DatetimeIndex(stamps).as_unit("us").asi8


@dataclass(frozen=True)
class _Readings:
    """Telemetry grouped by machine: group g holds readings starts[g]:starts[g + 1], in time order."""

    machine_ids: pd.Index  # machine of each group
    starts: np.ndarray  # (groups + 1,)
    micros: np.ndarray  # reading times in grouped order, int64 us
    columns: list[np.ndarray]  # sensor values, float64, in the frame's row order
    order: np.ndarray | None  # frame row of each grouped reading; None when the frame is grouped already

    def values(self, rows: np.ndarray) -> np.ndarray:
        """Sensor values (sensors, len(rows)) of grouped readings ``rows``; NaN where a row is -1."""
        missing = rows < 0
        frame_rows = np.where(missing, 0, rows) if self.order is None else self.order[rows]
        out = np.empty((len(self.columns), len(rows)))
        for s, column in enumerate(self.columns):
            np.take(column, frame_rows, out=out[s])
        out[:, missing] = np.nan
        return out


_RUNS: dict[int, tuple[pd.Index, np.ndarray]] = {}  # machine runs of live tables, by table identity


def machine_runs(telemetry: pd.DataFrame) -> tuple[pd.Index, np.ndarray] | None:
    """When each machine's rows are together (as ``load_dataset`` returns them): the machine of each run and the
    run boundaries (``len(runs) + 1`` row positions); else None.

    Finding the runs compares every pair of neighbouring ids (about 0.1 s for 17 million rows); a scoring run
    asks for them three times (latest readings, the trim to recent history, the grouping of the features), so
    they are remembered for each table object while it lives, and reused only if the table still has the same
    length and the same id at the start of every run."""
    key = id(telemetry)
    known = _RUNS.get(key)
    if known is not None and _runs_fit(telemetry, *known):
        return known
    runs = _find_runs(telemetry["machine_id"].to_numpy())
    if runs is not None:
        _RUNS[key] = runs
        weakref.finalize(telemetry, _RUNS.pop, key, None)
    return runs


def _find_runs(ids: np.ndarray) -> tuple[pd.Index, np.ndarray] | None:
    if not len(ids):
        return pd.Index(ids), np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    firsts = pd.Index(ids[np.r_[0, change]])
    return (firsts, np.r_[0, change, len(ids)]) if firsts.is_unique else None


def _runs_fit(telemetry: pd.DataFrame, machines: pd.Index, bounds: np.ndarray) -> bool:
    if len(telemetry) != bounds[-1]:
        return False
    ids = telemetry["machine_id"].to_numpy()
    return bool((ids[bounds[:-1]] == machines.to_numpy()).all())


def latest_per_machine(telemetry: pd.DataFrame) -> pd.Series:
    """Timestamp of each machine's latest row (index machine_id, name timestamp)."""
    runs = machine_runs(telemetry)
    if runs is None or not len(runs[0]):
        return telemetry.groupby("machine_id")["timestamp"].max()
    machines, bounds = runs
    stamps = pd.DatetimeIndex(telemetry["timestamp"])
    latest = pd.DatetimeIndex(
        np.maximum.reduceat(stamps.asi8, bounds[:-1]).view(f"datetime64[{stamps.unit}]")
    )
    latest = latest.tz_localize(stamps.tz) if stamps.tz is not None else latest
    return pd.Series(latest, index=machines.rename("machine_id"), name="timestamp").sort_index()


def _group_by_machine(telemetry: pd.DataFrame, sensors: list[str]) -> _Readings:
    """Group readings by machine in time order; no sort when each machine's rows are together and in order."""
    micros = epoch_micros(telemetry["timestamp"])
    columns = [_finite_or_nan(telemetry[c]) for c in sensors]
    runs = machine_runs(telemetry)
    if runs is not None:
        in_order = micros[1:] >= micros[:-1]
        in_order[runs[1][1:-1] - 1] = True  # a new machine may start earlier
        if in_order.all():
            return _Readings(runs[0], runs[1], micros, columns, None)
    codes, uniques = pd.factorize(telemetry["machine_id"].to_numpy())
    order = np.lexsort((micros, codes))
    order = order[codes[order] >= 0]  # rows without a machine id
    starts = np.r_[0, np.cumsum(np.bincount(codes[order], minlength=len(uniques)))]
    return _Readings(pd.Index(uniques), starts, micros[order], columns, order)


def _finite_or_nan(column: pd.Series) -> np.ndarray:
    """Sensor values as float64, infinite ones missing (NaN) like NaN ones; raises naming a non-numeric column."""
    try:
        values = column.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"telemetry column {column.name!r} is not numeric ({exc}): drop it or convert it to numbers"
        ) from None
    infinite = np.isinf(values)
    return np.where(infinite, np.nan, values) if infinite.any() else values


def _sorted_queries(readings: _Readings, as_of: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """As-of rows of known machines with a time, ordered by (machine group, time): rows, groups, times (us)."""
    codes = readings.machine_ids.get_indexer(pd.Index(as_of["machine_id"]))
    if len(codes) and len(readings.machine_ids) and (codes < 0).all():
        asked = pd.Index(as_of["machine_id"])
        if readings.machine_ids.astype(str).isin(asked.astype(str)).any():  # e.g. 1 against "1": no match
            raise ValueError(
                f"machine_id of the as-of rows ({asked.inferred_type}) and of the telemetry "
                f"({readings.machine_ids.inferred_type}) differ in type, so no machine matches: convert both to "
                "strings (load_dataset does)"
            )
    micros = epoch_micros(as_of["timestamp"])
    usable = np.flatnonzero((codes >= 0) & (micros != np.iinfo(np.int64).min))
    rows = usable[np.lexsort((micros[usable], codes[usable]))]
    return rows, codes[rows], micros[rows]


def _chunk_bounds(starts: np.ndarray, rows_per_chunk: int) -> np.ndarray:
    """Group boundaries 0 = b0 < b1 < ... = groups, about ``rows_per_chunk`` readings apart (never inside a group)."""
    groups = len(starts) - 1
    cuts = np.searchsorted(starts, np.arange(rows_per_chunk, starts[-1], rows_per_chunk), side="right") - 1
    return np.unique(np.r_[0, np.clip(cuts, 1, max(groups, 1)), groups])


@dataclass(frozen=True)
class _Spans:
    """Windows, max age and level bound in microseconds."""

    windows_h: tuple[int, ...]
    max_age_h: float | None

    @property
    def max_age_us(self) -> int | None:
        return None if self.max_age_h is None else round(self.max_age_h * HOUR_US)

    @property
    def segment_us(self) -> int:
        return min(SEGMENT_REACHES * self.level_us, 1 << 62)

    @property
    def level_us(self) -> int:
        longest = max(self.windows_h, default=self.max_age_h if self.max_age_h is not None else np.inf)
        return round(longest * HOUR_US) if np.isfinite(longest) else np.iinfo(np.int64).max // 2


class _Chunk:
    """The readings of machine groups g0:g1: search keys (machine, then time), times and values."""

    def __init__(self, readings: _Readings, g0: int, g1: int):
        self.r0, r1 = int(readings.starts[g0]), int(readings.starts[g1])
        self.starts = readings.starts[g0 : g1 + 1] - self.r0
        self.micros = readings.micros[self.r0 : r1]
        self.keys = np.repeat(np.arange(g1 - g0), np.diff(self.starts)) + 1j * self.micros
        self.readings = readings

    def fill(
        self,
        rows: np.ndarray,
        groups: np.ndarray,
        micros: np.ndarray,
        spans: _Spans,
        sensors: list[str],
        out: dict[str, np.ndarray],
        level_rows: np.ndarray,
    ) -> None:
        """Write the features of as-of rows ``rows`` (machine ``groups``, times ``micros``) into ``out``."""
        src = self._sources(groups, micros, spans.max_age_us)
        rows, groups, src = rows[src >= 0], groups[src >= 0], src[src >= 0]
        if not len(src):
            return
        t_src = self.micros[src]
        longest_first = sorted(spans.windows_h, reverse=True)
        starts = [self._first_after(groups, t_src - h * HOUR_US) for h in longest_first]
        level_start = self._first_after(groups, t_src - spans.level_us)
        layout = _Layout.plan(groups, t_src, src, level_start, spans.segment_us)
        end = layout.column(src) + 1
        columns = _Columns(self, layout, layout.column(level_start), end - 1)
        los = [layout.column(start) for start in starts]
        for h, lo, reduced in zip(longest_first, los, columns.reductions(los, end), strict=True):
            stats = columns.window_stats(lo, end, *reduced)
            for stat, values in stats.items():
                for s, col in enumerate(sensors):
                    out[f"tel__{col}__{stat}__{h}h"][rows] = values[s]
        levels, found = columns.levels, columns.level_columns
        level_rows[:, rows] = np.where(found >= 0, layout.rows[found] + self.r0, -1)
        for s, col in enumerate(sensors):
            out[f"tel__{col}__last"][rows] = levels[s]
            if AMBIENT in sensors and col.startswith("temperature") and col != AMBIENT:
                out[f"tel__{col}__rise_over_ambient"][rows] = levels[s] - levels[sensors.index(AMBIENT)]

    def values(self, layout: _Layout) -> np.ndarray:
        """Sensor values (sensors, columns) at each column's reading; NaN at spacers and the sentinel."""
        readings = self.readings
        if readings.order is not None:  # the frame was not grouped: gather through the sort order
            return readings.values(np.where(layout.rows < 0, -1, layout.rows + self.r0))
        r1 = self.r0 + len(self.micros)
        return layout.spread([column[self.r0 : r1] for column in readings.columns], np.nan)

    def _sources(self, groups: np.ndarray, micros: np.ndarray, max_age_us: int | None) -> np.ndarray:
        """Each query's source: its machine's latest reading at or before its time, within max age; -1 if none."""
        src = np.searchsorted(self.keys, groups + 1j * micros, side="right") - 1
        ok = src >= self.starts[groups]
        if max_age_us is not None:
            ok &= self.micros[np.maximum(src, 0)] >= micros - max_age_us
        return np.where(ok, src, -1)

    def _first_after(self, groups: np.ndarray, micros: np.ndarray) -> np.ndarray:
        """First reading of each query's machine stamped strictly after ``micros`` (a window's first row)."""
        return np.searchsorted(self.keys, groups + 1j * micros, side="right")


@dataclass(frozen=True)
class _Layout:
    """Where a chunk's as-of rows read: each machine's as-of rows are cut into segments whose source times
    span at most ``segment_us``; a segment's columns are a spacer (no reading) then the readings its windows
    reach, in time order. Segments of one machine may repeat readings. Each segment has its own time origin
    (and, in ``_Columns``, value centre: its latest level), so sums of t^2 and x^2 stay small (precise) even
    over years of history."""

    rows: np.ndarray  # chunk row of each column; -1 for spacers and the final sentinel column
    first_column: np.ndarray  # each segment's spacer column
    first_row: np.ndarray  # each segment's first chunk row
    last_row: np.ndarray  # each segment's last chunk row (its latest as-of row's source)
    origin: np.ndarray  # each segment's time origin (us): the middle of its as-of source times
    last_query: np.ndarray  # each segment's last as-of row
    query_segment: np.ndarray  # segment of each as-of row
    widths: np.ndarray  # columns of each segment (the last one's include the sentinel)

    @classmethod
    def plan(
        cls, groups: np.ndarray, t_src: np.ndarray, src: np.ndarray, reach: np.ndarray, segment_us: int
    ) -> _Layout:
        """Segments of as-of rows (sorted by machine, then time) and the columns of the readings they reach."""
        new_group = np.r_[True, groups[1:] != groups[:-1]]
        group_first = np.maximum.accumulate(np.where(new_group, np.arange(len(groups)), 0))
        bucket = (t_src - t_src[group_first]) // segment_us
        new = new_group | np.r_[False, bucket[1:] != bucket[:-1]]
        firsts = np.flatnonzero(new)
        lasts = np.r_[firsts[1:], len(groups)] - 1
        first_row = np.minimum.reduceat(reach, firsts)
        lengths = src[lasts] + 2 - first_row  # spacer + readings first_row..src
        first_column = np.r_[0, np.cumsum(lengths)[:-1]]
        rows = np.arange(lengths.sum()) - np.repeat(first_column + 1 - first_row, lengths)
        rows[first_column] = -1
        origin = (t_src[firsts] + t_src[lasts]) // 2
        return cls(
            rows=np.r_[rows, -1],
            first_column=first_column,
            first_row=first_row,
            last_row=src[lasts],
            origin=origin,
            last_query=lasts,
            query_segment=np.cumsum(new) - 1,
            widths=lengths + (np.arange(len(lengths)) == len(lengths) - 1),
        )

    def per_column(self, values: np.ndarray) -> np.ndarray:
        """Each segment's value (last axis) repeated over its columns."""
        return np.repeat(values, self.widths, axis=-1)

    def spread(self, values: list[np.ndarray], fill: float) -> np.ndarray:
        """Each of ``values`` (arrays over the chunk's rows) at each column's reading, ``fill`` at spacers and
        the sentinel: (len(values), columns). A masked copy when each segment reads on from the row after the
        previous one's last (one as-of row per machine), else a gather."""
        out = np.full((len(values), len(self.rows)), fill, dtype=np.result_type(*values))
        reading = self.rows >= 0
        if len(self.last_row) and np.array_equal(self.first_row[1:], self.last_row[:-1] + 1):
            for row, value in zip(out, values, strict=True):
                row[reading] = value[self.first_row[0] : self.last_row[-1] + 1]
        else:
            for row, value in zip(out, values, strict=True):
                row[reading] = value[self.rows[reading]]
        return out

    def column(self, chunk_rows: np.ndarray) -> np.ndarray:
        """Column of each as-of row's chunk row in its own segment."""
        seg = self.query_segment
        return chunk_rows - self.first_row[seg] + self.first_column[seg] + 1


class _Columns:
    """A chunk's readings laid out by segment (sensors x columns), with the per-column moments to sum."""

    def __init__(self, chunk: _Chunk, layout: _Layout, level_lo: np.ndarray, src: np.ndarray):
        self.layout = layout
        spacer = layout.rows < 0
        self.x = chunk.values(layout)
        self.valid = ~np.isnan(self.x)
        n_readings = len(spacer) - np.count_nonzero(spacer)
        self.gappy = np.array([np.count_nonzero(v) < n_readings for v in self.valid], dtype=bool)
        self.levels, self.level_columns = self._levels(level_lo, src)
        self.centre = np.nan_to_num(self.levels[:, layout.last_query])  # each segment's latest level
        centred = layout.per_column(self.centre)
        np.subtract(self.x, centred, out=centred)
        np.copyto(centred, 0.0, where=~self.valid)
        offset = layout.spread([chunk.micros], 0)[0] - layout.per_column(layout.origin)
        self.hours = offset / HOUR_US
        self.hours[spacer] = 0.0
        self.stack, self.index = _moment_stack(centred, self.valid, self.gappy, self.hours, ~spacer)
        self.prefix: np.ndarray | None = None
        self.tables: list[tuple[np.ndarray, np.ndarray]] = []  # sparse tables of min and max

    def _levels(self, lo: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor's latest non-NaN value in columns lo..src: values (NaN if none), columns (-1 if none)."""
        columns = np.repeat(src[None, :], len(self.x), axis=0)
        for s in np.flatnonzero(self.gappy):
            columns[s] = self._last_valid(int(s), lo, src)
        columns = np.where(columns >= lo, columns, -1)
        values = np.where(columns >= 0, np.take_along_axis(self.x, columns, axis=1), np.nan)
        return values, columns

    def _last_valid(self, sensor: int, lo: np.ndarray, src: np.ndarray) -> np.ndarray:
        """The last column in lo..src where the sensor has a value (below lo if none): a few steps back from
        src (most sources have a value), then one running maximum over all columns for any left."""
        valid, columns = self.valid[sensor], src.copy()
        for _ in range(STEPS_BACK):
            behind = np.flatnonzero((columns >= lo) & ~valid[np.maximum(columns, 0)])
            if not len(behind):
                return columns
            columns[behind] -= 1
        seen = np.where(valid, np.arange(len(valid)), -1)
        return np.maximum.accumulate(seen)[src]

    def reductions(self, los: list[np.ndarray], hi: np.ndarray) -> list[tuple[np.ndarray, ...]]:
        """Stack sums, min and max of each window over columns lo:hi (``los``: longest window first).

        Windows that barely overlap (one as-of time per machine) are reduced directly, all in one pass: columns
        lo_1:lo_2, ..., lo_k:hi are slots and window j is slots j..k. Windows that overlap heavily (as-of times
        hours apart) use differences of cumulative sums and sparse tables of min and max."""
        if not los:
            return []
        if (hi - los[0]).sum() > CUMSUM_OVERLAP * self.x.shape[1]:
            return [(self.prefix_sums(lo, hi), *self.sparse_extremes(lo, hi)) for lo in los]
        bounds = np.column_stack([*los, hi]).ravel()
        empty = np.column_stack([b - a for a, b in zip(los, [*los[1:], hi], strict=True)]) == 0

        def windows(slots: np.ndarray, accumulate: np.ufunc, fill: float) -> np.ndarray:
            slots = slots.reshape(len(slots), len(hi), len(los) + 1)[:, :, :-1]
            slots[:, empty] = fill  # reduceat gives the first column for an empty slot
            return np.moveaxis(accumulate.accumulate(slots[:, :, ::-1], axis=2)[:, :, ::-1], 2, 0)

        sums = windows(np.add.reduceat(self.stack, bounds, axis=1), np.add, 0.0)
        lows, highs = np.empty((2, len(self.x), len(bounds)))
        for s, x in enumerate(self.x):
            low, high = (np.fmin, np.fmax) if self.gappy[s] else (np.minimum, np.maximum)
            lows[s], highs[s] = low.reduceat(x, bounds), high.reduceat(x, bounds)
        return list(zip(sums, windows(lows, np.fmin, np.nan), windows(highs, np.fmax, np.nan), strict=True))

    def prefix_sums(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Stack sums over columns lo:hi as differences of cumulative sums (computed once per chunk) that
        restart at each segment's spacer."""
        if self.prefix is None:
            spacers = self.layout.first_column
            totals = np.add.reduceat(self.stack, spacers, axis=1)
            self.stack[:, spacers[1:]] = -totals[:, :-1]  # running sums back to ~0 at each segment
            self.prefix = np.zeros((len(self.stack), self.stack.shape[1] + 1))
            np.cumsum(self.stack, axis=1, out=self.prefix[:, 1:])
        return self.prefix[:, hi] - self.prefix[:, lo]

    def sparse_extremes(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Min and max over columns lo:hi as the fmin/fmax of two overlapping power-of-two spans."""
        level = np.log2(hi - lo).astype(np.intp)  # windows hold at least their source reading
        if not self.tables:
            self.tables.append((self.x, self.x))
        while len(self.tables) <= level.max():
            low, high = self.tables[-1]
            half = 1 << (len(self.tables) - 1)
            self.tables.append(
                (np.fmin(low[:, :-half], low[:, half:]), np.fmax(high[:, :-half], high[:, half:]))
            )
        lowest, highest = np.empty((2, len(self.x), len(lo)))
        for k in np.unique(level):
            at = np.flatnonzero(level == k)
            low, high = self.tables[k]
            a, b = lo[at], hi[at] - (1 << k)
            lowest[:, at] = np.fmin(low[:, a], low[:, b])
            highest[:, at] = np.fmax(high[:, a], high[:, b])
        return lowest, highest

    def window_stats(
        self, lo: np.ndarray, hi: np.ndarray, sums: np.ndarray, lowest: np.ndarray, highest: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Mean, std, min, max and slope (per hour) of each sensor (rows) over columns lo:hi of each window,
        from the window's stack sums, min and max."""
        n, st, stt, sx, sxx, stx = (sums[self.index[:, j]] for j in range(len(MOMENTS)))
        flat = lowest == highest  # exactly 0 spread and trend, free of rounding
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.centre[:, self.layout.query_segment] + sx / n
            ssx = np.maximum(sxx - sx * sx / n, 0.0)  # sum of squared deviations from the window mean
            sst = np.maximum(stt - st * st / n, 0.0)
            stx = stx - st * sx / n
        shaky = ((sxx > CONDITION * ssx) | (stt > CONDITION * sst)) & (n >= 2) & ~flat
        if shaky.any():
            sensor, window = np.nonzero(shaky)
            ssx[shaky], sst[shaky], stx[shaky] = self.exact_moments(sensor, lo[window], hi[window])
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.where(n >= 2, np.where(flat, 0.0, np.sqrt(ssx / (n - 1))), np.nan)
            fit = (n >= 3) & (sst >= n * MIN_TIME_SPREAD_H**2)
            slope = np.where(fit, np.where(flat, 0.0, stx / sst), np.nan)
        return {"mean": mean, "std": std, "min": lowest, "max": highest, "slope": slope}

    def exact_moments(self, sensor: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
        """Two-pass sums of (x - mean)^2, (t - mean)^2 and their cross product, for windows whose one-pass
        sums cancel badly (a spread tiny against the segment's offsets)."""
        lengths = hi - lo
        owner = np.repeat(np.arange(len(lo)), lengths)
        column = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths - lo, lengths)
        x, t = self.x[sensor[owner], column], self.hours[column]
        ok = ~np.isnan(x)
        x, t = np.where(ok, x, 0.0), np.where(ok, t, 0.0)
        n = np.bincount(owner, ok, len(lo))
        dx = np.where(ok, x - (np.bincount(owner, x, len(lo)) / n)[owner], 0.0)
        dt = np.where(ok, t - (np.bincount(owner, t, len(lo)) / n)[owner], 0.0)
        return tuple(np.bincount(owner, a * b, len(lo)) for a, b in ((dx, dx), (dt, dt), (dt, dx)))


def _moment_stack(
    centred: np.ndarray, valid: np.ndarray, gappy: np.ndarray, hours: np.ndarray, reading: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose window sums are, per sensor, the MOMENTS over its non-NaN readings (x centred, NaN as 0).

    Rows 1, t, t^2 (0 off readings) serve the sensors without NaN. Returns the stack (rows, columns) and
    the stack row of each moment of each sensor (sensors, 6)."""
    stack = np.empty((3 + 3 * len(centred) + 3 * int(gappy.sum()), len(hours)))
    np.copyto(stack[0], reading)
    stack[1] = hours
    np.multiply(hours, hours, out=stack[2])
    index = np.zeros((len(centred), len(MOMENTS)), dtype=np.intp)
    index[:, :3] = 0, 1, 2
    free = 3
    for s, x in enumerate(centred):
        if gappy[s]:
            np.copyto(stack[free], valid[s])
            np.multiply(stack[free], hours, out=stack[free + 1])
            np.multiply(stack[free + 1], hours, out=stack[free + 2])
            index[s, :3] = free, free + 1, free + 2
            free += 3
        stack[free] = x
        np.multiply(x, x, out=stack[free + 1])
        np.multiply(x, hours, out=stack[free + 2])
        index[s, 3:] = free, free + 1, free + 2
        free += 3
    return stack, index


def _rise_over_fleet(
    readings: _Readings,
    level_rows: np.ndarray,
    sensors: list[str],
    as_of: pd.DataFrame,
    machines: pd.DataFrame | None,
    fleet_telemetry: pd.DataFrame | None,
    medians: pd.DataFrame | None,
    out: dict[str, np.ndarray],
) -> None:
    """Write ``tel__<temperature>__rise_over_fleet``: each level minus its type's fleet median (rules above);
    rows with ``level_rows`` -1 get NaN."""
    temperatures = [c for c in sensors if _fleet_sensor(c)]
    types = _machine_types(machines)
    query_types = types.reindex(pd.Index(as_of["machine_id"])).to_numpy(dtype=object)
    ask = {col: np.flatnonzero(level_rows[sensors.index(col)] >= 0) for col in temperatures}
    hours = {
        col: readings.micros[level_rows[sensors.index(col)][rows]] // HOUR_US * HOUR_US
        for col, rows in ask.items()
    }
    if medians is None:
        needed = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *hours.values()]))
        fleet = fleet_telemetry if fleet_telemetry is not None else telemetry_of(readings, sensors)
        medians = fleet_medians(fleet, machines, needed)
    for col in temperatures:
        median = np.full(len(as_of), np.nan)
        if col in medians and len(ask[col]):
            keys = pd.MultiIndex.from_arrays([query_types[ask[col]], hours[col]])
            median[ask[col]] = medians[col].reindex(keys).to_numpy(dtype=float)
        out[f"tel__{col}__rise_over_fleet"][:] = out[f"tel__{col}__last"] - median


def telemetry_of(source: _Readings, sensors: list[str]) -> pd.DataFrame:
    """The telemetry frame (machine_id, timestamp, one column per sensor) of grouped readings."""
    group = np.repeat(np.arange(len(source.machine_ids)), np.diff(source.starts))
    values = {
        c: x if source.order is None else x[source.order]
        for c, x in zip(sensors, source.columns, strict=True)
    }
    stamps = pd.to_datetime(source.micros, unit="us", utc=True)
    return pd.DataFrame({"machine_id": source.machine_ids[group], "timestamp": stamps, **values})


def _machine_types(machines: pd.DataFrame | None) -> pd.Series:
    """``machine_type`` of each machine, indexed by machine_id (empty when there are no types)."""
    if machines is None or "machine_type" not in machines:
        return pd.Series(dtype=object)
    return machines.drop_duplicates("machine_id").set_index("machine_id")["machine_type"].astype(object)


def fleet_medians(
    telemetry: pd.DataFrame, machines: pd.DataFrame | None, hours: np.ndarray | None = None
) -> pd.DataFrame:
    """Fleet median of each temperature per machine type and hour, the reference of ``rise_over_fleet``.

    Index (machine_type, hour as int64 microseconds since the epoch), one column per ``temperature*`` sensor
    except the ambient one. The fleet at hour H takes each machine's latest non-NaN reading in (H - 1 h, H];
    NaN when fewer than MIN_FLEET machines of the type report. ``hours`` limits the table to those hours
    (default: every hour with a reading). Computed once over the whole fleet, it lets partitions of the fleet
    compute their features apart and still compare each machine with all the others.
    """
    temperatures = [c for c in telemetry.columns if c.startswith("temperature") and c != AMBIENT]
    stamps = epoch_micros(telemetry["timestamp"])
    fleet_hour = -(-stamps // HOUR_US) * HOUR_US  # a reading counts at the next full hour
    keep = np.flatnonzero(np.isin(fleet_hour, hours)) if hours is not None else np.arange(len(stamps))
    machine_ids = telemetry["machine_id"].to_numpy()[keep]
    frame = pd.DataFrame(
        {
            "machine_type": pd.Series(machine_ids).map(_machine_types(machines)).to_numpy(dtype=object),
            "machine_id": machine_ids,
            "hour": fleet_hour[keep],
            "micros": stamps[keep],
        }
    )
    typed = frame["machine_type"].notna().to_numpy()
    frame = frame[typed]
    columns = {}
    for col in temperatures:
        values = frame.assign(value=_finite_or_nan(telemetry[col])[keep[typed]])
        values = values[values["value"].notna()].sort_values(["machine_id", "hour", "micros"], kind="stable")
        latest = values.drop_duplicates(["machine_id", "hour"], keep="last")
        stats = latest.groupby(["machine_type", "hour"])["value"].agg(["median", "size"])
        columns[col] = stats["median"].where(stats["size"] >= MIN_FLEET)
    if not columns:
        empty = pd.MultiIndex.from_arrays([[], np.zeros(0, dtype=np.int64)], names=["machine_type", "hour"])
        return pd.DataFrame(index=empty)
    return pd.concat(columns, axis=1)
