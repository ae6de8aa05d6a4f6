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

import fnmatch
import hashlib
import os
import re
import textwrap
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.checks import (
    REASON_CODES,
    PlausibilityConfig,
    find_bursts,
    find_sensor_flags,
    limit_violations,
    sensor_flag_frame,
    snapshot_shape_problems,
    spike_flags,
)
from features.errors import InputError
from features.iso import DEFAULT_CLASS, class_names
from features.telemetry import latest_per_machine

CONTRACT_VERSION = "v1"
TABLES = ("machines", "telemetry", "waveforms", "events")
KEYS = {
    "machines": ("machine_id",),
    "telemetry": ("machine_id", "timestamp"),
    "waveforms": ("machine_id", "timestamp", "channel", "sample_rate_hz", "values"),
    "events": ("machine_id", "timestamp", "kind"),
}
EVENT_KINDS = ("failure", "maintenance")
QUARANTINE_COLUMNS = ["table", "file", "row", "machine_id", "column", "code", "reason", "value", "fix"]
NOTE_COLUMNS = ["table", "file", "column", "code", "cells", "first_row", "note"]
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


class ContractError(InputError):
    """The dataset cannot be used at all; the message names the file, the column and the fix."""

    def __init__(self, message: str, code: str = "unusable_dataset") -> None:
        super().__init__(message)
        self.code = code  # not_a_folder, no_tables, empty_dataset or unusable_dataset


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
    # stuck or dead sensors, one row per run: machine_id, column, flag, since, until, readings, active, detail
    sensor_flags: pd.DataFrame = field(default_factory=sensor_flag_frame)

    @property
    def machine_ids(self) -> list[str]:
        return sorted(self.machines["machine_id"])

    @property
    def sensor_columns(self) -> list[str]:
        return [c for c in self.telemetry.columns if c not in ("machine_id", "timestamp")]

    def latest_reading(self) -> pd.Series:
        """Timestamp of each machine's latest telemetry row or snapshot."""
        stamps = [
            latest_per_machine(self.telemetry),
            self.waveforms.meta.groupby("machine_id")["timestamp"].max(),
        ]
        return (
            pd.concat([s for s in stamps if len(s)] or stamps)
            .groupby(level=0)
            .max()
            .rename_axis("machine_id")
        )


