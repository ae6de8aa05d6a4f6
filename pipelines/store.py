"""The history store: the contract tables as Delta Lake tables, appended batch by batch, read at any version.

Layout under the store folder (default ``<project>/store``), one Delta table per folder:

- ``machines/``: the machine register. A later batch's row that changes a machine's register (a value that
  differs, or one the stored row lacks) is stored as the machine's new row, with the stored values it does not
  give; reads take each machine's latest row. A row that changes nothing is a duplicate.
- ``telemetry/``: the contract's wide telemetry, partitioned by ``date`` (UTC day of the reading).
- ``waveforms/``: one row per snapshot and channel, the samples in a ``values`` list<float32> column (zstd,
  byte-stream-split, no dictionary), partitioned by ``date``. Metadata reads project the columns and never
  touch the samples; one table means one commit per batch for metadata and samples together.
- ``events/``: failures and maintenance.
- ``quarantine/``: every rejected row with its batch, code, reason and fix; also each telemetry, waveform or
  event row whose key (machine, timestamp, channel or kind) an earlier batch stored with other values
  (``conflicts_with_stored``): a stored reading is never replaced, and only an exact repeat is a duplicate.
- ``_judge_state.parquet``: derived, not data: per machine and sensor the robust statistics its last full
  glitch judgement used (``features.checks.judge_bursts``), so that the next batches are judged against
  them and a day of readings instead of 14 days. Deleting it costs one full judgement per machine.
- ``_batches/``: the commit log, written last: one row per stored batch with the version of every table
  after it. ``HistoryStore.version`` is this table's version; a read pins every table to the versions of the
  last logged batch, so rows written by a batch that was killed before its log entry are never visible.

Every data row carries the ``batch_id`` that wrote it (a content fingerprint of the batch folder). Each table
write records the batch in the table's transaction log (a Delta app transaction), so rerunning a batch killed
mid-way completes only the tables it had not written; a batch abandoned mid-way (its folder gone) is rolled back
by the next append. One writer at a time (the score flow); any number of readers (Spark, DuckDB, Polars too; ``machines/`` holds a
row per register change: the current one is the row of the batch latest in ``_batches/``).
Numbers are stored as float64 (except counts), text as string, timestamps as UTC microseconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)

from features.checks import REASON_CODES
from features.dataset import QUARANTINE_COLUMNS, REGISTER_NUMBERS, TABLES, Dataset, Waveforms
from features.iso import class_names

STORED_TABLES = (*TABLES, "quarantine")
ROW_KEYS = {
    "machines": ["machine_id"],
    "telemetry": ["machine_id", "timestamp"],
    "waveforms": ["machine_id", "timestamp", "channel"],
    "events": ["machine_id", "timestamp", "kind"],
}
PARTITIONS = {"telemetry": ["date"], "waveforms": ["date"]}
WAVEFORM_META = ["machine_id", "timestamp", "channel", "sample_rate_hz", "speed_rpm"]
LOG = "_batches"
PENDING = "_pending"
JUDGE_STATE = "_judge_state.parquet"
_LINEAGE = ("date", "batch_id")
_UTC = pa.timestamp("us", tz="UTC")
_WRITER = WriterProperties(compression="ZSTD")
_WAVEFORM_WRITER = WriterProperties(
    compression="ZSTD",
    column_properties={
        "values.list.element": ColumnProperties(dictionary_enabled=False, encoding="BYTE_STREAM_SPLIT")
    },
)


@dataclass(frozen=True)
class AppendResult:
    """What one append did per table: rows stored, exact repeats of stored rows skipped (duplicates), rows whose key
    is stored with other values (conflicts, quarantined as ``conflicts_with_stored``), the store version, and the
    changes to the machine register (a changed register row is stored as the machine's new row)."""

    batch_id: str
    stored: dict[str, int]
    duplicates: dict[str, int]
    version: int
    already_stored: bool = False
    conflicts: dict[str, int] = field(default_factory=dict)
    register_updates: list[str] = field(default_factory=list)  # 'M0007: vibration_class II -> IV'


@dataclass
class HistoryStore:
    """A folder of Delta tables holding every stored batch; see the module docstring for the layout."""

    path: Path
    _log_cache: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- reading
    @property
    def version(self) -> int:
        """The store version: the commit log's Delta version (0 for an empty store)."""
        return DeltaTable(self.path / LOG).version()

    def log(self, version: int | None = None) -> pd.DataFrame:
        """The commit log (one row per stored batch, in commit order) as of store ``version``."""
        version = self.version if version is None else version
        if version not in self._log_cache:
            log = DeltaTable(self.path / LOG, version=version).to_pandas()
            self._log_cache[version] = log.sort_values("seq").reset_index(drop=True)
        return self._log_cache[version]

    def batches(self, version: int | None = None) -> list[str]:
        """Ids of the batches stored, in commit order."""
        return self.log(version)["batch_id"].tolist()

    def table_versions(self, version: int | None = None) -> dict[str, int]:
        """Delta version of each table as of store ``version`` (-1: the table holds nothing yet)."""
        log = self.log(version)
        if log.empty:
            return dict.fromkeys(STORED_TABLES, -1)
        last = log.iloc[-1]
        return {t: int(last[f"{t}_version"]) for t in STORED_TABLES}

    def machine_ids(self, version: int | None = None) -> set[str]:
        """Every machine the store knows."""
        frame = self._read_arrow("machines", self.table_versions(version)["machines"], ["machine_id"], None)
        return set() if frame is None else set(frame.column("machine_id").to_pylist())

    def quarantine(self, batch_id: str | None = None, version: int | None = None) -> pd.DataFrame:
        """Rejected rows (all batches, or one), with batch_id, code, reason and fix."""
        where = None if batch_id is None else pc.field("batch_id") == batch_id
        table = self._read_arrow("quarantine", self.table_versions(version)["quarantine"], None, where)
        if table is None:
            return pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "batch_id"])
        return table.to_pandas()

    def read(
        self,
        since: pd.Timestamp | str | None = None,
        machines: Iterable[str] | None = None,
        version: int | None = None,
        tables: Iterable[str] = TABLES,
    ) -> Dataset:
        """The stored rows as a Dataset (as of store ``version``), from ``since`` on, for ``machines`` only."""
        versions = self.table_versions(version)
        wanted = set(tables)
        start = None if since is None else _utc(since)
        ids = None if machines is None else sorted(set(map(str, machines)))

        def where(table: str) -> pc.Expression | None:
            conds = []
            if ids is not None:
                conds.append(pc.field("machine_id").isin(ids))
            if start is not None and table != "machines":
                conds.append(pc.field("timestamp") >= pa.scalar(start, _UTC))
                if table in PARTITIONS:
                    conds.append(pc.field("date") >= pa.scalar(start.date(), pa.date32()))
            return _all(conds)

        frames = {}
        for table in ("machines", "telemetry", "events"):
            got = self._read_arrow(table, versions[table], None, where(table)) if table in wanted else None
            if table == "machines" and got is not None:
                got = _latest_register(got, self._order(version))
            frames[table] = _from_store(table, got)
        if "telemetry" in wanted and len(frames["telemetry"]):
            frames["telemetry"] = _without(frames["telemetry"], self._withdrawn(versions["quarantine"], ids))
        waveforms = Waveforms.empty()
        if "waveforms" in wanted:
            waveforms = _waveforms_from_store(
                self._read_arrow("waveforms", versions["waveforms"], None, where("waveforms"))
            )
        counts = {t: {"rows_in": 0, "rows_used": 0, "rows_quarantined": 0} for t in TABLES}
        for table, n in (*((t, len(frames[t])) for t in frames), ("waveforms", len(waveforms.meta))):
            counts[table].update(rows_in=n, rows_used=n)
        counts["machines"]["known_by_id_only"] = 0
        return Dataset(
            root=self.path,
            machines=frames["machines"],
            telemetry=frames["telemetry"],
            waveforms=waveforms,
            events=frames["events"],
            quarantine=pd.DataFrame(columns=QUARANTINE_COLUMNS),
            notes=pd.DataFrame(),
            counts=counts,
        )

    def _withdrawn(self, version: int, ids: list[str] | None) -> pd.DataFrame:
        """Keys (machine_id, timestamp) of stored telemetry withdrawn as glitches by a later batch."""
        if version < 0:
            return pd.DataFrame(columns=["machine_id", "timestamp"])
        dataset = DeltaTable(self.path / "quarantine", version=version).to_pyarrow_dataset()
        if "withdrawn" not in dataset.schema.names:  # a store written before withdrawals existed
            return pd.DataFrame(columns=["machine_id", "timestamp"])
        where = pc.field("withdrawn") == pa.scalar(True)
        if ids is not None:
            where = where & pc.field("machine_id").isin(ids)
        return dataset.to_table(columns=["machine_id", "timestamp"], filter=where).to_pandas()

    def _read_arrow(
        self, table: str, version: int, columns: list[str] | None, where: pc.Expression | None
    ) -> pa.Table | None:
        if version < 0:
            return None
        dataset = DeltaTable(self.path / table, version=version).to_pyarrow_dataset()
        return dataset.to_table(columns=columns, filter=where)

    def signals(self) -> dict[str, set[str]]:
        """The telemetry sensors and waveform channels the store holds (an empty set for a table it lacks)."""
        out: dict[str, set[str]] = {"telemetry": set(), "waveforms": set()}
        if _exists(self.path / "telemetry"):
            names = DeltaTable(self.path / "telemetry").schema().to_arrow().names
            out["telemetry"] = set(names) - {"machine_id", "timestamp", "date", "batch_id"}
        if _exists(self.path / "waveforms"):
            channels = DeltaTable(self.path / "waveforms").to_pyarrow_dataset().to_table(columns=["channel"])
            out["waveforms"] = {str(c) for c in pc.unique(channels["channel"]).to_pylist() if c is not None}
        return out

    def judge_state(self) -> pd.DataFrame:
        """The glitch judge's saved statistics (see the module docstring); empty when there are none."""
        path = self.path / JUDGE_STATE
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    def write_judge_state(self, state: pd.DataFrame) -> None:
        """Replace the glitch judge's saved statistics (written to a temporary name, then renamed)."""
        path = self.path / JUDGE_STATE
        tmp = path.with_name(f".{path.name}.tmp")
        state.to_parquet(tmp, index=False)
        os.replace(tmp, path)

    # ---------------------------------------------------------------- writing
    def append(self, dataset: Dataset, batch_id: str, source: str = "") -> AppendResult:
        """Store the dataset's rows not stored yet, and its quarantine, as batch ``batch_id``; atomic per batch.

        A batch already in the log is a no-op (every row a duplicate). A batch killed mid-way and run again
        writes only the tables it had not written; another batch left pending is rolled back first.
        """
        offered = _offered(dataset)
        if batch_id in self.batches():
            return AppendResult(
                batch_id, dict.fromkeys(offered, 0), offered, self.version, already_stored=True
            )
        self._roll_back_pending(keep=batch_id)
        self._mark_pending(batch_id)
        for table in _TEXT_TABLES:
            self._keep_text_as_text(table)
        stored, duplicates, conflicts, clashes, changes = {}, {}, {}, [], []
        for table in TABLES:
            frame, clash, changed = self._split_stored(table, _to_store(table, dataset, batch_id), batch_id)
            clashes.append(clash)
            changes += changed
            conflicts[table] = len(clash)
            duplicates[table] = offered[table] - frame.num_rows - conflicts[table]
            if self._done(table, batch_id):  # a rerun of a batch killed mid-way: this table is written
                stored[table] = self._count_batch_rows(table, batch_id)
            else:
                stored[table] = frame.num_rows
                if frame.num_rows:
                    self._write(table, frame, batch_id)
        if self._done("quarantine", batch_id):
            stored["quarantine"] = self._count_batch_rows("quarantine", batch_id)
        else:
            clashes = [clash for clash in clashes if len(clash)]
            quarantine = _quarantine_to_store(pd.concat([dataset.quarantine, *clashes]), batch_id)
            stored["quarantine"] = quarantine.num_rows
            if quarantine.num_rows:
                self._write("quarantine", quarantine, batch_id)
        self._commit_log(batch_id, source, dataset, stored, duplicates, conflicts)
        (self.path / PENDING / f"{batch_id}.json").unlink(missing_ok=True)
        return AppendResult(
            batch_id,
            {t: stored[t] for t in offered},
            duplicates,
            self.version,
            conflicts=conflicts,
            register_updates=changes,
        )

    def _keep_text_as_text(self, table: str) -> None:
        """A store written before the register's text columns were kept as text may hold numbers in them
        (vibration_class 3, site 101): rewrite those columns as text once, with the same rows, so that a batch
        with 'III' or 'north' can be stored (earlier table versions keep the numbers, for time travel)."""
        if not _exists(self.path / table):
            return
        delta = DeltaTable(self.path / table)
        schema = delta.to_pyarrow_dataset().schema
        numbers = _TEXT_TABLES[table]
        stale = [
            f.name
            for f in schema
            if f.name not in (*numbers, *_LINEAGE)
            and not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            and not pa.types.is_timestamp(f.type)
        ]
        if not stale:
            return
        arrow = delta.to_pyarrow_table()
        for name in stale:
            text = pa.array([_spelled(v) for v in arrow.column(name).to_pylist()], type=pa.string())
            arrow = arrow.set_column(arrow.schema.get_field_index(name), name, text)
        write_deltalake(
            self.path / table, arrow, mode="overwrite", schema_mode="overwrite", writer_properties=_WRITER
        )

    def _app(self, batch_id: str) -> str:
        return f"wearcast-batch-{batch_id}"

    def _state(self, table: str, batch_id: str) -> int:
        """The table's transaction version for the batch: odd once written, even (0) when not or rolled back."""
        if not _exists(self.path / table):
            return 0
        return DeltaTable(self.path / table).transaction_version(self._app(batch_id)) or 0

    def _done(self, table: str, batch_id: str) -> bool:
        return self._state(table, batch_id) % 2 == 1

    def _commit(self, table: str, batch_id: str) -> CommitProperties:
        """Commit properties that record the batch's next transaction version in the table's log."""
        version = self._state(table, batch_id) + 1
        return CommitProperties(app_transactions=[Transaction(app_id=self._app(batch_id), version=version)])

    def _write(self, table: str, frame: pa.Table, batch_id: str) -> None:
        """One atomic Delta commit of ``frame`` to ``table``, tagged with the batch."""
        write_deltalake(
            self.path / table,
            frame,
            mode="append",
            partition_by=PARTITIONS.get(table),
            schema_mode="merge",
            writer_properties=_WAVEFORM_WRITER if table == "waveforms" else _WRITER,
            commit_properties=self._commit(table, batch_id),
        )

    def _count_batch_rows(self, table: str, batch_id: str) -> int:
        dataset = DeltaTable(self.path / table).to_pyarrow_dataset()
        return int(dataset.count_rows(filter=pc.field("batch_id") == batch_id))

    def _split_stored(
        self, table: str, frame: pa.Table, batch_id: str
    ) -> tuple[pa.Table, pd.DataFrame, list[str]]:
        """What to write of ``frame``: its rows whose key (machine, timestamp[, channel or kind]) no earlier batch
        stored; of the others, those that say something else than the stored row become quarantine records
        (``conflicts_with_stored``), except machine register rows, which update the register (a new row with
        the stored values and this batch's; each change described in the list returned)."""
        if not frame.num_rows or not _exists(self.path / table):
            return frame, _NO_CLASH, []
        keys = ROW_KEYS[table]
        conds = [
            pc.field("machine_id").isin(pc.unique(frame.column("machine_id"))),
            pc.field("batch_id") != batch_id,  # a rerun of this batch: its own rows are not earlier ones
        ]
        if table in PARTITIONS:
            conds.append(pc.field("date").isin(pc.unique(frame.column("date"))))
        dataset = DeltaTable(self.path / table).to_pyarrow_dataset()
        existing = dataset.to_table(columns=keys, filter=_all(conds))
        if not existing.num_rows:
            return frame, _NO_CLASH, []
        new = pd.MultiIndex.from_frame(frame.select(keys).to_pandas())
        seen = new.isin(pd.MultiIndex.from_frame(existing.to_pandas()[keys]))
        if not seen.any():
            return frame, _NO_CLASH, []
        again, fresh = frame.filter(pa.array(seen)), frame.filter(pa.array(~seen))
        if table == "machines":
            updates, changes = _register_updates(_compare(table, again, dataset, _all(conds), self._order()))
            if updates.num_rows:
                updates = _with_lineage(updates, batch_id, partitioned=False)
                fresh = pa.concat_tables([fresh, updates], promote_options="permissive")
            return fresh, _NO_CLASH, changes
        # read the stored values of the repeated keys' times only
        conds.append(pc.field("timestamp").isin(pc.unique(again.column("timestamp"))))
        return fresh, _clash_records(_compare(table, again, dataset, _all(conds), self._order())), []

    def _order(self, version: int | None = None) -> dict[str, int]:
        """Commit order of the batches stored as of ``version`` (batch id -> position in the log)."""
        return {batch: position for position, batch in enumerate(self.batches(version))}

    def _commit_log(
        self, batch_id: str, source: str, dataset: Dataset, stored: dict, duplicates: dict, conflicts: dict
    ) -> None:
        """Append the batch's log row, with every table's version: this commit makes the batch visible."""
        row: dict[str, object] = {
            "seq": len(self.batches()) + 1,
            "batch_id": batch_id,
            "source": source,
            "committed_at": pd.Timestamp.now(tz="UTC"),
        }
        for table in STORED_TABLES:
            row[f"{table}_version"] = (
                DeltaTable(self.path / table).version() if _exists(self.path / table) else -1
            )
            row[f"{table}_stored"] = stored[table]
        for table in TABLES:
            row[f"{table}_rows_in"] = _offered(dataset)[table]
            row[f"{table}_duplicates"] = duplicates[table]
            row[f"{table}_quarantined"] = dataset.counts.get(table, {}).get("rows_quarantined", 0)
            row[f"{table}_conflicts"] = conflicts[table]
        # schema merge: a log written before the conflict counts existed gains their columns (null before)
        write_deltalake(self.path / LOG, _log_table([row]), mode="append", schema_mode="merge")

    def _mark_pending(self, batch_id: str) -> None:
        folder = self.path / PENDING
        folder.mkdir(exist_ok=True)
        _write_atomic(folder / f"{batch_id}.json", json.dumps({"batch_id": batch_id}))

    def _roll_back_pending(self, keep: str) -> None:
        """Delete the rows of batches left half-written by a killed append (other than ``keep``)."""
        folder = self.path / PENDING
        for marker in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            batch_id = marker.stem
            if batch_id == keep:
                continue
            if batch_id not in self.batches():
                for table in STORED_TABLES:
                    if self._done(table, batch_id):
                        DeltaTable(self.path / table).delete(
                            f"batch_id = '{batch_id}'", commit_properties=self._commit(table, batch_id)
                        )
            marker.unlink()

    def compact(self) -> None:
        """Merge the small files of many hourly batches (a new version per table; time travel still works)."""
        for table in STORED_TABLES:
            if _exists(self.path / table):
                DeltaTable(self.path / table).optimize.compact()


