"""Likely fault from the families of the risk drivers: known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.faults import UNKNOWN, fault_family, likely_faults


def test_feature_families():
    assert fault_family("vib__acc_h__envelope__bpfo_snr") == "outer race"
    assert fault_family("vib__acc_h__envelope__bpfi_sideband_snr") == "inner race"
    assert fault_family("vib__acc_h__envelope__bsf_harmonics_snr") == "ball"
    assert fault_family("vib__acc_h__order_1x_amp__ratio_to_baseline") == "imbalance"
    assert fault_family("tel__temperature_bearing__rise_over_ambient") == "lubrication"
    assert fault_family("tel__temperature_hpc_outlet__slope__24h") is None  # a process temperature: no fault
    assert fault_family("vib__acc_h__rms") is None and fault_family("tel__load_pct__mean__24h") is None
    assert fault_family("vib__acc_h__envelope__bpfi_to_bpfo_db", 8.0) == "inner race"
    assert fault_family("vib__acc_h__envelope__bpfi_to_bpfo_db", -8.0) == "outer race"


def test_the_dominant_family_names_the_fault():
    columns = [
        "vib__a__envelope__bpfo_snr",
        "vib__a__envelope__bpfi_snr",
        "vib__a__rms",
        "tel__temperature_bearing__max__24h",
    ]
    contributions = pd.DataFrame(
        [
            [2.0, 0.1, 3.0, 0.0],  # outer race dominates the families (rms points to none)
            [0.0, 0.0, 3.0, 0.0],  # only level features: unknown
            [1.0, 0.0, 0.0, 1.2],  # outer race 1.0 vs lubrication 1.2: neither holds 60 %
            [-1.0, 0.0, 0.0, 0.5],  # a family that lowered the risk does not count
        ],
        columns=columns,
    )
    values = pd.DataFrame(np.ones((4, 4)), columns=columns)
    assert likely_faults(contributions, values, share=0.6) == ["outer race", UNKNOWN, UNKNOWN, "lubrication"]


def test_a_clear_defect_line_or_imbalance_names_the_fault_first():
    from models.faults import signature

    values = pd.DataFrame(
        {
            "vib__h__envelope__bpfo_snr": [22.0, 3.0, 3.0, 12.0, np.nan],
            "vib__v__envelope__bpfo_snr": [1.0, 2.0, 2.0, 1.0, np.nan],
            "vib__h__envelope__bpfi_snr": [2.0, 19.0, 2.0, 15.0, np.nan],
            "vib__h__envelope__bsf_snr": [1.0, 1.0, 4.0, 1.0, np.nan],
            "vib__h__order_1x_amp__ratio_to_baseline": [1.0, 1.0, 2.5, 3.0, np.nan],
        }
    )
    # outer race; inner race; imbalance (no line); the stronger line wins over imbalance; nothing known
    assert signature(values).tolist() == ["outer race", "inner race", "imbalance", "inner race", ""]
    temperature_only = pd.DataFrame({"tel__temperature_bearing__max__24h": [2.0]})
    assert likely_faults(temperature_only, pd.DataFrame({"tel__temperature_bearing__max__24h": [60.0]})) == [
        "lubrication"
    ]
