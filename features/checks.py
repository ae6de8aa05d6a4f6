"""Plausibility checks on contract tables: limits, sensor glitches, stuck or dead sensors, odd snapshots.

Pure and vectorised (pandas/numpy, no loop over rows or machines). Every check learns from each machine's own
history, never from one global limit: a turbofan's HPC outlet at 625 °C is normal for that engine, a bearing
that reads 900 °C for two minutes between readings of 120 °C has a sensor glitch.

- ``limit_violations``: readings outside absolute limits from configuration (``PlausibilityConfig.limits``).
- ``judge_bursts`` / ``find_bursts`` / ``find_glitches``: short bursts far outside a machine's own history
  (robust levels and scales at two time scales, re-estimated without the outliers found): glitches when a
  normal reading ends them, open (``spike_flags``) when they reach the latest reading; none where the machine
  keeps switching to those values (a regime; the fleet's, for a machine with too few runs to tell).
  ``judge_bursts`` also returns the statistics it judged with, which judge a short recent history the same
  way later.
- ``find_sensor_flags``: a sensor stuck on one value or dead (no values, or a flat zero) for a run that is
  unlikely for that column anywhere in the fleet.
- ``snapshot_shape_problems``: snapshots whose length or sample rate differs from the machine's channel.

Every quarantine reason has a stable code (``REASON_CODES``); docs/data-contract.md lists them.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from pydantic import BaseModel, ConfigDict

# code -> the fix a user can apply (shown in the quarantine table's ``fix`` column)
REASON_CODES: dict[str, str] = {
    "unreadable_file": "re-export the file (it is truncated or not Parquet/CSV)",
    "missing_column": "add the required column (see docs/data-contract.md)",
    "wrong_delimiter": "export the CSV with commas between fields and a decimal point",
    "empty_machine_id": "fill machine_id in every row",
    "bad_machine_id": "use machine ids without '/', '\\' or control characters",
    "unknown_machine": "register the machine in machines.parquet (or the store) first",
    "bad_timestamp": "write timestamps as ISO 8601 text or a Parquet timestamp",
    "wrong_type": "write the column with the type the contract gives it",
    "decimal_comma": "export numbers with a decimal point, not a decimal comma",
    "nan_value": "send the reading once the sensor has a value",
    "infinite_value": "check the sensor or the export: a reading must be a finite number",
    "future_timestamp": "check the clock of the data logger (timestamps are UTC)",
    "before_installation": "check installed_at in machines.parquet or the reading's machine_id",
    "duplicate_timestamp": "send each reading once",
    "duplicate_event": "record each event once",
    "duplicate_machine": "list each machine once in machines.parquet",
    "unknown_event_kind": "use kind 'failure' or 'maintenance'",
    "implausible_value": "check the sensor, or widen PlausibilityConfig.limits for this column",
    "sensor_glitch": "check the sensor's wiring and transmitter; exempt the column if bursts are real",
    "empty_snapshot": "send snapshots with samples",
    "bad_sample_rate": "write sample_rate_hz as a positive number of Hz",
    "wrong_sample_rate": "record every snapshot of a channel at the machine's usual sample rate",
    "wrong_length": "record every snapshot of a channel with the machine's usual number of samples",
    "missing_channel": "name the channel of every snapshot",
    "flat_snapshot": "check the accelerometer and its cable: the snapshot carries no signal",
    "cut_short_row": "export the file whole (a CSV ends with a line break); deliver a batch under a name that "
    "starts with '.' and rename it once it is complete",
    "conflicts_with_stored": "a stored row is never replaced (past lists stay reproducible): send a correction "
    "under its own timestamp, or fix the source so that it sends each row once with its final values",
}
FLAG_KINDS = ("stuck", "dead", "spike")  # spike: an open burst, reported, not a reason to withhold a score
MAX_PASSES = 10  # glitch passes: level and scale re-estimated without the outliers found so far
# far runs starting at more than this share of a machine's readings of a column are a regime it keeps
# switching to (an operating condition, as in the C-MAPSS fleets with six), not glitches: glitches are rare
# (PRONOSTIA's glitching bearings: 0.4 % and 1.1 %; a sensor with a mode it takes every sixth cycle: 14 %;
# read with a scratch script)
REGIME_RUN_RATE = 0.05
REGIME_MIN_RUNS = 5  # ... and at least this many runs: two glitches in 24 readings are not a regime (fewer:
# the fleet's rate, ``_regime_rates``)
REGIME_FLEET_MACHINES = 2  # machines with enough runs of their own that a fleet's rate is pooled from
BURST_SHARE = 0.25  # a glitch burst spans at most this share of the glitch window; so does the short level's


class PlausibilityConfig(BaseModel):
    """What the loader accepts as a physically possible reading; defaults never use one global limit."""

    model_config = ConfigDict(frozen=True)
    # column name or glob pattern -> (low, high) absolute limits, None for no limit; the first match wins.
    # Default: only absolute zero, so 625 °C in a turbofan (or 1,000 °C in a furnace) is never refused.
    limits: dict[str, tuple[float | None, float | None]] = {"temperature*": (-273.15, None)}
    # glitches: readings more than glitch_k robust deviations from the machine's running median AND outside
    # the range that median ever took, in a burst shorter than a quarter of the window, with normal
    # readings on both sides (a sustained rise, such as degradation up to a failure, is never a glitch)
    glitch_k: float = 6.0
    glitch_window_minutes: float = 120.0  # running-median window ...
    glitch_window_readings: int = 24  # ... widened to this many readings for slow cadences
    glitch_exempt: tuple[str, ...] = ()  # column names or patterns never checked for glitches
    # stuck/dead: a run of identical values (or NaN) at least this long, and so long that its chance is
    # below stuck_max_chance given how often the column repeats a value (or is NaN) across the fleet
    stuck_min_readings: int = 6
    stuck_max_chance: float = 1e-6
    future_tolerance_minutes: float = 24 * 60.0  # clock skew allowed for readings after "now"
    min_snapshot_samples: int = 64
    # a snapshot shape (rate to 4 significant digits, length) other than the channel's usual one is accepted
    # once it recurs this often (a logger set to a new rate or length), else it is a transfer cut short or a
    # one-off setting
    min_shape_snapshots: int = 3


def _match(column: str, patterns) -> str | None:
    return next((p for p in patterns if fnmatch.fnmatchcase(column, p)), None)


def limit_violations(
    frame: pd.DataFrame, columns: list[str], config: PlausibilityConfig
) -> dict[str, np.ndarray]:
    """Per column, the rows whose reading lies outside the configured absolute limits."""
    out = {}
    for col in columns:
        pattern = _match(col, config.limits)
        if pattern is None:
            continue
        low, high = config.limits[pattern]
        x = frame[col].to_numpy(dtype=float)
        bad = np.zeros(len(x), bool)
        if low is not None:
            bad |= x < low
        if high is not None:
            bad |= x > high
        if bad.any():
            out[col] = bad
    return out


def _starts(codes: np.ndarray) -> np.ndarray:
    """True where a new machine starts in machine-sorted codes."""
    return np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, bool)


def _window_factor(codes: np.ndarray, stamps: np.ndarray, config: PlausibilityConfig) -> np.ndarray:
    """Per row, how much its machine's time is compressed so that one window holds >= glitch_window_readings
    at the machine's median cadence (1: not at all)."""
    start = _starts(codes)
    step = np.diff(stamps, prepend=stamps[:1]).astype(np.float64)
    step[start] = np.nan
    cadence = pd.Series(step).groupby(codes).transform("median").fillna(0).to_numpy()
    window_ns = config.glitch_window_minutes * 60e9
    return np.maximum(1.0, config.glitch_window_readings * cadence / window_ns)