def open_store(path: str | Path) -> HistoryStore:
    """Open the history store at ``path``, creating an empty one (version 0) if there is none."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not _exists(path / LOG):
        DeltaTable.create(path / LOG, _log_table([]).schema)
    return HistoryStore(path)


def default_store_path(root: Path) -> Path:
    """Where the store lives unless told otherwise: ``store/`` in the project."""
    return root / "store"


# -------------------------------------------------------------------- conversions
def _exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _all(conds: list[pc.Expression]) -> pc.Expression | None:
    if not conds:
        return None
    out = conds[0]
    for cond in conds[1:]:
        out = out & cond
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _offered(dataset: Dataset) -> dict[str, int]:
    """Rows the dataset offers to each contract table (machines include those known by id alone)."""
    return {
        "machines": len(dataset.machines),
        "telemetry": len(dataset.telemetry),
        "waveforms": len(dataset.waveforms.meta),
        "events": len(dataset.events),
    }


def _store_frame(frame: pd.DataFrame, numbers: frozenset[str] | None = None) -> pa.Table:
    """A frame as Arrow with the store's types: UTC timestamps, float64 numbers, string text. With ``numbers``
    (the machine register, events), only those columns may be numbers; the others are text, so that a column
    read as numbers from one file and as words from the next ('101', then 'north') stays one column."""
    columns = {}
    for name, col in frame.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
            columns[str(name)] = pa.array(_to_utc_us(col), type=_UTC)
        elif numbers is not None and name not in numbers:
            columns[str(name)] = _text(col)
        elif pd.api.types.is_bool_dtype(col):
            columns[str(name)] = pa.array(col, type=pa.bool_())
        elif pd.api.types.is_numeric_dtype(col):
            columns[str(name)] = pa.array(col.to_numpy(dtype=float), type=pa.float64())
        else:
            columns[str(name)] = _text(col)
    return pa.table(columns)


def _text(col: pd.Series) -> pa.Array:
    """Text as a string array; numbers in a text column are spelled out as a person wrote them (101, not
    101.0)."""
    if pd.api.types.is_string_dtype(col) or pd.api.types.is_object_dtype(col):
        try:
            array = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = None
        if array is not None and (
            pa.types.is_string(array.type)
            or pa.types.is_large_string(array.type)
            or pa.types.is_null(array.type)
        ):
            return array.cast(pa.string())
    return pa.array([_spelled(value) for value in col], type=pa.string())


def _spelled(value: Any) -> str | None:
    """One cell as text: None when missing, whole numbers without '.0', other numbers in their shortest form."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(float(value)) < 2**53:
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _to_utc_us(col: pd.Series) -> pd.Series:
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize("UTC")
    return col.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _with_lineage(table: pa.Table, batch_id: str, partitioned: bool) -> pa.Table:
    if partitioned:
        table = table.append_column("date", pc.cast(table.column("timestamp"), pa.date32()))
    return table.append_column("batch_id", pa.array([batch_id] * table.num_rows, type=pa.string()))


