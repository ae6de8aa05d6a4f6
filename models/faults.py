"""The likely fault behind a machine's risk: first the physical signature in its features, then the feature
families that drive its risk (XGBoost contributions).

1. A bearing defect line: the strongest of the BPFO (outer race), BPFI (inner race) and BSF (ball) lines of the
   whitened envelope spectrum, when it stands at least ``LINE_DB`` (10 dB) above its local floor on any channel.
2. Imbalance: vibration at 1x shaft speed at least ``IMBALANCE_RATIO`` (2x) its healthy level.
3. Otherwise the family of the drivers: a driver about BPFO points to the outer race, BPFI to the inner race,
   BSF and the cage frequency (FTF) to a ball or the cage, 1x shaft speed to imbalance, bearing temperature to
   lubrication (a dry bearing heats before it vibrates). Level features (RMS, kurtosis, bands) raise the risk of
   any fault and point to none. The fault is named when its family carries at least ``share`` of the positive
   contributions of the families, else ``unknown``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FAULTS = ("outer race", "inner race", "ball", "imbalance", "lubrication")
UNKNOWN = "unknown"
LINE_DB = 10.0
IMBALANCE_RATIO = 2.0
LINES = {"bpfo": "outer race", "bpfi": "inner race", "bsf": "ball"}


def signature(values: pd.DataFrame) -> np.ndarray:
    """The fault each row's features show physically ('' when none): a defect line or imbalance."""
    result = np.full(len(values), "", dtype=object)
    best = np.full(len(values), LINE_DB)
    for code, fault in LINES.items():
        columns = [c for c in values.columns if c.endswith(f"__envelope__{code}_snr")]
        if columns:
            level = values[columns].max(axis=1, skipna=True).to_numpy(dtype=float)
            stronger = np.nan_to_num(level, nan=-np.inf) >= best
            result[stronger], best[stronger] = fault, level[stronger]
    ratio_columns = [c for c in values.columns if c.endswith("__order_1x_amp__ratio_to_baseline")]
    if ratio_columns:
        ratio = values[ratio_columns].max(axis=1, skipna=True).to_numpy(dtype=float)
        result[(result == "") & (np.nan_to_num(ratio) >= IMBALANCE_RATIO)] = "imbalance"
    return result


def fault_family(feature: str, value: float = np.nan) -> str | None:
    """The fault a feature column speaks for, or None (a family ratio 'x_to_y' speaks for x when positive)."""
    name = feature.lower()
    last = name.rsplit("__", 1)[-1]
    if "_to_" in last and last.endswith("_db"):  # a family ratio such as bpfi_to_bpfo_db
        first, second = last.removesuffix("_db").split("_to_")[:2]
        if not np.isfinite(value):
            return None
        return fault_family(first if value > 0 else second)
    if "bpfo" in name:
        return "outer race"
    if "bpfi" in name:
        return "inner race"
    if "bsf" in name or "ftf" in name:
        return "ball"
    if "order_1x" in name:
        return "imbalance"
    if name.startswith("tel__") and "temperature" in name and "bearing" in name:
        return "lubrication"  # a process temperature (a turbofan's) names no fault
    return None


def likely_faults(contributions: pd.DataFrame, values: pd.DataFrame, share: float = 0.4) -> list[str]:
    """For each row: the physical signature if there is one, else the fault family with the largest positive
    contribution if it holds ``share`` of those of all families; ``unknown`` otherwise."""
    columns = list(contributions.columns)
    physical = signature(values)
    result = []
    for row in range(len(contributions)):
        if physical[row]:
            result.append(str(physical[row]))
            continue
        contrib = contributions.iloc[row].to_numpy(dtype=float)
        value = values.iloc[row].reindex(columns).to_numpy(dtype=float)
        totals = dict.fromkeys(FAULTS, 0.0)
        for name, c, v in zip(columns, contrib, value, strict=True):
            family = fault_family(name, v) if c > 0 else None
            if family is not None:
                totals[family] += c
        best = max(totals, key=lambda f: totals[f])
        all_families = sum(totals.values())
        result.append(best if all_families > 0 and totals[best] >= share * all_families else UNKNOWN)
    return result
