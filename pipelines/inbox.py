"""Process an inbox of batches into the history store: validate, judge against history, store, move.

Each sub-folder of the inbox is a batch in the equipment data contract layout. ``process_inbox`` takes them in
name order (``processed/``, ``failed/`` and hidden folders are not batches) and for each one:

1. fingerprints it (the batch id); a batch already in the store is a no-op, reported as all duplicates;
2. loads it with the store's machines as the known ones (``unknown_machine`` for the others);
3. judges its telemetry against the machine's stored history (the last ``history_days``): sensor glitches
   that a day-sized batch cannot show on its own are quarantined, stuck or dead sensors are re-found over
   history and batch together;
4. appends the good rows to the store (duplicates skipped) with the batch's quarantine, in one logged batch;
5. renames the folder into ``processed/``, or into ``failed/`` with ``<name>.error.json`` beside it when nothing
   in it is usable. A store error leaves the folder in the inbox, to be retried by the next run.

For every table of every batch, rows in = stored + quarantined + duplicates skipped. Nothing outside
``process_inbox`` moves a folder: a dataset given by path is read, never moved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.checks import (
    REASON_CODES,
    REFERENCE_COLUMNS,
    PlausibilityConfig,
    find_sensor_flags,
    judge_bursts,
    spike_flags,
    window_spans,
)
from features.dataset import (
    QUARANTINE_COLUMNS,
    TABLES,
    ContractError,
    Dataset,
    fingerprint,
    id_strings,
    load_dataset,
    table_files,
)
from features.errors import InputError
from pipelines.store import HistoryStore

NOT_BATCHES = ("processed", "failed")
JUDGE_STATE_MAX_AGE = pd.Timedelta(days=1)  # saved glitch statistics older than this: judge 14 days in full
GLITCH_REASON = (
    "far outside this machine's own history for a short burst (sensor glitch, judged with the stored history)"
)


@dataclass
class BatchReport:
    """What happened to one batch: where it went, and per table rows in, stored, quarantined, duplicates."""

    batch: str
    status: str  # stored | already_stored | failed | error (store problem: left in the inbox)
    batch_id: str | None = None
    moved_to: str | None = None
    store_version: int | None = None
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantine_codes: dict[str, int] = field(default_factory=dict)
    sensor_flags: list[dict] = field(default_factory=list)  # active stuck/dead/spike flags of its machines
    withdrawn: int = 0  # stored readings of earlier batches withdrawn as glitches once this batch ended them
    new_signals: dict[str, list[str]] = field(default_factory=dict)  # sensors/channels the store never had
    register_updates: list[str] = field(default_factory=list)  # 'M0007: vibration_class II -> IV'
    error: str | None = None
    error_code: str | None = None

    @property
    def balanced(self) -> bool:
        """rows_in == stored + quarantined + duplicates for every table."""
        return all(
            t["rows_in"] == t["stored"] + t["quarantined"] + t["duplicates"] for t in self.tables.values()
        )

    def totals(self) -> dict[str, int]:
        """Rows in, stored, quarantined and duplicates summed over the tables."""
        return table_totals(self.tables)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of the report."""
        return dataclasses.asdict(self)


def table_totals(tables: dict[str, dict[str, int]]) -> dict[str, int]:
    """Rows in, stored, quarantined and duplicates summed over a report's tables (also of its ``to_dict()``)."""
    keys = ("rows_in", "stored", "quarantined", "duplicates")
    return {k: sum(t[k] for t in tables.values()) for k in keys}


def batch_folders(inbox: Path) -> list[Path]:
    """The batches waiting in ``inbox``, in name order."""
    return sorted(
        p for p in inbox.iterdir() if p.is_dir() and p.name not in NOT_BATCHES and not p.name.startswith(".")
    )


def process_inbox(
    inbox_dir: str | Path,
    store: HistoryStore,
    now: pd.Timestamp | str | None = None,
    plausibility: PlausibilityConfig | None = None,
    history_days: float = 14.0,
) -> list[BatchReport]:
    """Store every batch waiting in ``inbox_dir`` (name order), move each to processed/ or failed/; one report each."""
    inbox = Path(inbox_dir)
    if not inbox.is_dir():
        raise InputError(f"{inbox}: inbox is not a folder; fix: give the folder that holds the batch folders")
    reports = [process_batch(b, store, now, plausibility, history_days) for b in batch_folders(inbox)]
    return reports + [_loose(path) for path in loose_files(inbox)]