def _to_store(table: str, dataset: Dataset, batch_id: str) -> pa.Table:
    """The rows of one contract table in the store's layout, tagged with the batch."""
    if table == "waveforms":
        return _waveforms_to_store(dataset.waveforms, batch_id)
    frame = getattr(dataset, table)
    numbers = _TEXT_TABLES.get(table)
    return _with_lineage(_store_frame(frame, numbers), batch_id, partitioned=table in PARTITIONS)


def _quarantine_to_store(quarantine: pd.DataFrame, batch_id: str) -> pa.Table:
    """Quarantine records (the loader's, the judge's withdrawals, the store's clashes) in the store's layout."""
    quarantine = quarantine.reset_index(drop=True)
    q = quarantine.reindex(columns=QUARANTINE_COLUMNS)
    arrow = _store_frame(q.drop(columns=["row"])).append_column(
        "row", pa.array(q["row"].to_numpy(dtype=np.int64), type=pa.int64())
    )
    withdrawn = quarantine.get("withdrawn", pd.Series(False, index=q.index))
    stamps = quarantine.get("timestamp", pd.Series(pd.NaT, index=q.index))
    arrow = arrow.select(QUARANTINE_COLUMNS).append_column(
        "timestamp", pa.array(_to_utc_us(pd.to_datetime(stamps, utc=True)), type=_UTC)
    )
    arrow = arrow.append_column(
        "withdrawn",
        pa.array(withdrawn.to_numpy(dtype=object) == True, type=pa.bool_()),  # noqa: E712
    )
    return _with_lineage(arrow, batch_id, partitioned=False)


