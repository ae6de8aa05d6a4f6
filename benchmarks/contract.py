"""Loading a benchmark's dataset folder the way the CLI does: a bad folder ends in one clear message (exit code 2),
not a traceback, and what the loader quarantined is summarised, so a machine that disappears is explained."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from features.dataset import Dataset, load_dataset
from features.errors import InputError


def load_or_exit(folder: Path) -> Dataset:
    """``load_dataset(folder)``; an input error is printed (it names the file, column and fix) and exits 2."""
    try:
        return load_dataset(folder)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_2_on_input_error(main: Callable[[], object]) -> None:
    """Run a benchmark's ``main``: a ``SystemExit("message")`` (the input cannot be used; the message names the
    file, column and fix) exits 2 as the CLI's input errors do, not 1 (an internal error)."""
    try:
        main()
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(f"error: {stop.code}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


def some(ids: Iterable[object], limit: int = 5) -> str:
    """The first ``limit`` ids, comma-separated, and how many more."""
    listed = list(ids)
    more = f" and {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(map(str, listed[:limit])) + more


def quarantine_notes(dataset: Dataset, limit: int = 8) -> list[str]:
    """One line per (table, reason) the loader quarantined rows for, largest first, naming the machines."""
    quarantine = dataset.quarantine
    if quarantine.empty:
        return []
    groups = quarantine.groupby(["table", "code", "reason"], sort=False)
    counts = groups.size().sort_values(ascending=False)
    lines = []
    for (table, code, reason), count in counts.head(limit).items():
        machines = pd.unique(groups.get_group((table, code, reason))["machine_id"].dropna().astype(str))
        named = some(machines, limit=4)
        lines.append(
            f"quarantined {count} {table} rows ({code}: {reason}){f'; machines {named}' if named else ''}"
        )
    if len(counts) > limit:
        lines.append(f"... and {len(counts) - limit} more kinds of quarantined rows")
    return lines


GAP_SHARE = 0.05  # data ending more than this share of life before the failure event is said


def run_to_failure(frame: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """Per machine of ``frame`` (machine_id, timestamp rows), its first failure event at or after its first
    row; and a note for every machine left out (no failure event, or only before its data starts), whose data
    ends well before its failure (a record cut short: kept, said) or goes on after it (``until_failure`` drops
    those rows)."""
    span = frame.groupby("machine_id")["timestamp"].agg(["min", "max"])
    failures = events[events["kind"] == "failure"] if "kind" in events else events.iloc[:0]
    start = failures["machine_id"].map(span["min"])
    after = failures[failures["timestamp"] >= start]
    first = after.groupby("machine_id")["timestamp"].min().reindex(span.index)
    notes = []
    for machine, failure in first.items():
        if pd.isna(failure):
            before = failures[failures["machine_id"] == machine]
            why = (
                f"its failure event ({before['timestamp'].max():%Y-%m-%d %H:%M}) is before its first snapshot"
                if len(before)
                else "it has no failure event"
            )
            notes.append(f"{machine} left out: {why}")
            continue
        life = failure - span.loc[machine, "min"]
        gap = failure - span.loc[machine, "max"]
        if gap < pd.Timedelta(0):
            notes.append(
                f"{machine}: its data goes on {-gap.total_seconds() / 3600:.2f} h after its failure event "
                f"({failure:%Y-%m-%d %H:%M}); the rows after it are left out"
            )
        elif life > pd.Timedelta(0) and gap > GAP_SHARE * life:
            notes.append(
                f"{machine}: its data ends {gap.total_seconds() / 3600:.2f} h ({gap / life:.0%} of its life) "
                "before its failure event: a record cut short"
            )
    return first.dropna(), notes


def until_failure(frame: pd.DataFrame, failures: pd.Series) -> pd.DataFrame:
    """The rows of the machines in ``failures`` stamped at or before their failure: a life ends there."""
    end = frame["machine_id"].map(failures)
    return frame[(frame["timestamp"] <= end).to_numpy(dtype=bool)]
