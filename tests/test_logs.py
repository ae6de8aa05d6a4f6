"""Structured run logs: logfmt lines that name the step, batch and machine."""

from __future__ import annotations

import pandas as pd

from pipelines.logs import logfmt, quarantine_summary


def test_logfmt_quotes_what_needs_quotes_and_skips_none():
    line = logfmt(
        {"step": "ingest", "batch": "2026-01-05", "error": 'bad "x" = y', "moved_to": None, "p": 0.123456}
    )
    assert line == 'step=ingest batch=2026-01-05 error="bad \\"x\\" = y" p=0.1235'


def test_logfmt_empty_value_is_quoted():
    assert logfmt({"machine": ""}) == 'machine=""'


def test_quarantine_summary_counts_per_machine_table_and_code():
    quarantine = pd.DataFrame(
        {
            "table": ["telemetry", "telemetry", "telemetry", "waveforms", "machines"],
            "machine_id": ["m1", "m1", "m2", "m1", ""],
            "code": [
                "implausible_value",
                "implausible_value",
                "future_timestamp",
                "wrong_length",
                "unreadable_file",
            ],
        }
    )
    summary = quarantine_summary(quarantine)
    assert summary.iloc[0].to_dict() == {
        "machine": "m1",
        "table": "telemetry",
        "code": "implausible_value",
        "rows": 2,
    }
    assert summary["rows"].sum() == len(quarantine)
    assert "-" in set(summary["machine"])  # a file-level problem has no machine
    assert quarantine_summary(quarantine.iloc[0:0]).empty
