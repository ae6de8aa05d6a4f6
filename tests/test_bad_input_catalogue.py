"""The bad-input catalogue (issue #6): one named defect per case in a small contract dataset.

Every case asserts (a) no traceback: a ContractError naming the problem and the fix when nothing is usable, else
the expected reason code (in the quarantine, the notes or the sensor flags), (b) rows in = used + quarantined
for every table, (c) the machines the defect does not touch are still fully there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_tiny, write_waveforms

from features.checks import REASON_CODES, PlausibilityConfig
from features.dataset import ContractError, load_dataset

NOW = pd.Timestamp("2026-03-01", tz="UTC")
T0 = pd.Timestamp("2026-01-01", tz="UTC")
T_HALF = T0 + pd.Timedelta(minutes=30)  # between the hourly readings of make_tiny
GOOD = ("M00", "M02")  # untouched by every defect below (M01 or a new machine carries it)


@dataclass
class Expect:
    code: str
    where: str = "quarantine"  # quarantine | note | flag | error | clean
    machine: str | None = None
    kwargs: dict = field(default_factory=dict)


def _tel(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "telemetry" / "part-0.parquet")


def _rows(machine: str = "M01", n: int = 2, start: pd.Timestamp = T_HALF, **cols):
    frame = pd.DataFrame(
        {"machine_id": machine, "timestamp": pd.date_range(start, periods=n, freq="h", tz="UTC")}
    )
    frame["temperature_bearing"] = 41.0
    frame["temperature_ambient"] = 20.0
    frame["speed_rpm"] = 1500.0
    return frame.assign(**cols)


def _extra(root: Path, frame: pd.DataFrame, name: str = "part-1.parquet", **csv) -> None:
    path = root / "telemetry" / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False, **csv)
    else:
        frame.to_parquet(path)


def _edit_m01(root: Path, column: str, rows: slice, value) -> None:
    """Set ``column`` of M01's telemetry readings at positions ``rows`` (hourly, from T0) to ``value``."""
    tel = _tel(root)
    idx = tel.index[tel["machine_id"] == "M01"][rows]
    tel.loc[idx, column] = value
    tel.to_parquet(root / "telemetry" / "part-0.parquet")


def _snap(machine="M01", hours=1.5, n=4096, rate=10240.0, values=None, channel="acc_horizontal"):
    t = np.arange(n) / rate
    default = np.sin(2 * np.pi * 25 * t) + 0.05 * np.cos(2 * np.pi * 310 * t)
    return {
        "machine_id": machine,
        "timestamp": T0 + pd.Timedelta(hours=hours),
        "values": default if values is None else values,
        "sample_rate_hz": rate,
        "channel": channel,
    }


def _wave(root: Path, *rows: dict) -> None:
    write_waveforms(root / "waveforms" / "part-1.parquet", list(rows))


