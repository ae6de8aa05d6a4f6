"""The real deployment set-up, end to end: a Prefect server, an MLflow tracking server and a process worker on
loopback ports, the deployments created by ``wearcast deploy``, a training run and a scoring run triggered
through the Prefect API. Everything started here runs in its own process group and is stopped at the end.
Bounded: the whole test gives up after DEADLINE_S with a message naming what did not come up or finish."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEADLINE_S = 480.0
POOL = "wearcast-it"
MODEL = "wearcast-it"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clock:
    """The time left of the test's budget."""

    def __init__(self, budget_s: float) -> None:
        self.end = time.monotonic() + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()


@contextmanager
def started(name: str, args: list[str], env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen]:
    """A process in its own group (working in WEARCAST_HOME), its output in ``logs/name.log``; the whole group
    stopped on exit."""
    log = (logs / f"{name}.log").open("wb")
    process = subprocess.Popen(
        args,
        env=env,
        cwd=env["WEARCAST_HOME"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            os.killpg(process.pid, 0)  # children left in the group?
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass


def wait_healthy(
    name: str, url: str, process: subprocess.Popen, clock: Clock, limit_s: float, log: Path
) -> None:
    """Poll ``url`` until it answers 200; fail naming the server and the end of its log otherwise."""
    give_up = time.monotonic() + min(limit_s, clock.left())
    while time.monotonic() < give_up:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    tail = log.read_text(errors="replace")[-2000:]
    state = (
        f"exited with {process.returncode}" if process.poll() is not None else f"no answer in {limit_s:.0f} s"
    )
    pytest.fail(f"{name} did not come up at {url} ({state}); end of {log}:\n{tail}")


def wearcast(*args: str, env: dict[str, str], clock: Clock) -> str:
    out = subprocess.run(
        [str(BIN / "wearcast"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=max(clock.left(), 1),
        cwd=env["WEARCAST_HOME"],
    )
    assert out.returncode == 0, (
        f"wearcast {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    )
    return out.stdout


def run_deployment(name: str, parameters: dict, clock: Clock, log: Path):
    """Trigger a run through the API, wait for its end, fail with its state message and the runner's log."""
    from prefect.deployments import run_deployment as trigger

    run = trigger(name=name, parameters=parameters, timeout=max(clock.left() - 30, 10), poll_interval=2)
    if not (run.state and run.state.is_completed()):
        tail = log.read_text(errors="replace")[-3000:]
        state = run.state.name if run.state else "no state"
        message = run.state.message if run.state else ""
        pytest.fail(f"{name}: run {run.id} ended {state} ({message}); end of {log}:\n{tail}")
    return run


def artifact_keys(flow_run_id) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key for a in found if a.key}


def mlflow_champion(tracking: str, model: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking).get_model_version_by_alias(model, "champion").version


@pytest.mark.integration
def test_deployments_train_and_score_through_a_server_and_a_worker(tmp_path, monkeypatch):
    clock = Clock(DEADLINE_S)
    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    prefect_port, mlflow_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    tracking = f"http://127.0.0.1:{mlflow_port}"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "WEARCAST_HOME": str(home),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_UI_ENABLED": "false",
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, env[key])  # for the Prefect client and MlflowClient in this process
    prefect_server = [
        str(BIN / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(prefect_port),
    ]
    mlflow_server = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp_path / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    with (
        started("prefect-server", prefect_server, env, logs) as prefect_process,
        started(
            "mlflow-server", mlflow_server, {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, logs
        ) as mlflow_process,
    ):
        fleet = home / "fleet"
        wearcast(
            "simulate",
            str(fleet),
            "--machines",
            "60",
            "--days",
            "30",
            "--inbox-days",
            "1",
            env=env,
            clock=clock,
        )
        store = home / "store"
        wearcast("ingest", str(fleet), "--store", str(store), env=env, clock=clock)
        wait_healthy(
            "prefect server", f"{api}/health", prefect_process, clock, 120, logs / "prefect-server.log"
        )
        wait_healthy(
            "mlflow server", f"{tracking}/health", mlflow_process, clock, 150, logs / "mlflow-server.log"
        )
        same = ["--data", str(fleet), "--inbox", str(fleet / "inbox"), "--store", str(store)]
        same += ["--model-name", MODEL]
        printed = wearcast("deploy", "--pool", POOL, "--paused", *same, env=env, clock=clock)
        assert "wearcast-score/hourly-inbox" in printed
        # a redeploy (a setting changed) never resumes schedules an operator paused (here: made paused)
        again = wearcast("deploy", "--pool", POOL, *same, env=env, clock=clock)
        assert "wearcast-score/hourly-inbox in work pool 'wearcast-it' (kept paused" in again, again
        worker = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"]
        with started("worker", worker, env, logs):
            out = home / "outputs"
            train = run_deployment(
                "wearcast-train/weekly-retrain",
                {"params": {"data": str(fleet), "model_name": MODEL, "train": {"search_trials": 1}}},
                clock,
                logs / "worker.log",
            )
            score = run_deployment(
                "wearcast-score/hourly-inbox",
                {
                    "params": {
                        "inbox": str(fleet / "inbox"),
                        "store": str(store),
                        "out": str(out),
                        "model_name": MODEL,
                    }
                },
                clock,
                logs / "worker.log",
            )
        train_artifacts, score_artifacts = artifact_keys(train.id), artifact_keys(score.id)
        champion = mlflow_champion(tracking, MODEL)

        # The other way to run them: `wearcast serve` (prefect.serve) takes the same deployments over; with the
        # worker stopped, only it can run the next scoring run.
        refused = subprocess.run(
            [str(BIN / "wearcast"), "serve", "--paused", "--model-name", MODEL],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 2 and "--take-over" in refused.stderr, refused.stderr
        serve = [str(BIN / "wearcast"), "serve", "--paused", "--take-over", "--data", str(fleet)]
        serve += ["--model-name", MODEL]
        with started("serve", serve, {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}, logs):
            served_out = home / "served"
            served = run_deployment(
                "wearcast-score/hourly-inbox",
                {
                    "params": {
                        "inbox": str(fleet / "inbox"),
                        "store": str(store),
                        "out": str(served_out),
                        "model_name": MODEL,
                    }
                },
                clock,
                logs / "serve.log",
            )
        served_artifacts = artifact_keys(served.id)

    assert champion == "1", f"registry alias 'champion' of {MODEL}: {champion}"
    assert "training-summary" in train_artifacts, train_artifacts
    assert "risk-list" in score_artifacts, score_artifacts
    assert "risk-list" in served_artifacts, served_artifacts
    assert (served_out / "risk_list.csv").is_file(), "the served scoring run wrote no risk list"
    risk = (out / "risk_list.csv").read_text().splitlines()
    assert risk[0].startswith("rank,machine_id"), risk[0]
    assert len(risk) == 61, f"{len(risk) - 1} machines in the risk list, expected the fleet's 60"
    assert [p.name for p in (fleet / "inbox" / "processed").iterdir()], (
        "the inbox batch was not stored and moved"
    )


# Fast checks of the deployment settings and the retry rule (no server).


def test_settings_come_from_options_then_environment_then_defaults(tmp_path, monkeypatch):
    from pipelines.deploy import load_deploy_settings
    from pipelines.settings import load_settings

    monkeypatch.setenv("WEARCAST_HOME", str(tmp_path))
    monkeypatch.setenv("WEARCAST_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("WEARCAST_SCORE_CRON", "5 * * * *")
    config = load_deploy_settings(load_settings(), score_cron="15 * * * *", inbox=None)
    assert (config.score_cron, config.timezone, config.train_cron) == (
        "15 * * * *",
        "Europe/Berlin",
        "0 3 * * 1",
    )
    assert config.inbox == tmp_path / "inbox" and config.store == tmp_path / "store"


@pytest.mark.parametrize(("field", "value"), [("score_cron", "61 * * * *"), ("timezone", "Mars/Olympus")])
def test_a_bad_schedule_is_refused_naming_the_setting(tmp_path, field, value):
    from pydantic import ValidationError

    from pipelines.deploy import DeploySettings

    folders = {k: tmp_path for k in ("inbox", "store", "data", "out")}
    with pytest.raises(ValidationError, match=field):
        DeploySettings(**folders, **{field: value})


def test_transient_errors_are_retried_and_others_are_not(monkeypatch):
    import logging

    from pipelines import deploy

    monkeypatch.setattr(deploy, "BACKOFF_S", 0.0)
    monkeypatch.setattr(deploy, "get_run_logger", lambda: logging.getLogger("test"))
    calls = []

    def flaky(value):
        calls.append(value)
        if len(calls) < 3:
            try:
                raise ConnectionRefusedError("connection refused")
            except OSError as exc:
                raise RuntimeError("API request to http://mlflow failed") from exc  # how MLflow wraps it
        return value

    assert deploy.retry_transient(flaky, 7) == 7 and len(calls) == 3
    assert not deploy.is_transient(ValueError("bad column"))
    assert not deploy.is_transient(FileNotFoundError("gone"))

    def broken():
        calls.append(None)
        raise KeyError("a bug")

    calls.clear()
    with pytest.raises(KeyError):
        deploy.retry_transient(broken)
    assert len(calls) == 1
