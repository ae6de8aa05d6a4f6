"""Read a dataset in the equipment data contract v1 and validate it, row by row.

A dataset is a folder holding any of ``machines``, ``telemetry``, ``waveforms`` and ``events``; each table is
``<name>.parquet``, ``<name>.csv`` (not waveforms) or a folder ``<name>/`` of such files. Other files
(``truth.parquet``, ``labels.parquet``, ``inbox/`` ...) are not contract tables and are ignored. Nothing is ever
written into the dataset folder.

Every row read is either used or quarantined with its reason, so for each table
``rows_in == rows_used + rows_quarantined`` (see ``Dataset.counts``). Cell-level repairs that keep a row
(a sensor reading that is not a number becomes NaN) are listed in ``Dataset.notes``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import InputError

CONTRACT_VERSION = "v1"
TABLES = ("machines", "telemetry", "waveforms", "events")
KEYS = {
    "machines": ("machine_id",),
    "telemetry": ("machine_id", "timestamp"),
    "waveforms": ("machine_id", "timestamp", "channel", "sample_rate_hz", "values"),
    "events": ("machine_id", "timestamp", "kind"),
}
EVENT_KINDS = ("failure", "maintenance")
QUARANTINE_COLUMNS = ["table", "file", "row", "machine_id", "column", "reason", "value"]
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


class ContractError(InputError):
    """The dataset cannot be used at all; the message names the file, the column and the fix."""


@dataclass
class Waveforms:
    """Vibration snapshots: one metadata row per snapshot and channel, samples in one flat float32 array."""

    meta: pd.DataFrame  # machine_id, timestamp, channel, sample_rate_hz, speed_rpm, offset, n_samples
    samples: np.ndarray  # float32, all snapshots concatenated; meta.offset/n_samples index into it

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Stack the snapshots of ``rows`` (positions in meta, all of one length) into a 2-D float32 array."""
        n = int(self.meta["n_samples"].iloc[rows[0]])
        offsets = self.meta["offset"].to_numpy()[rows]
        return self.samples[offsets[:, None] + np.arange(n)]

    @classmethod
    def empty(cls) -> Waveforms:
        meta = pd.DataFrame(
            {
                "machine_id": pd.Series(dtype=object),
                "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
                "channel": pd.Series(dtype=object),
                "sample_rate_hz": pd.Series(dtype=float),
                "speed_rpm": pd.Series(dtype=float),
                "offset": pd.Series(dtype=np.int64),
                "n_samples": pd.Series(dtype=np.int64),
            }
        )
        return cls(meta, np.zeros(0, np.float32))


@dataclass
class Dataset:
    """A validated dataset: the usable rows of each table, the quarantined ones, and the counts."""

    root: Path
    machines: pd.DataFrame
    telemetry: pd.DataFrame
    waveforms: Waveforms
    events: pd.DataFrame
    quarantine: pd.DataFrame
    notes: pd.DataFrame
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    contract_version: str = CONTRACT_VERSION

    @property
    def machine_ids(self) -> list[str]:
        return sorted(self.machines["machine_id"])

    @property
    def sensor_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c not in ("machine_id", "timestamp")]

    def latest_reading(self) -> pd.Series:
        """Timestamp of each machine's latest telemetry row or snapshot."""
        stamps = [
            self.telemetry[["machine_id", "timestamp"]],
            self.waveforms.meta[["machine_id", "timestamp"]],
        ]
        return pd.concat(stamps).groupby("machine_id")["timestamp"].max()


