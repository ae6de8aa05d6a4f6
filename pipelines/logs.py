"""Structured run logs: one line per event, ``key=value`` pairs (logfmt) naming the step, batch and machine.

Every line starts with ``step=<ingest|validate|features|train|promote|score|drift|notify>`` and carries the
batch and machine it is about where there is one, so that ``grep 'machine=pump-17'`` over a run's log (in the
Prefect UI, or a worker's output) finds everything that happened to that machine. The same fields travel as
the record's ``wearcast`` attribute for a JSON log handler. Lines go to Prefect's run logger, so they are
stored with the run and shown in the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from prefect import get_run_logger

MACHINE_LINES = 20  # per event kind and run: more machines are summarised in one line


def logfmt(fields: Mapping[str, Any]) -> str:
    """``key=value`` pairs; values with spaces, quotes or '=' are double-quoted; None is left out."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log_event(step: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event of ``step`` with its fields (batch=..., machine=..., counts) to the run's log."""
    values = {"step": step, **fields}
    get_run_logger().log(level, "%s", logfmt(values), extra={"wearcast": values})


def log_machines(step: str, rows: pd.DataFrame, level: int = logging.INFO, **fields: Any) -> None:
    """One line per row (each naming its machine and the row's columns), the first MACHINE_LINES of them, then
    one line counting the rest."""
    for row in rows.head(MACHINE_LINES).to_dict("records"):
        log_event(step, level, **fields, **{str(k): v for k, v in row.items()})
    if len(rows) > MACHINE_LINES:
        log_event(step, level, **fields, more_machines=len(rows) - MACHINE_LINES)


def quarantine_summary(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Rejected rows per machine, table and reason code (most first): what a validate log line reports."""
    if quarantine.empty:
        return pd.DataFrame(columns=["machine", "table", "code", "rows"])
    counts = (
        quarantine.assign(machine_id=quarantine["machine_id"].replace("", "-"))
        .groupby(["machine_id", "table", "code"], sort=False)
        .size()
        .rename("rows")
        .reset_index()
        .rename(columns={"machine_id": "machine"})
    )
    return counts.sort_values("rows", ascending=False, kind="stable").reset_index(drop=True)
