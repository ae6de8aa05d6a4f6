"""The command line: exit codes and one-line errors, never a traceback for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WEARCAST = str(Path(sys.executable).parent / "wearcast")


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WEARCAST_HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlruns' / 'mlflow.db'}",
    }
    return subprocess.run([WEARCAST, *args], capture_output=True, text=True, env=env, timeout=300)


def test_help_lists_the_commands(tmp_path):
    out = run("--help", home=tmp_path)
    assert out.returncode == 0
    for command in ("simulate", "train", "score", "backtest", "evaluate", "promote", "rollback", "demo"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["train", "score", "backtest", "evaluate", "features"])
def test_missing_folder_exits_2_with_one_line(tmp_path, command):
    extra = ["--out", str(tmp_path / "t.parquet")] if command in ("backtest", "evaluate", "features") else []
    out = run(command, str(tmp_path / "nowhere"), *extra, home=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    assert "not a folder" in out.stderr and "fix:" in out.stderr


def test_bad_simulation_settings_exit_2(tmp_path):
    out = run("simulate", str(tmp_path / "fleet"), "--days", "1", home=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "error:" in out.stderr


@pytest.mark.e2e
def test_score_without_champion_exits_2_without_traceback(tmp_path):
    from conftest import make_tiny

    data = make_tiny(tmp_path / "batch")
    out = run("score", str(data), "--model-name", "nobody", home=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr + out.stdout
    assert "has no champion" in out.stderr and "wearcast train" in out.stderr


@pytest.mark.e2e
def test_features_command_writes_the_table_and_its_notes(tmp_path):
    import pandas as pd
    from conftest import make_tiny

    data = make_tiny(tmp_path / "data")
    out = tmp_path / "out" / "features.parquet"
    result = run("features", str(data), "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_parquet(out)
    assert len(table) == 3 * 4 and {"machine_id", "timestamp", "vib__acc_horizontal__rms"} <= set(
        table.columns
    )
    assert out.with_suffix(".notes.parquet").is_file() and out.with_suffix(".quarantine.parquet").is_file()
    notes = pd.read_parquet(out.with_suffix(".notes.parquet"))
    assert {"machine_id", "timestamp", "feature", "reason"} <= set(notes.columns)  # whatever the notes say
    baseline = notes[notes["feature"].str.endswith("__ratio_to_baseline")]  # 4 snapshots < a baseline of 10
    assert len(baseline) and (baseline["machine_id"] == "*").all()
    assert "rows: machines 3 in / 3 used / 0 quarantined" in result.stdout
    fixed = run("features", str(data), "--out", str(out), "--envelope-band-hz", "1000,2000", home=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    column = "vib__acc_horizontal__envelope__rms"
    assert (pd.read_parquet(out)[column] != table[column]).all()
    for band in ("2000,1000", "2000", "low,high"):
        bad = run("features", str(data), "--out", str(out), "--envelope-band-hz", band, home=tmp_path)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and "fix: give two numbers" in bad.stderr


def test_invalid_settings_exit_2_in_one_line(tmp_path):
    from conftest import make_tiny

    data = make_tiny(tmp_path / "data")
    out = run("train", str(data), "--horizon-h", "-5", home=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "horizon_h" in out.stderr and "greater than 0" in out.stderr


def test_outputs_are_never_written_inside_the_input(tmp_path):
    from conftest import make_tiny

    data = make_tiny(tmp_path / "data")
    out = run("score", str(data), "--out", str(data / "results"), home=tmp_path)
    assert out.returncode == 2 and "never writes" in out.stderr
    assert not (data / "results").exists()
    out = run("features", str(data), "--out", str(data / "features.parquet"), home=tmp_path)
    assert out.returncode == 2 and "never writes" in out.stderr and "Traceback" not in out.stderr
    assert not (data / "features.parquet").exists()


@pytest.mark.e2e
def test_features_of_data_that_break_the_contract_quarantine_or_exit_2_naming_the_file_and_fix(tmp_path):
    """A register without machine_id: its rows are quarantined with the fix and the readings still give
    features (exit 0); no usable table at all: exit 2 with the fix, and no table written."""
    import pandas as pd
    from conftest import make_tiny

    data = make_tiny(tmp_path / "data")
    pd.read_parquet(data / "machines.parquet").rename(columns={"machine_id": "asset"}).to_parquet(
        data / "machines.parquet"
    )
    out = tmp_path / "out" / "features.parquet"
    result = run("features", str(data), "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    quarantine = pd.read_parquet(out.with_suffix(".quarantine.parquet"))
    register = quarantine[quarantine["file"] == "machines.parquet"]
    assert len(register) == 3 and (register["column"] == "machine_id").all()
    assert register["fix"].str.contains("add the required column").all()
    assert "machines 3 in / 0 used / 3 quarantined" in result.stdout.replace("\n", " ")
    for name in ("telemetry", "waveforms", "events.parquet", "machines.parquet"):
        target = data / name
        if target.is_dir():
            for part in target.iterdir():
                part.unlink()
            target.rmdir()
        else:
            target.unlink()
    broken = tmp_path / "out2" / "features.parquet"
    result = run("features", str(data), "--out", str(broken), home=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout and "fix" in result.stderr
    assert not broken.exists()


def test_bad_alert_policy_exits_2_naming_the_setting(tmp_path):
    out = run("train", str(tmp_path), "--alert-policy", "vibes", home=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "alert_policy" in out.stderr and "cost" in out.stderr


@pytest.mark.e2e
def test_rollback_and_promote_without_a_model_exit_2(tmp_path):
    out = run("rollback", "--reason", "test", "--model-name", "nobody", home=tmp_path)
    assert out.returncode == 2 and "has no champion" in out.stderr and "Traceback" not in out.stderr
    out = run("promote", "3", "--reason", "test", "--model-name", "nobody", home=tmp_path)
    assert out.returncode == 2 and "no version 3" in out.stderr and "Traceback" not in out.stderr


def test_score_needs_a_path_or_an_inbox(tmp_path):
    out = run("score", home=tmp_path)
    assert (
        out.returncode == 2
        and "give either a batch PATH or --inbox" in out.stderr
        and "Traceback" not in out.stderr
    )
    out = run("score", "--inbox", str(tmp_path / "missing"), home=tmp_path)
    assert out.returncode == 2 and "not a folder" in out.stderr


def test_feedback_records_findings_and_names_bad_rows(tmp_path):
    findings = tmp_path / "crew.csv"
    findings.write_text(
        "machine_id,timestamp,finding\n"
        "M1,2026-03-01T08:00:00Z,confirmed_fault\n"
        "M2,2026-03-01T09:00:00Z,nothing_found\n"
        "M3,2026-03-01T10:00:00Z,fixed it\n"
    )
    out = run("feedback", str(findings), "--feedback-dir", str(tmp_path / "fb"), home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        "3 in = 2 recorded + 0 duplicates + 1 rejected" in out.stdout and "1 maintenance events" in out.stdout
    )
    assert "(line 4), column 'finding'" in out.stderr and "fix:" in out.stderr
    again = run("feedback", str(findings), "--feedback-dir", str(tmp_path / "fb"), home=tmp_path)
    assert "0 recorded + 2 duplicates" in again.stdout


def test_a_replay_summary_says_why_no_failure_was_replayed_and_keeps_short_leads_readable():
    from pipelines.cli import _caught

    none = {"failures": 0.0, "failure_events_in_period": 3.0}
    assert "3 failure events in the replayed period" in _caught(none, 0.0, 24.0)
    assert "fix: a smaller --every-h" in _caught(none, 0.0, 24.0)
    assert "no failure event inside" in _caught({"failures": 0.0, "failure_events_in_period": 0.0}, 0.0, 24.0)
    some = {"failures": 4.0, "recall_lead_0h": 0.75, "lead_h_median": 0.42, "lead_h_p10": 107.4}
    assert (
        _caught(some, 0.0, 0.05) == "75% caught with >= 0 h lead (median lead 0.42 h, 10th percentile 107 h)"
    )
    unwarned = some | {"recall_lead_0h": 0.0, "lead_h_median": float("nan"), "lead_h_p10": float("nan")}
    assert "(median lead none h, 10th percentile none h)" in _caught(unwarned, 0.0, 24.0)


def test_counts_name_the_tables_they_come_from():
    from pipelines.cli import _by_table

    assert _by_table({"machines": 20, "telemetry": 2380, "events": 0}) == " (machines 20, telemetry 2380)"
    assert _by_table({"machines": 0, "telemetry": 0}) == ""


def test_ctrl_c_exits_130_and_says_aborted(tmp_path):
    import signal
    import time

    env = {
        **os.environ,
        "WEARCAST_HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / ".prefect"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
    }
    args = [WEARCAST, "simulate", str(tmp_path / "fleet"), "--machines", "3000", "--days", "60"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4)  # inside the simulation, which takes far longer
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "aborted" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    ("variable", "value", "command", "named"),
    [
        ("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/", "rollback", "the MLflow server does not answer"),
        ("MLFLOW_TRACKING_URI", "sqlite:////proc/no/such/mlflow.db", "rollback", "cannot be written"),
        ("PREFECT_API_URL", "http://127.0.0.1:9/api", "features", "the Prefect API does not answer"),
    ],
)
def test_an_unusable_mlflow_store_or_prefect_api_stops_at_once_with_the_fix(
    tmp_path, variable, value, command, named
):
    env = {
        **os.environ,
        "WEARCAST_HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / ".prefect"),
        variable: value,
    }
    if variable != "MLFLOW_TRACKING_URI":
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    args = {"rollback": ["--reason", "t"], "features": [str(tmp_path), "--out", str(tmp_path / "f.parquet")]}
    out = subprocess.run(
        [WEARCAST, command, *args[command]], capture_output=True, text=True, env=env, timeout=60
    )
    assert (
        out.returncode == 2 and named in out.stderr and "fix:" in out.stderr and "Traceback" not in out.stderr
    )


def test_commands_check_only_the_services_they_use(tmp_path):
    """ingest needs neither MLflow nor Prefect: a server that is still starting must not stop it."""
    env = {
        **os.environ,
        "WEARCAST_HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / ".prefect"),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9/",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    out = subprocess.run(
        [WEARCAST, "ingest", str(tmp_path / "missing")], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "not a folder" in out.stderr and "does not answer" not in out.stderr


def test_a_batch_that_stored_nothing_says_why_and_where_it_is_kept():
    from pipelines.cli import batch_line

    failed = {"batch": "2026-02-05", "status": "failed", "tables": {}, "moved_to": "/in/failed/2026-02-05"}
    line = batch_line({**failed, "error": "every row is of a machine the store does not know"})
    assert "nothing stored" in line and "rows in" not in line and "kept in /in/failed/2026-02-05" in line
    stuck = batch_line({"batch": "b", "status": "error", "tables": {}, "error": "OSError: disk full"})
    assert "kept in the inbox, for the next run" in stuck
    stored = {"rows_in": 5, "stored": 4, "quarantined": 1, "duplicates": 0}
    line = batch_line({"batch": "b", "status": "stored", "tables": {"telemetry": stored}, "moved_to": "/p/b"})
    assert line.startswith("batch b: stored; rows in 5 = stored 4 + quarantined 1 + duplicates 0")
    changed = {
        "register_updates": ["M7: vibration_class II -> IV"],
        "quarantine_codes": {"conflicts_with_stored": 1},
    }
    line = batch_line(
        {"batch": "b", "status": "stored", "tables": {"telemetry": stored}, "moved_to": "/p", **changed}
    )
    assert "; 1 rows quarantined as conflicts_with_stored" in line
    assert "register updated for 1 machine(s) (M7: vibration_class II -> IV)" in line


@pytest.mark.parametrize(("status", "code"), [("failed", 3), ("error", 3), ("stored", 0)])
def test_an_inbox_run_with_a_batch_not_stored_exits_3_after_writing_the_list(
    monkeypatch, capsys, tmp_path, status, code
):
    import pipelines.cli as cli

    batch = {"batch": "b7", "status": status, "tables": {}, "moved_to": "/in/failed/b7", "error": "bad"}
    monkeypatch.setattr(cli, "run_scoring", lambda *args: {"batches": [batch]})
    monkeypatch.setattr(cli, "print_scoring", lambda result: print("risk list written"))
    monkeypatch.setattr(sys, "argv", ["wearcast", "score", "--inbox", str(tmp_path)])
    assert cli.run_app() == code
    out = capsys.readouterr()
    assert "risk list written" in out.out
    assert ("1 batch(es) not stored (b7)" in out.err) == (code == 3)


def test_a_replay_that_scored_almost_nothing_says_so_and_how_to_fix_it():
    import pandas as pd

    from pipelines.cli import thin_replay

    lives = pd.DataFrame({"machine_id": ["b1"] * 3 + ["b2"] * 3, "status": ["failed"] * 5 + ["scored"]})
    warning = thin_replay(lives, 24.0)
    assert warning is not None and "scored only 1 rows of 2 machines (5 failed, 1 scored)" in warning
    assert "the 24 h step" in warning and "fix: a smaller --every-h" in warning
    fine = pd.DataFrame({"machine_id": ["b1"] * 4, "status": ["scored"] * 4})
    assert thin_replay(fine, 24.0) is None


def test_the_printed_list_says_who_to_inspect_and_lives_in_hours_when_short():
    import numpy as np

    from pipelines.cli import inspect_text, life_text

    assert (
        inspect_text({"flagged": np.True_, "alarm": np.True_, "change": "new", "status": "scored"})
        == "yes new"
    )
    assert (
        inspect_text({"flagged": np.False_, "alarm": np.True_, "change": "", "status": "scored"}) == "alarm"
    )
    assert inspect_text({"flagged": np.nan, "alarm": np.nan, "change": "", "status": "failed"}) == "(failed)"
    assert inspect_text({"flagged": np.False_, "alarm": np.False_, "change": "", "status": "scored"}) == ""
    assert life_text(2.3, {}) == "2.3h" and life_text(100.0, {"life_cap_h": 720}) == "4.2d"
    assert life_text(720.0, {"life_cap_h": 720}) == ">30d" and life_text(float("nan"), {}) == ""


def test_deploy_help_names_the_environment_variables(tmp_path):
    out = run("deploy", "--help", home=tmp_path)
    assert out.returncode == 0
    for name in ("WEARCAST_SCORE_CRON", "WEARCAST_TIMEZONE", "WEARCAST_INBOX", "WEARCAST_MODEL_NAME"):
        assert name in out.stdout, name


def test_a_wearcast_home_that_is_not_a_folder_exits_2_with_the_fix(tmp_path):
    env_home = tmp_path / "missing"
    out = subprocess.run(
        [WEARCAST, "rollback", "--reason", "t"],
        capture_output=True,
        text=True,
        env={**os.environ, "WEARCAST_HOME": str(env_home), "PREFECT_HOME": str(tmp_path / "p")},
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "WEARCAST_HOME" in out.stderr and "mkdir -p" in out.stderr
