"""A fleet split into partitions of machines gets exactly the features of the whole fleet built at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureConfig, build_features, latest_as_of
from features.dataset import Dataset, load_dataset
from features.partition import concat_tables, fleet_reference, machine_blocks, split_fleet

CONFIG = FeatureConfig()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    from features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("partition") / "fleet"
    simulate(out, SimulationConfig(machines=11, days=12, seed=3, snapshot_samples=2048))
    return load_dataset(out)


def without_ambient(dataset: Dataset) -> Dataset:
    """Without an ambient sensor, temperatures are compared with the fleet: the one cross-machine feature."""
    return replace(dataset, telemetry=dataset.telemetry.drop(columns="temperature_ambient"))


def partitioned(dataset: Dataset, size: int, as_of: pd.DataFrame | None) -> pd.DataFrame:
    reference = fleet_reference(dataset, as_of, CONFIG)
    parts = split_fleet(dataset, size, as_of)
    tables = [build_features(p.dataset, p.as_of, CONFIG, fleet_medians=reference) for p in parts]
    return concat_tables(parts, tables).frame


def with_some_ambient(dataset: Dataset) -> Dataset:
    """The first three machines have no ambient sensor: they rise over the fleet, the others over ambient."""
    tel = dataset.telemetry.copy()
    first = sorted(tel["machine_id"].unique())[:3]
    tel.loc[tel["machine_id"].isin(first), "temperature_ambient"] = np.nan
    return replace(dataset, telemetry=tel)


@pytest.mark.parametrize(
    "ambient", ["all", "none", "some"], ids=["rise_over_ambient", "rise_over_fleet", "mixed"]
)
@pytest.mark.parametrize("scoring", [True, False], ids=["latest_as_of", "every_snapshot"])
def test_partitions_give_the_features_of_the_whole_fleet(fleet: Dataset, ambient: str, scoring: bool):
    dataset = {"all": fleet, "none": without_ambient(fleet), "some": with_some_ambient(fleet)}[ambient]
    as_of = latest_as_of(dataset) if scoring else None
    whole = build_features(dataset, as_of, CONFIG).frame
    split = partitioned(dataset, 4, as_of)
    assert len(split) == len(whole)
    assert list(split.columns) == list(whole.columns)
    pd.testing.assert_frame_equal(split, whole, check_exact=False, rtol=1e-12, atol=0)
    rise = [c for c in whole.columns if c.endswith("__rise_over_fleet")]
    if ambient == "none":
        assert rise and whole[rise].notna().to_numpy().mean() > 0.5  # the check compared real numbers
    elif ambient == "some":  # exactly the machines without ambient rise over the fleet
        risen = whole.loc[whole[rise].notna().any(axis=1), "machine_id"].unique()
        assert sorted(risen) == sorted(whole["machine_id"].unique())[:3]
    if ambient != "none":  # one reference per row: a row rises over the fleet only without an ambient level
        for column in rise:
            over_ambient = whole[column.replace("__rise_over_fleet", "__rise_over_ambient")]
            assert over_ambient[whole[column].notna()].isna().all()


def test_one_partition_alone_lacks_the_fleet_without_the_reference(fleet: Dataset):
    """The reference is what makes partitions exact: a partition of 2 machines has no fleet median of its own."""
    dataset = without_ambient(fleet)
    as_of = latest_as_of(dataset)
    part = split_fleet(dataset, 2, as_of)[0]
    alone = build_features(part.dataset, part.as_of, CONFIG).frame
    rise = [c for c in alone.columns if c.endswith("__rise_over_fleet")]
    assert alone[rise].isna().all().all()  # under 3 machines of a type: NaN, never a made-up median


def test_every_machine_in_exactly_one_partition(fleet: Dataset):
    parts = split_fleet(fleet, 3)
    ids = [m for p in parts for m in p.dataset.machines["machine_id"]]
    assert sorted(ids) == sorted(fleet.machines["machine_id"]) and len(set(ids)) == len(ids)
    assert sum(len(p.dataset.telemetry) for p in parts) == len(fleet.telemetry)
    assert sum(len(p.dataset.waveforms.meta) for p in parts) == len(fleet.waveforms.meta)
    # each partition carries only its own samples, and they are the same samples
    part = parts[1].dataset
    assert len(part.waveforms.samples) == part.waveforms.meta["n_samples"].sum()
    row = part.waveforms.meta.iloc[0]
    same = fleet.waveforms.meta.set_index(["machine_id", "timestamp", "channel"]).loc[
        (row["machine_id"], row["timestamp"], row["channel"])
    ]
    n, mine, theirs = int(row["n_samples"]), int(row["offset"]), int(same["offset"])
    np.testing.assert_array_equal(
        part.waveforms.samples[mine : mine + n], fleet.waveforms.samples[theirs : theirs + n]
    )


def test_machine_blocks_are_sorted_and_bounded():
    blocks = machine_blocks(["m3", "m1", "m2", "m1", "m10"], 2)
    assert blocks == [["m1", "m10"], ["m2", "m3"]]
    with pytest.raises(ValueError, match="at least 1 machine"):
        machine_blocks(["m1"], 0)


def test_tiny_dataset_partitions(tiny: Path):
    dataset = load_dataset(tiny)
    as_of = latest_as_of(dataset)
    whole = build_features(dataset, as_of, CONFIG).frame
    pd.testing.assert_frame_equal(partitioned(dataset, 1, as_of), whole, check_exact=False, rtol=1e-12)


def test_no_fleet_reference_is_computed_when_every_reading_has_an_ambient_value(fleet: Dataset):
    tel = fleet.telemetry.assign(temperature_ambient=fleet.telemetry["temperature_ambient"].fillna(20.0))
    complete = replace(fleet, telemetry=tel)
    assert fleet_reference(complete, latest_as_of(complete), CONFIG) is None
    assert fleet_reference(with_some_ambient(complete), latest_as_of(complete), CONFIG) is not None
    assert fleet_reference(without_ambient(complete), latest_as_of(complete), CONFIG) is not None
