"""The history store: known answer on read-back, no-op repeats, duplicates, time travel, crash and rerun."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from features.dataset import Dataset, fingerprint, load_dataset
from features.simulator import SimulationConfig, simulate
from pipelines.store import HistoryStore, open_store

NOW = "2026-02-01"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 machines x 10 days; the last 3 days as inbox batches (2026-01-08 .. 2026-01-10)."""
    root = tmp_path_factory.mktemp("fleet")
    simulate(root, SimulationConfig(machines=20, days=10, inbox_days=3, snapshot_samples=1024, seed=3))
    return root


@pytest.fixture(scope="module")
def history(fleet: Path) -> Dataset:
    return load_dataset(fleet, now=NOW)


def batch(fleet: Path, day: str) -> Dataset:
    return load_dataset(fleet / "inbox" / day, now=NOW)


def sort(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["machine_id", "timestamp"]).reset_index(drop=True)


def samples(data: Dataset) -> np.ndarray:
    return data.waveforms.batch(np.arange(len(data.waveforms.meta)))


def test_reading_back_gives_the_rows_loaded(tmp_path: Path, history: Dataset) -> None:
    store = open_store(tmp_path / "store")
    result = store.append(history, "h")
    assert result.stored == {
        "machines": 20,
        "telemetry": len(history.telemetry),
        "waveforms": len(history.waveforms.meta),
        "events": len(history.events),
    }
    back = store.read()
    pd.testing.assert_frame_equal(back.telemetry, sort(history.telemetry))
    # numbers are float64 in the store (bearing_n_balls was int64)
    pd.testing.assert_frame_equal(back.machines, history.machines, check_dtype=False)
    meta = history.waveforms.meta.drop(columns="offset")
    pd.testing.assert_frame_equal(back.waveforms.meta.drop(columns="offset"), meta)
    np.testing.assert_array_equal(samples(back), samples(history))
    assert back.counts["telemetry"] == {
        "rows_in": len(history.telemetry),
        "rows_used": len(history.telemetry),
        "rows_quarantined": 0,
    }


def test_a_repeated_batch_is_a_no_op_and_repeated_rows_are_duplicates(
    tmp_path: Path, history: Dataset
) -> None:
    store = open_store(tmp_path / "store")
    first = store.append(history, "h")
    again = store.append(history, "h")
    assert again.already_stored and again.version == first.version == store.version == 1
    assert again.stored == dict.fromkeys(again.stored, 0)
    assert again.duplicates == first.stored
    copy = store.append(history, "same rows, other batch id")
    assert copy.stored == dict.fromkeys(copy.stored, 0) and copy.duplicates == first.stored
    assert copy.version == 2
    back = store.read()
    assert not back.telemetry.duplicated(["machine_id", "timestamp"]).any()
    assert len(back.telemetry) == len(history.telemetry)


def test_time_travel_reads_the_store_as_it_was(tmp_path: Path, fleet: Path, history: Dataset) -> None:
    store = open_store(tmp_path / "store")
    assert store.version == 0 and store.read().telemetry.empty
    v1 = store.append(history, "h").version
    day = batch(fleet, "2026-01-08")
    v2 = store.append(day, "d8").version
    assert (v1, v2) == (1, 2)
    assert store.batches() == ["h", "d8"] and store.batches(version=1) == ["h"]
    assert len(store.read(version=v1).telemetry) == len(history.telemetry)
    assert len(store.read(version=v2).telemetry) == len(history.telemetry) + len(day.telemetry)
    pd.testing.assert_frame_equal(store.read(version=v1).telemetry, sort(history.telemetry))
    assert store.read(version=0).telemetry.empty


def test_a_late_batch_is_stored(tmp_path: Path, fleet: Path, history: Dataset) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    store.append(batch(fleet, "2026-01-10"), "d10")
    d8 = batch(fleet, "2026-01-08")
    late = store.append(d8, "d8")
    assert late.stored["telemetry"] == len(d8.telemetry) > 0 and late.duplicates["telemetry"] == 0
    stamps = store.read(since="2026-01-08").telemetry["timestamp"].dt.strftime("%Y-%m-%d").unique()
    assert list(stamps) == ["2026-01-08", "2026-01-10"]


def test_read_filters_by_time_machines_and_tables(tmp_path: Path, history: Dataset) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    part = store.read(since="2026-01-05 12:00", machines=["M0002", "M0005"], tables=["telemetry"])
    assert set(part.telemetry["machine_id"]) == {"M0002", "M0005"}
    assert part.telemetry["timestamp"].min() == pd.Timestamp("2026-01-05 12:00", tz="UTC")
    assert part.waveforms.meta.empty and part.machines.empty