def loose_files(inbox: Path) -> list[Path]:
    """Files dropped into the inbox itself, not in a batch folder (names starting with '.' are being copied)."""
    return sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))


def _loose(path: Path) -> BatchReport:
    """A loose file is no batch: moved to failed/ with the fix, so that it is seen and not left for ever."""
    message = (
        f"{path}: a file loose in the inbox, not a batch folder; fix: put the files of a batch (machines, "
        "telemetry/, waveforms/, events) in a folder of their own and move that folder into the inbox"
    )
    return _failed(path, BatchReport(batch=path.name, status="failed"), message, "not_a_batch_folder")


def process_batch(
    folder: Path,
    store: HistoryStore,
    now: pd.Timestamp | str | None = None,
    plausibility: PlausibilityConfig | None = None,
    history_days: float = 14.0,
) -> BatchReport:
    """Store one inbox batch and move its folder (see the module docstring); never raises for bad input."""
    report = BatchReport(batch=folder.name, status="stored")
    try:
        report.batch_id = fingerprint(folder)
        if report.batch_id in store.batches():
            return _already_stored(folder, store, report)
        dataset = load_dataset(
            folder, plausibility, now=now, known_machines=store.machine_ids(), readings_required=False
        )
        incomplete(folder, dataset)
    except InputError as exc:
        return _failed(folder, report, str(exc), getattr(exc, "code", "input_error"))
    except Exception as exc:  # bad input the loader did not foresee must not stop the other batches
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return _failed(folder, report, f"{folder}: batch could not be read ({detail})", "unreadable_batch")
    try:
        report.new_signals = new_signals(dataset, store.signals())
        config = plausibility or PlausibilityConfig()
        dataset, judge_state = judge_batch(dataset, store, config, history_days)
        result = store.append(dataset, report.batch_id, source=folder.name)
        save_judge_state(store, judge_state, config)
    except Exception as exc:  # the store, not the batch: keep the folder for the next run
        report.status, report.error = "error", f"{type(exc).__name__}: {exc}"
        report.error_code = "store_error"
        return report
    report.store_version = result.version
    report.register_updates = result.register_updates
    report.tables = _balance(dataset, result.stored, result.duplicates, result.conflicts)
    quarantine = dataset.quarantine
    earlier = (
        quarantine["withdrawn"].to_numpy(dtype=object) == True  # noqa: E712 (NaN: a row of this batch)
        if "withdrawn" in quarantine
        else np.zeros(len(quarantine), bool)
    )  # records of earlier batches' stored readings: not rows of this batch
    report.withdrawn = int(earlier.sum())
    codes = quarantine.loc[~earlier, "code"].value_counts()
    clashes = pd.Series({"conflicts_with_stored": sum(result.conflicts.values())})
    codes = codes.add(clashes[clashes > 0], fill_value=0).sort_index()
    report.quarantine_codes = {str(code): int(n) for code, n in codes.items()}
    report.sensor_flags = _active_flags(dataset.sensor_flags)
    report.moved_to = str(_move(folder, "processed"))
    return report


def incomplete(folder: Path, dataset: Dataset) -> None:
    """Raise InputError when a file of the batch cannot be read: a batch is stored whole or not at all. A file
    that is truncated (a batch picked up while it was still being copied) would otherwise lose its rows
    quietly while the rest of the batch is stored and moved to processed/."""
    quarantine = dataset.quarantine
    unreadable = quarantine[quarantine["code"] == "unreadable_file"] if "code" in quarantine else quarantine
    if len(unreadable):
        first = unreadable.iloc[0]
        more = f" (and {len(unreadable) - 1} more files)" if len(unreadable) > 1 else ""
        raise ContractError(
            f"{folder}: {first['file']}{more}: {first['reason'].removesuffix('; fix: re-export the file')}; "
            "nothing of the batch is stored; fix: re-export the file and put the whole batch back in the inbox "
            "(deliver a batch under a name that starts with '.' and rename it once it is complete: the inbox "
            "skips such names)",
            code="unreadable_file",
        )


