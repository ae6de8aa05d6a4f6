"""Split a fleet into partitions of whole machines, so feature building can run on several workers.

Every feature of a machine depends only on that machine's own readings, except ``rise_over_fleet`` (a
temperature minus the median of the machines of the same type at the same hour). ``fleet_reference``
computes those medians once over the whole fleet; each partition then builds its features with
``build_features(part, as_of, config, fleet_medians=reference)`` and the concatenated tables equal the
features of the whole fleet built at once (tests/test_partition.py checks it value for value).

Partitions are contiguous blocks of the sorted machine ids, thousands of machines each (never one task per
machine: per-task overhead would dominate). Each partition carries only its machines' rows, and its own copy
of their waveform samples, so a worker receives what it needs and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import cast

import numpy as np
import pandas as pd

from features.build import KEYS, FeatureConfig, FeatureTable, default_as_of, reading_time_dtype
from features.dataset import Dataset, Waveforms
from features.telemetry import AMBIENT, fleet_medians


def machine_blocks(machine_ids: pd.Series | list[str], size: int) -> list[list[str]]:
    """Sorted unique machine ids cut into consecutive blocks of at most ``size`` machines."""
    if size < 1:
        raise ValueError(f"partition size must be at least 1 machine, got {size}")
    ids = sorted(pd.unique(pd.Series(machine_ids, dtype=object)))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _block_of(machine_ids: pd.Series, blocks: list[list[str]]) -> np.ndarray:
    """Block number of each row's machine (-1 for a machine in no block)."""
    lookup = pd.Series(
        np.repeat(np.arange(len(blocks)), [len(b) for b in blocks]),
        index=[m for b in blocks for m in b],
    )
    return machine_ids.map(lookup).fillna(-1).to_numpy(dtype=np.int64)


def _rows_by_block(frame: pd.DataFrame, blocks: list[list[str]]) -> list[np.ndarray]:
    """Positions of the rows of each block's machines in ``frame``, in the frame's order."""
    block = _block_of(frame["machine_id"], blocks) if len(frame) else np.zeros(0, dtype=np.int64)
    order = np.argsort(block, kind="stable")
    cuts = np.searchsorted(block[order], np.arange(len(blocks) + 1))
    return [order[a:b] for a, b in pairwise(cuts)]


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    return frame.iloc[rows].reset_index(drop=True)


def _compact(waveforms: Waveforms, meta: pd.DataFrame) -> Waveforms:
    """Waveforms holding only the snapshots of ``meta`` (a subset of ``waveforms.meta``), samples copied."""
    lengths = meta["n_samples"].to_numpy(dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    samples = np.empty(int(lengths.sum()), dtype=waveforms.samples.dtype)
    for old, new, n in zip(meta["offset"].to_numpy(dtype=np.int64), starts, lengths, strict=True):
        samples[new : new + n] = waveforms.samples[old : old + n]
    return Waveforms(meta.assign(offset=starts), samples)


@dataclass
class Partition:
    """Some machines of a fleet: their rows of every table, and their as-of rows with their positions in the
    fleet's as-of table (so the partitions' feature tables can be put back in the fleet's order)."""

    dataset: Dataset
    as_of: pd.DataFrame | None
    as_of_rows: np.ndarray | None


def split_fleet(dataset: Dataset, size: int, as_of: pd.DataFrame | None = None) -> list[Partition]:
    """The dataset (and ``as_of``) as partitions of at most ``size`` machines each, every machine in one.

    Quarantine, notes and counts describe the whole load and stay with the caller's dataset; partitions
    carry empty ones."""
    ids = pd.concat(
        [
            dataset.machines["machine_id"],
            dataset.telemetry["machine_id"],
            dataset.waveforms.meta["machine_id"],
        ]
    )
    blocks = machine_blocks(ids, size)
    tables = {
        "machines": dataset.machines,
        "telemetry": dataset.telemetry,
        "meta": dataset.waveforms.meta,
        "events": dataset.events,
        "sensor_flags": dataset.sensor_flags,
    }
    rows = {name: _rows_by_block(frame, blocks) for name, frame in tables.items()}
    as_of_rows = _rows_by_block(as_of, blocks) if as_of is not None else [None] * len(blocks)
    parts = []
    for i, chosen in enumerate(as_of_rows):
        if chosen is not None and not len(chosen):
            continue  # machines with nothing to compute (no as-of row)
        part = replace(
            dataset,
            machines=_take(dataset.machines, rows["machines"][i]),
            telemetry=_take(dataset.telemetry, rows["telemetry"][i]),
            waveforms=_compact(dataset.waveforms, _take(dataset.waveforms.meta, rows["meta"][i])),
            events=_take(dataset.events, rows["events"][i]),
            sensor_flags=_take(dataset.sensor_flags, rows["sensor_flags"][i]),
            quarantine=dataset.quarantine.iloc[0:0],
            notes=dataset.notes.iloc[0:0],
            counts={},
        )
        part_as_of = None if as_of is None or chosen is None else _take(as_of[KEYS], chosen)
        parts.append(Partition(part, part_as_of, chosen))
    return parts


def fleet_reference(
    dataset: Dataset, as_of: pd.DataFrame | None, config: FeatureConfig
) -> pd.DataFrame | None:
    """The fleet medians ``rise_over_fleet`` needs at ``as_of`` (None when the features have no such column:
    no temperature but the ambient one). Limited to the hours a level read at those times can come from. With
    an ambient sensor, only the rows without an ambient level read them: none when every recent reading has an
    ambient value (None), else the medians are computed, since which rows need them is known only once each
    partition is built."""
    tel = dataset.telemetry
    as_of = default_as_of(dataset) if as_of is None else as_of
    if not any(c.startswith("temperature") and c != AMBIENT for c in tel.columns) or as_of.empty:
        return None
    stamps = pd.to_datetime(as_of["timestamp"], utc=True).astype(reading_time_dtype(dataset))
    reach = pd.Timedelta(hours=max(config.windows_h, default=0) + config.telemetry_max_age_h + 1)
    recent = tel[(tel["timestamp"] >= stamps.min() - reach) & (tel["timestamp"] <= stamps.max())]
    if AMBIENT in recent and np.isfinite(recent[AMBIENT].to_numpy(dtype=float)).all():
        return None  # every reading has an ambient value: every row rises over ambient, none over the fleet
    return fleet_medians(recent, dataset.machines)


def concat_tables(parts: list[Partition], tables: list[FeatureTable]) -> FeatureTable:
    """One feature table from the partitions' tables: columns in first-seen order, rows in the fleet's as-of
    order (sorted by machine and time when the partitions had no as-of rows)."""
    columns = list(dict.fromkeys(c for t in tables for c in t.frame.columns))
    frame = pd.concat([t.frame for t in tables], ignore_index=True).reindex(columns=columns)
    positions = [p.as_of_rows for p in parts]
    if all(rows is not None for rows in positions):
        frame.index = np.concatenate([cast(np.ndarray, rows) for rows in positions])
        frame = frame.sort_index()
    else:
        frame = frame.sort_values(KEYS, kind="stable")
    notes = pd.concat([t.notes for t in tables], ignore_index=True)
    return FeatureTable(frame.reset_index(drop=True), notes)