class _Collector:
    """Gathers quarantine records and notes while the tables are read."""

    def __init__(self) -> None:
        self.records: list[pd.DataFrame] = []
        self.notes: list[dict] = []

    def reject(self, table: str, file: str, frame: pd.DataFrame, mask: np.ndarray, column: str, reason: str):
        """Quarantine the rows of ``frame`` where ``mask`` holds; return the frame without them."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return frame
        bad = frame.loc[mask]
        value = bad[column].astype(str).str.slice(0, 80) if column in bad else ""
        self.records.append(
            pd.DataFrame(
                {
                    "table": table,
                    "file": file,
                    "row": bad["_row"].to_numpy(),
                    "machine_id": bad["machine_id"].astype(str) if "machine_id" in bad else "",
                    "column": column,
                    "reason": reason,
                    "value": value,
                }
            )
        )
        return frame.loc[~mask]

    def reject_all(self, table: str, file: str, frame: pd.DataFrame, column: str, reason: str) -> None:
        """Quarantine every row of a file (a problem of the whole file, such as a missing column)."""
        self.reject(table, file, frame, np.ones(len(frame), bool), column, reason)

    def unreadable(self, table: str, file: str, exc: Exception) -> None:
        """Record a whole file that cannot be read (row -1: its rows are unknown)."""
        reason = f"file cannot be read ({type(exc).__name__}: {str(exc)[:160]}); fix: re-export the file"
        self.records.append(
            pd.DataFrame(
                [
                    {
                        "table": table,
                        "file": file,
                        "row": -1,
                        "machine_id": "",
                        "column": "",
                        "reason": reason,
                        "value": "",
                    }
                ]
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.records:
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        out = pd.concat(self.records, ignore_index=True)
        out["row"] = out["row"].astype(np.int64)
        return out[QUARANTINE_COLUMNS]


def table_files(root: Path, name: str) -> list[Path]:
    """The files that hold contract table ``name`` in dataset ``root`` (sorted; empty if absent)."""
    allowed = (".parquet",) if name == "waveforms" else (".parquet", ".csv")
    files = [root / f"{name}{ext}" for ext in allowed if (root / f"{name}{ext}").is_file()]
    folder = root / name
    if folder.is_dir():
        files += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in allowed)
    return files


def _read_tabular(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"machine_id": str}, keep_default_na=True)
    return pq.read_table(path).to_pandas()


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_keys(table: str, file: str, frame: pd.DataFrame, q: _Collector) -> pd.DataFrame:
    """Quarantine rows whose machine_id or timestamp cannot be used; parse timestamps to UTC."""
    ids = frame["machine_id"]
    missing = ids.isna() | (ids.astype(str).str.strip() == "")
    frame = q.reject(table, file, frame, missing.to_numpy(), "machine_id", "machine_id is empty")
    frame = frame.assign(machine_id=id_strings(frame["machine_id"]))
    bad_id = frame["machine_id"].str.contains(_BAD_ID).to_numpy()
    frame = q.reject(
        table, file, frame, bad_id, "machine_id", "machine_id contains a path separator or control character"
    )
    if "timestamp" in frame and pd.api.types.is_numeric_dtype(frame["timestamp"]):
        reason = (
            "timestamp is a number, not a timestamp (epoch numbers are ambiguous: s, ms or ns); "
            "fix: write ISO 8601 text or a Parquet timestamp"
        )
        frame = q.reject(table, file, frame, np.ones(len(frame), bool), "timestamp", reason)
    if "timestamp" in frame:
        stamps = _to_utc(frame["timestamp"])
        frame = frame.assign(timestamp=stamps)
        frame = q.reject(
            table,
            file,
            frame,
            stamps.isna().to_numpy(),
            "timestamp",
            "timestamp is missing or not a timestamp",
        )
    return frame


def id_strings(ids: pd.Series) -> pd.Series:
    """Machine ids as text; integer-valued numbers read as floats (7.0) are spelled as integers (7)."""
    if pd.api.types.is_float_dtype(ids) and np.all(np.mod(ids.to_numpy(dtype=float), 1) == 0):
        return ids.astype("int64").astype(str)
    if pd.api.types.is_integer_dtype(ids):
        return ids.astype("int64").astype(str)
    return ids.astype(str)


def _to_utc(values: pd.Series) -> pd.Series:
    """Parse timestamps (naive ones are UTC) to datetime64[us, UTC]; unparseable values become NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values):
        out = values.dt.tz_localize("UTC")
    else:
        out = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return out.astype("datetime64[us, UTC]")