def new_signals(dataset: Dataset, known: dict[str, set[str]]) -> dict[str, list[str]]:
    """Telemetry sensors and waveform channels of the batch that a store holding some (``known``) never had: a
    renamed column or channel would otherwise start a new signal quietly while the old one reads as dead."""
    meta = dataset.waveforms.meta
    sent = {
        "telemetry": set(dataset.telemetry.columns) - {"machine_id", "timestamp"},
        "waveforms": {str(c) for c in meta["channel"].unique()} if len(meta) else set(),
    }
    return {
        table: sorted(sent[table] - known[table])
        for table in sent
        if known[table] and sent[table] - known[table]
    }


def _already_stored(folder: Path, store: HistoryStore, report: BatchReport) -> BatchReport:
    """A batch whose fingerprint is in the store: nothing stored, every row a duplicate."""
    log = store.log()
    row = log[log["batch_id"] == report.batch_id].iloc[0].to_dict()
    report.status, report.store_version = "already_stored", store.version
    # the whole batch again: the rows it offered the store and those it had quarantined (logged apart)
    rows_in = {t: int(row[f"{t}_rows_in"]) + int(row.get(f"{t}_quarantined", 0) or 0) for t in TABLES}
    report.tables = {
        t: {"rows_in": n, "stored": 0, "quarantined": 0, "duplicates": n} for t, n in rows_in.items()
    }
    report.moved_to = str(_move(folder, "processed"))
    return report


def _failed(folder: Path, report: BatchReport, message: str, code: str) -> BatchReport:
    report.status, report.error, report.error_code = "failed", message, code
    target = _move(folder, "failed")
    report.moved_to = str(target)
    _write_json(target.with_name(f"{target.name}.error.json"), report.to_dict())
    return report