class _Collector:
    """Gathers quarantine records and notes while the tables are read."""

    def __init__(self) -> None:
        self.records: list[pd.DataFrame] = []
        self.notes: list[dict] = []

    def reject(
        self,
        table: str,
        file: str,
        frame: pd.DataFrame,
        mask: np.ndarray,
        column: str,
        reason: str,
        code: str,
    ):
        """Quarantine the rows of ``frame`` where ``mask`` holds (reason code ``code``); return the rest."""
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
                    "code": code,
                    "reason": bad["_reason"].to_numpy() if not reason and "_reason" in bad else reason,
                    "value": value,
                    "fix": REASON_CODES[code],
                }
            )
        )
        return frame.loc[~mask]

    def reject_all(
        self, table: str, file: str, frame: pd.DataFrame, column: str, reason: str, code: str
    ) -> None:
        """Quarantine every row of a file (a problem of the whole file, such as a missing column)."""
        self.reject(table, file, frame, np.ones(len(frame), bool), column, reason, code)

    def unreadable(self, table: str, file: str, exc: Exception) -> None:
        """Record a whole file that cannot be read (row -1: its rows are unknown)."""
        detail = textwrap.shorten(str(exc), 160, placeholder=" ...")  # whole words, one line
        reason = f"file cannot be read ({type(exc).__name__}: {detail}); fix: re-export the file"
        self.records.append(
            pd.DataFrame(
                [
                    {
                        "table": table,
                        "file": file,
                        "row": -1,
                        "machine_id": "",
                        "column": "",
                        "code": "unreadable_file",
                        "reason": reason,
                        "value": "",
                        "fix": REASON_CODES["unreadable_file"],
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
    """The files that hold contract table ``name`` in dataset ``root`` (sorted; empty if absent): ``<name>.parquet``
    or ``<name>.csv`` (not for waveforms), and the Parquet and CSV files of folder ``<name>/``; names in any case
    (``.PARQUET``)."""
    return [path for path in _candidate_files(root, name) if _is_table_file(root, name, path)]


def unread_files(root: Path, name: str) -> list[Path]:
    """Files named as table ``name`` (``telemetry.csv.gz``, ``machines.old.csv``) or inside its folder that are not
    read. Names starting with '.' or '_' (``.DS_Store``, Spark's ``_SUCCESS``) are not data and not listed."""
    return [path for path in _candidate_files(root, name) if not _is_table_file(root, name, path)]


def _is_table_file(root: Path, name: str, path: Path) -> bool:
    if path.parent == root:  # beside the folders: exactly <name>.parquet or <name>.csv
        return path.name.lower() in {f"{name}{suffix}" for suffix in _allowed(name)}
    return path.suffix.lower() in _allowed(name)


def _allowed(name: str) -> tuple[str, ...]:
    return (".parquet",) if name == "waveforms" else (".parquet", ".csv")


def _candidate_files(root: Path, name: str) -> list[Path]:
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().startswith(f"{name}."))
    folder = root / name
    if folder.is_dir():
        files += sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
        )
    return files


def _unread_note(root: Path, name: str, path: Path) -> dict:
    kinds = "Parquet" if name == "waveforms" else "Parquet or CSV"
    if path.parent == root and path.suffix.lower() in _allowed(
        name
    ):  # machines.old.csv: a copy, or a mistake
        what = f"only {name}.parquet" + ("" if name == "waveforms" else f" or {name}.csv") + " is the table"
        fix = f"rename it {name}.parquet, or move it into {name}/ if it holds more rows"
    else:
        what = f"not a {kinds} file"
        compressed = path.suffix.lower() in (".gz", ".bz2", ".zip", ".xz", ".zst")
        fix = "unpack it" if compressed else f"write it as {kinds}"
    return _file_note(name, _rel(root, path), "unread_file", f"not read: {what}; fix: {fix}")


def _ends_with_line_break(path: Path) -> bool:
    """Whether the file's last byte is a line break: a CSV cut short while it was copied ends mid-row."""
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) in (b"\n", b"\r")


def _file_note(table: str, file: str, code: str, note: str) -> dict:
    """A note about a whole file (no cell, no row)."""
    return {
        "table": table,
        "file": file,
        "column": "",
        "code": code,
        "cells": 0,
        "first_row": -1,
        "note": note,
    }


def _read_tabular(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype={"machine_id": str}, keep_default_na=True)
    return pq.read_table(path).to_pandas()


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_keys(table: str, file: str, frame: pd.DataFrame, q: _Collector) -> pd.DataFrame:
    """Quarantine rows whose machine_id or timestamp cannot be used; parse timestamps to UTC."""
    codes, uniques = pd.factorize(frame["machine_id"])  # each distinct id is checked once (-1: missing)
    text = id_strings(pd.Series(uniques, dtype=object if uniques.dtype == object else None))
    empty = np.r_[(text.str.strip() == "").to_numpy(), True][codes]
    frame = q.reject(table, file, frame, empty, "machine_id", "machine_id is empty", "empty_machine_id")
    codes = codes[~empty]
    frame = frame.assign(machine_id=text.to_numpy()[codes])
    bad_id = text.str.contains(_BAD_ID).to_numpy()[codes]
    reason = "machine_id contains a path separator or control character"
    frame = q.reject(table, file, frame, bad_id, "machine_id", reason, "bad_machine_id")
    if "timestamp" in frame and pd.api.types.is_numeric_dtype(frame["timestamp"]):
        reason = (
            "timestamp is a number, not a timestamp (epoch numbers are ambiguous: s, ms or ns); "
            "fix: write ISO 8601 text or a Parquet timestamp"
        )
        frame = q.reject(table, file, frame, np.ones(len(frame), bool), "timestamp", reason, "wrong_type")
    if "timestamp" in frame:
        stamps = _to_utc(frame["timestamp"])
        unread = stamps.isna().to_numpy()
        text = frame["timestamp"].astype(str).where(unread, "")  # only the unread cells are looked at
        ambiguous = unread & text.str.contains(_NUMERIC_DATE, regex=True).to_numpy()
        reason = (
            "timestamp is not ISO 8601: in a date such as 01.03.2025 or 03/01/2025 the order of day and month "
            "is ambiguous, so it is not guessed; fix: write YYYY-MM-DD hh:mm:ss (ISO 8601) or a Parquet timestamp"
        )
        frame = q.reject(
            table, file, frame.assign(_stamp=stamps), ambiguous, "timestamp", reason, "bad_timestamp"
        )
        epoch = (unread & text.str.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?\s*").fillna(False).to_numpy())[
            ~ambiguous
        ]
        reason = (
            "timestamp is a number, not a timestamp (epoch numbers are ambiguous: s, ms or ns); "
            "fix: write ISO 8601 text or a Parquet timestamp"
        )
        frame = q.reject(table, file, frame, epoch, "timestamp", reason, "wrong_type")
        unread, text = unread[~ambiguous][~epoch], text[~ambiguous][~epoch]
        zoned = unread & text.str.contains(_ZONE_WORD, regex=True).to_numpy()
        reason = (
            "timestamp names its time zone by an abbreviation (CET, EST ...), which is ambiguous and not read; "
            "fix: write the offset (2025-03-01T12:00:00+01:00) or UTC"
        )
        frame = q.reject(table, file, frame, zoned, "timestamp", reason, "bad_timestamp")
        stamps = frame.pop("_stamp")
        frame = frame.assign(timestamp=stamps)
        reason = "timestamp is missing or not a timestamp"
        frame = q.reject(table, file, frame, stamps.isna().to_numpy(), "timestamp", reason, "bad_timestamp")
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
        out = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        other = out.isna().to_numpy() & values.notna().to_numpy()
        if (
            other.any()
        ):  # '2025-03-01 12:00 UTC', '... 01:00 PM', '1 March 2025': read; not '01.03.2025' or '... CET'
            text = values[other].astype(str)
            guessed = text.str.contains(_NUMERIC_DATE, regex=True) | text.str.contains(_ZONE_WORD, regex=True)
            other[np.flatnonzero(other)[guessed.to_numpy()]] = False
        if other.any():
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # pandas warns on each form it must guess: these are not guesses
                out[other] = pd.to_datetime(values[other], errors="coerce", utc=True, format="mixed")
    return out.astype("datetime64[us, UTC]")


_NUMERIC_DATE = r"^\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"  # 01.03.2025, 03/01/25: day or month first?
_ZONE_WORD = (  # CET, EST: pandas drops them and reads UTC (month names in capitals are no zone)
    r"\b(?!(?:UTC|GMT|AM|PM|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC|MARCH|APRIL|JUNE|JULY)\b)"
    r"[A-Z]{3,5}\b"
)


def _missing_columns(table: str, frame: pd.DataFrame) -> list[str]:
    return [c for c in KEYS[table] if c not in frame.columns]


def _missing_reason(column: str, present: list[str]) -> tuple[str, str]:
    """Why a file lacks a required column (reason, code), with the likely fix for a CSV in another dialect."""
    if len(present) == 1 and any(sep in present[0] for sep in ";\t|"):
        return (
            f"required column '{column}' is missing: the header '{present[0][:60]}' is one column, so the file "
            "is not comma-separated; fix: export it with commas (and a decimal point)",
            "wrong_delimiter",
        )
    return f"required column '{column}' is missing (columns present: {', '.join(present)})", "missing_column"


def _read_table(root: Path, table: str, q: _Collector, counts: dict) -> list[pd.DataFrame]:
    """Read every file of a tabular contract table; quarantine what cannot be read or keyed."""
    frames = []
    for path in table_files(root, table):
        file = _rel(root, path)
        if (
            path.suffix.lower() == ".csv" and path.stat().st_size == 0
        ):  # an export of no rows: nothing to read
            q.notes.append(
                _file_note(table, file, "empty_file", "the file is empty (0 bytes): read as no rows")
            )
            continue
        try:
            frame = _read_tabular(path)
        except Exception as exc:  # a truncated or foreign file must not stop the other files
            q.unreadable(table, file, exc)
            continue
        counts[table]["rows_in"] += len(frame)
        present = [str(c) for c in frame.columns]
        frame = frame.assign(_row=np.arange(len(frame)), _file=file)
        if path.suffix.lower() == ".csv" and len(frame) and not _ends_with_line_break(path):
            reason = "the file does not end with a line break, so its last row may be cut short"
            frame = q.reject(
                table, file, frame, np.arange(len(frame)) == len(frame) - 1, "", reason, "cut_short_row"
            )
        if missing := _missing_columns(table, frame):
            frame = frame.assign(machine_id=frame.get("machine_id", ""))
            q.reject_all(table, file, frame, missing[0], *_missing_reason(missing[0], present))
            continue
        frames.append(_check_keys(table, file, frame, q))
    return frames


def _clean_machines(frames: list[pd.DataFrame], q: _Collector) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({"machine_id": pd.Series(dtype=object)})
    machines = pd.concat(frames, ignore_index=True)
    dup = machines.duplicated("machine_id", keep="first").to_numpy()
    reason = "machine_id listed twice; the first row is kept"
    machines = _reject_per_file(q, "machines", machines, dup, "machine_id", reason, "duplicate_machine")
    if "installed_at" in machines:
        installed = _to_utc(machines["installed_at"])
        unreadable = installed.isna().to_numpy() & _given(machines["installed_at"])
        if unreadable.any():
            what = (
                "installed_at is not a time (write ISO 8601: 2026-01-31 or 2026-01-31T08:00:00+01:00): read as "
                "missing, so readings before the installation are not caught"
            )
            q.notes.append(_register_note(machines, "installed_at", unreadable, "register_not_a_time", what))
        machines["installed_at"] = installed
    for col in REGISTER_NUMBERS:
        if col in machines:
            numbers = pd.to_numeric(machines[col], errors="coerce")
            unreadable = numbers.isna().to_numpy() & _given(machines[col])
            if unreadable.any():
                what = f"{col} is not a number: read as missing, so {_WITHOUT[col]}"
                q.notes.append(_register_note(machines, col, unreadable, "register_not_a_number", what))
            machines[col] = numbers
    if "vibration_class" in machines:  # 'III', 3, 3.0, 'class 3' -> 'III'; others kept, and said
        classes = class_names(machines["vibration_class"])
        unknown = classes.isna().to_numpy() & _given(machines["vibration_class"])
        if unknown.any():
            what = (
                f"vibration_class is not an ISO 10816-1 class (I-IV or 1-4): judged as class {DEFAULT_CLASS} "
                "for the velocity zone"
            )
            q.notes.append(
                _register_note(machines, "vibration_class", unknown, "unknown_vibration_class", what)
            )
        machines["vibration_class"] = classes.where(~unknown, machines["vibration_class"])
    return machines


REGISTER_NUMBERS = (
    "rated_speed_rpm",
    "bearing_n_balls",
    "bearing_ball_diameter_mm",
    "bearing_pitch_diameter_mm",
    "bearing_contact_angle_deg",
)
_WITHOUT = {
    "rated_speed_rpm": "snapshots without a speed of their own (or in telemetry) get no order or defect features",
    **{
        col: "the bearing defect frequencies (envelope features) of that machine are NaN"
        for col in REGISTER_NUMBERS[1:]
    },
}


def _given(col: pd.Series) -> np.ndarray:
    """Cells that hold something (not missing, not blank text)."""
    return (col.notna() & (col.astype(str).str.strip() != "")).to_numpy(dtype=bool)


def _register_note(machines: pd.DataFrame, column: str, cells: np.ndarray, code: str, what: str) -> dict:
    """A note on machine register cells that were read but cannot be used as given, naming the machines."""
    bad = machines.loc[cells]
    named = ", ".join(
        f"{m} ({str(v)[:20]!r})" for m, v in zip(bad["machine_id"][:3], bad[column][:3], strict=True)
    )
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return {
        "table": "machines",
        "file": str(bad["_file"].iloc[0]) if "_file" in bad else "",
        "column": column,
        "code": code,
        "cells": int(cells.sum()),
        "first_row": int(bad["_row"].iloc[0]) if "_row" in bad else -1,
        "note": f"{what}: machine {named}{more}; fix: correct {column} in the machines table",
    }


@dataclass
class _Context:
    """What the row checks need besides the rows: machines, configuration, the time of loading."""

    machines: pd.DataFrame
    config: PlausibilityConfig
    now: pd.Timestamp
    known: frozenset[str] | None
    notes: list[dict]


_DECIMAL_COMMA = r"^\s*[-+]?\d+,\d+\s*$"


def _sensor_columns(tel: pd.DataFrame, ctx: _Context) -> tuple[pd.DataFrame, list[str], dict]:
    """Coerce sensor columns to float; drop text-only columns; return the cells that were not numbers by kind."""
    sensors = [c for c in tel.columns if c not in ("machine_id", "timestamp", "_row", "_file")]
    kept, problems = [], {}
    for col in sensors:
        raw = tel[col]
        numeric = pd.to_numeric(raw, errors="coerce").astype(float)
        text_only = raw.dtype == object and numeric.notna().sum() == 0 and raw.notna().any()
        if text_only and not raw.astype(str).str.match(_DECIMAL_COMMA).any():
            _note(
                ctx,
                tel,
                col,
                raw.notna().to_numpy(),
                "extra_column",
                "column is text, not a sensor; ignored",
            )
            tel = tel.drop(columns=[col])
            continue
        values = numeric.to_numpy()
        infinite = np.isinf(values)
        text = (numeric.isna() & raw.notna()).to_numpy()
        comma = text & raw.astype(str).str.match(_DECIMAL_COMMA).to_numpy() if text.any() else text
        problems[col] = {"decimal_comma": comma, "wrong_type": text & ~comma, "infinite_value": infinite}
        repaired = text | infinite
        if repaired.any():
            first = int(np.flatnonzero(repaired)[0])
            code = "decimal_comma" if comma.any() else "wrong_type" if text.any() else "infinite_value"
            what = f"{int(repaired.sum())} values are not finite numbers (first: {raw.iloc[first]!r}); set to NaN"
            _note(ctx, tel, col, repaired, code, what)
        values[infinite] = np.nan
        tel[col] = values
        kept.append(col)
    return tel, kept, problems


def _note(ctx: _Context, frame: pd.DataFrame, column: str, cells: np.ndarray, code: str, note: str) -> None:
    first = int(np.flatnonzero(cells)[0])
    ctx.notes.append(
        {
            "table": "telemetry",
            "file": frame["_file"].iloc[first],
            "column": column,
            "code": code,
            "cells": int(cells.sum()),
            "first_row": int(frame["_row"].iloc[first]),
            "note": note,
        }
    )


def _empty_row_code(tel: pd.DataFrame, sensors: list[str], problems: dict) -> pd.Series:
    """Why a row has no sensor value: the kind of its first unusable cell, else nan_value."""
    code = pd.Series("nan_value", index=tel.index, dtype=object)
    for kind in ("infinite_value", "wrong_type", "decimal_comma"):  # later kinds win
        for col in sensors:
            code[problems[col][kind]] = kind
    return code


_EMPTY_REASON = {
    "nan_value": "no sensor value in the row",
    "infinite_value": "no sensor value in the row: the readings are infinite",
    "wrong_type": "no sensor value in the row: the readings are not numbers",
    "decimal_comma": "no sensor value in the row: the readings use a decimal comma ('40,5'); "
    "fix: export with a decimal point",
}


def _clean_telemetry(
    frames: list[pd.DataFrame], q: _Collector, ctx: _Context
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce sensors to float; quarantine empty, duplicate, misplaced and implausible rows; flag sensors."""
    if not frames:
        empty = pd.DataFrame(
            {"machine_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[us, UTC]")}
        )
        return empty, sensor_flag_frame()
    present: dict[str, set[str]] = {}
    for frame in frames:
        for col in frame.columns:
            present.setdefault(col, set()).update(frame["machine_id"].unique())
    tel = pd.concat(frames, ignore_index=True)
    tel, sensors, problems = _sensor_columns(tel, ctx)
    if sensors:
        no_value = tel[sensors].isna().all(axis=1).to_numpy()
        codes = _empty_row_code(tel, sensors, problems).to_numpy()
        found = [(no_value & (codes == c), sensors[0], _EMPTY_REASON[c], c) for c in _EMPTY_REASON]
        tel = _reject_all_of(q, "telemetry", tel, found)
    tel = _check_rows("telemetry", tel, q, ctx)
    tel = tel.sort_values(["machine_id", "timestamp", "_file", "_row"], kind="stable")
    dup = tel.duplicated(["machine_id", "timestamp"], keep="first").to_numpy()
    reason = "duplicate reading (same machine and timestamp)"
    tel = _reject_per_file(q, "telemetry", tel, dup, "timestamp", reason, "duplicate_timestamp")
    limits = ctx.config.limits
    found = [
        (
            mask,
            col,
            f"{col} outside its configured limits {limits[_pattern(col, limits)]}",
            "implausible_value",
        )
        for col, mask in limit_violations(tel, sensors, ctx.config).items()
    ]
    tel = _reject_all_of(q, "telemetry", tel, found)
    reason = "far outside this machine's own history for a short burst (sensor glitch)"
    bursts = find_bursts(tel, sensors, ctx.config)
    spikes = spike_flags(tel, bursts)  # open bursts: kept, reported
    found = [
        (b.glitch, col, f"{col} {reason}", "sensor_glitch") for col, b in bursts.items() if b.glitch.any()
    ]
    tel = _reject_all_of(q, "telemetry", tel, found)
    flags = find_sensor_flags(tel, sensors, ctx.config, present)
    if len(spikes):
        flags = pd.concat([f for f in (flags, spikes) if len(f)], ignore_index=True)
    return tel.drop(columns=["_row", "_file"]).reset_index(drop=True), flags


def _pattern(column: str, patterns) -> str:
    return next(p for p in patterns if fnmatch.fnmatchcase(column, p))


def _reject_all_of(q: _Collector, table: str, frame: pd.DataFrame, found: list[tuple]) -> pd.DataFrame:
    """Quarantine rows for several (mask, column, reason, code) found on the same frame; a row once only."""
    done = np.zeros(len(frame), bool)
    for mask, column, reason, code in found:
        mask = np.asarray(mask, dtype=bool) & ~done
        _reject_per_file(q, table, frame, mask, column, reason, code)
        done |= mask
    return frame.loc[~done]


def _check_rows(table: str, frame: pd.DataFrame, q: _Collector, ctx: _Context) -> pd.DataFrame:
    """Quarantine rows of unknown machines, from the future, or from before the machine's installation."""
    if ctx.known is not None:
        listed = set(ctx.machines["machine_id"]) | ctx.known
        unknown = ~frame["machine_id"].isin(listed).to_numpy()
        reason = "machine_id is not a known machine (not in machines.parquet nor in the store)"
        frame = _reject_per_file(q, table, frame, unknown, "machine_id", reason, "unknown_machine")
    horizon = ctx.now + pd.Timedelta(minutes=ctx.config.future_tolerance_minutes)
    future = (frame["timestamp"] > horizon).to_numpy()
    reason = f"timestamp is in the future (after {horizon:%Y-%m-%d %H:%M} UTC)"
    frame = _reject_per_file(q, table, frame, future, "timestamp", reason, "future_timestamp")
    if "installed_at" in ctx.machines and len(frame):
        installed = frame["machine_id"].map(ctx.machines.set_index("machine_id")["installed_at"])
        early = (frame["timestamp"] < installed).fillna(False).to_numpy(dtype=bool)
        reason = "timestamp is before the machine's installed_at"
        frame = _reject_per_file(q, table, frame, early, "timestamp", reason, "before_installation")
    return frame


def _reject_per_file(
    q: _Collector, table: str, frame: pd.DataFrame, mask: np.ndarray, column: str, reason: str, code: str
):
    """Quarantine rows of a frame made of several files, naming each row's own file."""
    mask = np.asarray(mask, dtype=bool)
    for file in frame.loc[mask, "_file"].unique():
        q.reject(table, file, frame, mask & (frame["_file"] == file).to_numpy(), column, reason, code)
    return frame.loc[~mask]


def _clean_events(frames: list[pd.DataFrame], q: _Collector, ctx: _Context) -> pd.DataFrame:
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
    reason = "kind must be 'failure' or 'maintenance'"
    events = _reject_per_file(q, "events", events, unknown, "kind", reason, "unknown_event_kind")
    events = _check_rows("events", events, q, ctx)
    if "component" not in events:
        events["component"] = None
    dup = events.duplicated(["machine_id", "timestamp", "kind"], keep="first").to_numpy()
    events = _reject_per_file(q, "events", events, dup, "timestamp", "duplicate event", "duplicate_event")
    return (
        events.drop(columns=["_row", "_file"]).sort_values(["machine_id", "timestamp"]).reset_index(drop=True)
    )


def _waveform_values(table: pa.Table, meta: pd.DataFrame, file: str, q: _Collector) -> pa.Array | None:
    """The ``values`` column as a list array of numbers, or None (file quarantined) when it is not one."""
    values = table.column("values").combine_chunks()
    if not (
        pa.types.is_list(values.type)
        or pa.types.is_large_list(values.type)
        or pa.types.is_fixed_size_list(values.type)
    ):
        reason = f"values must be a list of float32, found {values.type}"
        q.reject_all("waveforms", file, meta, "values", reason, "wrong_type")
        return None
    value_type = values.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        reason = f"values must be a list of float32 numbers, found a list of {value_type}"
        q.reject_all("waveforms", file, meta, "values", reason, "wrong_type")
        return None
    if pa.types.is_fixed_size_list(values.type):
        values = values.cast(pa.list_(values.type.value_type))
    return values


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
        q.reject_all("waveforms", file, meta, missing[0], *_missing_reason(missing[0], table.column_names))
        return None
    values = _waveform_values(table, meta, file, q)
    if values is None:
        return None
    offsets = values.offsets.to_numpy().astype(np.int64)
    flat = values.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    n_samples = np.diff(offsets)
    not_finite = np.concatenate([[0], np.cumsum(~np.isfinite(flat))])
    bad_values = (not_finite[offsets[1:]] - not_finite[offsets[:-1]]) > 0
    meta = meta.assign(offset=offsets[:-1] - offsets[0], n_samples=n_samples)
    flat = flat[offsets[0] : offsets[-1]]
    flat_rows = _flat_snapshots(flat, offsets[:-1] - offsets[0], n_samples)
    meta = _check_keys("waveforms", file, meta, q)
    keep = meta.index.to_numpy()
    empty = values.is_null().to_numpy(zero_copy_only=False)[keep] | (n_samples[keep] == 0)
    meta = q.reject("waveforms", file, meta, empty, "values", "snapshot has no samples", "empty_snapshot")
    bad = bad_values[meta.index.to_numpy()]
    if bad.any():
        reason = "snapshot contains NaN or infinite samples"
        has_nan = _any_per_snapshot(np.isnan(flat), meta["offset"].to_numpy(), meta["n_samples"].to_numpy())
        meta = q.reject("waveforms", file, meta, bad & has_nan, "values", reason, "nan_value")
        meta = q.reject("waveforms", file, meta, bad[~has_nan], "values", reason, "infinite_value")
    rate = pd.to_numeric(meta["sample_rate_hz"], errors="coerce")
    meta = q.reject(
        "waveforms",
        file,
        meta.assign(sample_rate_hz=rate),
        ~(np.isfinite(rate) & (rate > 0)).to_numpy(),
        "sample_rate_hz",
        "sample_rate_hz must be a positive, finite number",
        "bad_sample_rate",
    )
    meta = q.reject(
        "waveforms",
        file,
        meta,
        meta["channel"].isna().to_numpy(),
        "channel",
        "channel is empty",
        "missing_channel",
    )
    speed = pd.to_numeric(meta["speed_rpm"], errors="coerce") if "speed_rpm" in meta else np.nan
    meta = meta.assign(channel=meta["channel"].astype(str), speed_rpm=speed)
    return meta.assign(_flat=flat_rows[meta.index.to_numpy()]), flat
    return meta, flat


def _any_per_snapshot(mask: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether ``mask`` holds anywhere within each snapshot (offset, length) of the flat sample array."""
    count = np.concatenate([[0], np.cumsum(mask)])
    return (count[offsets + lengths] - count[offsets]) > 0


def _flat_snapshots(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Snapshots (contiguous, in order, as in a Parquet list column) whose samples are all equal."""
    if not len(flat):
        return np.zeros(len(starts), bool)
    at = np.minimum(starts, len(flat) - 1)
    return (lengths > 0) & (np.minimum.reduceat(flat, at) == np.maximum.reduceat(flat, at))


def _read_waveforms(root: Path, q: _Collector, counts: dict, ctx: _Context) -> tuple[Waveforms, pd.DataFrame]:
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
        return Waveforms.empty(), sensor_flag_frame()
    meta = pd.concat(metas, ignore_index=True).sort_values(
        ["machine_id", "timestamp", "channel", "_file", "_row"]
    )
    dup = meta.duplicated(["machine_id", "timestamp", "channel"], keep="first").to_numpy()
    reason = "second snapshot for the same machine, channel and timestamp; the first is kept"
    meta = _reject_per_file(q, "waveforms", meta, dup, "timestamp", reason, "duplicate_timestamp")
    meta = _check_rows("waveforms", meta, q, ctx)
    flags = _flat_channel_flags(meta)
    reason = "snapshot is flat (every sample has the same value): the accelerometer is dead or disconnected"
    meta = _reject_per_file(q, "waveforms", meta, meta["_flat"].to_numpy(), "values", reason, "flat_snapshot")
    wrong_length, wrong_rate, reasons = snapshot_shape_problems(meta, ctx.config)
    meta = meta.assign(_reason=reasons)
    meta = _reject_per_file(q, "waveforms", meta, wrong_length, "n_samples", "", "wrong_length")
    meta = _reject_per_file(
        q, "waveforms", meta, wrong_rate[~wrong_length], "sample_rate_hz", "", "wrong_sample_rate"
    )
    columns = ["machine_id", "timestamp", "channel", "sample_rate_hz", "speed_rpm", "offset", "n_samples"]
    return Waveforms(meta[columns].reset_index(drop=True), np.concatenate(flats)), flags


def _flat_channel_flags(meta: pd.DataFrame) -> pd.DataFrame:
    """A 'dead' flag per machine and channel with flat snapshots; active when its latest snapshot is flat."""
    flat = meta[meta["_flat"]]
    if flat.empty:
        return sensor_flag_frame()
    latest = meta.groupby(["machine_id", "channel"])["timestamp"].max()
    runs = flat.groupby(["machine_id", "channel"])["timestamp"].agg(["min", "max", "size"]).reset_index()
    runs["active"] = (
        runs["max"].to_numpy()
        == latest.reindex(pd.MultiIndex.from_frame(runs[["machine_id", "channel"]])).to_numpy()
    )
    return sensor_flag_frame(
        [
            {
                "machine_id": r.machine_id,
                "column": r.channel,
                "flag": "dead",
                "since": r.min,
                "until": r.max,
                "readings": r.size,
                "active": r.active,
                "detail": f"{r.size} flat snapshots on channel {r.channel} (no signal)",
            }
            for r in runs.itertuples()
        ]
    )


def _known_machines(machines: pd.DataFrame, *tables: Iterable[str]) -> pd.DataFrame:
    """Add machines that appear in the data but not in ``machines``: they are known by their id alone."""
    seen = set().union(*map(set, tables))
    extra = sorted(seen - set(machines["machine_id"]))
    if extra:
        machines = pd.concat([machines, pd.DataFrame({"machine_id": extra})], ignore_index=True)
    return machines.drop(columns=[c for c in ("_row", "_file") if c in machines]).reset_index(drop=True)


def load_dataset(
    root: str | Path,
    plausibility: PlausibilityConfig | None = None,
    *,
    now: pd.Timestamp | str | None = None,
    known_machines: Iterable[str] | None = None,
    readings_required: bool = True,
) -> Dataset:
    """Read and validate the dataset folder ``root``; raise ContractError when nothing in it is usable.

    ``plausibility`` sets the limits, glitch and stuck-sensor checks (defaults: ``PlausibilityConfig()``);
    ``now`` is the time after which readings are in the future (default: the clock); ``known_machines``, when
    given (the store's machines), quarantines rows of machines that neither it nor ``machines`` lists. With
    ``readings_required=False`` (a batch for a history store) a folder of events or machine rows alone is
    usable: the failure record of a machine that stopped sending readings, or a register update.
    """
    root = Path(root)
    if not root.is_dir():
        raise ContractError(
            f"{root}: not a folder; fix: give the path of a dataset folder (equipment data contract v1)",
            "not_a_folder",
        )
    needed = ("telemetry", "waveforms") if readings_required else TABLES
    present = [t for t in needed if table_files(root, t)]
    unread = {t: unread_files(root, t) for t in TABLES}
    if not present and not readings_required:
        skipped = [_rel(root, p) for t in TABLES for p in unread[t]]
        also = f"; not read: {', '.join(skipped[:5])}" if skipped else ""
        raise ContractError(
            f"{root}: no table found (looked for machines, telemetry, waveforms and events, as files or folders"
            f"{also}); fix: a batch needs at least one of them, as Parquet (or CSV but for waveforms; see "
            "docs/data-contract.md)",
            "no_tables",
        )
    if not present:
        skipped = [_rel(root, p) for t in ("telemetry", "waveforms") for p in unread[t]]
        also = f"; not read, as not Parquet or CSV: {', '.join(skipped[:5])}" if skipped else ""
        raise ContractError(
            f"{root}: no telemetry or waveforms found (looked for telemetry/, telemetry.parquet, telemetry.csv, "
            f"waveforms/, waveforms.parquet{also}); fix: a dataset needs at least one of them, as Parquet (or CSV "
            "for telemetry; see docs/data-contract.md)",
            "no_tables",
        )
    q = _Collector()
    q.notes += [_unread_note(root, t, path) for t in TABLES for path in unread[t]]
    counts = {t: {"rows_in": 0, "rows_used": 0, "rows_quarantined": 0} for t in TABLES}
    machines = _clean_machines(_read_table(root, "machines", q, counts), q)
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    ctx = _Context(
        machines=machines,
        config=plausibility or PlausibilityConfig(),
        now=stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC"),
        known=None if known_machines is None else frozenset(map(str, known_machines)),
        notes=[],
    )
    telemetry, telemetry_flags = _clean_telemetry(_read_table(root, "telemetry", q, counts), q, ctx)
    waveforms, waveform_flags = _read_waveforms(root, q, counts, ctx)
    events = _clean_events(_read_table(root, "events", q, counts), q, ctx)
    machines = _known_machines(
        machines, telemetry["machine_id"], waveforms.meta["machine_id"], events["machine_id"]
    )
    quarantine = q.frame()
    used = {"telemetry": len(telemetry), "waveforms": len(waveforms.meta), "events": len(events)}
    _balance(counts, used, quarantine, machines)
    others = 0 if readings_required else len(events) + counts["machines"]["rows_used"]
    if telemetry.empty and waveforms.meta.empty and not others:
        code = "empty_dataset" if quarantine.empty else "unusable_dataset"
        raise ContractError(_nothing_usable(root, quarantine), code)
    notes = pd.DataFrame([*q.notes, *ctx.notes], columns=NOTE_COLUMNS)
    flags = pd.concat([f for f in (telemetry_flags, waveform_flags) if len(f)] or [sensor_flag_frame()])
    flags = flags.sort_values(["machine_id", "column", "since"]).reset_index(drop=True)
    return Dataset(
        root, machines, telemetry, waveforms, events, quarantine, notes, counts, sensor_flags=flags
    )


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
        sensor_flags=pd.concat([batch.sensor_flags, history.sensor_flags], ignore_index=True)
        .drop_duplicates(["machine_id", "column", "flag", "since"])
        .sort_values(["machine_id", "column", "since"])
        .reset_index(drop=True),
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
