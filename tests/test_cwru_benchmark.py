"""The labels and splits of ``benchmarks/cwru.py`` on label tables of other CWRU subsets: healthy recordings, one
load or one fault size, units written into the numbers, bad rows. No features are computed here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cwru

TABLE_COLUMNS = [  # of the benchmark's ablation table
    "feature_set",
    "classifier",
    "n_features",
    "split",
    "held_out",
    "accuracy",
    "cv_accuracy",
    "cv_log_loss",
]


def write_labels(folder: Path, rows: list[tuple], csv: bool = False) -> Path:
    frame = pd.DataFrame(rows, columns=["machine_id", "fault_location", "fault_size_in", "load_hp"])
    if csv or frame["load_hp"].map(type).eq(str).any():  # text loads: CSV, as a plant's export would be
        frame.to_csv(folder / "labels.csv", index=False)
    else:
        frame.to_parquet(folder / "labels.parquet")
    return folder


def fleet(loads=(0, 1, 2, 3), sizes=(0.007, 0.014, 0.021), healthy=True) -> list[tuple]:
    rows = [
        (f"{kind}{size}-{load}", kind, size, load)
        for kind in ("ball", "inner_race", "outer_race")
        for size in sizes
        for load in loads
    ]
    return rows + ([(f"normal-{load}", "Normal", None, load) for load in loads] if healthy else [])


def snapshot_rows(labels: pd.DataFrame, per_recording: int = 3) -> pd.DataFrame:
    return labels.loc[labels.index.repeat(per_recording)].reset_index(drop=True)


def test_healthy_recordings_are_dealt_to_the_bearing_folds_by_load(tmp_path):
    labels = cwru.read_labels(write_labels(tmp_path, fleet()))
    healthy = labels[labels["fault_location"] == "normal"].sort_values("load_hp")
    assert healthy["fault_size_in"].isna().all()
    assert healthy["bearing_group"].tolist() == [0.007, 0.014, 0.021, 0.007]
    rows = snapshot_rows(labels)
    split = {(name, held): test for name, held, test in cwru.splits(rows)}
    assert list(split) == [
        ("across loads", "load 3"),
        *(("across bearings", s) for s in ("0.007", "0.014", "0.021")),
    ]
    for size in ("0.007", "0.014", "0.021"):  # every fold tests healthy rows and trains on others
        test = split["across bearings", size]
        is_healthy = (rows["fault_location"] == "normal").to_numpy()
        assert (test & is_healthy).any() and (~test & is_healthy).any()
        assert set(rows["fault_size_in"][test & ~is_healthy]) == {float(size)}
    folds = cwru.inner_folds(rows, ~split["across bearings", "0.014"], "across bearings")
    assert len(folds) == 2 and not any((f & split["across bearings", "0.014"]).any() for f in folds)


def test_one_healthy_recording_stays_in_training(tmp_path):
    rows = [r for r in fleet() if not r[0].startswith("normal")] + [("normal-0", "healthy", 0.0, 0)]
    labels = cwru.read_labels(write_labels(tmp_path, rows))
    assert labels.loc[labels["machine_id"] == "normal-0", "bearing_group"].isna().all()
    notes = cwru.split_notes(snapshot_rows(labels))
    assert any("one healthy recording" in note for note in notes)


def test_a_split_that_cannot_hold_anything_out_is_left_out_and_said(tmp_path):
    one_load = cwru.read_labels(write_labels(tmp_path, fleet(loads=(2,), healthy=False)))
    rows = snapshot_rows(one_load)
    assert [name for name, _, _ in cwru.splits(rows)] == ["across bearings"] * 3
    assert cwru.split_notes(rows) == ["across loads left out: every recording has load 2"]
    two_sizes = snapshot_rows(
        cwru.read_labels(write_labels(tmp_path, fleet(sizes=(0.007, 0.021), healthy=False)))
    )
    for name, _, test in cwru.splits(two_sizes):
        if name == "across bearings":  # one training size left: no inner cross-validation
            assert cwru.inner_folds(two_sizes, ~test, name) == []
    with pytest.raises(SystemExit, match="two loads or two fault sizes"):
        cwru.split_notes(
            snapshot_rows(cwru.read_labels(write_labels(tmp_path, fleet((1,), (0.007,), False))))
        )


def test_physics_only_sets():
    assert [cwru.physics_only(s) for s in ("lines", "physics", "physics but ratios")] == [True] * 3
    assert not any(
        cwru.physics_only(s) for s in ("all", "bands", "physics+invariant", "all but lines", "invariant")
    )


def test_the_a_priori_model_is_chosen_where_no_inner_cross_validation_exists():
    table = pd.DataFrame(
        [
            ("all", "rf", 10, "across bearings", "0.007", 0.9, np.nan, np.nan),
            (cwru.PRIOR_SET, cwru.PRIOR_MODEL, 5, "across bearings", "0.007", 0.5, np.nan, np.nan),
            ("all", "rf", 10, "across loads", "load 3", 0.9, 0.8, 0.3),
            (cwru.PRIOR_SET, cwru.PRIOR_MODEL, 5, "across loads", "load 3", 0.5, 0.9, 0.4),
        ],
        columns=TABLE_COLUMNS,
    )
    table.loc[len(table)] = ["all", "et", 20, "across bearings", "0.007", 1.0, 1.0, 0.1]  # a fingerprint set
    chosen = cwru.select(table).set_index("split")
    assert chosen.loc["across bearings", "feature_set"] == cwru.PRIOR_SET  # not the better held-out score,
    # nor a fingerprinting set on a bearing never seen, whatever its inner score
    assert chosen.loc["across loads", "cv_accuracy"] == 0.9


def test_csv_labels_are_read_as_written(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "machine_id,fault_location,fault_size_in,load_hp\n"
        "007,inner_race,0.007,0\n008,inner_race,0.021,1\nn0,None,,0\nn1,normal,,1\n"
    )
    labels = cwru.read_labels(tmp_path).set_index("machine_id")
    assert list(labels.index) == ["007", "008", "n0", "n1"]  # ids keep their zeros
    assert labels.loc["n0", "fault_location"] == "none" and np.isnan(labels.loc["n0", "fault_size_in"])
    assert labels["bearing_group"].tolist() == [0.007, 0.021, 0.007, 0.021]


def test_only_physics_sets_are_chosen_across_bearings_when_there_are_any():
    columns = TABLE_COLUMNS
    rows = [
        ("bands", "rf", 8, "across bearings", "0.007", 0.4, 1.0, 0.1),
        ("lines", "et", 10, "across bearings", "0.007", 0.9, 0.7, 0.5),
        ("bands", "rf", 8, "across loads", "load 3", 1.0, 1.0, 0.1),
    ]
    chosen = cwru.select(pd.DataFrame(rows, columns=columns)).set_index("split")["feature_set"]
    assert chosen.to_dict() == {"across loads": "bands", "across bearings": "lines"}
    without = cwru.select(pd.DataFrame([r for r in rows if r[0] != "lines"], columns=columns))
    assert without.set_index("split")["feature_set"].to_dict() == {
        "across loads": "bands",
        "across bearings": "bands",
    }


def test_units_in_the_numbers_and_csv_labels_are_read(tmp_path):
    rows = [(m, k, f'{s}"' if s else s, f"{load} HP") for m, k, s, load in fleet()]
    labels = cwru.read_labels(write_labels(tmp_path, rows, csv=True))
    assert labels["load_hp"].tolist() == [float(r[3]) for r in fleet()]
    assert labels["fault_size_in"].dropna().tolist() == [r[2] for r in fleet() if r[2]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: [*r[:1], ("b-x", "ball", None, 1), *r[1:]],
            r"fault_size_in is empty.*b-x.*healthy recording",
        ),
        (lambda r: [*r, ("n-x", "normal", 0.014, 1)], r"healthy recordings n-x have a fault_size_in"),
        (lambda r: [*r, (r[0][0], "ball", 0.007, 1)], r"labelled more than once"),
        (lambda r: [*r, ("b-y", "ball", 0.007, "heavy")], r"load_hp is not a number for b-y"),
        (lambda r: [*r, ("b-z", "ball", 0.007, None)], r"load_hp is empty for b-z"),
        (lambda r: [*r, ("b-w", None, 0.007, 1)], r"fault_location is empty for b-w"),
        (lambda r: [*r, ("b-v", " ", None, 1)], r"fault_location is empty for b-v"),
    ],
)
def test_bad_labels_name_the_file_column_recording_and_fix(tmp_path, change, message):
    write_labels(tmp_path, change(fleet()))
    with pytest.raises(SystemExit, match=message) as error:
        cwru.read_labels(tmp_path)
    assert "labels." in str(error.value)


def test_missing_labels_file_says_what_to_write(tmp_path):
    with pytest.raises(SystemExit, match="machine_id, fault_location, fault_size_in, load_hp"):
        cwru.read_labels(tmp_path)
