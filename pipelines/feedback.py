"""What the crew found when it went to a flagged machine: recorded as events for the next training, and the
list's real precision over time.

A findings file is a CSV or Parquet table, one row per inspection:

| column | |
|---|---|
| `machine_id` | required |
| `timestamp` | required: when the machine was inspected (UTC; naive times are read as UTC) |
| `finding` | required: `confirmed_fault`, `nothing_found` or `repaired` (case, spaces and hyphens are forgiven) |
| `component`, `note`, `by` | optional: the part concerned, free text, who inspected |

``record_findings`` keeps every finding in ``<feedback_dir>/findings.parquet`` and writes the events they imply
to ``<feedback_dir>/events.parquet`` (contract events layout), which training adds to the dataset's events
(``feedback_events`` and ``merge_events``).
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.dataset import id_strings
from features.errors import InputError

FINDINGS = ("confirmed_fault", "nothing_found", "repaired")
CONFIRMED = ("confirmed_fault", "repaired")
REQUIRED = ("machine_id", "timestamp", "finding")
OPTIONAL = ("component", "note", "by")
FINDING_COLUMNS = [*REQUIRED, *OPTIONAL, "source", "recorded_at"]
EVENT_COLUMNS = ["machine_id", "timestamp", "kind", "component"]
DEDUPE_KEY = ["machine_id", "timestamp", "finding"]
FUTURE_TOLERANCE = pd.Timedelta(hours=24)
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rejection:
    """One finding row that cannot be used, and how to fix it."""

    file: str
    row: int  # 0-based data row of the file (the CSV line is row + 2)
    column: str
    code: str
    reason: str
    value: str
    fix: str

    def __str__(self) -> str:
        line = f" (line {self.row + 2})" if self.file.lower().endswith(".csv") else ""
        return f"{self.file} row {self.row}{line}, column '{self.column}': {self.reason}; fix: {self.fix}"


class ReadFindings(NamedTuple):
    findings: pd.DataFrame
    rejected: list[Rejection]


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: no such findings file; fix: give the path of a CSV or Parquet file")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"{path}: findings must be a .csv or .parquet file; fix: export the findings as CSV")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        return pq.read_table(path).to_pandas()
    except Exception as exc:  # truncated Parquet, binary junk, an empty file
        raise InputError(
            f"{path}: cannot be read as {path.suffix[1:]} ({type(exc).__name__}: {exc}); fix: re-export the file"
        ) from exc


def _text(values: pd.Series) -> pd.Series:
    """Text cells with '' for missing ones."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _timestamps(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """UTC timestamps (naive ones are UTC) and which values are numbers (epochs are ambiguous: refused)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), np.zeros(len(values), bool)
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC").astype("datetime64[us, UTC]"), np.zeros(len(values), bool)
    text = _text(values)
    numeric = pd.to_numeric(text, errors="coerce").notna().to_numpy()
    stamps = pd.to_datetime(text.where(~numeric & (text != "")), errors="coerce", utc=True, format="mixed")
    return stamps.astype("datetime64[us, UTC]"), numeric


