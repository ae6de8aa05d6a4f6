"""Scheduled deployments: hourly scoring of the inbox, weekly retraining, a daily backtest report.

Two ways to run them (docs/deployment.md): ``wearcast serve`` runs all three with ``prefect.serve`` in one
long-running process; ``wearcast deploy --pool NAME`` registers them in a ``process`` work pool of a running
Prefect server, where ``prefect worker start --pool NAME`` runs them from this project folder.

Each deployed flow is its flow of ``pipelines.flows`` (same name, same typed parameters, so the Prefect UI shows
the same form) run with retries on transient errors: a connection refused, reset or timed out, anywhere in the
exception's chain, is retried with exponential backoff; an unusable input ends the run at once as Failed
``UnusableInput`` and is never retried (Prefect's own flow retries would retry it, so they are not used).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import State, flow, get_run_logger
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from pydantic import BaseModel, ConfigDict, field_validator

from features.errors import InputError
from pipelines.backtest_flow import BacktestParams, backtest_flow
from pipelines.flows import ScoreParams, TrainParams, score_flow, train_flow
from pipelines.settings import Settings
from pipelines.store import default_store_path

R = TypeVar("R")
TRANSIENT_RETRIES = 3
BACKOFF_S = 30.0  # waits 30 s, 60 s, 120 s
NOT_TRANSIENT = (PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
ENV = {
    "score_cron": "WEARCAST_SCORE_CRON",
    "train_cron": "WEARCAST_TRAIN_CRON",
    "backtest_cron": "WEARCAST_BACKTEST_CRON",
    "timezone": "WEARCAST_TIMEZONE",
    "inbox": "WEARCAST_INBOX",
    "store": "WEARCAST_STORE",
    "data": "WEARCAST_TRAIN_DATA",
    "out": "WEARCAST_OUT",
    "model_name": "WEARCAST_MODEL_NAME",
}


class DeploySettings(BaseModel):
    """Schedules (cron, in ``timezone``) and the folders the scheduled runs read and write."""

    model_config = ConfigDict(frozen=True)
    inbox: Path  # batch folders arrive here; scoring moves them to processed/ or failed/
    store: Path  # the history store (Delta tables) scoring appends to
    data: Path  # the dataset folder the weekly retraining and the daily backtest read
    out: Path  # risk lists, reports and backtest timelines
    model_name: str = "wearcast"
    score_cron: str = "0 * * * *"
    train_cron: str = "0 3 * * 1"
    backtest_cron: str = "30 4 * * *"
    timezone: str = "UTC"
    paused: bool = False  # create the schedules inactive (runs only when triggered)

    @field_validator("score_cron", "train_cron", "backtest_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronSchedule(cron=value)
        except ValueError:
            raise ValueError(f"'{value}' is not a cron expression (e.g. '0 * * * *' for hourly)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value


def load_deploy_settings(settings: Settings, **given: Any) -> DeploySettings:
    """Options given on the command line, else the ``WEARCAST_*`` environment variables, else the defaults
    (folders inbox/, store/, data/ and outputs/ of the project)."""
    values: dict[str, Any] = {
        "inbox": settings.root / "inbox",
        "store": default_store_path(settings.root),
        "data": settings.root / "data",
        "out": settings.outputs,
    }
    values |= {key: os.environ[name] for key, name in ENV.items() if os.environ.get(name)}
    values |= {key: value for key, value in given.items() if value is not None}
    for key in ("inbox", "store", "data", "out"):
        values[key] = Path(values[key]).expanduser().resolve()
    return DeploySettings(**values)


def is_transient(exc: BaseException) -> bool:
    """An OSError (connection refused or reset, timeout, busy file; not a missing file or a permission) anywhere
    in the exception's chain: MLflow and the store wrap the network error they met."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and not isinstance(current, NOT_TRANSIENT):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_transient(body: Callable[..., R], *args: Any) -> R:
    """Run a flow body, again after 30, 60 and 120 s when it raised a transient error. An unusable input is a
    returned Failed state, never an exception, so it is never retried."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return body(*args)
        except Exception as exc:
            if attempt == TRANSIENT_RETRIES or not is_transient(exc):
                raise
            delay = BACKOFF_S * 2**attempt
            get_run_logger().warning(
                "transient error (%s: %s); attempt %d of %d, retrying in %.0f s",
                type(exc).__name__,
                exc,
                attempt + 1,
                TRANSIENT_RETRIES + 1,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


@flow(name="wearcast-score", log_prints=True)
def scheduled_score(params: ScoreParams) -> dict | State:
    """Store the inbox's batches, score the store's machines into the risk list (retried on transient errors)."""
    return retry_transient(score_flow.fn, params)


@flow(name="wearcast-train", log_prints=True)
def scheduled_train(params: TrainParams) -> dict | State:
    """Train a challenger on DATA, register it, promote it if it beats the champion (retried on transient errors)."""
    return retry_transient(train_flow.fn, params)


@flow(name="wearcast-backtest", log_prints=True)
def scheduled_backtest(params: BacktestParams) -> dict | State:
    """Replay the last days of DATA with a walk-forward model and report (retried on transient errors)."""
    return retry_transient(backtest_flow.fn, params)


def deployments(
    config: DeploySettings,
    build: Callable[[str], Any],
    entrypoint_type: EntrypointType,
    work_pool_name: str | None = None,
) -> list[RunnerDeployment]:
    """The three deployments; ``build(name)`` gives the flow object of this module's flow ``name``."""

    def one(
        name: str, deployment: str, cron: str, params: BaseModel, limit: int, what: str
    ) -> RunnerDeployment:
        return build(name).to_deployment(
            name=deployment,
            schedule=Cron(cron, timezone=config.timezone),
            paused=config.paused,
            parameters={"params": params.model_dump(mode="json", exclude_defaults=True)},
            concurrency_limit=ConcurrencyLimitConfig(
                limit=limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            description=f"{what} ({cron}, {config.timezone}); see docs/deployment.md",
            tags=["wearcast"],
            entrypoint_type=entrypoint_type,
            work_pool_name=work_pool_name,
        )

    return [
        one(
            "scheduled_score",
            "hourly-inbox",
            config.score_cron,
            ScoreParams(
                inbox=str(config.inbox),
                store=str(config.store),
                out=str(config.out),
                model_name=config.model_name,
            ),
            1,  # one writer of the store at a time: a second run waits for the first
            "Score the inbox's new batches into the risk list",
        ),
        one(
            "scheduled_train",
            "weekly-retrain",
            config.train_cron,
            TrainParams(data=str(config.data), model_name=config.model_name),
            1,
            "Retrain; the challenger replaces the champion only if it beats it on the same hold-out",
        ),
        one(
            "scheduled_backtest",
            "daily-backtest",
            config.backtest_cron,
            BacktestParams(
                data=str(config.data),
                out=str(config.out / "backtest" / "timeline.parquet"),
                model_name=config.model_name,
            ),
            1,
            "Backtest report of the last 30 days (drift is reported by every scoring run)",
        ),
    ]


def serve_deployments(config: DeploySettings, take_over: bool = False) -> None:
    """Run the three deployments in this process until interrupted (their schedules pause when it stops).

    Deployments of the same names that ``wearcast deploy`` put in a work pool of this server would be taken
    over, and their schedules paused when this process stops: refused unless ``take_over``."""
    import prefect

    flows = {"scheduled_score": scheduled_score, "scheduled_train": scheduled_train}
    flows["scheduled_backtest"] = scheduled_backtest
    found = deployments(config, flows.__getitem__, EntrypointType.MODULE_PATH)
    in_pools = {name: d.work_pool_name for name, d in _on_server(found).items() if d.work_pool_name}
    if in_pools and not take_over:
        listed = ", ".join(f"{name} (work pool '{pool}')" for name, pool in in_pools.items())
        raise InputError(
            f"this Prefect server runs {listed} through a worker; `wearcast serve` would take them over and "
            "pause their schedules when it stops; fix: serve against another server (or none: unset "
            "PREFECT_API_URL), or pass --take-over and rerun `wearcast deploy` afterwards to give them back"
        )
    prefect.serve(*found)


def _name(deployment: RunnerDeployment) -> str:
    return f"{deployment.flow_name}/{deployment.name}"


def _on_server(found: list[RunnerDeployment]) -> dict[str, Any]:
    """The deployments of these names that the Prefect server already has (name -> the server's record)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    existing = {}
    with get_client(sync_client=True) as client:
        for deployment in found:
            try:
                existing[_name(deployment)] = client.read_deployment_by_name(_name(deployment))
            except ObjectNotFound:
                continue
    return existing


def _paused(record: Any) -> bool:
    """A deployment on the server that is paused, or whose schedules are all paused."""
    schedules = record.schedules or []
    return bool(record.paused) or (bool(schedules) and not any(s.active for s in schedules))


def code_root() -> Path:
    """The project folder holding this package's source: what a process worker runs the flows from."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise InputError(
            f"{root}: not a wearcast project folder; fix: run `wearcast deploy` from a checkout of the project"
        )
    return root