_TEXT_TABLES = {  # tables whose columns are text but for these (and times)
    "machines": frozenset(REGISTER_NUMBERS),
    "events": frozenset(),
}
_NO_CLASH = pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "timestamp"])
_WHAT = {
    "machines": "a machine register row",
    "telemetry": "a reading",
    "waveforms": "a snapshot",
    "events": "an event",
}


@dataclass(frozen=True)
class _Comparison:
    """Rows of a batch whose key is stored, beside the latest stored row of each key."""

    table: str
    both: pd.DataFrame  # the batch's columns, then the stored ones (suffix @stored), and the stored batch_id
    compared: list[str]  # the batch's value columns
    stored_columns: list[str]  # the stored row's value columns
    differs: dict[str, np.ndarray]  # per compared column, True where the batch says something else

    @property
    def changed_rows(self) -> np.ndarray:
        return (
            np.flatnonzero(np.logical_or.reduce(list(self.differs.values())))
            if self.differs
            else np.array([], int)
        )

    def stored(self, i: int, column: str) -> Any:
        return self.both[f"{column}@stored"].iloc[i] if column in self.stored_columns else None


def _compare(
    table: str, again: pa.Table, dataset: pads.Dataset, where: pc.Expression | None, order: dict[str, int]
) -> _Comparison:
    """Compare the rows of ``again`` (keys stored by earlier batches) with the latest stored row of each key: a
    value that differs, or a value where the stored row has none, differs. A value this batch lacks does not;
    neither do the samples of an identical snapshot."""
    keys = ROW_KEYS[table]
    compared = [c for c in again.column_names if c not in (*keys, *_LINEAGE)]
    stored_columns = [c for c in dataset.schema.names if c not in (*keys, *_LINEAGE)]
    if table != "machines":  # the stored values that can be compared (not the others' snapshot samples)
        stored_columns = [c for c in stored_columns if c in compared]
    stored = dataset.to_table(columns=[*keys, "batch_id", *stored_columns], filter=where).to_pandas()
    stored = (  # the latest row of a key: a register updated by later batches
        stored.assign(_order=stored["batch_id"].map(order))
        .sort_values("_order", kind="stable", na_position="first")
        .drop_duplicates(keys, keep="last")
        .drop(columns="_order")
        .rename(columns={c: f"{c}@stored" for c in stored_columns})
    )
    both = again.select([*keys, *compared]).to_pandas().merge(stored, on=keys, how="left")
    differs = {}
    for column in compared:
        mine = both[column]
        theirs = both[f"{column}@stored"] if column in stored_columns else pd.Series(None, index=both.index)
        if column == "values":  # snapshot samples: compared as arrays
            same = [_same_samples(a, b) for a, b in zip(mine, theirs, strict=True)]
            differs[column] = ~np.array(same, dtype=bool)
        else:
            given, missing = mine.notna().to_numpy(), theirs.isna().to_numpy()
            if pd.api.types.is_numeric_dtype(mine) and pd.api.types.is_numeric_dtype(theirs):
                equal = (mine.to_numpy(dtype=object) == theirs.to_numpy(dtype=object)) & ~missing
            elif column == "vibration_class":  # 'III' is the 3 an earlier version stored
                spelled = zip(
                    class_names(mine.astype(object)), class_names(theirs.astype(object)), strict=True
                )
                equal = np.array([a == b and a is not None for a, b in spelled], dtype=bool) & ~missing
                equal |= np.array([_spelled(a) == _spelled(b) for a, b in zip(mine, theirs, strict=True)])
            else:  # text, or text against the numbers an earlier version stored: compared as spelled
                spelled = zip(map(_spelled, mine), map(_spelled, theirs), strict=True)
                equal = np.array([a == b for a, b in spelled], dtype=bool) & ~missing
            differs[column] = given & ~equal
    return _Comparison(table, both, compared, stored_columns, differs)