def _truncate(root: Path, table: str) -> Expect:
    good = next((root / table).glob("*.parquet")).read_bytes()
    (root / table / "part-9.parquet").write_bytes(good[: len(good) // 2])
    return Expect("unreadable_file")


# --- cases: each changes a valid tiny dataset (3 machines, 48 hourly readings, 4 snapshots each) -----------


def missing_timestamp_column(root):
    _extra(root, _rows().drop(columns=["timestamp"]), "part-1.csv")
    return Expect("missing_column")


def missing_machine_id_column(root):
    _extra(root, _rows().drop(columns=["machine_id"]))
    return Expect("missing_column")


def missing_values_column(root):
    table = pa.table({"machine_id": ["M01"], "timestamp": pa.array([T0], pa.timestamp("us", tz="UTC"))})
    pq.write_table(table.append_column("channel", pa.array(["x"])), root / "waveforms" / "part-1.parquet")
    return Expect("missing_column")


def missing_event_kind_column(root):
    pd.DataFrame({"machine_id": ["M01"], "timestamp": [T0]}).to_parquet(root / "events.parquet")
    return Expect("missing_column")


def extra_text_column(root):
    _extra(root, _rows(operator="alice"), "part-1.csv")
    return Expect("extra_column", "note")


def extra_numeric_column_is_a_new_sensor(root):
    _extra(root, _rows(pressure_bar=3.2))
    return Expect("", "clean")


def semicolon_csv(root):
    _extra(root, _rows(), "part-1.csv", sep=";")
    return Expect("wrong_delimiter")


def tab_separated_csv(root):
    _extra(root, _rows(), "part-1.csv", sep="\t")
    return Expect("wrong_delimiter")


def decimal_comma_csv(root):
    rows = _rows(temperature_bearing="41,5", temperature_ambient="20,1", speed_rpm="1500,0")
    _extra(root, rows, "part-1.csv")
    return Expect("decimal_comma", machine="M01")


def day_first_dates_in_a_csv(root):
    """01.02.2026 is the 1st of February here, the 2nd of January elsewhere: not guessed."""
    rows = _rows(start=T0 + pd.Timedelta(days=40, minutes=30))
    rows["timestamp"] = rows["timestamp"].dt.strftime("%d.%m.%Y %H:%M")
    _extra(root, rows, "part-1.csv")
    return Expect("bad_timestamp", machine="M01")


def timestamps_with_a_zone_abbreviation(root):
    """'2026-01-01 00:30 CET': pandas would drop the zone and read UTC, an hour off."""
    rows = _rows()
    rows["timestamp"] = rows["timestamp"].dt.strftime("%Y-%m-%d %H:%M CET")
    _extra(root, rows, "part-1.csv")
    return Expect("bad_timestamp", machine="M01")


def epoch_number_among_iso_text(root):
    rows = _rows(n=3)
    rows["timestamp"] = rows["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    rows.loc[1, "timestamp"] = str(int(T_HALF.timestamp()) + 3600)
    _extra(root, rows, "part-1.csv")
    return Expect("wrong_type", machine="M01")


def installed_at_that_is_not_a_time(root):
    _edit_register(root, "installed_at", "13.01.2026")
    return Expect("register_not_a_time", "note")


def compressed_csv_is_named_not_skipped(root):
    _rows().to_csv(root / "telemetry" / "part-1.csv.gz", index=False)
    return Expect("unread_file", "note")


def text_instead_of_numbers_in_a_row(root):
    _extra(root, _rows(temperature_bearing="hot", temperature_ambient="n/a", speed_rpm="fast"), "part-1.csv")
    return Expect("wrong_type", machine="M01")


def text_in_one_cell_is_repaired(root):
    _extra(root, _rows(temperature_bearing="error"), "part-1.csv")
    return Expect("wrong_type", "note")


def numeric_epoch_timestamps(root):
    _extra(root, _rows().assign(timestamp=[1767225600, 1767229200]))
    return Expect("wrong_type", machine="M01")


def unparseable_timestamp(root):
    _extra(root, _rows().assign(timestamp=["2026-01-01T00:30Z", "yesterday"]), "part-1.csv")
    return Expect("bad_timestamp", machine="M01")


def empty_timestamp(root):
    _extra(root, _rows().assign(timestamp=["2026-01-01T00:30Z", None]), "part-1.csv")
    return Expect("bad_timestamp", machine="M01")


def all_sensors_nan(root):
    _extra(root, _rows(temperature_bearing=np.nan, temperature_ambient=np.nan, speed_rpm=np.nan))
    return Expect("nan_value", machine="M01")


def all_sensors_infinite(root):
    _extra(root, _rows(temperature_bearing=np.inf, temperature_ambient=-np.inf, speed_rpm=np.inf))
    return Expect("infinite_value", machine="M01")


def one_infinite_cell_is_repaired(root):
    _extra(root, _rows(temperature_bearing=np.inf))
    return Expect("infinite_value", "note")


def duplicate_telemetry_timestamp(root):
    _extra(root, _tel(root).iloc[48:50])  # two M01 readings again
    return Expect("duplicate_timestamp", machine="M01")


def duplicate_snapshot(root):
    _wave(root, _snap(hours=0))  # M01 already has a snapshot at T0
    return Expect("duplicate_timestamp", machine="M01")


def out_of_order_rows_are_sorted(root):
    tel = _tel(root)
    tel.sample(frac=1.0, random_state=1).to_parquet(root / "telemetry" / "part-0.parquet")
    return Expect("", "clean")


def future_telemetry(root):
    _extra(root, _rows(start=NOW + pd.Timedelta(days=30)))
    return Expect("future_timestamp", machine="M01")


def future_snapshot(root):
    _wave(root, _snap(hours=24 * 100))
    return Expect("future_timestamp", machine="M01")


def future_event(root):
    events = pd.read_parquet(root / "events.parquet")
    extra = events.assign(machine_id="M01", timestamp=NOW + pd.Timedelta(days=10), kind="maintenance")
    pd.concat([events, extra]).to_parquet(root / "events.parquet")
    return Expect("future_timestamp", machine="M01")


def _installed(root: Path) -> None:
    machines = pd.read_parquet(root / "machines.parquet")
    machines["installed_at"] = [pd.NaT, T0 + pd.Timedelta(hours=12), pd.NaT]
    machines.to_parquet(root / "machines.parquet")


def telemetry_before_installation(root):
    _installed(root)
    return Expect("before_installation", machine="M01")


def event_before_installation(root):
    _installed(root)
    events = pd.read_parquet(root / "events.parquet")
    pd.concat([events, events.assign(machine_id="M01", timestamp=T0)]).to_parquet(root / "events.parquet")
    return Expect("before_installation", machine="M01")


def below_absolute_zero(root):
    _edit_m01(root, "temperature_bearing", slice(10, 11), -300.0)
    return Expect("implausible_value", machine="M01")


def above_a_configured_limit(root):
    _edit_m01(root, "temperature_ambient", slice(10, 12), 65.0)
    limits = {"temperature_ambient": (-40.0, 60.0), "temperature*": (-273.15, None)}
    return Expect(
        "implausible_value", machine="M01", kwargs={"plausibility": PlausibilityConfig(limits=limits)}
    )


def bearing_glitch_burst(root):  # hundreds of degrees above its own history, for three readings
    _edit_m01(root, "temperature_bearing", slice(20, 23), 450.0)
    return Expect("sensor_glitch", machine="M01")


def glitch_downwards(root):
    _edit_m01(root, "temperature_bearing", slice(30, 31), -150.0)
    return Expect("sensor_glitch", machine="M01")


def degradation_rise_is_not_a_glitch(root):
    _edit_m01(root, "temperature_bearing", slice(36, 48), np.linspace(45, 110, 12))
    return Expect("", "clean")


def turbofan_625_degrees_is_not_implausible(root):
    tel = _tel(root)
    engine = tel[tel["machine_id"] == "M01"].assign(machine_id="E01")
    engine["temperature_hpc_outlet"] = 625.0 + np.random.default_rng(2).normal(0, 1.5, len(engine))
    _extra(root, engine)
    return Expect("", "clean")


def stuck_sensor(root):
    _edit_m01(root, "temperature_bearing", slice(10, 30), 41.3)
    return Expect("stuck", "flag", machine="M01")


def dead_sensor_no_values(root):
    _edit_m01(root, "temperature_bearing", slice(30, 48), np.nan)
    return Expect("dead", "flag", machine="M01")


def dead_sensor_flat_zero(root):
    _edit_m01(root, "temperature_ambient", slice(30, 48), 0.0)
    return Expect("dead", "flag", machine="M01")


def unknown_machine(root):
    _extra(root, _rows(machine="M99"))
    return Expect("unknown_machine", machine="M99", kwargs={"known_machines": ["M00", "M01", "M02"]})


def empty_machine_id(root):
    _extra(root, _rows(machine=""), "part-1.csv")
    return Expect("empty_machine_id")


def machine_id_with_slash(root):
    _extra(root, _rows(machine="../etc/passwd"))
    return Expect("bad_machine_id")


def machine_id_with_backslash(root):
    _extra(root, _rows(machine="plant\\M01"))
    return Expect("bad_machine_id")


def machine_id_with_control_character(root):
    _extra(root, _rows(machine="M01\x00"))
    return Expect("bad_machine_id")


def machine_id_with_newline(root):
    _wave(root, _snap(machine="M0\n1"))
    return Expect("bad_machine_id")


def truncated_telemetry_parquet(root):
    return _truncate(root, "telemetry")


def truncated_waveform_parquet(root):
    return _truncate(root, "waveforms")


def foreign_file_named_parquet(root):
    (root / "telemetry" / "part-1.parquet").write_bytes(b"PK\x03\x04 this is a zip file, not Parquet")
    return Expect("unreadable_file")


def snapshot_of_the_wrong_length(root):
    _wave(root, _snap(n=2048))
    return Expect("wrong_length", machine="M01")


def snapshot_too_short(root):
    _wave(root, _snap(machine="M03", n=16))
    return Expect("wrong_length", machine="M03")


def snapshot_at_the_wrong_sample_rate(root):
    _wave(root, _snap(rate=25600.0))
    return Expect("wrong_sample_rate", machine="M01")


def negative_sample_rate(root):
    _wave(root, _snap(rate=-1.0))
    return Expect("bad_sample_rate", machine="M01")


def snapshot_with_nan_samples(root):
    values = _snap()["values"].copy()
    values[100] = np.nan
    _wave(root, _snap(values=values))
    return Expect("nan_value", machine="M01")


def snapshot_with_infinite_samples(root):
    values = _snap()["values"].copy()
    values[5] = np.inf
    _wave(root, _snap(values=values))
    return Expect("infinite_value", machine="M01")


def snapshot_without_samples(root):
    _wave(root, _snap(values=np.zeros(0)))
    return Expect("empty_snapshot", machine="M01")


def flat_snapshot_dead_accelerometer(root):
    _wave(root, _snap(values=np.zeros(4096)), _snap(hours=40, values=np.zeros(4096)))
    return Expect("flat_snapshot", machine="M01")


def snapshot_without_channel(root):
    table = pa.table(
        {
            "machine_id": ["M01"],
            "timestamp": pa.array([T0 + pd.Timedelta(hours=3)], pa.timestamp("us", tz="UTC")),
            "channel": pa.array([None], pa.string()),
            "sample_rate_hz": [10240.0],
            "values": pa.array([np.ones(4096, np.float32)], pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, root / "waveforms" / "part-1.parquet")
    return Expect("missing_channel", machine="M01")


def waveform_values_as_strings(root):
    table = pa.table(
        {
            "machine_id": ["M01"],
            "timestamp": pa.array([T0 + pd.Timedelta(hours=3)], pa.timestamp("us", tz="UTC")),
            "channel": ["x"],
            "sample_rate_hz": [10240.0],
            "values": [["0.1", "oops"]],
        }
    )
    pq.write_table(table, root / "waveforms" / "part-1.parquet")
    return Expect("wrong_type", machine="M01")


def unknown_event_kind(root):
    events = pd.read_parquet(root / "events.parquet")
    pd.concat([events, events.assign(kind="exploded")]).to_parquet(root / "events.parquet")
    return Expect("unknown_event_kind")


def duplicate_event(root):
    events = pd.read_parquet(root / "events.parquet")
    pd.concat([events, events]).to_parquet(root / "events.parquet")
    return Expect("duplicate_event")


def machine_listed_twice(root):
    machines = pd.read_parquet(root / "machines.parquet")
    pd.concat([machines, machines.iloc[[1]]]).to_parquet(root / "machines.parquet")
    return Expect("duplicate_machine")


def _only_telemetry(root: Path, frame: pd.DataFrame, name: str = "part-0.csv") -> None:
    for path in [*root.glob("telemetry/*"), *root.glob("waveforms/*")]:
        path.unlink()
    frame.to_csv(root / "telemetry" / name, index=False)


def empty_batch(root):
    _only_telemetry(root, _rows().iloc[:0])
    return Expect("empty_dataset", "error")


def nothing_usable(root):
    _only_telemetry(root, _rows().assign(timestamp="soon"))
    return Expect("unusable_dataset", "error")


def semicolon_csv_alone(root):
    for path in [*root.glob("telemetry/*"), *root.glob("waveforms/*")]:
        path.unlink()
    _extra(root, _rows(), "part-1.csv", sep=";", decimal=",")
    return Expect("unusable_dataset", "error")


def no_telemetry_nor_waveforms(root):
    for path in [*root.glob("telemetry/*"), *root.glob("waveforms/*")]:
        path.unlink()
    return Expect("no_tables", "error")


def csv_cut_short_while_copied(root):
    """A CSV picked up while it was still being copied: its last row ends mid-number (41.5 -> 41.)."""
    path = root / "telemetry" / "part-1.csv"
    _rows(n=3, temperature_bearing=41.5).to_csv(path, index=False)
    text = path.read_text()
    path.write_text(text[: text.rindex("41.5") + 3])
    return Expect("cut_short_row", machine="M01")


def empty_csv_file_is_no_rows(root):
    (root / "events.csv").write_text("")
    return Expect("empty_file", "note")


def _edit_register(root: Path, column: str, value) -> None:
    machines = pd.read_parquet(root / "machines.parquet")
    machines[column] = machines.get(column, pd.Series(None, index=machines.index)).astype(object)
    machines.loc[machines["machine_id"] == "M01", column] = value
    (root / "machines.parquet").unlink()  # a register typed by hand: a CSV
    machines.to_csv(root / "machines.csv", index=False)


def bearing_geometry_that_is_not_a_number(root):
    _edit_register(root, "bearing_n_balls", "nine")
    return Expect("register_not_a_number", "note")


def vibration_class_that_is_not_a_class(root):
    _edit_register(root, "vibration_class", "5")
    return Expect("unknown_vibration_class", "note")


CASES: dict[str, Callable[[Path], Expect]] = {
    f.__name__: f
    for f in [
        missing_timestamp_column,
        missing_machine_id_column,
        missing_values_column,
        missing_event_kind_column,
        extra_text_column,
        extra_numeric_column_is_a_new_sensor,
        semicolon_csv,
        tab_separated_csv,
        decimal_comma_csv,
        day_first_dates_in_a_csv,
        compressed_csv_is_named_not_skipped,
        timestamps_with_a_zone_abbreviation,
        installed_at_that_is_not_a_time,
        epoch_number_among_iso_text,
        text_instead_of_numbers_in_a_row,
        text_in_one_cell_is_repaired,
        numeric_epoch_timestamps,
        unparseable_timestamp,
        empty_timestamp,
        all_sensors_nan,
        all_sensors_infinite,
        one_infinite_cell_is_repaired,
        duplicate_telemetry_timestamp,
        duplicate_snapshot,
        out_of_order_rows_are_sorted,
        future_telemetry,
        future_snapshot,
        future_event,
        telemetry_before_installation,
        event_before_installation,
        below_absolute_zero,
        above_a_configured_limit,
        bearing_glitch_burst,
        glitch_downwards,
        degradation_rise_is_not_a_glitch,
        turbofan_625_degrees_is_not_implausible,
        stuck_sensor,
        dead_sensor_no_values,
        dead_sensor_flat_zero,
        unknown_machine,
        empty_machine_id,
        machine_id_with_slash,
        machine_id_with_backslash,
        machine_id_with_control_character,
        machine_id_with_newline,
        truncated_telemetry_parquet,
        truncated_waveform_parquet,
        foreign_file_named_parquet,
        snapshot_of_the_wrong_length,
        snapshot_too_short,
        snapshot_at_the_wrong_sample_rate,
        negative_sample_rate,
        snapshot_with_nan_samples,
        snapshot_with_infinite_samples,
        snapshot_without_samples,
        flat_snapshot_dead_accelerometer,
        snapshot_without_channel,
        waveform_values_as_strings,
        unknown_event_kind,
        duplicate_event,
        machine_listed_twice,
        empty_batch,
        nothing_usable,
        semicolon_csv_alone,
        no_telemetry_nor_waveforms,
        csv_cut_short_while_copied,
        empty_csv_file_is_no_rows,
        bearing_geometry_that_is_not_a_number,
        vibration_class_that_is_not_a_class,
    ]
}


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path):
    root = make_tiny(tmp_path / name)
    clean = load_dataset(root, now=NOW)
    expect = CASES[name](root)
    if expect.where == "error":
        with pytest.raises(ContractError) as caught:
            load_dataset(root, now=NOW, **expect.kwargs)
        assert caught.value.code == expect.code
        assert "fix" in str(caught.value) or "no usable" in str(caught.value), str(caught.value)
        return
    ds = load_dataset(root, now=NOW, **expect.kwargs)
    for table, c in ds.counts.items():  # (b) the balance, for every table
        assert c["rows_in"] == c["rows_used"] + c["rows_quarantined"], (table, c)
    q = ds.quarantine
    assert set(q["code"]) <= set(REASON_CODES) and (q["fix"] != "").all() and (q["reason"] != "").all()
    if expect.where == "quarantine":  # (a) a named reason, on the right machine
        assert expect.code in set(q["code"]), q[["file", "row", "code", "reason"]]
        hit = q[q["code"] == expect.code]
        assert (hit["file"] != "").all()
        if expect.machine:
            assert set(hit["machine_id"]) == {expect.machine}, hit
    elif expect.where == "note":
        assert expect.code in set(ds.notes["code"]), ds.notes
        assert q.empty, q
    elif expect.where == "flag":
        flags = ds.sensor_flags
        assert set(flags["flag"]) == {expect.code} and set(flags["machine_id"]) == {expect.machine}, flags
        assert q.empty, q
    else:
        assert q.empty and ds.sensor_flags.empty, (q, ds.sensor_flags)
    for machine in GOOD:  # (c) one bad machine never blocks the others
        for table in ("telemetry",):
            rows = ds.telemetry[ds.telemetry["machine_id"] == machine]
            assert len(rows) == (clean.telemetry["machine_id"] == machine).sum(), (machine, table)
        assert (ds.waveforms.meta["machine_id"] == machine).sum() == (
            clean.waveforms.meta["machine_id"] == machine
        ).sum()


def test_glitches_in_pronostia_bearing2_6_are_caught_and_warm_up_passes():
    from conftest import shared_data

    ds = load_dataset(shared_data("femto-pronostia"))
    glitch = ds.quarantine[ds.quarantine["code"] == "sensor_glitch"]
    assert set(glitch["machine_id"]) == {"Bearing2_6", "Bearing2_7"}  # Bearing3_3's warm-up is real
    assert (glitch["machine_id"] == "Bearing2_6").sum() > 1300
    kept = ds.telemetry[ds.telemetry["machine_id"] == "Bearing2_6"]["temperature_bearing"]
    assert kept.quantile(0.95) < 450 and glitch["value"].astype(float).min() > 250


def test_every_pronostia_bearing2_6_reading_hundreds_of_degrees_above_its_level_is_caught():
    """Its temperature climbs from about 71 to 230 °C within the two-hour record, so only the level over a
    quarter of the window follows it; the last reading has no later one to show that it was a burst."""
    from conftest import shared_data

    ds = load_dataset(shared_data("femto-pronostia"))
    kept = ds.telemetry[ds.telemetry["machine_id"] == "Bearing2_6"]["temperature_bearing"]
    assert (kept.iloc[:-1] > 300).sum() == 0