def _row_problems(frame: pd.DataFrame, now: pd.Timestamp) -> list[tuple[np.ndarray, str, str, str, str]]:
    """(rows, column, code, reason, fix) for each check; the first that fails is a row's reason."""
    ids, finding, raw_time = frame["machine_id"], frame["finding"], frame["_raw_timestamp"]
    stamps, numeric = frame["timestamp"], frame["_numeric_time"].to_numpy()
    allowed = ", ".join(FINDINGS)
    return [
        (
            (ids == "").to_numpy(),
            "machine_id",
            "empty_machine_id",
            "machine_id is empty",
            "write the id of the inspected machine as it appears on the risk list",
        ),
        (
            ids.str.contains(_BAD_ID).to_numpy(),
            "machine_id",
            "bad_machine_id",
            "machine_id contains a path separator or control character",
            "write the id exactly as it appears on the risk list",
        ),
        (
            (raw_time == "").to_numpy(),
            "timestamp",
            "bad_timestamp",
            "timestamp is missing",
            "write when the machine was inspected, e.g. 2024-03-05T14:30:00Z",
        ),
        (
            numeric,
            "timestamp",
            "wrong_type",
            "timestamp is a number, not a timestamp (epoch numbers are ambiguous: s, ms or ns)",
            "write ISO 8601 text, e.g. 2024-03-05T14:30:00Z",
        ),
        (
            (stamps.isna() & (raw_time != "")).to_numpy() & ~numeric,
            "timestamp",
            "bad_timestamp",
            "timestamp is not a date and time",
            "write ISO 8601 text in UTC, e.g. 2024-03-05T14:30:00Z",
        ),
        (
            (stamps > now + FUTURE_TOLERANCE).to_numpy(),
            "timestamp",
            "future_timestamp",
            f"timestamp is in the future (after {now:%Y-%m-%d %H:%M} UTC + 24 h)",
            "write when the inspection happened, in UTC",
        ),
        (
            (finding == "").to_numpy(),
            "finding",
            "missing_finding",
            f"finding is empty (one of {allowed})",
            f"write one of {allowed}",
        ),
        (
            ~finding.isin(FINDINGS).to_numpy() & (finding != "").to_numpy(),
            "finding",
            "unknown_finding",
            f"finding is not one of {allowed}",
            f"write one of {allowed}",
        ),
    ]


