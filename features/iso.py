"""ISO 20816 (formerly ISO 10816-1) vibration severity zones from velocity RMS in mm/s.

Zone A: newly commissioned machines; B: acceptable for long-term operation; C: not acceptable for long-term
operation, plan a repair; D: severe enough to cause damage. The zone boundaries depend on the machine class of
ISO 10816-1 Annex B (the general guidance values that ISO 20816-1 keeps):

| class | machines | A/B | B/C | C/D (mm/s RMS, 10–1000 Hz) |
|---|---|---|---|---|
| I | small machines, up to 15 kW | 0.71 | 1.8 | 4.5 |
| II | medium machines, 15–75 kW, or up to 300 kW on special foundations | 1.12 | 2.8 | 7.1 |
| III | large machines on rigid foundations | 1.8 | 4.5 | 11.2 |
| IV | large machines on soft foundations | 2.8 | 7.1 | 18.0 |

A machine without a ``vibration_class`` in the machines table is judged as class II (``DEFAULT_CLASS``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ZONE_BOUNDARIES_MM_S = {
    "I": (0.71, 1.8, 4.5),
    "II": (1.12, 2.8, 7.1),
    "III": (1.8, 4.5, 11.2),
    "IV": (2.8, 7.1, 18.0),
}
DEFAULT_CLASS = "II"
ZONE_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D"}


def class_names(values: pd.Series) -> pd.Series:
    """Machine classes as 'I'..'IV', from roman numerals in any case (with or without a leading 'class') or the
    numbers 1..4 (also as 3.0 or '3'); None where missing or not a class, so the caller can say so."""
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.notna() & (numbers == numbers.round()) & (numbers.abs() < 1e6)
    text = values.astype("string").str.strip().str.upper().str.replace(r"^CLASS[\s_-]*", "", regex=True)
    text = text.mask(whole, numbers.where(whole).astype("Int64").astype("string"))
    text = text.replace({"1": "I", "2": "II", "3": "III", "4": "IV"})
    known = text.isin(list(ZONE_BOUNDARIES_MM_S)).to_numpy(dtype=bool)
    names: list[str | None] = [name if ok else None for name, ok in zip(text, known, strict=True)]
    return pd.Series(names, index=values.index, dtype="object")


def normalise_class(values: pd.Series) -> pd.Series:
    """Machine classes as 'I'..'IV' (see ``class_names``); missing or unknown -> the default class."""
    return class_names(values).fillna(DEFAULT_CLASS).astype(object)


def iso_zone(velocity_rms_mm_s: np.ndarray, vibration_class: pd.Series) -> np.ndarray:
    """Zone number 1 (A) to 4 (D) of each velocity RMS for its machine's class; NaN where velocity is NaN."""
    velocity = np.asarray(velocity_rms_mm_s, dtype=float)
    bounds = np.array([ZONE_BOUNDARIES_MM_S[c] for c in normalise_class(vibration_class)]).reshape(-1, 3)
    zone = 1.0 + (velocity[:, None] >= bounds).sum(axis=1)
    return np.where(np.isnan(velocity), np.nan, zone)