def _balance(
    dataset: Dataset, stored: dict[str, int], duplicates: dict[str, int], conflicts: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Per table: rows in (machines: listed + known by id alone), stored, quarantined (by the loader, and as
    conflicting with a stored row), duplicates."""
    out = {}
    for table in TABLES:
        c = dataset.counts[table]
        extra = c.get("known_by_id_only", 0) if table == "machines" else 0
        out[table] = {
            "rows_in": int(c["rows_in"] + extra),
            "stored": int(stored[table]),
            "quarantined": int(c["rows_quarantined"] + conflicts.get(table, 0)),
            "duplicates": int(duplicates[table]),
        }
    return out


def _active_flags(flags: pd.DataFrame) -> list[dict]:
    active = flags[flags["active"]]
    return json.loads(active.to_json(orient="records", date_format="iso", date_unit="us"))


def _move(folder: Path, where: str) -> Path:
    """Rename ``folder`` into ``<inbox>/<where>/`` (atomic on one file system); a taken name gets a suffix."""
    target_dir = folder.parent / where
    target_dir.mkdir(exist_ok=True)
    target, n = target_dir / folder.name, 1
    while target.exists():
        target, n = target_dir / f"{folder.name}.{n}", n + 1
    os.rename(folder, target)
    return target


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


# ------------------------------------------------------------------ judged against history
def judge_against_history(
    dataset: Dataset,
    store: HistoryStore,
    config: PlausibilityConfig,
    history_days: float = 14.0,
    state_max_age: pd.Timedelta | None = None,
) -> Dataset:
    """``judge_batch``, then the statistics of its full judgements saved in the store's judge state."""
    judged, fresh = judge_batch(dataset, store, config, history_days, state_max_age)
    save_judge_state(store, fresh, config)
    return judged


def judge_batch(
    dataset: Dataset,
    store: HistoryStore,
    config: PlausibilityConfig,
    history_days: float = 14.0,
    state_max_age: pd.Timedelta | None = None,
) -> tuple[Dataset, pd.DataFrame | None]:
    """The batch with its telemetry glitches re-found and its sensor flags re-computed over stored history,
    and the statistics of the machines judged in full (``save_judge_state`` keeps them once the batch is
    stored; None when none).

    A machine is judged over its last ``history_days`` of stored readings, unless the store's judge state
    (``HistoryStore.judge_state``) holds its statistics from such a judgement less than ``state_max_age``
    (default ``JUDGE_STATE_MAX_AGE``) ago: then over one glitch window of readings before the batch (a day at an hourly cadence), with the
    robust unit and the running median's range from the state (``features.checks.judge_bursts``).

    A burst in a machine's latest stored readings could not be judged when it was stored (nothing after it
    showed whether it ended): when this batch's reading ends it, its stored readings are withdrawn from the
    history (quarantine records with ``withdrawn`` set, which ``HistoryStore.read`` leaves out). A burst that
    reaches the batch's latest reading is kept and reported as an unconfirmed ``spike`` flag.
    """
    tel = dataset.telemetry
    if tel.empty:
        return dataset, None
    sensors = dataset.sensor_columns
    max_age = JUDGE_STATE_MAX_AGE if state_max_age is None else state_max_age
    state = _usable_state(store.judge_state(), tel, config, max_age)
    machines = pd.Index(tel["machine_id"].unique())
    recent = machines.intersection(pd.Index(state["machine_id"].unique()))
    parts = []
    start = tel["timestamp"].min()
    for group, reference in ((machines.difference(recent), None), (recent, state)):
        if not len(group):
            continue
        rows = np.flatnonzero(tel["machine_id"].isin(group).to_numpy())
        if reference is None:
            since = start - pd.Timedelta(days=history_days)
        else:  # one window before the batch, and before the state's latest reading (a logger outage)
            since = min(start, reference["as_of"].min()) - _span(reference, group)
        history = store.read(since=since, machines=group, tables=["telemetry"]).telemetry
        if reference is None:
            history = _enough_readings(store, history, group, start, since, config)
        if len(history):
            parts.append(_judge_group(tel.iloc[rows], rows, history, sensors, config, reference))
    if not parts:
        return dataset, None
    full = [part.reference for part in parts if part.reference is not None]
    flags = _judged_flags(parts, sensors, config)
    withdrawn = pd.concat([p.withdrawn for p in parts if len(p.withdrawn)] or [parts[0].withdrawn])
    glitches = {row: column for part in parts for row, column in part.glitches.items()}
    judged = set().union(*(part.machines for part in parts))
    applied = _apply(dataset, glitches, flags, withdrawn.reset_index(drop=True), judged)
    return applied, pd.concat(full, ignore_index=True) if full else None


_HISTORY_WINDOWS = 3  # a full judgement reads at least this many glitch windows of readings per machine


def _enough_readings(
    store: HistoryStore,
    history: pd.DataFrame,
    machines: pd.Index,
    start: pd.Timestamp,
    since: pd.Timestamp,
    config: PlausibilityConfig,
) -> pd.DataFrame:
    """The history with machines that have fewer than ``_HISTORY_WINDOWS`` glitch windows of readings in it
    read further back: at a reading a day, 14 days hold fewer readings than the window widens to
    (``glitch_window_readings``), and medians over so few readings call real values glitches that a judgement
    of the whole record does not. Back as far as 1.5 times that many readings at the slowest such machine's
    cadence."""
    need = _HISTORY_WINDOWS * config.glitch_window_readings
    counts = history["machine_id"].value_counts().reindex(machines, fill_value=0)
    # a machine with fewer than 2 readings in the window (new, or silent for days) has no cadence to go by:
    # judged as before, so that a batch of new machines never scans the whole store
    short = counts.index[(counts < need) & (counts >= 2)]
    if not len(short):
        return history
    steps = (
        history[history["machine_id"].isin(short)]
        .groupby("machine_id")["timestamp"]
        .agg(lambda t: t.diff().median())
    )
    back = min(since, start - need * 1.5 * pd.Timedelta(steps.max()))
    more = store.read(since=back, machines=list(short), tables=["telemetry"]).telemetry
    kept = history[~history["machine_id"].isin(short)]
    return pd.concat([kept, more], ignore_index=True).sort_values(["machine_id", "timestamp"], kind="stable")


@dataclass
class _Judged:
    """What judging one group of machines found: batch row -> column of its glitch, records of stored readings
    withdrawn, the readings left (history and batch, for the stuck and dead sensors), the spike flags, the
    machines judged, and (full judgements only) the statistics to save as judge state."""

    glitches: dict[int, str]
    withdrawn: pd.DataFrame
    kept: pd.DataFrame
    spikes: pd.DataFrame
    machines: set[str]
    reference: pd.DataFrame | None


def _judged_flags(parts: list[_Judged], sensors: list[str], config: PlausibilityConfig) -> pd.DataFrame:
    """Stuck and dead sensors over the readings left by every group at once (the fleet's typical repeat and
    gap shares come from all of them), and the groups' spike flags; for the batch's machines."""
    kept = pd.concat([part.kept for part in parts], ignore_index=True)
    codes, machines = pd.factorize(kept["machine_id"])
    reported = pd.DataFrame(kept[sensors].notna().to_numpy()).groupby(codes).any().to_numpy()
    present = {c: set(machines[reported[:, j]]) for j, c in enumerate(sensors)}  # machines with the column
    flags = find_sensor_flags(kept, sensors, config, present)
    batch = set().union(*(part.machines for part in parts))
    every = [f for f in (flags, *(part.spikes for part in parts)) if len(f)] or [flags]
    flags = pd.concat(every, ignore_index=True)
    return flags[flags["machine_id"].isin(batch)].reset_index(drop=True)


def _judge_group(
    tel: pd.DataFrame,
    positions: np.ndarray,
    history: pd.DataFrame,
    sensors: list[str],
    config: PlausibilityConfig,
    state: pd.DataFrame | None,
) -> _Judged:
    """Judge batch rows ``tel`` (at ``positions`` of the batch) against ``history``: in full without ``state``,
    else with the saved statistics (``_usable_state``)."""
    both = _history_and_batch(history, tel, sensors, positions)
    is_batch = both["_batch_row"].to_numpy() >= 0
    resent = both["_stored"].to_numpy()  # a batch reading the store holds already
    glitch, withdrawn = np.zeros(len(both), bool), np.zeros(len(both), bool)
    first_column: dict[int, str] = {}
    withdrawn_column: dict[int, tuple[str, int]] = {}  # row of both -> column, row of the reading ending it
    reference = None if state is None else state[REFERENCE_COLUMNS]
    bursts, used = judge_bursts(both, sensors, config, reference)
    for column, found in bursts.items():
        new = found.glitch & is_batch & ~glitch
        for row in both["_batch_row"].to_numpy()[new]:
            first_column[int(row)] = column
        glitch |= new
        # stored readings of a burst that a batch reading ended, and stored copies of glitches sent again
        ended_by_batch = found.glitch & ~is_batch & is_batch[np.maximum(found.ended_by, 0)]
        ended_by_batch |= new & resent
        for row in np.flatnonzero(ended_by_batch & ~withdrawn):
            withdrawn_column[int(row)] = (column, int(found.ended_by[row]))
        withdrawn |= ended_by_batch
    if state is None:  # a full judgement: its statistics become the machines' state
        spans = window_spans(both, config)
        latest = both.groupby("machine_id")["timestamp"].max()
        used = used.assign(
            as_of=latest.reindex(used["machine_id"]).to_numpy(),
            span=spans.reindex(used["machine_id"]).to_numpy(),
        )
    return _Judged(
        glitches=first_column,
        withdrawn=_withdrawn_records(both, history, withdrawn_column),
        kept=both.loc[~glitch & ~withdrawn, ["machine_id", "timestamp", *sensors]],
        spikes=spike_flags(both, bursts),
        machines=set(tel["machine_id"]),
        reference=used if state is None else None,
    )


def _state_key(config: PlausibilityConfig) -> str:
    """The settings the saved statistics depend on: a state saved under others is not used."""
    return (
        f"k={config.glitch_k} window={config.glitch_window_minutes} readings={config.glitch_window_readings}"
    )


def _usable_state(
    state: pd.DataFrame, tel: pd.DataFrame, config: PlausibilityConfig, max_age: pd.Timedelta
) -> pd.DataFrame:
    """The saved statistics of the batch's machines that were computed with these settings, less than
    ``max_age`` from the batch's latest reading and not before the machine's last refresh time
    (``_refresh_due``)."""
    columns = [*REFERENCE_COLUMNS, "as_of", "span", "key"]
    if state.empty or not set(columns) <= set(state.columns) or max_age <= pd.Timedelta(0):
        return pd.DataFrame(columns=columns)
    latest = tel["timestamp"].max()
    state = state[(state["key"] == _state_key(config)) & state["machine_id"].isin(set(tel["machine_id"]))]
    due = _refresh_due(state["machine_id"], latest, max_age)
    usable = state[((state["as_of"] - latest).abs() < max_age) & (state["as_of"] >= due)]
    return usable.reset_index(drop=True)


def _refresh_due(machines: pd.Series, now: pd.Timestamp, period: pd.Timedelta) -> pd.Series:
    """Each machine's latest refresh time at or before ``now``: once per ``period``, at an offset within it
    that a hash of its id fixes. A fleet judged in full at once then refreshes 1/24 of its machines an hour
    (with a period of a day), not all of them in the same hour a day later."""
    period_ns = period.value
    hashes = np.array([zlib.crc32(str(m).encode()) for m in machines], dtype=np.float64) / 2.0**32
    offsets = (hashes * period_ns).astype(np.int64)  # spread evenly over the period
    now_ns = pd.Timestamp(now).value
    due_ns = (now_ns - offsets) // period_ns * period_ns + offsets
    return pd.Series(pd.to_datetime(due_ns, utc=True), index=machines.index)


def _span(state: pd.DataFrame, machines: pd.Index) -> pd.Timedelta:
    """History to read before a batch judged with saved statistics: one glitch window of the slowest machine
    (the running medians of the batch's readings, and the normal reading before a burst that ends in it)."""
    spans = pd.to_timedelta(state.loc[state["machine_id"].isin(machines), "span"])
    return pd.Timedelta(spans.max())


def save_judge_state(store: HistoryStore, fresh: pd.DataFrame | None, config: PlausibilityConfig) -> None:
    """Replace the saved statistics of the machines judged in full by ``fresh`` (``judge_batch``; others are
    kept). After the batch is stored: a batch the store refused leaves the state as it was."""
    if fresh is None or fresh.empty:
        return
    stored = store.judge_state()
    fresh = fresh.assign(key=_state_key(config))
    if not stored.empty and "machine_id" in stored:
        stored = stored[~stored["machine_id"].isin(set(fresh["machine_id"]))]
        fresh = pd.concat([stored, fresh], ignore_index=True)
    store.write_judge_state(fresh)


def _withdrawn_records(
    both: pd.DataFrame, history: pd.DataFrame, withdrawn: dict[int, tuple[str, int]]
) -> pd.DataFrame:
    """Quarantine records (with ``timestamp`` and ``withdrawn``) of stored readings found to be glitches now
    that a reading of the batch ended their burst, or that the batch sent again and were found glitches."""
    rows = np.array(sorted(withdrawn), dtype=np.intp)
    columns = [withdrawn[int(r)][0] for r in rows]
    ended = both["timestamp"].iloc[[withdrawn[int(r)][1] for r in rows]]
    stamps = both["timestamp"].iloc[rows]
    machines = both["machine_id"].iloc[rows].to_numpy()
    stored = history[history["machine_id"].isin(set(machines))].set_index(["machine_id", "timestamp"])
    values = [
        stored[c].get((m, t), both[c].iloc[r])
        for c, m, t, r in zip(columns, machines, stamps, rows, strict=True)
    ]
    return pd.DataFrame(
        {
            "table": "telemetry",
            "file": "(stored history)",
            "row": np.full(len(rows), -1, dtype=np.int64),
            "machine_id": machines,
            "column": columns,
            "code": "sensor_glitch",
            "reason": [
                f"{c} {GLITCH_REASON}: stored before the burst's end was seen, withdrawn from the stored "
                f"history when this batch's reading at {pd.Timestamp(e):%Y-%m-%d %H:%M} UTC ended it"
                for c, e in zip(columns, ended, strict=True)
            ],
            "value": values,
            "fix": REASON_CODES["sensor_glitch"],
            "timestamp": stamps.array,
            "withdrawn": True,
        }
    )


def _history_and_batch(
    history: pd.DataFrame, tel: pd.DataFrame, sensors: list[str], positions: np.ndarray | None = None
) -> pd.DataFrame:
    """Stored readings (not also in the batch) and the batch's, sorted by machine and time; ``_batch_row`` is
    the batch row's position (``positions``, default 0..n-1; -1 for history), ``_stored`` marks the batch
    readings the store already holds (a batch sent again in part), which carry the stored values."""
    keys = pd.MultiIndex.from_frame(tel[["machine_id", "timestamp"]])
    stored_keys = pd.MultiIndex.from_frame(history[["machine_id", "timestamp"]])
    again = keys.isin(stored_keys)
    batch = tel[["machine_id", "timestamp", *sensors]].assign(
        _batch_row=np.arange(len(tel)) if positions is None else positions, _stored=again
    )
    if again.any():  # the store keeps its reading (another value is refused as a conflict): judge that one
        stored = history.set_index(["machine_id", "timestamp"]).reindex(columns=sensors)
        batch.loc[again, sensors] = stored.loc[keys[again]].to_numpy(dtype=float)
    history = history[~stored_keys.isin(keys)]
    history = history.reindex(columns=["machine_id", "timestamp", *sensors]).assign(
        _batch_row=-1, _stored=False
    )
    both = pd.concat([history, batch], ignore_index=True)
    return both.sort_values(["machine_id", "timestamp"], kind="stable").reset_index(drop=True)


def _apply(
    dataset: Dataset,
    glitches: dict[int, str],
    flags: pd.DataFrame,
    withdrawn: pd.DataFrame,
    judged: set[str],
) -> Dataset:
    """Quarantine the batch rows found glitching (naming their file and row), add the records of the stored
    readings withdrawn, and replace the telemetry flags of the ``judged`` machines (the others, without
    stored history, keep the loader's)."""
    tel = dataset.telemetry
    sensors = set(dataset.sensor_columns)
    loaded = dataset.sensor_flags
    other_flags = loaded[~loaded["column"].isin(sensors) | ~loaded["machine_id"].isin(judged)]
    all_flags = pd.concat([f for f in (other_flags, flags) if len(f)] or [flags], ignore_index=True)
    all_flags = all_flags.sort_values(["machine_id", "column", "since"]).reset_index(drop=True)
    quarantine = dataset.quarantine
    if len(withdrawn):
        parts = [quarantine.assign(withdrawn=False)] if len(quarantine) else []
        quarantine = pd.concat([*parts, withdrawn], ignore_index=True)
    if not glitches:
        return dataclasses.replace(dataset, sensor_flags=all_flags, quarantine=quarantine)
    rows = np.array(sorted(glitches))
    bad = tel.iloc[rows]
    where = _source_rows(dataset.root, bad)
    columns = [glitches[int(r)] for r in rows]
    records = pd.DataFrame(
        {
            "table": "telemetry",
            "file": where["file"].to_numpy(),
            "row": where["row"].to_numpy(dtype=np.int64),
            "machine_id": bad["machine_id"].to_numpy(),
            "column": columns,
            "code": "sensor_glitch",
            "reason": [f"{c} {GLITCH_REASON}" for c in columns],
            "value": [bad[c].iloc[i] for i, c in enumerate(columns)],
            "fix": REASON_CODES["sensor_glitch"],
        }
    )[QUARANTINE_COLUMNS]
    counts = {t: dict(c) for t, c in dataset.counts.items()}
    counts["telemetry"]["rows_used"] -= len(rows)
    counts["telemetry"]["rows_quarantined"] += len(rows)
    return dataclasses.replace(
        dataset,
        telemetry=tel.drop(index=tel.index[rows]).reset_index(drop=True),
        quarantine=pd.concat([quarantine, records], ignore_index=True),
        counts=counts,
        sensor_flags=all_flags,
    )


def _source_rows(root: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The file and 0-based row each (machine_id, timestamp) came from (the first one, as the loader keeps)."""
    found = []
    for path in table_files(root, "telemetry"):
        try:
            frame = (
                pd.read_csv(path, usecols=["machine_id", "timestamp"], dtype={"machine_id": str})
                if path.suffix == ".csv"
                else pq.read_table(path, columns=["machine_id", "timestamp"]).to_pandas()
            )
        except Exception:  # unreadable files were quarantined by the loader; they hold none of these rows
            continue
        stamps = pd.to_datetime(frame["timestamp"], errors="coerce", utc=True, format="mixed")
        found.append(
            pd.DataFrame(
                {
                    "machine_id": id_strings(frame["machine_id"]),
                    "timestamp": stamps.astype("datetime64[us, UTC]"),
                    "file": str(path.relative_to(root)),
                    "row": np.arange(len(frame)),
                }
            )
        )
    if not found:
        return pd.DataFrame({"file": [""] * len(rows), "row": [-1] * len(rows)})
    index = pd.concat(found, ignore_index=True).drop_duplicates(["machine_id", "timestamp"])
    keys = rows[["machine_id", "timestamp"]].astype({"timestamp": "datetime64[us, UTC]"})
    merged = keys.merge(index, on=["machine_id", "timestamp"], how="left")
    return merged.fillna({"file": "", "row": -1})


def reports_json(reports: Iterable[BatchReport]) -> str:
    """The reports as a JSON array (for an artifact or a log line)."""
    return json.dumps([r.to_dict() for r in reports], indent=2, default=str)