def _clash_records(c: _Comparison) -> pd.DataFrame:
    """A quarantine record (``conflicts_with_stored``) per row that differs from the stored one (which is kept)."""
    keys, records = ROW_KEYS[c.table], []
    for i in c.changed_rows:
        row = c.both.iloc[i]
        changed = [column for column in c.compared if c.differs[column][i]]
        first = changed[0]
        key = ", ".join(f"{k} {_cell(row[k])}" for k in keys)
        more = f" (and {len(changed) - 1} more columns: {', '.join(changed[1:])})" if len(changed) > 1 else ""
        records.append(
            {
                "table": c.table,
                "file": "(this batch)",
                "row": -1,
                "machine_id": str(row["machine_id"]),
                "column": first,
                "code": "conflicts_with_stored",
                "reason": f"{_WHAT[c.table]} with this key ({key}) is already stored by batch "
                f"{str(row['batch_id'])[:12]} with {_difference(first, c.stored(i, first), row[first])}{more}; "
                "the stored one is kept",
                "value": _cell(row[first])[:80],
                "fix": REASON_CODES["conflicts_with_stored"],
                "timestamp": row["timestamp"] if "timestamp" in keys else pd.NaT,
            }
        )
    return pd.DataFrame(records, columns=_NO_CLASH.columns) if records else _NO_CLASH