class Killed(RuntimeError):
    """Stands for the process dying between two table commits."""


def kill_before(monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    write = HistoryStore._write

    def dying_write(self: HistoryStore, name: str, frame, batch_id: str) -> None:
        if name == table:
            raise Killed(f"killed before writing {name}")
        write(self, name, frame, batch_id)

    monkeypatch.setattr(HistoryStore, "_write", dying_write)


def test_a_write_killed_midway_is_invisible_and_a_rerun_completes_it(
    tmp_path: Path, fleet: Path, history: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    day = batch(fleet, "2026-01-09")
    with monkeypatch.context() as patch:
        kill_before(patch, "waveforms")
        with pytest.raises(Killed):
            store.append(day, "d9")
    # telemetry was committed to its Delta table, but the batch is not in the log: nobody sees it
    assert DeltaTable(store.path / "telemetry").version() == 1
    assert store.version == 1 and store.batches() == ["h"]
    assert len(store.read().telemetry) == len(history.telemetry)
    rerun = store.append(day, "d9")
    n_tel, n_wav = len(day.telemetry), len(day.waveforms.meta)
    assert rerun.stored == {"machines": 0, "telemetry": n_tel, "waveforms": n_wav, "events": len(day.events)}
    assert rerun.duplicates == {"machines": 20, "telemetry": 0, "waveforms": 0, "events": 0}
    assert DeltaTable(store.path / "telemetry").version() == 1  # not written twice
    back = store.read()
    assert len(back.telemetry) == len(history.telemetry) + n_tel
    assert len(back.waveforms.meta) == len(history.waveforms.meta) + n_wav
    assert not back.telemetry.duplicated(["machine_id", "timestamp"]).any()


def test_a_batch_abandoned_midway_is_rolled_back_by_the_next(
    tmp_path: Path, fleet: Path, history: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    d9, d10 = batch(fleet, "2026-01-09"), batch(fleet, "2026-01-10")
    with monkeypatch.context() as patch:
        kill_before(patch, "waveforms")
        with pytest.raises(Killed):
            store.append(d9, "d9")
    store.append(d10, "d10")  # d9's half-written telemetry must not ride along in d10's versions
    assert len(store.read().telemetry) == len(history.telemetry) + len(d10.telemetry)
    again = store.append(d9, "d9")  # and d9 can still be stored in full later
    assert again.stored["telemetry"] == len(d9.telemetry) and again.stored["waveforms"] == len(
        d9.waveforms.meta
    )
    assert len(store.read().telemetry) == len(history.telemetry) + len(d10.telemetry) + len(d9.telemetry)


def test_the_quarantine_is_stored_with_its_batch(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    (root / "telemetry").mkdir(parents=True)
    pd.DataFrame(
        {
            "machine_id": ["A", "A", "A", ""],
            "timestamp": pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC"),
            "temperature_bearing": [40.0, np.nan, 41.0, 40.0],
        }
    ).to_parquet(root / "telemetry" / "t.parquet", index=False)
    data = load_dataset(root, now=NOW)
    store = open_store(tmp_path / "store")
    store.append(data, fingerprint(root))
    stored = store.quarantine(fingerprint(root))
    assert sorted(stored["code"]) == ["empty_machine_id", "nan_value"]
    assert set(stored["row"]) == {1, 3} and set(stored["batch_id"]) == {fingerprint(root)}
    assert store.quarantine("another batch").empty
    assert store.log().iloc[0]["telemetry_quarantined"] == 2


def test_open_store_twice_keeps_the_history(tmp_path: Path, history: Dataset) -> None:
    open_store(tmp_path / "store").append(history, "h")
    store = open_store(tmp_path / "store")
    assert store.version == 1 and store.batches() == ["h"]
    assert store.machine_ids() == set(history.machines["machine_id"])
    shutil.rmtree(tmp_path / "store")


def resent(history: Dataset, **tables: pd.DataFrame) -> Dataset:
    """The history again, with some tables replaced (an upstream system sending corrected rows)."""
    return replace(history, quarantine=history.quarantine.iloc[:0], **tables)


def test_a_stored_key_sent_again_with_other_values_is_quarantined_not_counted_as_a_duplicate(
    tmp_path: Path, history: Dataset
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    telemetry = history.telemetry.copy()
    changed, added, lacking = telemetry.index[[3, 7, 11]]
    old = telemetry.loc[changed, "temperature_bearing"]
    telemetry.loc[changed, "temperature_bearing"] = old + 12.5  # a corrected reading
    telemetry.loc[lacking, "load_pct"] = np.nan  # this batch lacks a value: nothing new, a duplicate
    telemetry["oil_pressure_bar"] = np.nan
    telemetry.loc[added, "oil_pressure_bar"] = 2.5  # a value where the stored reading has none

    result = store.append(resent(history, telemetry=telemetry), "h2")

    assert result.conflicts == {"machines": 0, "telemetry": 2, "waveforms": 0, "events": 0}
    assert result.duplicates["telemetry"] == len(telemetry) - 2 and result.stored["telemetry"] == 0
    q = store.quarantine("h2").set_index("column")
    assert set(q["code"]) == {"conflicts_with_stored"} and (q["row"] == -1).all()
    reading = q.loc["temperature_bearing"]
    assert reading["machine_id"] == telemetry.loc[changed, "machine_id"]
    assert reading["timestamp"] == telemetry.loc[changed, "timestamp"]
    assert f"temperature_bearing = {old:.6g}; this batch has {old + 12.5:.6g}" in reading["reason"]
    assert "stored one is kept" in reading["reason"] and reading["fix"]
    assert q.loc["oil_pressure_bar", "reason"].endswith(
        "with oil_pressure_bar = missing; this batch has 2.5; the stored one is kept"
    )
    back = store.read()  # the stored rows are kept, unchanged
    pd.testing.assert_frame_equal(back.telemetry, sort(history.telemetry))


def test_a_snapshot_sent_again_with_other_samples_is_a_conflict_and_the_same_samples_a_duplicate(
    tmp_path: Path, history: Dataset
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    other = history.waveforms.samples.copy()
    first = history.waveforms.meta.iloc[0]
    other[first["offset"] + 5] += 0.25
    waveforms = replace(history.waveforms, samples=other)

    result = store.append(resent(history, waveforms=waveforms), "h2")

    assert result.conflicts["waveforms"] == 1 and result.stored["waveforms"] == 0
    assert result.duplicates["waveforms"] == len(history.waveforms.meta) - 1
    q = store.quarantine("h2")
    assert q["column"].tolist() == ["values"] and q["machine_id"].tolist() == [first["machine_id"]]
    assert f"channel {first['channel']}" in q["reason"].iloc[0] and "other samples (" in q["reason"].iloc[0]
    np.testing.assert_array_equal(samples(store.read()), samples(history))


def test_a_rerun_of_a_killed_batch_quarantines_its_conflicts_once(
    tmp_path: Path, history: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    telemetry = history.telemetry.copy()
    telemetry.loc[telemetry.index[0], "speed_rpm"] += 100.0
    again = resent(history, telemetry=telemetry)
    with monkeypatch.context() as patch:
        kill_before(patch, "quarantine")
        with pytest.raises(Killed):
            store.append(again, "h2")
    rerun = store.append(again, "h2")
    assert rerun.conflicts["telemetry"] == 1
    assert store.quarantine("h2")["column"].tolist() == ["speed_rpm"]
    log = store.log().set_index("batch_id")
    assert log.loc["h2", "telemetry_conflicts"] == 1 and log.loc["h", "telemetry_conflicts"] == 0


def test_a_store_whose_log_predates_the_conflict_counts_takes_new_batches(
    tmp_path: Path, history: Dataset
) -> None:
    from pipelines.store import LOG, _log_table

    schema = _log_table([]).schema
    old = pa.schema([f for f in schema if not f.name.endswith("_conflicts")])
    (tmp_path / "store").mkdir()
    DeltaTable.create(tmp_path / "store" / LOG, old)
    store = open_store(tmp_path / "store")
    assert store.append(history, "h").version == 1
    assert store.log().loc[0, "telemetry_conflicts"] == 0 and store.batches() == ["h"]


def test_a_changed_machine_register_row_updates_the_register_and_keeps_what_it_does_not_give(
    tmp_path: Path, history: Dataset
) -> None:
    store = open_store(tmp_path / "store")
    store.append(history, "h")
    before = store.read().machines.set_index("machine_id")
    machines = history.machines.copy()
    first, second = machines["machine_id"].iloc[:2]
    old_class = machines.loc[0, "vibration_class"]
    new_class = "IV" if old_class != "IV" else "I"
    machines.loc[0, "vibration_class"] = new_class
    machines.loc[0, "rated_speed_rpm"] = np.nan  # not given: the stored value stays
    machines.loc[1, "site"] = "plant-9"

    result = store.append(resent(history, machines=machines), "h2")

    assert result.stored["machines"] == 2 and result.duplicates["machines"] == len(machines) - 2
    assert result.conflicts["machines"] == 0 and store.quarantine("h2").empty
    assert result.register_updates[0] == f"{first}: vibration_class {old_class} -> {new_class}"
    assert result.register_updates[1].startswith(f"{second}: site ")
    after = store.read().machines.set_index("machine_id")
    assert len(after) == len(before) and after.index.is_unique
    assert after.loc[first, "vibration_class"] == new_class and after.loc[second, "site"] == "plant-9"
    assert after.loc[first, "rated_speed_rpm"] == before.loc[first, "rated_speed_rpm"]
    pd.testing.assert_frame_equal(after.drop(index=[first, second]), before.drop(index=[first, second]))
    assert store.read(version=1).machines.set_index("machine_id").loc[first, "vibration_class"] == old_class
    again = store.append(resent(history, machines=machines), "h3")  # the same change again: nothing new
    assert again.stored["machines"] == 0 and again.register_updates == []
    back = store.append(resent(history), "h4")  # the old values again: a change back
    assert back.stored["machines"] == 2
    assert store.read().machines.set_index("machine_id").loc[first, "vibration_class"] == old_class


def test_a_register_column_read_as_numbers_then_as_words_stays_one_text_column(
    tmp_path: Path, history: Dataset
) -> None:
    # CSV files type a column by what it holds: site codes '101' read as numbers, a later file's 'north' as text
    store = open_store(tmp_path / "store")
    machines = history.machines.copy()
    machines["site"] = np.arange(101, 101 + len(machines))
    machines["vibration_class"] = 3
    store.append(resent(history, machines=machines), "h")
    stored = store.read().machines.set_index("machine_id")
    assert stored["site"].iloc[0] == "101" and stored["vibration_class"].iloc[0] == "3"
    same = machines.assign(site=machines["site"].astype(str))  # the same codes, now read as text
    again = store.append(resent(history, machines=same), "h2")
    assert again.stored["machines"] == 0 and again.register_updates == []
    renamed = same.copy()
    renamed.loc[0, "site"] = "north"
    changed = store.append(resent(history, machines=renamed), "h3")
    assert changed.register_updates == [f"{renamed.loc[0, 'machine_id']}: site 101 -> north"]
    assert store.read().machines.set_index("machine_id").loc[renamed.loc[0, "machine_id"], "site"] == "north"


def test_a_store_that_kept_register_text_as_numbers_takes_text_after_the_upgrade(
    tmp_path: Path, history: Dataset
) -> None:
    """Stores written before register text columns were kept as text hold site 101.0 and vibration_class 3.0:
    the next batch's 'III' is no change, 'north' is one, and earlier versions keep what they held."""
    from deltalake import write_deltalake

    store = open_store(tmp_path / "store")
    machines = history.machines.copy()
    store.append(resent(history, machines=machines), "h")
    old = DeltaTable(tmp_path / "store" / "machines").to_pyarrow_table()
    numbers = [float(i) for i in range(101, 101 + old.num_rows)]
    old = old.set_column(old.schema.get_field_index("site"), "site", pa.array(numbers, pa.float64()))
    old = old.set_column(
        old.schema.get_field_index("vibration_class"), "vibration_class", pa.array([3.0] * old.num_rows)
    )
    write_deltalake(tmp_path / "store" / "machines", old, mode="overwrite", schema_mode="overwrite")
    upgraded = machines.assign(site=[str(int(n)) for n in numbers], vibration_class="III")
    same = store.append(resent(history, machines=upgraded), "h2")
    assert same.stored["machines"] == 0 and same.register_updates == []
    first = upgraded.loc[0, "machine_id"]
    upgraded.loc[0, "site"] = "north"
    changed = store.append(resent(history, machines=upgraded), "h3")
    assert changed.register_updates == [f"{first}: site 101 -> north"]
    now = store.read().machines.set_index("machine_id")
    assert now.loc[first, "site"] == "north" and now["vibration_class"].iloc[1] == "3"
    before = DeltaTable(tmp_path / "store" / "machines", version=1).to_pyarrow_table()  # the overwrite above
    assert before.column("site").type == pa.float64()  # the rewrite is a new version: time travel keeps it