def _pseudo_time(codes: np.ndarray, stamps: np.ndarray, config: PlausibilityConfig) -> pd.DatetimeIndex:
    """Time since each machine's first row, compressed so that one window holds >= glitch_window_readings."""
    first = np.maximum.accumulate(np.where(_starts(codes), np.arange(len(codes)), 0))
    rel = (stamps - stamps[first]).astype(np.float64)
    return pd.DatetimeIndex((rel / _window_factor(codes, stamps, config)).astype(np.int64))


def window_spans(tel: pd.DataFrame, config: PlausibilityConfig) -> pd.Series:
    """Per machine (``tel`` sorted by machine and time), the real time one glitch window spans: the window,
    widened for slow cadences to hold ``glitch_window_readings`` readings."""
    if tel.empty:
        return pd.Series(dtype="timedelta64[ns]")
    codes, machines = pd.factorize(tel["machine_id"])
    stamps = tel["timestamp"].astype("datetime64[ns, UTC]").astype(np.int64).to_numpy()
    factor = _window_factor(codes, stamps, config)[_starts(codes)]
    span = pd.to_timedelta(factor * config.glitch_window_minutes * 60e9, unit="ns")
    return pd.Series(span, index=pd.Index(machines, name="machine_id"))


class _Windows(BaseIndexer):
    """Row bounds [start, end) of every row's window, given to pandas' rolling kernels: one call over all
    machines instead of a grouped rolling (whose per-machine bounds and order checks cost as much as the
    medians)."""

    def __init__(self, start: np.ndarray, end: np.ndarray, ranged: np.ndarray | None = None):
        super().__init__()
        self.start, self.end = start, end
        self.ranged = ranged  # rows whose level counts in the machine's range of levels (None: every row)

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.start, self.end

    def subset(self, rows: np.ndarray) -> _Windows:
        """The windows of ``rows``, renumbered: rows must be whole machines' rows, in order (a window never
        crosses a machine)."""
        shift = rows - np.arange(len(rows))
        ranged = None if self.ranged is None else self.ranged[rows]
        return _Windows(self.start[rows] - shift, self.end[rows] - shift, ranged)


def _centred_windows(codes: np.ndarray, times: np.ndarray, window: float) -> _Windows:
    """Each row's centred time window within its machine (rows sorted by machine, then time), exactly as pandas'
    ``rolling(window, center=True)`` on a time index: the rows with t - window/2 < time <= t + window/2, the
    bounds compared in float64."""
    t = times.astype(np.float64)
    keys = codes + 1j * t  # complex numbers sort by machine, then time
    start = np.searchsorted(keys, codes + 1j * (t - window / 2), side="right")
    end = np.searchsorted(keys, codes + 1j * (t + window / 2), side="right")
    return _Windows(start.astype(np.int64), end.astype(np.int64))


