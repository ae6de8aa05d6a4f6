"""Scale-out: the feature step of a large fleet, partition by partition, on a Dask cluster.

Off by default (one process, as before). ``WEARCAST_DASK_WORKERS=N`` starts a ``distributed.LocalCluster`` of N
single-threaded worker processes for the run; ``WEARCAST_DASK_ADDRESS=tcp://host:8786`` joins a running Dask
scheduler instead (a plant's cluster). Either way the fleet is cut into partitions of
``WEARCAST_PARTITION_MACHINES`` machines (default 5,000; never one task per machine) and each partition is a
Prefect task run submitted through ``prefect_dask.DaskTaskRunner``, so the UI shows one task per partition.
See docs/scaling.md for the measurements and for what a fleet of 100 million machines needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import FeatureConfig, FeatureTable, Progress, build_features
from features.dataset import Dataset
from features.partition import Partition, concat_tables, fleet_reference, split_fleet
from pipelines.logs import log_event
from pipelines.settings import ScaleSettings


def current_api_url() -> str:
    """The Prefect API this run reports to (a server's, or the temporary one Prefect started for this process)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


# glibc reads these when a process starts. Dask sets a 64 KiB trim threshold for its workers (to hand memory back),
# which also turns off glibc's adaptive mmap threshold: every array over 128 KiB is then mapped and unmapped
# afresh, and the feature kernels, which allocate large temporaries per block, ran slower in a worker than in a
# plain process (benchmarks/dask_scaling.py; docs/scaling.md). Large thresholds keep reused buffers in the heap.
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 28)}


def local_cluster_kwargs(workers: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``distributed.LocalCluster`` arguments: ``workers`` one-thread processes, no dashboard. Their malloc
    settings are set here, before they spawn (Dask's ``pre-spawn-environ``); ``env`` is added to theirs."""
    import dask

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines drown the run's own log
    dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC.items()})
    threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return {
        "n_workers": max(workers, 1),
        "threads_per_worker": 1,  # one feature kernel per core; numpy/FFT threads are limited per worker
        "processes": True,
        "dashboard_address": None,  # no web dashboard port on a shared machine
        "env": {**threads, **(env or {})},
    }


def dask_task_runner(settings: ScaleSettings) -> Any:
    """A ``DaskTaskRunner``: joining ``address``, or on a local cluster of ``workers`` one-thread processes.

    Local workers report their task runs to this run's Prefect API; without it each worker would start a
    temporary API of its own (~10 s each, and runs the UI never sees). A remote cluster's workers need
    ``PREFECT_API_URL`` in their own environment (docs/scaling.md)."""
    from prefect_dask import DaskTaskRunner

    if settings.address:
        logging.getLogger("distributed").setLevel(logging.WARNING)
        return DaskTaskRunner(address=settings.address)
    kwargs = local_cluster_kwargs(settings.workers, {"PREFECT_API_URL": current_api_url()})
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)


@contextmanager
def dask_client(settings: ScaleSettings) -> Iterator[Any]:
    """A Dask client: of the scheduler at ``address``, or of a local cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if settings.address:
        logging.getLogger("distributed").setLevel(logging.WARNING)
        with Client(settings.address) as client:
            yield client
        return
    with LocalCluster(**local_cluster_kwargs(settings.workers)) as cluster, Client(cluster) as client:
        yield client


@task(cache_policy=NO_CACHE, task_run_name="featurize-partition-{number}")
def featurize_partition(
    number: int,
    part: Dataset,
    config: FeatureConfig,
    as_of: pd.DataFrame | None,
    fleet_medians: pd.DataFrame | None,
) -> FeatureTable:
    """The features of one partition of the fleet (runs on a Dask worker)."""
    return build_features(part, as_of, config, fleet_medians=fleet_medians)


def featurize_on_dask(
    dataset: Dataset,
    config: FeatureConfig,
    as_of: pd.DataFrame | None,
    settings: ScaleSettings,
    progress: Progress | None = None,
) -> FeatureTable:
    """The fleet's feature table, built partition by partition on Dask; equal to ``build_features`` of the
    whole fleet (the fleet medians are computed here once and shipped with every partition)."""
    reference = fleet_reference(dataset, as_of, config)
    parts = split_fleet(dataset, settings.partition_machines, as_of)
    log_event(
        "features",
        partitions=len(parts),
        machines_per_partition=settings.partition_machines,
        dask=settings.address or f"local cluster of {settings.workers} workers",
    )
    with dask_task_runner(settings) as runner:
        tables = run_partitions(runner, parts, config, reference, progress)
    return concat_tables(parts, tables)


def run_partitions(
    runner: Any,
    parts: list[Partition],
    config: FeatureConfig,
    reference: pd.DataFrame | None,
    progress: Progress | None = None,
) -> list[FeatureTable]:
    """Each partition's feature table, computed as a task on a started ``DaskTaskRunner``."""
    # each partition's data goes to a worker directly (not inside the task graph), and its task is submitted at
    # once, so the first partitions compute while the next ones are still being sent
    client = runner.client
    on_workers = client.scatter(reference, broadcast=True, hash=False) if reference is not None else None
    workers = sorted(
        client.scheduler_info()["workers"]
    )  # partitions dealt out in turn: balanced from the start
    futures = []
    for i, part in enumerate(parts):
        data = client.scatter(part.dataset, workers=[workers[i % len(workers)]], hash=False)
        parameters = {
            "number": i,
            "part": data,
            "config": config,
            "as_of": part.as_of,
            "fleet_medians": on_workers,
        }
        futures.append(runner.submit(featurize_partition, parameters))
    tables = []
    for future in futures:
        tables.append(future.result())
        if progress is not None:
            progress(len(tables), len(futures))
    return tables


def featurize_fleet(
    scale: ScaleSettings,
    dataset: Dataset,
    config: FeatureConfig,
    as_of: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> FeatureTable:
    """The feature step of a flow: on Dask when the settings enable it, else one task in the flow's process."""
    if scale.enabled:
        return featurize_on_dask(dataset, config, as_of, scale, progress)
    return featurize(dataset, config, as_of, progress)


@task(cache_policy=NO_CACHE)
def featurize(
    dataset: Dataset,
    config: FeatureConfig,
    as_of: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> FeatureTable:
    return build_features(dataset, as_of, config, progress=progress)