def deploy_to_pool(config: DeploySettings, pool: str) -> tuple[list[str], list[str]]:
    """Register the deployments in the ``process`` work pool ``pool`` (created if missing) of the Prefect server
    at PREFECT_API_URL; a worker runs them from this project folder. Returns their names, and those kept paused
    because they were paused on the server (a redeploy never resumes what an operator paused)."""
    from prefect import Flow
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise InputError(
            "PREFECT_API_URL is not set, and deployments need a running server; fix: start `prefect server start` "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api (or use `wearcast serve`)"
        )
    ensure_process_pool(pool)
    root = code_root()

    def from_source(name: str) -> Flow[..., Any]:
        loaded = Flow.from_source(source=str(root), entrypoint=f"pipelines/deploy.py:{name}")
        return cast("Flow[..., Any]", loaded)  # synchronous outside an event loop

    found = deployments(config, from_source, EntrypointType.FILE_PATH, work_pool_name=pool)
    kept = [] if config.paused else [n for n, record in _on_server(found).items() if _paused(record)]
    for deployment in found:
        if _name(deployment) in kept:  # paused by an operator (a backup, say): a redeploy keeps it paused
            deployment.paused = True
        deployment.apply()
    return [_name(d) for d in found], kept


def ensure_process_pool(pool: str) -> None:
    """Create the ``process`` work pool if the server does not have it; refuse a pool of another type."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            return
    if found.type != "process":
        raise InputError(
            f"work pool '{pool}' is of type '{found.type}'; fix: give a pool of type 'process' or a new name"
        )