def _difference(column: str, stored: Any, offered: Any) -> str:
    """'speed_rpm = 1500; this batch has 1600', or for snapshot samples 'other samples (2560 stored, 2560 in
    this batch)'."""
    if column == "values":
        return f"other samples ({_cell(stored)} stored, {_cell(offered)} in this batch)"
    return f"{column} = {_cell(stored)}; this batch has {_cell(offered)}"


def _register_updates(c: _Comparison) -> tuple[pa.Table, list[str]]:
    """Machine register rows that change the stored register: the stored row with this batch's values over it
    (a value this batch lacks keeps the stored one), in the store's layout without lineage; and each change as
    'M0007: vibration_class II -> IV'."""
    rows, changes = [], []
    for i in c.changed_rows:
        row = c.both.iloc[i]
        merged = {"machine_id": row["machine_id"]}
        merged |= {column: c.stored(i, column) for column in c.stored_columns}
        merged |= {column: row[column] for column in c.compared if pd.notna(row[column])}
        rows.append(merged)
        described = (
            f"{column} {_cell(c.stored(i, column))} -> {_cell(row[column])}"
            for column in c.compared
            if c.differs[column][i]
        )
        changes.append(f"{row['machine_id']}: {', '.join(described)}")
    if not rows:
        return pa.table({}), []
    frame = pd.DataFrame(rows)
    for column in frame.columns:  # the stored types (a column of None would lose its type)
        stored = c.both.get(f"{column}@stored", c.both.get(column))
        if stored is not None and frame[column].isna().all():
            frame[column] = frame[column].astype(stored.dtype)
    return _store_frame(frame, _TEXT_TABLES["machines"]), changes


