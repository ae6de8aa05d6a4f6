"""End to end: the real train and score flows on a small simulated fleet, Prefect's test harness, a temporary
MLflow SQLite store; then the registry and the risk list are read back."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("prefect")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory, prefect_api):
    root = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("WEARCAST_HOME", str(root))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    (root / "mlruns").mkdir()
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    from features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("fleet") / "fleet"
    simulate(out, SimulationConfig(machines=80, days=40, seed=3, inbox_days=1, snapshot_samples=2048))
    return out


@pytest.fixture(scope="module")
def first_training(store, fleet) -> dict:
    from pipelines.flows import TrainParams, train_flow

    return train_flow(TrainParams(data=str(fleet), model_name="e2e"))


def test_train_then_score_end_to_end(store, fleet, first_training):
    from pipelines.flows import ScoreParams, TrainParams, score_flow, train_flow

    first = first_training
    assert first["promotion"]["promoted"], first["promotion"]["reason"]
    assert first["metrics"]["roc_auc"] > 0.7

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("e2e", "champion")
    assert str(champion.version) == first["version"] == "1"
    run = client.get_run(first["run_id"])
    for key in (
        "roc_auc",
        "pr_auc",
        "recall_at_alert",
        "precision_at_alert",
        "false_alarms_per_machine_month",
    ):
        assert key in run.data.metrics
    assert run.data.params["data_path"] == str(fleet) and len(run.data.tags["data_fingerprint"]) == 64
    assert (store / "mlruns" / "artifacts").is_dir()
    logged = {a.path for a in client.list_artifacts(first["run_id"], "holdout")}
    assert logged == {"holdout/pr_curve.png"}

    # the same data again: the challenger does not beat the champion, so the alias stays
    second = train_flow(TrainParams(data=str(fleet), model_name="e2e"))
    assert not second["promotion"]["promoted"]
    assert str(client.get_model_version_by_alias("e2e", "champion").version) == "1"
    assert "promotion" in client.get_model_version("e2e", second["version"]).tags

    batch = sorted((fleet / "inbox").iterdir())[-1]
    before = {p: p.stat().st_mtime_ns for p in batch.rglob("*")}
    out = store / "scored"
    result = score_flow(ScoreParams(path=str(batch), history=str(fleet), model_name="e2e", out=str(out)))
    risk = pd.read_parquet(out / "risk_list.parquet")
    machines = pd.read_parquet(fleet / "machines.parquet")
    assert sorted(risk["machine_id"]) == sorted(machines["machine_id"])
    assert list(risk["rank"]) == list(range(1, len(risk) + 1))
    scored = risk[risk["status"] == "scored"]
    assert scored["failure_probability"].is_monotonic_decreasing
    assert set(risk["model_version"]) == {"1"} and result["model_version"] == "1"
    assert (out / "risk_list.csv").is_file() and (out / "quarantine.parquet").is_file()
    drift = pd.read_csv(out / "drift.csv")
    assert {"feature", "psi", "level"} <= set(drift.columns) and "score" in set(drift["feature"])
    scoring_runs = client.search_runs([run.info.experiment_id], "tags.`wearcast.kind` = 'score'")
    assert scoring_runs and "drifted_features" in scoring_runs[0].data.metrics
    assert set(drift["level"]) == {"few_rows"}  # 78 scored machines: too few to judge a PSI (needs 200)
    page = (out / "risk_report.html").read_text()
    flagged = risk[risk["flagged"]]
    assert len(flagged) > 0 and all(m in page for m in flagged["machine_id"])
    assert page.count("data:image/png;base64,") == len(flagged)  # one plot per flagged machine
    assert scored.iloc[0]["drivers"] != ""
    # how soon: the remaining-life regressor travels in the bundle; riskier machines are expected to fail sooner
    life = scored["remaining_life_hours"].to_numpy()
    assert np.isfinite(life).all() and (life >= 0).all() and (life <= 720).all()
    top, rest = life[:5].mean(), life[len(life) // 2 :].mean()
    assert top < rest, (top, rest)
    assert first["metrics"]["life_rmse_h"] > 0 and first["metrics"]["life_rows"] > 0
    # why: the likely fault named for explained machines agrees with the simulator's hidden truth
    named = likely_fault_against_truth(scored, pd.read_parquet(fleet / "truth.parquet"))
    assert len(named) >= 3 and (named["named"] == named["truth"]).mean() >= 0.5, named
    assert {p: p.stat().st_mtime_ns for p in batch.rglob("*")} == before, "score must not write into PATH"


@contextmanager
def webhook_server(posts: list[dict]):
    """A local HTTP endpoint that records the JSON bodies posted to it."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


