"""Real bearings (CWRU 12 kHz drive-end faults, ../shared/data): the whitened-envelope features (line, sideband
and harmonic-family SNRs, family ratios) carry the fault type to a bearing never seen, where fingerprinting
features do not.

A reduced version of ``benchmarks/cwru.py``: drive-end and fan-end channels, 150 trees, two of the three
held-out fault sizes (0.007 in and 0.021 in, whose outer-race recordings carry an outer-race signature; the
0.014 in outer-race recordings carry none, see the benchmark). Floors are set below the measured accuracies
(100 % on both) with room for seeds and library versions, and far above what fingerprints reach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from features.build import build_features
from features.dataset import load_dataset
from features.vibration import vibration_feature_info

pytestmark = pytest.mark.slow

HELD_OUT_SIZES = (0.007, 0.021)


@pytest.fixture(scope="module")
def snapshots() -> pd.DataFrame:
    """One row per snapshot time: the library's features of both channels, with the recording's labels."""
    root = shared_data("cwru-12k")
    frame = build_features(load_dataset(root)).frame
    labels = pd.read_parquet(root / "labels.parquet")[["machine_id", "fault_location", "fault_size_in"]]
    return frame.merge(labels, on="machine_id")


def columns(frame: pd.DataFrame, keep) -> list[str]:
    return [
        c
        for c in frame.columns
        if c.startswith("vib__") and "ratio_to_baseline" not in c and keep(c.split("__", 2)[2])
    ]


def held_out_accuracy(frame: pd.DataFrame, cols: list[str], make, size: float) -> float:
    """Accuracy on one fault size after training on the others."""
    test = np.isclose(frame["fault_size_in"], size)
    x, y = frame[cols].to_numpy(dtype=float), frame["fault_location"].to_numpy()
    model = make(int((~test).sum())).fit(x[~test], y[~test])
    return float((model.predict(x[test]) == y[test]).mean())


def extra_trees(n_train: int) -> ExtraTreesClassifier:
    return ExtraTreesClassifier(150, min_samples_leaf=round(0.04 * n_train), random_state=0, n_jobs=1)


def physics(suffix: str) -> bool:
    """Whitened-envelope features: line, sideband and harmonic-family SNRs and family ratios (all dB)."""
    return suffix.startswith("envelope__") and suffix.endswith(("_snr", "_db"))


def test_snr_features_are_finite_dimensionless_and_described(snapshots):
    snr = columns(snapshots, physics)
    assert len(snr) == 26, snr  # (7 lines + 3 harmonic families + 3 family ratios) x 2 channels
    assert np.isfinite(snapshots[snr].to_numpy()).all()
    assert {vibration_feature_info(c).unit for c in snr} == {"dB"}


def test_family_ratios_point_to_the_faulty_part(snapshots):
    """BPFI family over BPFO family: well above 0 dB for every inner-race fault, well below for the outer-race
    faults that carry an outer-race line (0.007 and 0.021 in)."""
    ratio = "vib__acc_drive_end__envelope__bpfi_to_bpfo_db"
    median = snapshots.groupby(["fault_size_in", "fault_location"])[ratio].median()
    for size in snapshots["fault_size_in"].unique():
        assert median.loc[(size, "inner_race")] > 6.0, size
    for size in HELD_OUT_SIZES:
        assert median.loc[(size, "outer_race")] < -6.0, size


def test_fault_lines_stand_out_where_the_fault_is(snapshots):
    de = "vib__acc_drive_end__envelope__"
    median = snapshots.groupby(["fault_size_in", "fault_location"])[
        [f"{de}bpfo_snr", f"{de}bpfi_snr"]
    ].median()
    for size in snapshots["fault_size_in"].unique():
        inner, outer, ball = (median.loc[(size, kind)] for kind in ("inner_race", "outer_race", "ball"))
        assert inner[f"{de}bpfi_snr"] > ball[f"{de}bpfi_snr"] + 6, size  # inner-race line >= 2x, every size
    for size in HELD_OUT_SIZES:
        outer, ball = median.loc[(size, "outer_race")], median.loc[(size, "ball")]
        assert outer[f"{de}bpfo_snr"] > ball[f"{de}bpfo_snr"] + 6, size


@pytest.mark.parametrize("size", HELD_OUT_SIZES)
def test_whitened_envelope_snrs_transfer_to_an_unseen_bearing(snapshots, size):
    snr = columns(snapshots, physics)
    assert held_out_accuracy(snapshots, snr, extra_trees, size) >= 0.9


def test_fingerprint_features_do_not_transfer_and_snrs_beat_them(snapshots):
    """Band energies identify recordings (near-perfect across loads) but not the fault on a new bearing."""
    bands = columns(snapshots, lambda suffix: suffix.startswith("band_energy__"))
    snr = columns(snapshots, physics)

    def forest(n_train: int) -> RandomForestClassifier:
        return RandomForestClassifier(150, random_state=0, n_jobs=1)

    sizes = np.sort(snapshots["fault_size_in"].unique())
    with_bands = np.mean([held_out_accuracy(snapshots, bands, forest, s) for s in sizes])
    with_snr = np.mean([held_out_accuracy(snapshots, snr, extra_trees, s) for s in sizes])
    assert with_bands < 0.7
    assert with_snr > with_bands + 0.2