def _same_samples(mine: object, theirs: object) -> bool:
    if theirs is None or (isinstance(theirs, float) and np.isnan(theirs)):
        return False
    return bool(np.array_equal(np.asarray(mine, dtype=np.float32), np.asarray(theirs, dtype=np.float32)))


def _cell(value: Any) -> str:
    """A stored or offered value as text: 'missing', 6 significant digits, ISO time, 'N samples'."""
    if isinstance(value, np.ndarray | list):
        return f"{len(value)} samples"
    if value is None or pd.isna(value):
        return "missing"
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _waveforms_to_store(waveforms: Waveforms, batch_id: str) -> pa.Table:
    """One row per snapshot: metadata, n_samples and the samples as list<float32>, gathered without copies per row."""
    meta = waveforms.meta
    n = meta["n_samples"].to_numpy(dtype=np.int64)
    starts = meta["offset"].to_numpy(dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)])
    gather = np.repeat(starts - offsets[:-1], n) + np.arange(offsets[-1])
    values = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(waveforms.samples[gather]))
    arrow = _store_frame(meta[WAVEFORM_META])
    arrow = arrow.append_column("n_samples", pa.array(n, type=pa.int64())).append_column("values", values)
    return _with_lineage(arrow, batch_id, partitioned=True)


def _without(telemetry: pd.DataFrame, withdrawn: pd.DataFrame) -> pd.DataFrame:
    """Telemetry without the readings whose (machine_id, timestamp) is withdrawn."""
    if withdrawn.empty:
        return telemetry
    keys = ["machine_id", "timestamp"]
    gone = pd.MultiIndex.from_frame(telemetry[keys]).isin(pd.MultiIndex.from_frame(withdrawn[keys]))
    return telemetry[~gone].reset_index(drop=True)