def _missing_columns(table: str, frame: pd.DataFrame) -> list[str]:
    return [c for c in KEYS[table] if c not in frame.columns]


def _missing_reason(column: str, present: list[str]) -> str:
    """Why a file lacks a required column, with the likely fix for a CSV in another dialect."""
    if len(present) == 1 and any(sep in present[0] for sep in ";\t|"):
        return (
            f"required column '{column}' is missing: the header '{present[0][:60]}' is one column, so the file "
            "is not comma-separated; fix: export it with commas (and a decimal point)"
        )
    return f"required column '{column}' is missing (columns present: {', '.join(present)})"


def _read_table(root: Path, table: str, q: _Collector, counts: dict) -> list[pd.DataFrame]:
    """Read every file of a tabular contract table; quarantine what cannot be read or keyed."""
    frames = []
    for path in table_files(root, table):
        file = _rel(root, path)
        try:
            frame = _read_tabular(path)
        except Exception as exc:  # a truncated or foreign file must not stop the other files
            q.unreadable(table, file, exc)
            continue
        counts[table]["rows_in"] += len(frame)
        present = [str(c) for c in frame.columns]
        frame = frame.assign(_row=np.arange(len(frame)), _file=file)
        if missing := _missing_columns(table, frame):
            frame = frame.assign(machine_id=frame.get("machine_id", ""))
            q.reject_all(table, file, frame, missing[0], _missing_reason(missing[0], present))
            continue
        frames.append(_check_keys(table, file, frame, q))
    return frames


def _clean_machines(frames: list[pd.DataFrame], q: _Collector) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({"machine_id": pd.Series(dtype=object)})
    machines = pd.concat(frames, ignore_index=True)
    dup = machines.duplicated("machine_id", keep="first").to_numpy()
    machines = q.reject(
        "machines", "", machines, dup, "machine_id", "machine_id listed twice; the first row is kept"
    )
    if "installed_at" in machines:
        machines["installed_at"] = _to_utc(machines["installed_at"])
    for col in (
        "rated_speed_rpm",
        "bearing_n_balls",
        "bearing_ball_diameter_mm",
        "bearing_pitch_diameter_mm",
        "bearing_contact_angle_deg",
    ):
        if col in machines:
            machines[col] = pd.to_numeric(machines[col], errors="coerce")
    return machines


def _clean_telemetry(frames: list[pd.DataFrame], q: _Collector, notes: list[dict]) -> pd.DataFrame:
    """Coerce sensor columns to float; quarantine duplicate readings and rows with no sensor value."""
    if not frames:
        return pd.DataFrame(
            {"machine_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[us, UTC]")}
        )
    tel = pd.concat(frames, ignore_index=True)
    sensors = [c for c in tel.columns if c not in ("machine_id", "timestamp", "_row", "_file")]
    for col in sensors:
        raw = tel[col]
        numeric = pd.to_numeric(raw, errors="coerce").astype(float)
        numeric[~np.isfinite(numeric.to_numpy())] = np.nan
        repaired = numeric.isna() & raw.notna()
        if repaired.any():
            first = int(np.flatnonzero(repaired.to_numpy())[0])
            notes.append(
                {
                    "table": "telemetry",
                    "file": tel["_file"].iloc[first],
                    "column": col,
                    "cells": int(repaired.sum()),
                    "first_row": int(tel["_row"].iloc[first]),
                    "note": f"{int(repaired.sum())} values are not finite numbers (first: {raw.iloc[first]!r}); set to NaN",
                }
            )
        tel[col] = numeric
    if sensors:
        empty = tel[sensors].isna().all(axis=1).to_numpy()
        tel = q.reject("telemetry", "", tel, empty, sensors[0], "no sensor value in the row")
    tel = tel.sort_values(["machine_id", "timestamp", "_file", "_row"], kind="stable")
    dup = tel.duplicated(["machine_id", "timestamp"], keep="first").to_numpy()
    tel = _reject_per_file(
        q, "telemetry", tel, dup, "timestamp", "duplicate reading (same machine and timestamp)"
    )
    return tel.drop(columns=["_row", "_file"]).reset_index(drop=True)


