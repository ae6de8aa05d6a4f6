"""The contract loader: precise errors, quarantine with reasons, and rows in = used + quarantined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny, shared_data, write_waveforms

from features.dataset import CONTRACT_VERSION, ContractError, load_dataset


def balanced(ds) -> None:
    for table, c in ds.counts.items():
        assert c["rows_in"] == c["rows_used"] + c["rows_quarantined"], table


def reasons(ds) -> set[str]:
    return set(ds.quarantine["reason"])


def test_valid_dataset_loads_everything(tiny):
    ds = load_dataset(tiny)
    balanced(ds)
    assert ds.contract_version == CONTRACT_VERSION == "v1"
    assert ds.quarantine.empty
    assert len(ds.telemetry) == 3 * 48 and len(ds.waveforms.meta) == 3 * 4
    assert str(ds.telemetry["timestamp"].dt.tz) == "UTC"
    batch = ds.waveforms.batch(np.arange(2))
    assert batch.shape == (2, 4096) and batch.dtype == np.float32


def test_missing_folder_and_missing_tables_are_contract_errors(tmp_path):
    with pytest.raises(ContractError, match="not a folder"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    pd.DataFrame({"machine_id": ["a"]}).to_parquet(tmp_path / "empty" / "machines.parquet")
    with pytest.raises(ContractError, match="no telemetry or waveforms"):
        load_dataset(tmp_path / "empty")


def test_bad_keys_are_quarantined_with_reasons(tiny):
    tel = pd.read_parquet(tiny / "telemetry" / "part-0.parquet")
    tel["timestamp"] = tel["timestamp"].astype(str)
    tel.loc[3, "timestamp"] = "n/a"
    tel.loc[4, "machine_id"] = ""
    tel.loc[5, "machine_id"] = "../etc/passwd"
    tel.loc[6, "machine_id"] = "bad\x07id"
    tel.to_csv(tiny / "telemetry" / "part-1.csv", index=False)
    (tiny / "telemetry" / "part-0.parquet").unlink()
    ds = load_dataset(tiny)
    balanced(ds)
    q = ds.quarantine.set_index("row")
    assert q.loc[3, "reason"] == "timestamp is missing or not a timestamp" and q.loc[3, "value"] == "NaT"
    assert q.loc[4, "reason"] == "machine_id is empty"
    assert "path separator" in q.loc[5, "reason"] and "path separator" in q.loc[6, "reason"]
    assert (ds.quarantine["file"] == "telemetry/part-1.csv").all()
    assert len(ds.telemetry) == 3 * 48 - 4


def test_missing_required_column_quarantines_the_file_and_names_the_column(tiny):
    pd.DataFrame({"machine_id": ["M00"], "when": ["2026-01-01"], "kind": ["failure"]}).to_csv(
        tiny / "events.csv", index=False
    )
    (tiny / "events.parquet").unlink()
    ds = load_dataset(tiny)
    balanced(ds)
    row = ds.quarantine.iloc[0]
    assert row["file"] == "events.csv" and row["column"] == "timestamp" and "missing" in row["reason"]


def test_unknown_event_kind_and_duplicates(tiny):
    events = pd.read_parquet(tiny / "events.parquet")
    events = pd.concat([events, events, events.assign(kind="exploded")])
    events.to_parquet(tiny / "events.parquet")
    tel = pd.read_parquet(tiny / "telemetry" / "part-0.parquet")
    tel.iloc[:5].to_parquet(tiny / "telemetry" / "part-1.parquet")  # the same readings again
    ds = load_dataset(tiny)
    balanced(ds)
    assert "kind must be 'failure' or 'maintenance'" in reasons(ds)
    assert "duplicate event" in reasons(ds)
    dup = ds.quarantine[ds.quarantine["reason"].str.startswith("duplicate reading")]
    assert len(dup) == 5 and set(dup["file"]) == {"telemetry/part-1.parquet"}


def test_sensor_values_that_are_not_numbers_become_nan_with_a_note(tiny):
    tel = pd.read_parquet(tiny / "telemetry" / "part-0.parquet")
    tel["temperature_bearing"] = tel["temperature_bearing"].astype(object)
    tel.loc[7, "temperature_bearing"] = "error"
    tel.loc[8, "temperature_bearing"] = np.inf
    tel.to_csv(tiny / "telemetry" / "part-0.csv", index=False)
    (tiny / "telemetry" / "part-0.parquet").unlink()
    ds = load_dataset(tiny)
    balanced(ds)
    assert ds.quarantine.empty
    note = ds.notes.iloc[0]
    assert note["column"] == "temperature_bearing" and note["cells"] == 2 and "'error'" in note["note"]


def test_register_values_that_cannot_be_used_are_named_in_notes_and_classes_are_spelled_one_way(tiny):
    machines = pd.read_parquet(tiny / "machines.parquet")
    machines["vibration_class"] = ["3", "class X", ""]
    machines["bearing_n_balls"] = ["9", "nine", None]
    (tiny / "machines.parquet").unlink()
    machines.to_csv(tiny / "machines.csv", index=False)
    ds = load_dataset(tiny)
    balanced(ds)
    got = ds.machines.set_index("machine_id")
    assert list(got["vibration_class"]) == ["III", "class X", None]  # an unknown class is kept, and said
    assert got.loc["M00", "bearing_n_balls"] == 9 and np.isnan(got.loc["M01", "bearing_n_balls"])
    notes = ds.notes.set_index("code")
    assert notes.loc["unknown_vibration_class", "cells"] == 1
    assert "M01 ('class X')" in notes.loc["unknown_vibration_class", "note"]
    assert "judged as class II" in notes.loc["unknown_vibration_class", "note"]
    assert "M01 ('nine')" in notes.loc["register_not_a_number", "note"]
    assert notes.loc["register_not_a_number", "file"] == "machines.csv"


def test_table_files_in_any_case_are_read_and_files_that_are_not_read_are_named(tiny):
    clean = load_dataset(tiny)
    tel = pd.read_parquet(tiny / "telemetry" / "part-0.parquet")
    (tiny / "telemetry" / "part-0.parquet").rename(tiny / "telemetry" / "part-0.PARQUET")
    half = tel.iloc[: len(tel) // 2]
    pd.read_parquet(tiny / "telemetry" / "part-0.PARQUET").iloc[len(tel) // 2 :].to_parquet(
        tiny / "telemetry" / "part-0.PARQUET"
    )
    half.to_csv(tiny / "telemetry" / "part-1.CSV", index=False)  # an export from a tool that shouts
    (tiny / "telemetry" / "notes.txt").write_text("exported by the historian")
    (tiny / "telemetry" / "_SUCCESS").write_text("")  # a Spark marker: not data
    (tiny / "telemetry" / ".DS_Store").write_bytes(b"\0")
    stale = pd.read_parquet(tiny / "machines.parquet").assign(rated_speed_rpm=3000.0)
    stale.to_csv(tiny / "machines.old.csv", index=False)  # a copy kept beside the table is not the table
    ds = load_dataset(tiny)
    assert len(ds.telemetry) == len(clean.telemetry)
    assert (ds.machines["rated_speed_rpm"] == 1500.0).all() and ds.quarantine.empty
    unread = ds.notes[ds.notes["code"] == "unread_file"].set_index("file")
    assert sorted(unread.index) == ["machines.old.csv", "telemetry/notes.txt"]
    assert "Parquet or CSV" in unread.loc["telemetry/notes.txt", "note"]
    assert "rename it machines.parquet" in unread.loc["machines.old.csv", "note"]


def test_a_dataset_whose_readings_are_all_in_unreadable_files_says_which(tiny):
    for path in (tiny / "telemetry").glob("*"):
        path.rename(path.with_name(path.name + ".gz"))
    for path in (tiny / "waveforms").glob("*"):
        path.unlink()
    with pytest.raises(ContractError, match=r"not read, as not Parquet or CSV: telemetry/part-0.parquet.gz"):
        load_dataset(tiny)


def test_bad_snapshots_are_quarantined(tiny):
    stamp = pd.Timestamp("2026-02-01", tz="UTC")
    bad = np.ones(4096, np.float32)
    bad[10] = np.nan
    write_waveforms(
        tiny / "waveforms" / "part-1.parquet",
        [
            {"machine_id": "M00", "timestamp": stamp, "values": bad},
            {"machine_id": "M00", "timestamp": stamp + pd.Timedelta(hours=1), "values": np.zeros(0)},
            {
                "machine_id": "M00",
                "timestamp": stamp + pd.Timedelta(hours=2),
                "values": np.ones(64),
                "sample_rate_hz": -1,
            },
        ],
    )
    ds = load_dataset(tiny)
    balanced(ds)
    assert {
        "snapshot contains NaN or infinite samples",
        "snapshot has no samples",
        "sample_rate_hz must be a positive, finite number",
    } <= reasons(ds)


def test_truncated_parquet_is_recorded_and_the_rest_is_used(tiny):
    good = (tiny / "telemetry" / "part-0.parquet").read_bytes()
    (tiny / "telemetry" / "part-9.parquet").write_bytes(good[: len(good) // 2])
    ds = load_dataset(tiny)
    balanced(ds)
    row = ds.quarantine.iloc[0]
    assert (
        row["file"] == "telemetry/part-9.parquet" and row["row"] == -1 and "cannot be read" in row["reason"]
    )
    assert len(ds.telemetry) == 3 * 48


def test_nothing_usable_names_the_first_problem(tmp_path):
    root = tmp_path / "bad"
    (root / "telemetry").mkdir(parents=True)
    pd.DataFrame({"machine_id": ["a", "b"], "timestamp": ["soon", "later"], "temperature_x": [1, 2]}).to_csv(
        root / "telemetry" / "t.csv", index=False
    )
    with pytest.raises(ContractError, match=r"telemetry/t.csv row 0, column 'timestamp'"):
        load_dataset(root)


def test_machines_missing_from_the_machine_table_are_known_by_id(tiny):
    machines = pd.read_parquet(tiny / "machines.parquet")
    machines.iloc[:1].to_parquet(tiny / "machines.parquet")
    ds = load_dataset(tiny)
    assert ds.machine_ids == ["M00", "M01", "M02"]
    assert ds.counts["machines"]["known_by_id_only"] == 2


def test_loader_never_writes_into_the_dataset(tmp_path):
    root = make_tiny(tmp_path / "ro")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    load_dataset(root)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize("name", ["femto-pronostia", "cmapss-fd001/train", "cwru-12k"])
def test_real_datasets_load_unchanged_and_balance(name):
    ds = load_dataset(shared_data(name))
    balanced(ds)
    assert len(ds.machines) > 0 and (len(ds.telemetry) + len(ds.waveforms.meta)) > 0
    if name == "femto-pronostia":  # Bearing1_1's first timestamp holds two snapshots per channel
        dup = ds.quarantine[ds.quarantine["reason"].str.startswith("second snapshot")]
        assert set(dup["machine_id"]) == {"Bearing1_1"} and len(dup) == 2


def test_combine_keeps_history_attributes_for_machines_the_batch_knows_by_id(tmp_path):
    from features.dataset import combine

    history = load_dataset(make_tiny(tmp_path / "history"))
    batch_root = make_tiny(tmp_path / "batch")
    (batch_root / "machines.parquet").unlink()
    merged = combine(history, load_dataset(batch_root))
    row = merged.machines.set_index("machine_id").loc["M00"]
    assert row["machine_type"] == "pump" and row["bearing_n_balls"] == 9


def test_numeric_timestamps_and_integer_ids(tmp_path):
    root = tmp_path / "num"
    (root / "telemetry").mkdir(parents=True)
    pd.DataFrame(
        {"machine_id": [7, 7], "timestamp": [1767225600, 1767229200], "temperature_x": [1.0, 2.0]}
    ).to_parquet(root / "telemetry" / "t.parquet")
    pd.DataFrame({"machine_id": pd.array([7], dtype="Int64"), "site": ["S"]}).to_parquet(
        root / "machines.parquet"
    )
    with pytest.raises(ContractError, match="a number, not a timestamp"):
        load_dataset(root)
    pd.DataFrame(
        {
            "machine_id": [7.0, 7.0],
            "timestamp": ["2026-01-01T00:00Z", "2026-01-01T01:00Z"],
            "temperature_x": [1.0, 2.0],
        }
    ).to_parquet(root / "telemetry" / "t.parquet")
    ds = load_dataset(root)
    assert ds.machine_ids == ["7"] and ds.machines.loc[0, "site"] == "S"


def test_waveform_values_that_are_not_numbers_quarantine_the_file(tiny):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "machine_id": ["M00"],
            "timestamp": pa.array([pd.Timestamp("2026-03-01", tz="UTC")]),
            "channel": ["x"],
            "sample_rate_hz": [float("inf")],
            "values": [["0.1", "oops"]],
        }
    )
    pq.write_table(table, tiny / "waveforms" / "strings.parquet")
    ds = load_dataset(tiny)
    balanced(ds)
    assert "values must be a list of float32 numbers, found a list of string" in reasons(ds)


def test_semicolon_csv_says_it_is_not_comma_separated(tiny):
    tel = pd.read_parquet(tiny / "telemetry" / "part-0.parquet")
    (tiny / "telemetry" / "part-0.parquet").unlink()
    tel.to_csv(tiny / "telemetry" / "part-0.csv", sep=";", index=False)
    (tiny / "waveforms" / "part-0.parquet").unlink()
    with pytest.raises(ContractError, match="not comma-separated; fix: export it with commas"):
        load_dataset(tiny)


def _logger_rows(days: int, rate_of, n_of, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    rows = []
    for day in range(days):
        rate, n = rate_of(day, rng), n_of(day)
        t = np.arange(n) / rate
        values = np.sin(2 * np.pi * 100 * t) + rng.normal(0, 0.1, n)
        rows.append(
            {
                "machine_id": "L1",
                "timestamp": start + pd.Timedelta(days=day),
                "sample_rate_hz": rate,
                "values": values,
            }
        )
    return rows


def test_a_logger_stamping_its_measured_rate_records_at_one_rate(tmp_path):
    from features.build import build_features

    rows = _logger_rows(30, lambda day, rng: 25600 + round(rng.normal(0, 0.5), 3), lambda day: 2560)
    write_waveforms(tmp_path / "drift" / "waveforms" / "w.parquet", rows)
    ds = load_dataset(tmp_path / "drift", now=pd.Timestamp("2026-03-01", tz="UTC"))
    assert ds.quarantine.empty and len(ds.waveforms.meta) == 30
    assert ds.waveforms.meta["sample_rate_hz"].nunique() > 1  # the stamped rates are kept as given
    frame = build_features(ds).frame
    assert len(frame) == 30 and frame["vib__acc_horizontal__rms"].notna().all()


def test_a_logger_set_to_a_new_rate_keeps_its_earlier_snapshots_and_a_one_off_is_named_with_numbers(tmp_path):
    rows = _logger_rows(
        30, lambda day, rng: 25600.0 if day < 10 else 51200.0, lambda day: 2560 if day < 10 else 5120
    )
    rows[20]["values"] = rows[20]["values"][:3000]  # one transfer cut short
    later = pd.Timestamp("2026-03-01", tz="UTC")
    for days in (10, 30):  # what was accepted with 10 days of data stays accepted with 30
        write_waveforms(tmp_path / "switch" / "waveforms" / "w.parquet", rows[:days])
        ds = load_dataset(tmp_path / "switch", now=later)
        kept = ds.waveforms.meta["timestamp"]
        assert (kept < pd.Timestamp("2026-01-11", tz="UTC")).sum() == 10
    assert len(ds.quarantine) == 1
    cut = ds.quarantine.iloc[0]
    assert cut["code"] == "wrong_length" and cut["value"] == "3000"
    assert (
        "snapshot has 3000 samples at 51200 Hz; this machine's acc_horizontal records 5120 samples at 51200 Hz"
        in (cut["reason"])
    )
    assert "(19 of its 30 snapshots)" in cut["reason"] and "cut short" in cut["reason"]


def test_timestamps_in_common_unambiguous_forms_are_read(tmp_path):
    """ISO 8601 with a space, a trailing UTC or GMT (BigQuery, strftime %Z), AM/PM, a month name."""
    root = make_tiny(tmp_path / "forms")
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet")
    stamps = tel["timestamp"]
    forms = [
        stamps.dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        stamps.dt.strftime("%Y-%m-%dT%H:%M:%S GMT"),
        stamps.dt.strftime("%Y-%m-%d %I:%M:%S %p"),
        stamps.dt.strftime("%d %B %Y %H:%M"),
        stamps.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
    ]
    (root / "telemetry" / "part-0.parquet").unlink()
    for i, form in enumerate(forms):
        part = tel.iloc[i :: len(forms)].assign(timestamp=form.iloc[i :: len(forms)])
        part.to_csv(root / "telemetry" / f"part-{i}.csv", index=False)
    ds = load_dataset(root)
    balanced(ds)
    assert ds.quarantine.empty
    pd.testing.assert_series_equal(
        ds.telemetry.sort_values(["machine_id", "timestamp"])["timestamp"].reset_index(drop=True),
        tel.sort_values(["machine_id", "timestamp"])["timestamp"]
        .reset_index(drop=True)
        .astype("datetime64[us, UTC]"),
        check_names=False,
    )