def _latest_register(machines: pa.Table, order: dict[str, int]) -> pa.Table:
    """Each machine's latest register row (batches in commit order): a later batch's changed row updates it."""
    if machines.num_rows <= len(pc.unique(machines.column("machine_id"))):
        return machines
    frame = machines.to_pandas()
    latest = frame.assign(_order=frame["batch_id"].map(order)).sort_values(
        "_order", kind="stable", na_position="first"
    )
    latest = latest.drop_duplicates("machine_id", keep="last").drop(columns="_order")
    return pa.Table.from_pandas(latest, schema=machines.schema, preserve_index=False)


def _from_store(table: str, arrow: pa.Table | None) -> pd.DataFrame:
    """A stored table back in the loader's shape: contract columns only, sorted like the loader sorts."""
    if arrow is None:
        empty = {
            "machines": ["machine_id"],
            "telemetry": ["machine_id", "timestamp"],
            "events": ["machine_id", "timestamp", "kind", "component"],
        }[table]
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in empty})
        if "timestamp" in frame:
            frame["timestamp"] = frame["timestamp"].astype("datetime64[us, UTC]")
        return frame
    frame = arrow.drop_columns([c for c in _LINEAGE if c in arrow.column_names]).to_pandas()
    order = ["machine_id"] if table == "machines" else ["machine_id", "timestamp"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def _waveforms_from_store(arrow: pa.Table | None) -> Waveforms:
    """Snapshots back as Waveforms: metadata sorted by machine, time and channel, samples as one flat array."""
    if arrow is None or not arrow.num_rows:
        return Waveforms.empty()
    flats, starts, lengths, base = [], [], [], 0
    for chunk in arrow.column("values").chunks:  # per chunk: int32 list offsets never overflow
        offsets = chunk.offsets.to_numpy().astype(np.int64)
        flats.append(chunk.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False))
        starts.append(offsets[:-1] - offsets[0] + base)
        lengths.append(np.diff(offsets))
        base += len(flats[-1])
    flat = np.concatenate(flats) if len(flats) > 1 else flats[0]
    meta = arrow.select(WAVEFORM_META).to_pandas()
    meta = meta.assign(offset=np.concatenate(starts), n_samples=np.concatenate(lengths))
    meta = meta.sort_values(["machine_id", "timestamp", "channel"], kind="stable").reset_index(drop=True)
    return Waveforms(meta, flat)


def _log_table(rows: list[dict]) -> pa.Table:
    fields = [
        ("seq", pa.int64()),
        ("batch_id", pa.string()),
        ("source", pa.string()),
        ("committed_at", _UTC),
    ]
    fields += [(f"{t}_{k}", pa.int64()) for t in STORED_TABLES for k in ("version", "stored")]
    fields += [
        (f"{t}_{k}", pa.int64())
        for t in TABLES
        for k in ("rows_in", "duplicates", "quarantined", "conflicts")
    ]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


__all__ = ["AppendResult", "HistoryStore", "default_store_path", "open_store"]