def read_findings(path: str | Path, now: pd.Timestamp | None = None) -> ReadFindings:
    """The usable findings of a file (machine_id, timestamp UTC, finding, component, note, by) and a
    ``Rejection`` per unusable row. Raises ``InputError`` when the file or a required column is unusable, or
    when no row is usable."""
    path = Path(path)
    raw = _read_table(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        present = ", ".join(map(str, raw.columns)) or "none"
        hint = (
            " (the header is one column: the file is not comma-separated; export it with commas)"
            if len(raw.columns) == 1 and any(sep in str(raw.columns[0]) for sep in ";\t|")
            else ""
        )
        raise InputError(
            f"{path}: required column '{missing[0]}' is missing (columns present: {present}){hint}; fix: the "
            f"findings need columns {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}"
        )
    if raw.empty:
        raise InputError(
            f"{path}: no findings (the file has a header but no rows); fix: add one row per inspection"
        )
    stamps, numeric = _timestamps(raw["timestamp"])
    frame = pd.DataFrame(
        {
            "machine_id": id_strings(raw["machine_id"].dropna()).reindex(raw.index).fillna("").str.strip(),
            "timestamp": stamps,
            "finding": _text(raw["finding"]).str.lower().str.replace(r"[\s\-]+", "_", regex=True),
            **{c: _text(raw[c]) if c in raw else "" for c in OPTIONAL},
            "_raw_timestamp": _text(raw["timestamp"]),
            "_numeric_time": numeric,
        }
    )
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    bad = np.zeros(len(frame), bool)
    rejected: list[Rejection] = []
    for rows, column, code, reason, fix in _row_problems(frame, now):
        for row in np.flatnonzero(rows & ~bad):
            value = str(raw[column].iloc[row])
            said = f"{reason} (got {value!r})" if value.strip() else reason
            rejected.append(Rejection(str(path), int(row), column, code, said, value, fix))
        bad |= rows
    rejected.sort(key=lambda r: r.row)
    good = frame.loc[~bad, [*REQUIRED, *OPTIONAL]].reset_index(drop=True)
    if good.empty:
        raise InputError(
            f"{path}: no usable finding; first problem: {rejected[0]}"
            + (f" (and {len(rejected) - 1} more rejected rows)" if len(rejected) > 1 else "")
        )
    return ReadFindings(good, rejected)


def findings_to_events(findings: pd.DataFrame) -> pd.DataFrame:
    """Contract events (machine_id, timestamp, kind, component) implied by the findings.

    - ``repaired`` -> a ``maintenance`` event at the inspection time: the crew changed the machine.
    - ``confirmed_fault`` -> a ``maintenance`` event too: the crew found the fault and acted on it, so the machine
      did not fail. The labels censor a row whose horizon holds a maintenance before any failure, so the rows
      before a caught fault are neither counted as a miss (the model said high, no failure followed) nor as a
      false alarm; and the machine's history after it starts afresh. If it does fail later anyway, record that
      failure in the events as usual.
    - ``nothing_found`` -> no event: the machine was not touched, so its labels stay as the data make them (a
      failure within the horizon still makes the alarm right). It is kept in the findings for the precision.

    A confirmed fault and a repair of one machine at the same time give one event (the contract's events are
    unique by machine, time and kind); the first non-empty component is kept.
    """
    acted = findings[findings["finding"].isin(CONFIRMED)]
    component = acted["component"] if "component" in acted else pd.Series("", index=acted.index)
    events = pd.DataFrame(
        {
            "machine_id": acted["machine_id"].astype(str),
            "timestamp": acted["timestamp"].astype("datetime64[us, UTC]"),
            "kind": "maintenance",
            "component": component.astype(object).where(component.notna() & (component != ""), None),
        }
    )
    events = events.sort_values(["machine_id", "timestamp", "component"], na_position="last")
    events = events.drop_duplicates(["machine_id", "timestamp", "kind"], keep="first")
    return events.reset_index(drop=True)[EVENT_COLUMNS]


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write whole or not at all: a temporary name in the same folder, then rename."""
    temporary = path.with_name(f".{path.name}.partial")
    frame.to_parquet(temporary, index=False)
    temporary.replace(path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer at a time: two crews' files recorded at once must not lose one of them."""
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_findings(feedback_dir: str | Path) -> pd.DataFrame:
    """Every finding recorded so far (empty, with the columns, when there is none)."""
    path = Path(feedback_dir) / "findings.parquet"
    return pd.read_parquet(path) if path.is_file() else _empty_findings()


def _empty_findings() -> pd.DataFrame:
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
    return empty.astype({"timestamp": "datetime64[us, UTC]", "recorded_at": "datetime64[us, UTC]"})


def record_findings(
    path: str | Path, feedback_dir: str | Path, now: pd.Timestamp | None = None
) -> dict[str, Any]:
    """Add a findings file to ``<feedback_dir>/findings.parquet`` (a finding already there, same machine, time
    and finding, is skipped) and rewrite ``<feedback_dir>/events.parquet`` from all of them.

    Returns the counts (``rows_in = recorded + duplicates + rejected``), the totals and where the tables are,
    and ``problems``: one line per rejected row. Raises ``InputError`` when nothing in the file is usable."""
    read = read_findings(path, now=now)
    folder = Path(feedback_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp.now(tz="UTC").floor("s")
    new = read.findings.assign(source=Path(path).name, recorded_at=stamp).astype(
        {"recorded_at": "datetime64[us, UTC]"}
    )
    with _locked(folder):
        before = load_findings(folder)
        every = pd.concat([before, new], ignore_index=True) if len(before) else new
        every = every.drop_duplicates(DEDUPE_KEY, keep="first")
        recorded = len(every) - len(before)
        every = every.sort_values(["timestamp", "machine_id", "finding"]).reset_index(drop=True)
        events = findings_to_events(every)
        _write_parquet(every[FINDING_COLUMNS], folder / "findings.parquet")
        _write_parquet(events, folder / "events.parquet")
    return {
        "rows_in": len(read.findings) + len(read.rejected),
        "recorded": recorded,
        "duplicates": len(read.findings) - recorded,
        "rejected": len(read.rejected),
        "findings_total": len(every),
        "events_total": len(events),
        "findings_path": str(folder / "findings.parquet"),
        "events_path": str(folder / "events.parquet"),
        "problems": [str(r) for r in read.rejected],
    }


def feedback_events(feedback_dir: str | Path | None) -> pd.DataFrame:
    """The events derived from the crews' findings (empty when there are none), for training to add."""
    path = Path(feedback_dir) / "events.parquet" if feedback_dir is not None else None
    if path is None or not path.is_file():
        return findings_to_events(_empty_findings())
    return pd.read_parquet(path)


def merge_events(events: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """A dataset's events plus feedback events, unique by machine, time and kind (the dataset's win)."""
    if extra.empty:
        return events
    if isinstance(events["timestamp"].dtype, pd.DatetimeTZDtype):
        extra = extra.astype({"timestamp": events["timestamp"].dtype})
    merged = pd.concat([events, extra], ignore_index=True).drop_duplicates(
        ["machine_id", "timestamp", "kind"], keep="first"
    )
    return merged.sort_values(["machine_id", "timestamp"]).reset_index(drop=True)


def read_lists(folder: str | Path) -> pd.DataFrame:
    """The history of risk lists (the score flow's dated copies ``lists/risk_list_*.parquet``): machine_id,
    as_of, flagged. An unreadable copy is skipped."""
    frames = []
    for path in sorted(Path(folder).glob("risk_list_*.parquet")):
        try:
            frames.append(pd.read_parquet(path, columns=["machine_id", "as_of", "flagged"]))
        except (OSError, ValueError, KeyError):
            continue
    if not frames:
        return pd.DataFrame(
            {"machine_id": [], "as_of": pd.Series(dtype="datetime64[us, UTC]"), "flagged": []}
        )
    return pd.concat(frames, ignore_index=True)


def _week(stamps: pd.Series) -> pd.Series:
    """The Monday 00:00 UTC that starts each timestamp's week."""
    utc = pd.to_datetime(stamps, utc=True)
    return utc.dt.floor("D") - pd.to_timedelta(utc.dt.weekday, unit="D")


def list_precision(findings: pd.DataFrame, lists: pd.DataFrame, max_lag_days: float = 14.0) -> pd.DataFrame:
    """The list's real precision per week, from the crews' findings.

    Each finding answers the latest list that flagged its machine at or before the inspection, at most
    ``max_lag_days`` earlier (a finding with no such list is an inspection the list did not ask for, and is not
    counted). A week is the Monday-to-Sunday (UTC) week of that list. Per week and machine the best answer counts
    once: confirmed (``confirmed_fault`` or ``repaired``) over ``nothing_found``.

    Columns: ``week`` (its Monday, UTC), ``flagged`` (machines flagged on that week's lists), ``inspected``
    (of them, with a finding), ``confirmed``, ``nothing_found``, ``precision`` = confirmed / inspected (NaN when
    none was inspected). One row per week that has a list.
    """
    columns = ["week", "flagged", "inspected", "confirmed", "nothing_found", "precision"]
    flags = lists[lists["flagged"].eq(True) & lists["as_of"].notna()][["machine_id", "as_of"]]
    flags = flags.assign(
        machine_id=flags["machine_id"].astype(str), as_of=pd.to_datetime(flags["as_of"], utc=True)
    )
    if flags.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "precision" else int) for c in columns})
    flags = flags.assign(week=_week(flags["as_of"]))
    weekly = flags.groupby("week")["machine_id"].nunique().rename("flagged")
    found = findings[findings["finding"].isin(FINDINGS)][["machine_id", "timestamp", "finding"]]
    found = found.assign(
        machine_id=found["machine_id"].astype(str), timestamp=pd.to_datetime(found["timestamp"], utc=True)
    )
    unit = flags["as_of"].dt.unit
    answered = pd.merge_asof(
        found.assign(timestamp=found["timestamp"].dt.as_unit(unit)).sort_values("timestamp"),
        flags.sort_values("as_of"),
        left_on="timestamp",
        right_on="as_of",
        by="machine_id",
        direction="backward",
        tolerance=pd.Timedelta(days=max_lag_days),
    ).dropna(subset=["as_of"])
    answered = answered.assign(confirmed=answered["finding"].isin(CONFIRMED))
    per_machine = answered.groupby(["week", "machine_id"])["confirmed"].any().reset_index()
    counts = per_machine.groupby("week")["confirmed"].agg(inspected="size", confirmed="sum")
    out = pd.concat([weekly, counts], axis=1).fillna(0).astype(int).reset_index()
    out["nothing_found"] = out["inspected"] - out["confirmed"]
    out["precision"] = out["confirmed"] / out["inspected"].where(out["inspected"] > 0)
    return out.rename(columns={"index": "week"})[columns].sort_values("week").reset_index(drop=True)