def _symmetric_windows(codes: np.ndarray, times: np.ndarray, window: float) -> _Windows:
    """Each row's window of the rows with t - h <= time <= t + h, h = window/2 shortened near the ends of the
    machine's record to its time from either end: a centred median of a trend is then the trend's value at t,
    where a window cut off by the record's end lags it. Only the levels over whole windows count in the
    machine's range of levels: near the ends a few readings make the median, a burst's own among them."""
    t = times.astype(np.float64)
    start_rows = np.flatnonzero(_starts(codes))
    machine = np.cumsum(_starts(codes)) - 1
    first, last = t[start_rows][machine], t[np.r_[start_rows[1:] - 1, len(t) - 1]][machine]
    half = np.minimum(np.minimum(t - first, last - t), window / 2)
    keys = codes + 1j * t  # complex numbers sort by machine, then time
    start = np.searchsorted(keys, codes + 1j * (t - half), side="left")
    end = np.searchsorted(keys, codes + 1j * (t + half), side="right")
    return _Windows(start.astype(np.int64), end.astype(np.int64), ranged=half == window / 2)


def _level_windows(codes: np.ndarray, times: np.ndarray, config: PlausibilityConfig) -> tuple[_Windows, ...]:
    """The running medians' windows at two time scales: the glitch window, whose median no burst can move
    (a burst spans at most a quarter of it), and a quarter of it, whose median follows a level that moves
    within the long window (a bearing heating up by 150 °C within two hours) once the bursts found so far are
    left out; the short one stays symmetric near the record's ends (``_symmetric_windows``), where a short
    median cut off by the end would lag a warm-up by more than the short scale's noise."""
    window = pd.Timedelta(minutes=config.glitch_window_minutes).value
    return _centred_windows(codes, times, window), _symmetric_windows(codes, times, window * BURST_SHARE)