TRUTH_FAULT = {
    "bearing_outer": "outer race",
    "bearing_inner": "inner race",
    "bearing_ball": "ball",
    "imbalance": "imbalance",
    "lubrication": "lubrication",
}


def likely_fault_against_truth(scored: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Machines with a named likely fault and a machine fault running at their as-of time: named vs true."""
    rows = []
    for machine, when, named in scored[["machine_id", "as_of", "likely_fault"]].itertuples(index=False):
        mine = truth[(truth["machine_id"] == machine) & truth["mode"].isin(list(TRUTH_FAULT))]
        running = mine[(mine["onset"] <= when) & (mine["end"].isna() | (mine["end"] > when))]
        if named not in ("", "unknown") and len(running):
            rows.append(
                {"machine_id": machine, "named": named, "truth": TRUTH_FAULT[running["mode"].iloc[0]]}
            )
    return pd.DataFrame(rows, columns=["machine_id", "named", "truth"])


def test_registered_pyfunc_returns_probabilities(store, fleet, first_training):
    import mlflow

    from features.build import build_features
    from features.dataset import load_dataset

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model("models:/e2e@champion")
    model = pyfunc.unwrap_python_model().model
    frame = build_features(load_dataset(fleet), config=model.spec.config).frame
    out = pyfunc.predict(model.spec.matrix(frame))
    assert list(out.columns) == ["failure_probability"]
    p = out["failure_probability"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all() and len(np.unique(p)) > 20, "probabilities, not class labels"
    np.testing.assert_allclose(p, model.predict_proba(frame), rtol=1e-6)


def test_score_without_champion_fails_the_run_as_unusable_input(store, fleet):
    from features.errors import InputError
    from pipelines.flows import UNUSABLE, ScoreParams, run_flow, score_flow

    params = ScoreParams(path=str(fleet), model_name="never-trained")
    state = score_flow(params, return_state=True)
    assert state.is_failed() and state.name == UNUSABLE and "has no champion" in state.message
    with pytest.raises(InputError, match="has no champion"):
        run_flow(score_flow, params)


def test_scoring_a_model_registered_but_never_promoted_says_so_and_how_to_promote(
    store, fleet, first_training
):
    import mlflow
    from mlflow import MlflowClient

    from features.errors import InputError
    from pipelines.flows import ScoreParams, run_flow, score_flow

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    client = MlflowClient()
    trained = client.get_model_version("e2e", "1")  # a copy of it, registered without the champion alias
    client.create_registered_model("e2e-unpromoted")
    client.create_model_version("e2e-unpromoted", trained.source, run_id=trained.run_id)
    with pytest.raises(InputError, match="has no champion") as caught:
        run_flow(score_flow, ScoreParams(path=str(fleet), model_name="e2e-unpromoted"))
    assert "version(s) 1 are registered" in str(caught.value)
    assert 'wearcast promote 1 --reason "..."' in str(caught.value)


def test_promote_and_rollback_by_hand_are_audited(store, fleet, first_training):
    from models.registry import RegistryError
    from pipelines.flows import TrainParams, train_flow
    from pipelines.promotions import move_champion, rollback_target
    from pipelines.settings import load_settings

    settings = load_settings()
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    other = train_flow(TrainParams(data=str(fleet), model_name="e2e-hand"))
    assert other["promotion"]["promoted"]  # first of its name
    challenger = train_flow(TrainParams(data=str(fleet), model_name="e2e-hand"))
    assert not challenger["promotion"]["promoted"]
    with pytest.raises(RegistryError, match=r"no version 99 .*versions: 2, 1"):
        move_champion(settings, "e2e-hand", "99", "promote", "typo")
    with pytest.raises(RegistryError, match="first champion"):
        rollback_target(settings, "e2e-hand")

    audit = move_champion(settings, "e2e-hand", challenger["version"], "promote", "crew prefers it")
    assert audit["champion_version"] == other["version"]
    assert str(client.get_model_version_by_alias("e2e-hand", "champion").version) == challenger["version"]
    assert rollback_target(settings, "e2e-hand") == other["version"]
    move_champion(settings, "e2e-hand", other["version"], "rollback", "false alarms")
    assert str(client.get_model_version_by_alias("e2e-hand", "champion").version) == other["version"]
    log = [
        line
        for line in (store / "mlruns" / "promotions.jsonl").read_text().splitlines()
        if "e2e-hand" in line
    ]
    assert ['"action": "promote"' in log[-2], '"action": "rollback"' in log[-1]] == [True, True]
    assert "false alarms" in client.get_model_version("e2e-hand", other["version"]).tags["promotion"]


def test_backtest_and_evaluate_flows_write_reports_and_log_runs(store, fleet, first_training):
    from features.errors import InputError
    from pipelines.backtest_flow import BacktestParams, backtest_flow, evaluate_flow
    from pipelines.flows import run_flow

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    out = store / "backtest" / "timeline.parquet"
    walk = backtest_flow(BacktestParams(data=str(fleet), out=str(out), days=12))
    m = walk["metrics"]
    assert walk["model"] == "walk-forward model" and m["failures"] > 0
    assert 0 <= m["recall_lead_24h"] <= m["recall_any_lead"] <= 1
    assert m["life_rmse_h"] > 0 and m["life_rows"] > 0
    timeline = pd.read_parquet(out)
    assert timeline["timestamp"].dt.normalize().nunique() == 14  # 12 days, both ends, 1 day of warm-up
    assert set(timeline["status"]) <= {"scored", "no_recent_data", "insufficient_history", "failed"}
    report = out.with_name("timeline_report")
    for name in (
        "metrics.json",
        "report.md",
        "pr_curve.png",
        "calibration.png",
        "lead_times.png",
        "risk_timelines.png",
    ):
        assert (report / name).stat().st_size > 0, name
    run = client.get_run(walk["run_id"])
    assert run.data.tags["wearcast.kind"] == "backtest" and "recall_lead_24h" in run.data.metrics
    assert {a.path for a in client.list_artifacts(walk["run_id"], "report")} >= {"report/lead_times.png"}

    evaluated = evaluate_flow(
        BacktestParams(
            data=str(fleet), out=str(store / "evaluate" / "t.parquet"), days=None, model_name="e2e"
        )
    )
    assert evaluated["model"] == "e2e v1" and evaluated["metrics"]["failures"] > 0
    with pytest.raises(InputError, match="has no champion"):
        run_flow(
            evaluate_flow, BacktestParams(data=str(fleet), out=str(store / "x.parquet"), model_name="nope")
        )
    with pytest.raises(InputError, match=r"the data only covers 3. days"):
        run_flow(backtest_flow, BacktestParams(data=str(fleet), out=str(store / "x.parquet"), days=400))


def test_search_trials_are_nested_runs_of_the_training_run(store, first_training):
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    parent = client.get_run(first_training["run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{first_training['run_id']}'"
    )
    assert len(children) == int(parent.data.params["train.search_trials"]) > 1
    assert all("oof_pr_auc" in c.data.metrics and "max_depth" in c.data.params for c in children)


def test_a_day_of_inbox_batches_through_the_score_flow(store, fleet, first_training, tmp_path):
    """Good, repeated, corrupt and late batches: stored once, quarantined or failed with a reason, balanced;
    the list covers every machine and the report is written."""
    import shutil

    from pipelines.cli import run_ingest
    from pipelines.flows import ScoreParams, score_flow

    day = sorted(p for p in (fleet / "inbox").iterdir() if p.is_dir() and p.name[0].isdigit())[-1]
    telemetry = pd.read_parquet(day / "telemetry")
    middle = telemetry["timestamp"].sort_values().iloc[len(telemetry) // 2]
    inbox = tmp_path / "inbox"

    def batch(name: str, rows: pd.DataFrame, with_waveforms: bool) -> Path:
        folder = inbox / name
        (folder / "telemetry").mkdir(parents=True)
        shutil.copy(day / "machines.parquet", folder / "machines.parquet")
        rows.to_parquet(folder / "telemetry" / "part-0000.parquet", index=False)
        if with_waveforms:
            shutil.copytree(day / "waveforms", folder / "waveforms")
        return folder

    batch("1-good", telemetry[telemetry["timestamp"] >= middle], with_waveforms=True)
    shutil.copytree(inbox / "1-good", inbox / "2-repeated")
    late = telemetry[telemetry["timestamp"] < middle].copy()
    future = late.head(3).assign(timestamp=late["timestamp"].head(3) + pd.Timedelta(days=5 * 365))
    batch("3-late-with-bad-rows", pd.concat([late, late.head(2), future]), with_waveforms=False)
    corrupt = batch("4-corrupt", telemetry.head(5), with_waveforms=False) / "telemetry" / "part-0000.parquet"
    corrupt.write_bytes(corrupt.read_bytes()[:100])

    history = tmp_path / "history"
    shutil.copytree(fleet, history, ignore=shutil.ignore_patterns("inbox", "truth.parquet"))
    store_dir, out = tmp_path / "store", tmp_path / "out"
    run_ingest(history, store_dir)
    state = score_flow(
        ScoreParams(inbox=str(inbox), store=str(store_dir), model_name="e2e", out=str(out)), return_state=True
    )
    # the list is written, but the run shows that a batch was not stored, and which
    assert state.is_failed() and state.name == "BatchesNotStored"
    assert "1 batch(es) were not stored: 4-corrupt (failed: " in state.message
    result = state.result(raise_on_failure=False)

    reports = {b["batch"]: b for b in result["batches"]}
    assert [reports[n]["status"] for n in sorted(reports)] == ["stored", "already_stored", "stored", "failed"]
    for report in reports.values():
        for counts in report["tables"].values():
            assert counts["rows_in"] == counts["stored"] + counts["quarantined"] + counts["duplicates"]
    assert reports["2-repeated"]["tables"]["telemetry"]["stored"] == 0
    late_report = reports["3-late-with-bad-rows"]
    assert late_report["tables"]["telemetry"]["stored"] >= len(late) - 2  # late data is stored
    assert {"duplicate_timestamp", "future_timestamp"} <= set(late_report["quarantine_codes"])
    rejected = pd.read_parquet(out / "quarantine.parquet")  # this run's rejected rows, beside the list
    assert {"duplicate_timestamp", "future_timestamp"} <= set(rejected["code"])
    assert "unreadable" in (reports["4-corrupt"]["error"] or "") or reports["4-corrupt"]["error_code"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        "1-good",
        "2-repeated",
        "3-late-with-bad-rows",
    ]
    assert [p.name for p in (inbox / "failed").iterdir() if p.is_dir()] == ["4-corrupt"]

    risk = pd.read_parquet(out / "risk_list.parquet")
    machines = pd.read_parquet(fleet / "machines.parquet")
    assert sorted(risk["machine_id"]) == sorted(machines["machine_id"])
    assert (out / "risk_report.html").is_file()
    assert result["notification"] is None  # no webhook configured

    # a crew inspected the first flagged machine and found the fault; a webhook now listens
    from pipelines.feedback import record_findings

    first = risk[risk["flagged"]].iloc[0]
    crew = tmp_path / "crew.csv"
    crew.write_text(
        f"machine_id,timestamp,finding\n{first['machine_id']},{first['as_of'].isoformat()},confirmed_fault\n"
    )
    record_findings(crew, tmp_path / "feedback")
    posts: list[dict] = []
    with webhook_server(posts) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEARCAST_WEBHOOK_URL", url)
        shutil.rmtree(out / "lists")  # the next list starts afresh: every flagged machine is new again
        (out / "risk_list.parquet").unlink()
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("prefect.task_runs").addHandler(handler)
        try:
            again = score_flow(
                ScoreParams(
                    inbox=str(inbox),
                    store=str(store_dir),
                    model_name="e2e",
                    out=str(out),
                    feedback_dir=str(tmp_path / "feedback"),
                )
            )
        finally:
            logging.getLogger("prefect.task_runs").removeHandler(handler)
    assert again["batches"] == []  # nothing new in the inbox: the store is scored as it is
    [stopped] = [r for r in records if getattr(r, "wearcast", {}).get("result") == "no_new_readings"]
    assert stopped.levelno == logging.WARNING and stopped.wearcast["hours_ago"] > 0  # a stopped feed is said
    assert again["notification"]["delivered"] and len(posts) == 1
    assert {m["machine_id"] for m in posts[0]["machines"]} == set(risk.loc[risk["flagged"], "machine_id"])
    assert "How right were the lists?" in (out / "risk_report.html").read_text()
    listed = pd.read_parquet(out / "risk_list.parquet")
    with webhook_server(posts) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEARCAST_WEBHOOK_URL", url)  # the next hourly run: nothing new arrived
        third = score_flow(
            ScoreParams(inbox=str(inbox), store=str(store_dir), model_name="e2e", out=str(out))
        )
    assert third["notification"] is None and len(posts) == 1  # the new machines were posted already
    latest = pd.read_parquet(out / "risk_list.parquet")
    # the same readings again: the changes are still those since the list before, not since itself
    pd.testing.assert_series_equal(latest["change"], listed["change"])
    assert latest.loc[latest["flagged"], "change"].eq("new").all()


def test_scoring_on_dask_partitions_gives_the_same_list(store, fleet, first_training, tmp_path, monkeypatch):
    """WEARCAST_DASK_WORKERS: the feature step runs partition by partition on a local Dask cluster (worker
    processes reporting to this run's Prefect API), and the risk list is the one of a single process."""
    from pipelines.flows import ScoreParams, score_flow

    batch = sorted((fleet / "inbox").iterdir())[0]
    given = {"path": str(batch), "history": str(fleet), "model_name": "e2e"}
    single = score_flow(ScoreParams(**given, out=str(tmp_path / "single")))
    monkeypatch.setenv("WEARCAST_DASK_WORKERS", "2")
    monkeypatch.setenv("WEARCAST_PARTITION_MACHINES", "30")  # 80 machines: 3 partitions
    on_dask = score_flow(ScoreParams(**given, out=str(tmp_path / "dask")))
    one = pd.read_parquet(single["paths"]["risk_list_parquet"])
    two = pd.read_parquet(on_dask["paths"]["risk_list_parquet"])
    assert len(one) == 80
    pd.testing.assert_frame_equal(one, two)


def run_log_lines(flow_run_id) -> list[str]:
    """The messages Prefect's API stored for a flow run (after flushing the log handler's queue)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return [log.message for log in logs]


def test_run_logs_name_the_step_and_the_machines(store, fleet, first_training, tmp_path):
    from pipelines.flows import ScoreParams, score_flow

    batch = sorted((fleet / "inbox").iterdir())[0]
    state = score_flow(
        ScoreParams(path=str(batch), history=str(fleet), model_name="e2e", out=str(tmp_path)),
        return_state=True,
    )
    risk = pd.read_parquet(state.result()["paths"]["risk_list_parquet"])
    lines = run_log_lines(state.state_details.flow_run_id)
    summary = [line for line in lines if line.startswith("step=score model=e2e")]
    assert summary and f"machines={len(risk)}" in summary[0]
    flagged = risk.loc[risk["flagged"], "machine_id"]
    assert len(flagged)
    for machine in flagged.head(5):
        assert any(
            line.startswith("step=score result=flagged") and f"machine={machine} " in line for line in lines
        ), machine


def test_training_on_dask_features_and_booster(store, fleet, first_training, monkeypatch):
    """WEARCAST_DASK_WORKERS + WEARCAST_DASK_TRAIN: partitioned features and an xgboost.dask booster give a
    model as good on the hold-out as the one-process training."""
    from pipelines.flows import TrainParams, train_flow

    monkeypatch.setenv("WEARCAST_DASK_WORKERS", "2")
    monkeypatch.setenv("WEARCAST_PARTITION_MACHINES", "30")
    monkeypatch.setenv("WEARCAST_DASK_TRAIN", "1")
    result = train_flow(TrainParams(data=str(fleet), model_name="e2e-dask"))
    assert result["feature_rows"] == first_training["feature_rows"]
    assert result["metrics"]["roc_auc"] > first_training["metrics"]["roc_auc"] - 0.03


def test_data_without_a_sensor_the_model_uses_is_scored_with_a_warning_and_a_report(
    store, fleet, first_training, tmp_path
):
    """A plant that lost one sensor: the list and the supervisor's report are written (its drivers cannot name
    the lost sensor's features), and the run's log names the missing features and the fix."""
    import shutil

    from pipelines.flows import ScoreParams, score_flow

    copy = tmp_path / "fleet"
    shutil.copytree(fleet, copy, ignore=shutil.ignore_patterns("inbox"))
    for part in (copy / "telemetry").glob("*.parquet"):
        pd.read_parquet(part).drop(columns="temperature_bearing").to_parquet(part)
    state = score_flow(
        ScoreParams(path=str(copy), model_name="e2e", out=str(tmp_path / "out")), return_state=True
    )
    paths = state.result()["paths"]
    risk = pd.read_parquet(paths["risk_list_parquet"])
    assert risk["failure_probability"].notna().sum() > 0 and Path(paths["report"]).is_file()
    assert not risk["drivers"].str.contains("temperature bearing", case=False).any()
    warning = [line for line in run_log_lines(state.state_details.flow_run_id) if "cannot provide" in line]
    assert warning and "tel__temperature_bearing__" in warning[0] and "fix:" in warning[0]


def test_an_inbox_run_on_a_store_that_was_not_there_warns_that_it_made_a_new_one(
    store, fleet, first_training, tmp_path
):
    """A typo in --store must not quietly start an empty history beside the real one."""
    import shutil

    from pipelines.flows import ScoreParams, score_flow

    inbox = tmp_path / "inbox"
    shutil.copytree(sorted((fleet / "inbox").iterdir())[0], inbox / "batch")
    typo = tmp_path / "stroe"
    state = score_flow(
        ScoreParams(inbox=str(inbox), store=str(typo), model_name="e2e", out=str(tmp_path / "out")),
        return_state=True,
    )
    lines = run_log_lines(state.state_details.flow_run_id)
    assert any(
        line.startswith("step=store") and str(typo) in line and "check --store" in line for line in lines
    )