def _reject_per_file(
    q: _Collector, table: str, frame: pd.DataFrame, mask: np.ndarray, column: str, reason: str
):
    """Quarantine rows of a frame made of several files, naming each row's own file."""
    mask = np.asarray(mask, dtype=bool)
    for file in frame.loc[mask, "_file"].unique():
        q.reject(table, file, frame, mask & (frame["_file"] == file).to_numpy(), column, reason)
    return frame.loc[~mask]


def _clean_events(frames: list[pd.DataFrame], q: _Collector) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(
            {
                "machine_id": pd.Series(dtype=object),
                "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
                "kind": pd.Series(dtype=object),
                "component": pd.Series(dtype=object),
            }
        )
    events = pd.concat(frames, ignore_index=True)
    events["kind"] = events["kind"].astype(str).str.strip().str.lower()
    unknown = ~events["kind"].isin(EVENT_KINDS).to_numpy()
    events = _reject_per_file(q, "events", events, unknown, "kind", "kind must be 'failure' or 'maintenance'")
    if "component" not in events:
        events["component"] = None
    dup = events.duplicated(["machine_id", "timestamp", "kind"], keep="first").to_numpy()
    events = _reject_per_file(q, "events", events, dup, "timestamp", "duplicate event")
    return (
        events.drop(columns=["_row", "_file"]).sort_values(["machine_id", "timestamp"]).reset_index(drop=True)
    )