def _far_readings(
    x: np.ndarray,
    codes: np.ndarray,
    pseudo: pd.DatetimeIndex,
    config: PlausibilityConfig,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """How far (in robust scales, ``_far_pass``) each reading (rows x columns, machine-sorted) lies from the
    machine's running median and outside the range that median ever took, at the farther of the time scales of
    ``_level_windows``, with a robust level and scale estimated again without the readings more than
    ``glitch_k`` scales away until these no longer change (at most ``MAX_PASSES`` times), so a history full of
    glitches does not hide them. Each pass after the first only for the columns and machines whose outliers
    changed: for the others it would repeat the previous pass exactly.

    Also returns the statistics of the last pass (scales x rows x columns x (unit, lo, hi), ``_excess``);
    ``reference`` (the same shape, NaN where unknown) gives statistics from a longer history to judge with.
    """
    windows = _level_windows(codes, pseudo.asi8, config)
    excess = np.zeros(x.shape)
    stats = np.full((len(windows), *x.shape, 3), np.nan)
    rows, todo = np.arange(len(x)), np.arange(x.shape[1])
    for _ in range(MAX_PASSES):
        cells = np.ix_(rows, todo)
        before = excess[cells] > config.glitch_k
        subset = tuple(w.subset(rows) for w in windows)
        known = None if reference is None else reference[:, rows][:, :, todo]
        excess[cells], stats[:, rows[:, None], todo] = _far_pass(x[cells], before, codes[rows], subset, known)
        changed = (excess[cells] > config.glitch_k) != before
        todo = todo[changed.any(axis=0)]
        if not len(todo):
            break
        rows = rows[np.isin(codes[rows], codes[rows][changed.any(axis=1)])]  # whole machines
    return excess, stats


def _far_pass(
    cols: np.ndarray,
    masked: np.ndarray,
    codes: np.ndarray,
    windows: tuple[_Windows, ...],
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of ``_far_readings`` over whole machines' rows, ``masked`` readings left out of level and
    spread: the larger of the ``_excess`` at the ``windows``' time scales, and each scale's statistics."""
    codes = np.unique(codes, return_inverse=True)[1]  # 0..machines-1, for the group tables below
    mid = pd.DataFrame(np.abs(cols)).groupby(codes).median().to_numpy()
    excess = np.zeros(cols.shape)
    stats = []
    for scale, scale_windows in enumerate(windows):
        known = None if reference is None else reference[scale]
        found, used = _excess(cols, masked, codes, scale_windows, mid, known)
        np.maximum(excess, found, out=excess)
        stats.append(used)
    return excess, np.stack(stats)


def _excess(
    cols: np.ndarray,
    masked: np.ndarray,
    codes: np.ndarray,
    windows: _Windows,
    mid: np.ndarray,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per reading, the smaller of its distance from the running median over ``windows`` and its distance
    outside the range that median took for the machine, in robust scales (1.4826 x the median absolute
    residual, at least 1 % of ``mid``, each machine's median |reading|); 0 inside the range, for NaN, and for
    windows of fewer than 5 readings. With the statistics used (rows x columns x (unit, lo, hi)).

    ``reference`` (rows x columns x (unit, lo, hi), NaN where unknown): statistics from a longer history of
    the machine (``judge_bursts``); where known, its unit replaces the one of these rows, and its range is
    widened by the range of these rows' medians."""
    level = pd.DataFrame(np.where(masked, np.nan, cols)).rolling(windows, min_periods=1).median().to_numpy()
    resid = cols - level
    noise = np.where(masked | (resid == 0), np.nan, np.abs(resid))  # a stuck run is no noise
    mad = pd.DataFrame(noise).groupby(codes).median().to_numpy()
    ranged = level if windows.ranged is None else np.where(windows.ranged[:, None], level, np.nan)
    levels = pd.DataFrame(ranged).groupby(codes)
    lo, hi = levels.min().to_numpy()[codes], levels.max().to_numpy()[codes]  # NaN: nothing far (below)
    unit = np.maximum(1.4826 * mad, 0.01 * mid + 1e-9)[codes]
    if reference is not None:
        known = np.isfinite(reference[..., 0])
        unit = np.where(known, reference[..., 0], unit)
        lo = np.where(known, np.fmin(reference[..., 1], lo), lo)
        hi = np.where(known, np.fmax(reference[..., 2], hi), hi)
    outside = np.maximum(cols - hi, lo - cols)
    excess = np.minimum(np.abs(resid), outside) / unit  # NaN (then 0) without a level or a range
    excess[~(excess > 0) | (windows.end - windows.start < 5)[:, None]] = 0.0  # NaN, inside, too few readings
    return excess, np.stack([unit, lo, hi], axis=-1)


@dataclass(frozen=True)
class Bursts:
    """The bursts of one column, as masks over the rows of the frame checked (``find_bursts``)."""

    glitch: np.ndarray  # bool: far out in a burst that normal readings bound on both sides (a sensor glitch)
    ended_by: np.ndarray  # int: for a glitch row, the row of the normal reading that ended its burst; else -1
    open: np.ndarray  # bool: far out in a burst that reaches the machine's latest reading (not judged yet)
    excess: np.ndarray  # float: robust scales out (``_far_readings``), 0 for NaN


def _burst_runs(
    far: np.ndarray, loose: np.ndarray, codes: np.ndarray, stamps: np.ndarray, max_span: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of ``loose`` rows (far ones among them) after a row of the same machine that is not loose and
    spanning <= max_span: their far rows when another such row follows them (glitch), with that row's index
    (else -1), and their far rows when they reach the machine's last row (open)."""
    start = _starts(codes)
    end = np.r_[start[1:], True]
    run_start = loose & (start | ~np.r_[False, loose[:-1]])
    run_id = np.cumsum(run_start)
    rows = np.flatnonzero(loose)
    ended_by = np.full(len(far), -1)
    if not len(rows):
        return np.zeros(len(far), bool), ended_by, np.zeros(len(far), bool)
    ids = run_id[rows]
    first = rows[np.r_[True, ids[1:] != ids[:-1]]]
    last = rows[np.r_[ids[1:] != ids[:-1], True]]
    short = ~start[first] & ((stamps[last] - stamps[first]) <= max_span)
    closed, reaching_end = short & ~end[last], short & end[last]
    run_of_row = np.zeros(len(far), np.intp)  # 1-based run number of each loose row, 0 elsewhere
    run_of_row[rows] = np.searchsorted(np.unique(ids), ids) + 1
    closed_row = np.r_[False, closed][run_of_row]
    glitch = far & closed_row
    ended_by[glitch] = np.r_[-1, last + 1][run_of_row[glitch]]
    return glitch, ended_by, far & np.r_[False, reaching_end][run_of_row]


REFERENCE_COLUMNS = ["machine_id", "column", "scale", "unit", "lo", "hi", "rate"]


def judge_bursts(
    tel: pd.DataFrame, columns: list[str], config: PlausibilityConfig, reference: pd.DataFrame | None = None
) -> tuple[dict[str, Bursts], pd.DataFrame]:
    """Per column with a far reading, its bursts (rows of ``tel``, sorted by machine and time): readings more
    than ``glitch_k`` robust scales out (``_far_readings``) within a burst of readings more than half as far
    out that spans at most ``BURST_SHARE`` of the window after a normal reading. A burst that a normal reading
    also ends is a sensor glitch; one that reaches the machine's latest reading is open: nothing shows yet
    whether it ends (a glitch) or lasts (a real change). The half threshold keeps a rise whose first readings
    hover around the threshold one run: a sustained rise is never a burst.

    Far readings are no bursts at all for a machine and column whose far runs start at more than
    ``REGIME_RUN_RATE`` of its readings: the machine keeps switching to those values (an operating regime). A
    regime is a property of how the fleet runs: a machine with too few far runs to tell is judged by the
    fleet's rate over the whole table (``_regime_rates``), so the table is judged in two passes over its
    chunks of whole machines: far readings and runs (``_far_chunk``), then regimes and bursts
    (``_chunk_bursts``).

    Also the statistics each machine and column was judged with (``REFERENCE_COLUMNS``: per time scale 0 or 1,
    the robust unit and the range of the running median; the far-run rate it was judged by). Given back as
    ``reference`` with a short recent history, they judge it as the long history they came from would, at a
    fraction of the cost.
    """
    columns = [c for c in columns if not _match(c, config.glitch_exempt)]
    if not columns or len(tel) < 5:
        return {}, pd.DataFrame(columns=REFERENCE_COLUMNS)
    chunks = [_far_chunk(tel.iloc[a:b], columns, config, reference) for a, b in _machine_chunks(tel)]
    fleet = _fleet_rate(np.vstack([c.runs for c in chunks]), np.vstack([c.readings for c in chunks]))
    parts = [_chunk_bursts(chunk, columns, config, fleet) for chunk in chunks]
    stats = pd.concat([p[2] for p in parts], ignore_index=True)  # chunk by chunk, each scale by scale:
    stats = stats.sort_values("scale", kind="stable", ignore_index=True)  # as one pass orders them
    return _joined_bursts(parts, columns, len(tel)), stats


JUDGE_CHUNK_ROWS = 1_000_000  # rows judged at once: every statistic but the fleet's rate is per machine


def _machine_chunks(tel: pd.DataFrame) -> list[tuple[int, int]]:
    """Row ranges of about ``JUDGE_CHUNK_ROWS`` rows that never split a machine (rows sorted by machine)."""
    ids = tel["machine_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(starts) != len(pd.unique(ids)):  # a machine's rows are not together: judge them all at once
        return [(0, len(tel))]
    edges = np.unique(starts[np.searchsorted(starts, np.arange(0, len(tel), JUDGE_CHUNK_ROWS))])
    bounds = [*edges.tolist(), len(tel)]
    return list(itertools.pairwise(bounds))


def _joined_bursts(
    parts: list[tuple[dict[str, Bursts], np.ndarray, pd.DataFrame]], columns: list[str], n_rows: int
) -> dict[str, Bursts]:
    """The bursts of every chunk as masks over all rows (row numbers shifted by each chunk's first row)."""
    offsets = np.cumsum([0, *(len(p[1]) for p in parts)])
    out = {}
    for j, column in enumerate(columns):
        found = [(offset, p[0][column]) for offset, p in zip(offsets, parts, strict=False) if column in p[0]]
        if not found:
            continue
        bursts = Bursts(
            np.zeros(n_rows, bool),
            np.full(n_rows, -1),
            np.zeros(n_rows, bool),
            np.concatenate([p[1][:, j] for p in parts]),
        )
        for offset, chunk in found:
            rows = slice(offset, offset + len(chunk.glitch))
            bursts.glitch[rows], bursts.open[rows] = chunk.glitch, chunk.open
            bursts.ended_by[rows] = np.where(chunk.ended_by >= 0, chunk.ended_by + offset, -1)
        out[column] = bursts
    return out


@dataclass(frozen=True)
class _FarChunk:
    """The first pass of ``judge_bursts`` over one chunk of whole machines' rows (``_far_chunk``)."""

    codes: np.ndarray  # int: each row's machine, 0..machines-1 (``pd.factorize``)
    machines: pd.Index  # the machine id of each code
    pseudo: np.ndarray  # int64: each row's pseudo time (``_pseudo_time``)
    finite: np.ndarray  # bool, rows x columns: a reading
    excess: np.ndarray  # float, rows x columns: robust scales out (``_far_readings``)
    stats: np.ndarray  # scales x machine starts x columns x (unit, lo, hi): at each machine's first row
    runs: np.ndarray  # int, machines x columns: far runs (``_far_runs``) ...
    readings: np.ndarray  # ... and readings
    known_rate: np.ndarray | None  # machines x columns: the rate saved in ``reference``, NaN where unknown


def _far_chunk(
    tel: pd.DataFrame, columns: list[str], config: PlausibilityConfig, reference: pd.DataFrame | None
) -> _FarChunk:
    """The first pass of ``judge_bursts`` on whole machines' rows: every reading's excess and the statistics
    it was judged with (``_far_readings``), each machine's far runs and readings per column."""
    codes, machines = pd.factorize(tel["machine_id"])
    stamps = tel["timestamp"].astype("datetime64[ns, UTC]").astype(np.int64).to_numpy()
    pseudo = _pseudo_time(codes, stamps, config)
    x = tel[columns].to_numpy(dtype=float)
    finite = np.isfinite(x)
    known = None if reference is None else _reference_table(reference, machines, columns)
    excess, stats = _far_readings(
        np.where(finite, x, np.nan), codes, pseudo, config, None if known is None else known[:, codes, :, :3]
    )
    runs, readings = _far_runs(excess > config.glitch_k, codes, finite)
    known_rate = None if known is None else known[0, ..., 3]
    return _FarChunk(
        codes, machines, pseudo.asi8, finite, excess, stats[:, _starts(codes)], runs, readings, known_rate
    )


def _chunk_bursts(
    chunk: _FarChunk, columns: list[str], config: PlausibilityConfig, fleet: np.ndarray
) -> tuple[dict[str, Bursts], np.ndarray, pd.DataFrame]:
    """The second pass of ``judge_bursts`` on a chunk (``_far_chunk``), given the ``fleet``'s far-run rate per
    column (``_fleet_rate``): its bursts, every reading's excess (rows x columns) and the statistics they
    were judged with (``REFERENCE_COLUMNS``)."""
    rate = _regime_rates(chunk.runs, chunk.readings, fleet)
    if chunk.known_rate is not None:  # the rate over the long history the reference came from
        rate = np.where(np.isfinite(chunk.known_rate), chunk.known_rate, rate)
    regime = (rate > REGIME_RUN_RATE)[chunk.codes]
    far = (chunk.excess > config.glitch_k) & ~regime
    loose = (chunk.excess > config.glitch_k / 2) & ~regime
    max_span = pd.Timedelta(minutes=config.glitch_window_minutes).value * BURST_SHARE
    n_rows = len(chunk.codes)
    out = {}
    for j in np.flatnonzero(far.any(axis=0)):
        rows = np.flatnonzero(chunk.finite[:, j])  # a burst is bounded by this column's own readings
        glitch, ended_by, open_ = _burst_runs(
            far[rows, j], loose[rows, j], chunk.codes[rows], chunk.pseudo[rows], max_span
        )
        if glitch.any() or open_.any():
            bursts = Bursts(
                np.zeros(n_rows, bool), np.full(n_rows, -1), np.zeros(n_rows, bool), chunk.excess[:, j]
            )
            bursts.glitch[rows] = glitch
            bursts.ended_by[rows[glitch]] = rows[ended_by[glitch]]
            bursts.open[rows] = open_
            out[columns[j]] = bursts
    owners = chunk.codes[_starts(chunk.codes)]  # the machine of each start
    rates = np.broadcast_to(rate[owners][None, ..., None], (*chunk.stats.shape[:3], 1))
    stats = np.concatenate([chunk.stats, rates], axis=-1)
    return out, chunk.excess, _reference_frame(stats, chunk.machines[owners], columns)


def _far_runs(far: np.ndarray, codes: np.ndarray, finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per machine and column, the runs of ``far`` readings starting among its readings, and its readings."""
    previous = np.vstack([np.zeros((1, far.shape[1]), bool), far[:-1]])
    previous[_starts(codes)] = False
    runs = pd.DataFrame(far & ~previous).groupby(codes).sum().to_numpy()
    readings = pd.DataFrame(finite).groupby(codes).sum().to_numpy()
    return runs, readings


def _fleet_rate(runs: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """Per column, the fleet's far-run rate: the runs over the readings of the machines (rows of ``runs`` and
    ``readings``, every chunk's) with enough runs to tell on their own (``REGIME_MIN_RUNS``), NaN unless
    ``REGIME_FLEET_MACHINES`` such machines show it. Machines with a glitch or two never make a regime
    together, and one machine's own mode is not the fleet's."""
    enough = runs >= REGIME_MIN_RUNS
    total = np.where(enough, runs, 0).sum(axis=0)
    reading = np.where(enough, readings, 0).sum(axis=0)
    shown = enough.sum(axis=0) >= REGIME_FLEET_MACHINES
    return np.where(shown, total / np.maximum(reading, 1), np.nan)


def _regime_rates(runs: np.ndarray, readings: np.ndarray, fleet: np.ndarray) -> np.ndarray:
    """Per machine and column (``_far_runs``), the far-run rate that judges its regime: its own rate with at
    least ``REGIME_MIN_RUNS`` runs; with fewer (too few to tell on its own) the ``fleet``'s rate
    (``_fleet_rate``), or less where the machine's readings are enough to show a lower rate of its own: the
    rate of its runs and readings with ``REGIME_MIN_RUNS`` runs more at the fleet's rate. A short machine
    keeps the fleet's rate (an engine of 30 cycles with 2 runs in a fleet at 14 %: 10.6 %), a long one with
    rare runs gets about its own (3 glitches in 300 readings of an engine in one condition, in a fleet at
    6.7 %: 2.1 %); 0 without a fleet rate."""
    own = runs / np.maximum(readings, 1)
    with np.errstate(invalid="ignore"):  # NaN where the fleet has no rate
        weighed = (runs + REGIME_MIN_RUNS) / (readings + REGIME_MIN_RUNS / fleet)
    borrowed = np.where(np.isfinite(fleet), np.fmin(fleet, weighed), 0.0)
    return np.where(runs >= REGIME_MIN_RUNS, own, borrowed)


def _reference_table(reference: pd.DataFrame, machines: pd.Index, columns: list[str]) -> np.ndarray:
    """``reference`` (``REFERENCE_COLUMNS``) as scales x machines x columns x (unit, lo, hi, rate), NaN where
    unknown."""
    table = np.full((2, len(machines), len(columns), 4), np.nan)
    machine = machines.get_indexer(pd.Index(reference["machine_id"]))
    column = pd.Index(columns).get_indexer(pd.Index(reference["column"]))
    ok = (machine >= 0) & (column >= 0)
    scale = reference["scale"].to_numpy(dtype=np.intp)[ok]
    fields = reference[["unit", "lo", "hi", "rate"]].to_numpy(dtype=float)[ok]
    table[scale, machine[ok], column[ok]] = fields
    return table


def _reference_frame(stats: np.ndarray, ids: pd.Index, columns: list[str]) -> pd.DataFrame:
    """Statistics (scales x machines ``ids`` x columns x (unit, lo, hi, rate)) as ``REFERENCE_COLUMNS``."""
    n_scales, n_machines, n_columns = stats.shape[:3]
    values = stats.reshape(-1, 4)  # scale-major, then machine, then column
    frame = pd.DataFrame(
        {
            "machine_id": np.tile(np.repeat(np.asarray(ids, dtype=object), n_columns), n_scales),
            "column": np.tile(columns, n_scales * n_machines),
            "scale": np.repeat(np.arange(n_scales), n_machines * n_columns),
            "unit": values[:, 0],
            "lo": values[:, 1],
            "hi": values[:, 2],
            "rate": values[:, 3],
        }
    )
    return frame[np.isfinite(frame["unit"])].reset_index(drop=True)


def find_bursts(tel: pd.DataFrame, columns: list[str], config: PlausibilityConfig) -> dict[str, Bursts]:
    """Per column with a far reading, its bursts (``judge_bursts``)."""
    return judge_bursts(tel, columns, config)[0]


def find_glitches(tel: pd.DataFrame, columns: list[str], config: PlausibilityConfig) -> dict[str, np.ndarray]:
    """Per column, the rows (of ``tel``, sorted by machine and time) that are sensor glitches (``find_bursts``)."""
    return {c: b.glitch for c, b in find_bursts(tel, columns, config).items() if b.glitch.any()}


def spike_flags(tel: pd.DataFrame, bursts: dict[str, Bursts]) -> pd.DataFrame:
    """One ``spike`` sensor flag (``sensor_flag_frame``) per machine and column with an open burst: its
    first far reading (``since``), the machine's last reading of the column, which the burst reaches
    (``until``), how many far readings, and in ``detail`` the farthest. Always active; the readings are kept
    and scored, the flag says they are unconfirmed."""
    flags = []
    for column, found in bursts.items():
        rows = np.flatnonzero(found.open)
        if not len(rows):
            continue
        has_value = tel[column].notna().to_numpy()
        last_value = (
            pd.Series(tel["timestamp"].to_numpy()[has_value], index=tel["machine_id"].to_numpy()[has_value])
            .groupby(level=0)
            .max()
        )
        frame = pd.DataFrame(
            {"machine_id": tel["machine_id"].to_numpy()[rows], "row": rows, "excess": found.excess[rows]}
        )
        for machine, group in frame.groupby("machine_id", sort=True):
            first = int(group["row"].iloc[0])
            worst = int(group["row"].to_numpy()[group["excess"].to_numpy().argmax()])
            value, when = tel[column].iloc[worst], tel["timestamp"].iloc[worst]
            flags.append(
                {
                    "machine_id": machine,
                    "column": column,
                    "flag": "spike",
                    "since": tel["timestamp"].iloc[first],
                    "until": last_value[machine],
                    "readings": len(group),
                    "active": True,
                    "detail": f"{column} read {value:g} at {when:%Y-%m-%d %H:%M} UTC, "
                    f"{found.excess[worst]:.0f} robust scales outside its running level and range, in its "
                    "latest readings: unconfirmed, a sensor glitch if the next reading is back to normal, "
                    "a real change if it lasts",
                }
            )
    return sensor_flag_frame(flags)


def _min_run(repeat_share: float, config: PlausibilityConfig) -> int:
    """Shortest run that is unlikely (< stuck_max_chance) when a repeat happens with this share."""
    if repeat_share <= 0:
        return config.stuck_min_readings
    if repeat_share >= 1:
        return 1 << 62
    return max(
        config.stuck_min_readings, 1 + math.ceil(math.log(config.stuck_max_chance) / math.log(repeat_share))
    )


def _typical_share(codes: np.ndarray, hits: np.ndarray) -> float:
    """The median over machines of the share of rows where ``hits`` holds (robust to a few odd machines)."""
    if not len(codes):
        return 0.0
    return float(pd.Series(hits).groupby(codes).mean().median())


def _runs(codes: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of each run of equal ``key`` within a machine."""
    new = _starts(codes) | np.r_[True, key[1:] != key[:-1]]
    first = np.flatnonzero(new)
    return first, np.r_[first[1:] - 1, len(key) - 1]


def find_sensor_flags(
    tel: pd.DataFrame,
    columns: list[str],
    config: PlausibilityConfig,
    present: dict[str, set[str]] | None = None,
) -> pd.DataFrame:
    """Stuck (one value repeated) or dead (NaN, or a flat zero) sensors: one row per run, machine-sorted ``tel``.

    ``present`` maps a column to the machines whose files have that column (NaN there is a real empty cell);
    without it every machine counts as having every column.
    """
    flags = []
    codes, ids = pd.factorize(tel["machine_id"])
    stamps = tel["timestamp"]
    last_row = np.r_[_starts(codes)[1:], True]
    for col in columns:
        x = tel[col].to_numpy(dtype=float)
        finite = np.isfinite(x)
        if not finite.any() or np.nanmin(x) == np.nanmax(x):
            continue  # constant everywhere (a setting, or a sensor that never moves): nothing to compare with
        has = (
            np.ones(len(x), bool)
            if present is None
            else tel["machine_id"].isin(present.get(col, set())).to_numpy()
        )
        key = np.where(finite, x, np.inf)  # NaN runs compare equal as +inf
        first, last = _runs(codes, key)
        length = last - first + 1
        nan_run = ~finite[first]
        repeat_share = _typical_share(
            codes, np.r_[False, (key[1:] == key[:-1]) & ~_starts(codes)[1:]] & finite
        )
        nan_share = _typical_share(codes[has], ~finite[has])
        zero_share = _typical_share(codes[finite], x[finite] == 0)
        stuck = ~nan_run & (length >= _min_run(repeat_share, config))
        dead = nan_run & has[first] & (length >= _min_run(nan_share, config))
        for flag, runs in (("stuck", stuck), ("dead", dead)):
            for i in np.flatnonzero(runs):
                a, b = first[i], last[i]
                kind = "dead" if flag == "stuck" and x[a] == 0 and zero_share < 0.01 else flag
                what = "no value" if flag == "dead" else f"the value {x[a]:g}"
                flags.append(
                    {
                        "machine_id": ids[codes[a]],
                        "column": col,
                        "flag": kind,
                        "since": stamps.iloc[a],
                        "until": stamps.iloc[b],
                        "readings": int(length[i]),
                        "active": bool(last_row[b]),
                        "detail": f"{col} reported {what} {length[i]} times in a row "
                        f"({stamps.iloc[a]:%Y-%m-%d %H:%M} to {stamps.iloc[b]:%Y-%m-%d %H:%M} UTC)",
                    }
                )
    return sensor_flag_frame(flags)


def sensor_flag_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    columns = ["machine_id", "column", "flag", "since", "until", "readings", "active", "detail"]
    frame = pd.DataFrame(rows or [], columns=columns)
    for col in ("since", "until"):
        frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[us, UTC]")
    return frame.astype({"readings": np.int64, "active": bool})


def nominal_rates(rates: pd.Series | np.ndarray) -> np.ndarray:
    """Sample rates rounded to 4 significant digits (at most 0.05 % off): a logger that stamps its measured rate
    (25600.3, 25599.8 Hz) records at one rate. A fixed grid, so a snapshot's rate never depends on others."""
    values = np.asarray(rates, dtype=float)
    out = values.copy()
    usable = np.isfinite(values) & (values > 0)
    scale = 10.0 ** (np.floor(np.log10(values[usable])) - 3)
    out[usable] = np.round(values[usable] / scale) * scale
    return out


def snapshot_shape_problems(
    meta: pd.DataFrame, config: PlausibilityConfig
) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Snapshots of a shape (sample rate, length) their machine's channel does not record: (wrong length, wrong
    sample rate, the reason of each, with the numbers).

    The usual shape is the most frequent per machine and channel (ties go to the fleet's most frequent for the
    channel), with rates compared to 4 significant digits (``nominal_rates``); another shape is accepted once it
    recurs ``min_shape_snapshots`` times (a logger set to a new rate or length), else it is the wrong length (a
    transfer cut short) or the wrong rate. Snapshots shorter than ``min_snapshot_samples`` are always the wrong
    length. Like the glitch check, this judges with the whole loaded history: a new shape's first snapshots
    are quarantined until it has recurred."""
    reasons = pd.Series("", index=meta.index, dtype=object)
    if meta.empty:
        return np.zeros(0, bool), np.zeros(0, bool), reasons
    keys = ["machine_id", "channel"]
    shape = meta[keys].assign(rate=nominal_rates(meta["sample_rate_hz"]), n=meta["n_samples"].to_numpy())
    own = shape.groupby([*keys, "rate", "n"], sort=False).size().rename("own")
    fleet = shape.groupby(["channel", "rate", "n"], sort=False).size().rename("fleet")
    votes = own.reset_index().merge(fleet.reset_index(), on=["channel", "rate", "n"])
    usual = votes.sort_values(["own", "fleet", "n", "rate"], ascending=False).drop_duplicates(keys)
    usual = usual.rename(columns={"rate": "usual_rate", "n": "usual_n", "own": "usual_count"})
    both = shape.merge(usual[[*keys, "usual_rate", "usual_n", "usual_count"]], on=keys, how="left")
    both = both.merge(own.reset_index(), on=[*keys, "rate", "n"], how="left")
    total = shape.groupby(keys, sort=False)["n"].transform("size").to_numpy()
    n, usual_n, rate, usual_rate = (both[c].to_numpy() for c in ("n", "usual_n", "rate", "usual_rate"))
    accepted = ((n == usual_n) & (rate == usual_rate)) | (
        both["own"].to_numpy() >= config.min_shape_snapshots
    )
    too_short = n < config.min_snapshot_samples
    wrong_length = too_short | (~accepted & (n != usual_n))
    wrong_rate = ~accepted & ~wrong_length
    for i in np.flatnonzero(wrong_length | wrong_rate).tolist():
        row = both.iloc[i]
        usually = (
            f"this machine's {row['channel']} records {int(row['usual_n'])} samples at {row['usual_rate']:g} Hz "
            f"({int(row['usual_count'])} of its {int(total[i])} snapshots)"
        )
        if too_short[i]:
            reasons.iloc[i] = (
                f"snapshot has {int(row['n'])} samples, fewer than the {config.min_snapshot_samples} that vibration "
                "features need (PlausibilityConfig.min_snapshot_samples)"
            )
        elif wrong_length[i]:
            reasons.iloc[i] = (
                f"snapshot has {int(row['n'])} samples at {row['rate']:g} Hz; {usually}, and {int(row['n'])} "
                f"samples only {int(row['own'])} time(s): "
                + (
                    "a transfer cut short, or a one-off setting"
                    if row["n"] < row["usual_n"]
                    else "a one-off setting"
                )
            )
        else:
            reasons.iloc[i] = (
                f"snapshot recorded at {meta['sample_rate_hz'].iloc[i]:g} Hz; {usually}, and at {row['rate']:g} "
                f"Hz only {int(row['own'])} time(s)"
            )
    return wrong_length, wrong_rate, reasons