def _read_waveform_file(
    root: Path, path: Path, q: _Collector, counts: dict
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Read one waveform file without per-snapshot Python objects; quarantine unusable snapshots."""
    file = _rel(root, path)
    try:
        table = pq.read_table(path)
    except Exception as exc:
        q.unreadable("waveforms", file, exc)
        return None
    counts["waveforms"]["rows_in"] += table.num_rows
    meta = table.drop_columns(["values"]).to_pandas() if "values" in table.column_names else table.to_pandas()
    meta = meta.assign(_row=np.arange(len(meta)), _file=file)
    if missing := _missing_columns(
        "waveforms", meta.assign(values=0) if "values" in table.column_names else meta
    ):
        meta = meta.assign(machine_id=meta.get("machine_id", ""))
        q.reject_all("waveforms", file, meta, missing[0], _missing_reason(missing[0], table.column_names))
        return None
    values = table.column("values").combine_chunks()
    if (
        not pa.types.is_list(values.type)
        and not pa.types.is_large_list(values.type)
        and not pa.types.is_fixed_size_list(values.type)
    ):
        q.reject_all(
            "waveforms", file, meta, "values", f"values must be a list of float32, found {values.type}"
        )
        return None
    value_type = values.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        reason = f"values must be a list of float32 numbers, found a list of {value_type}"
        q.reject_all("waveforms", file, meta, "values", reason)
        return None
    if pa.types.is_fixed_size_list(values.type):
        values = values.cast(pa.list_(values.type.value_type))
    offsets = values.offsets.to_numpy().astype(np.int64)
    flat = values.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    n_samples = np.diff(offsets)
    not_finite = np.concatenate([[0], np.cumsum(~np.isfinite(flat))])
    bad_values = (not_finite[offsets[1:]] - not_finite[offsets[:-1]]) > 0
    meta = meta.assign(offset=offsets[:-1] - offsets[0], n_samples=n_samples)
    flat = flat[offsets[0] : offsets[-1]]
    meta = _check_keys("waveforms", file, meta, q)
    keep = meta.index.to_numpy()
    meta = q.reject(
        "waveforms",
        file,
        meta,
        values.is_null().to_numpy(zero_copy_only=False)[keep] | (n_samples[keep] == 0),
        "values",
        "snapshot has no samples",
    )
    meta = q.reject(
        "waveforms",
        file,
        meta,
        bad_values[meta.index.to_numpy()],
        "values",
        "snapshot contains NaN or infinite samples",
    )
    rate = pd.to_numeric(meta["sample_rate_hz"], errors="coerce")
    meta = q.reject(
        "waveforms",
        file,
        meta.assign(sample_rate_hz=rate),
        ~(np.isfinite(rate) & (rate > 0)).to_numpy(),
        "sample_rate_hz",
        "sample_rate_hz must be a positive, finite number",
    )
    meta = q.reject("waveforms", file, meta, meta["channel"].isna().to_numpy(), "channel", "channel is empty")
    speed = pd.to_numeric(meta["speed_rpm"], errors="coerce") if "speed_rpm" in meta else np.nan
    meta = meta.assign(channel=meta["channel"].astype(str), speed_rpm=speed)
    return meta, flat


def _read_waveforms(root: Path, q: _Collector, counts: dict) -> Waveforms:
    metas, flats, base = [], [], 0
    for path in table_files(root, "waveforms"):
        read = _read_waveform_file(root, path, q, counts)
        if read is None:
            continue
        meta, flat = read
        metas.append(meta.assign(offset=meta["offset"] + base))
        flats.append(flat)
        base += len(flat)
    if not metas:
        return Waveforms.empty()
    meta = pd.concat(metas, ignore_index=True).sort_values(
        ["machine_id", "timestamp", "channel", "_file", "_row"]
    )
    dup = meta.duplicated(["machine_id", "timestamp", "channel"], keep="first").to_numpy()
    meta = _reject_per_file(
        q,
        "waveforms",
        meta,
        dup,
        "timestamp",
        "second snapshot for the same machine, channel and timestamp; the first is kept",
    )
    columns = ["machine_id", "timestamp", "channel", "sample_rate_hz", "speed_rpm", "offset", "n_samples"]
    return Waveforms(meta[columns].reset_index(drop=True), np.concatenate(flats))


def _known_machines(machines: pd.DataFrame, *tables: Iterable[str]) -> pd.DataFrame:
    """Add machines that appear in the data but not in ``machines``: they are known by their id alone."""
    seen = set().union(*map(set, tables))
    extra = sorted(seen - set(machines["machine_id"]))
    if extra:
        machines = pd.concat([machines, pd.DataFrame({"machine_id": extra})], ignore_index=True)
    return machines.drop(columns=[c for c in ("_row", "_file") if c in machines]).reset_index(drop=True)


def load_dataset(root: str | Path) -> Dataset:
    """Read and validate the dataset folder ``root``; raise ContractError when nothing in it is usable."""
    root = Path(root)
    if not root.is_dir():
        raise ContractError(
            f"{root}: not a folder; fix: give the path of a dataset folder (equipment data contract v1)"
        )
    present = [t for t in ("telemetry", "waveforms") if table_files(root, t)]
    if not present:
        raise ContractError(
            f"{root}: no telemetry or waveforms found (looked for telemetry/, telemetry.parquet, telemetry.csv, "
            "waveforms/, waveforms.parquet); fix: a dataset needs at least one of them (see docs/data-contract.md)"
        )
    q, notes = _Collector(), list[dict]()
    counts = {t: {"rows_in": 0, "rows_used": 0, "rows_quarantined": 0} for t in TABLES}
    machines = _clean_machines(_read_table(root, "machines", q, counts), q)
    telemetry = _clean_telemetry(_read_table(root, "telemetry", q, counts), q, notes)
    waveforms = _read_waveforms(root, q, counts)
    events = _clean_events(_read_table(root, "events", q, counts), q)
    machines = _known_machines(
        machines, telemetry["machine_id"], waveforms.meta["machine_id"], events["machine_id"]
    )
    quarantine = q.frame()
    used = {"telemetry": len(telemetry), "waveforms": len(waveforms.meta), "events": len(events)}
    _balance(counts, used, quarantine, machines)
    if telemetry.empty and waveforms.meta.empty:
        raise ContractError(_nothing_usable(root, quarantine))
    notes_frame = pd.DataFrame(notes, columns=["table", "file", "column", "cells", "first_row", "note"])
    return Dataset(root, machines, telemetry, waveforms, events, quarantine, notes_frame, counts)


def _balance(counts: dict, used: dict, quarantine: pd.DataFrame, machines: pd.DataFrame) -> None:
    """Fill rows_used/rows_quarantined and check rows_in == used + quarantined for every table."""
    rows = quarantine[quarantine["row"] >= 0]
    for table in TABLES:
        c = counts[table]
        c["rows_quarantined"] = int((rows["table"] == table).sum())
        c["rows_used"] = c["rows_in"] - c["rows_quarantined"] if table == "machines" else used[table]
        if c["rows_in"] != c["rows_used"] + c["rows_quarantined"]:
            raise AssertionError(
                f"row balance broken for {table}: {c}"
            )  # a bug in this module, never bad input
    counts["machines"]["known_by_id_only"] = len(machines) - counts["machines"]["rows_used"]


def _nothing_usable(root: Path, quarantine: pd.DataFrame) -> str:
    if quarantine.empty:
        return f"{root}: telemetry and waveforms hold no rows; fix: add data (see docs/data-contract.md)"
    first = quarantine.iloc[0]
    where = f"{first['file']}" + (f" row {first['row']}" if first["row"] >= 0 else "")
    more = f" (and {len(quarantine) - 1} more quarantined rows)" if len(quarantine) > 1 else ""
    return f"{root}: no usable telemetry or waveform rows; first problem: {where}, column '{first['column']}': {first['reason']}{more}"


def combine(history: Dataset, batch: Dataset) -> Dataset:
    """One dataset of history plus a new batch; a reading present in both is taken from the batch."""
    # per machine, the batch's attributes win where it has them; a machine the batch knows by id only keeps
    # the history's site, type, speed and bearing geometry
    machines = pd.concat([batch.machines, history.machines]).groupby("machine_id", sort=False).first()
    machines = machines.reset_index()
    telemetry = pd.concat([batch.telemetry, history.telemetry], ignore_index=True)
    telemetry = telemetry.drop_duplicates(["machine_id", "timestamp"], keep="first")
    meta_b, meta_h = (
        batch.waveforms.meta,
        history.waveforms.meta.assign(offset=history.waveforms.meta["offset"] + len(batch.waveforms.samples)),
    )
    meta = pd.concat([meta_b, meta_h], ignore_index=True).drop_duplicates(
        ["machine_id", "timestamp", "channel"]
    )
    events = pd.concat([batch.events, history.events], ignore_index=True)
    events = events.drop_duplicates(["machine_id", "timestamp", "kind"])
    return Dataset(
        root=batch.root,
        machines=machines.reset_index(drop=True),
        telemetry=telemetry.sort_values(["machine_id", "timestamp"]).reset_index(drop=True),
        waveforms=Waveforms(
            meta.sort_values(["machine_id", "timestamp", "channel"]).reset_index(drop=True),
            np.concatenate([batch.waveforms.samples, history.waveforms.samples]),
        ),
        events=events.sort_values(["machine_id", "timestamp"]).reset_index(drop=True),
        quarantine=pd.concat([batch.quarantine, history.quarantine], ignore_index=True),
        notes=pd.concat([batch.notes, history.notes], ignore_index=True),
        counts=batch.counts,
    )


def fingerprint(root: str | Path) -> str:
    """SHA-256 over the names and bytes of the dataset's contract files: the same data gives the same print."""

    root = Path(root)
    digest = hashlib.sha256()
    for table in TABLES:
        for path in table_files(root, table):
            digest.update(_rel(root, path).encode())
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
    return digest.hexdigest()
