"""Drift: population stability index (PSI) of each feature and of the model's score against the training rows,
overall and per group (machine type, operating mode).

PSI compares the share of rows in each bin of the training distribution with the share in a new batch:
``sum((batch - train) * ln(batch / train))`` over the bins, here the training deciles plus a bin for missing
values, so a sensor that stops reporting shows up as drift too. Shares are floored at ``SHARE_FLOOR`` so an empty
bin keeps the index finite.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from features.describe import describe, short_description

# The usual reading of PSI (credit scoring, then model monitoring): below 0.1 no meaningful shift ("ok"); 0.1 to
# 0.25 a moderate shift worth watching ("watch"); 0.25 and above a significant shift: check the data, consider
# retraining ("drift"). A one-sd shift of a normal reads about 0.93 on deciles, half a sd about 0.24.
PSI_WATCH = 0.1
PSI_DRIFT = 0.25
SHARE_FLOOR = 1e-4  # empty bins count as this share, so that ln(batch / train) stays finite
# Fewest rows for a group of its own in the reference, and for a batch group's PSI to be judged: with 10 deciles,
# an unchanged population of 100 rows reads PSI >= 0.1 in about a third of batches, of 200 rows in about 2 %.
MIN_ROWS = 200
# Most rows of a group that are binned: larger groups are sampled (fixed seed), which bounds the cost on a big
# fleet; at 20,000 rows an unchanged population reads PSI about 0.0005, far below PSI_WATCH.
MAX_ROWS = 20_000
SCORE = "score"  # the feature name of the model's score in references and tables
OVERALL = "all"  # group and value of the whole population
GROUP_WORDS = {"machine_type": "machine type", "mode": "operating mode"}
LEVELS = ("ok", "watch", "drift", "few_rows")
TABLE_COLUMNS = [
    "group",
    "value",
    "feature",
    "rows",
    "psi",
    "psi_missing",
    "missing",
    "reference_missing",
    "median",
    "reference_median",
    "reference",
    "level",
]


class DriftReference:
    """Decile bin edges and training shares per bin (the last bin: missing) of each feature and of the score,
    for all training rows and for each group value with at least ``min_rows`` rows (others use all rows)."""

    def __init__(self, bins: int = 10, min_rows: int = MIN_ROWS, max_rows: int = MAX_ROWS) -> None:
        self.bins = bins
        self.min_rows = min_rows
        self.max_rows = max_rows

    def fit(
        self, matrix: pd.DataFrame, scores: np.ndarray | None = None, groups: pd.DataFrame | None = None
    ) -> DriftReference:
        """Learn ``features_`` (the matrix's columns, then ``score``), ``groups_`` (group, value, rows, slot: the
        reference each group value uses, 0 = all rows), and per slot and feature ``edges_`` (bins - 1 inner
        edges), ``shares_`` (bins + 1 shares, the last missing) and ``medians_``."""
        if self.bins < 2:
            raise ValueError(f"drift reference: bins must be at least 2, got {self.bins}")
        _check_rows(matrix, scores, groups)
        self.features_ = (*map(str, matrix.columns), *([SCORE] if scores is not None else []))
        quantiles = np.arange(1, self.bins) / self.bins
        values = matrix.to_numpy()
        keys: list[tuple[str, str, int, int]] = [(OVERALL, OVERALL, len(matrix), 0)]
        edges: list[np.ndarray] = []
        shares: list[np.ndarray] = []
        medians: list[np.ndarray] = []
        for group, value, rows in _parts(len(matrix), groups):
            if group != OVERALL and len(rows) < self.min_rows:
                keys.append((group, value, len(rows), 0))
                continue
            if group != OVERALL:
                keys.append((group, value, len(rows), len(edges)))
            sample = _sample(rows, self.max_rows)
            fitted = [
                _fit_column(column, quantiles, self.bins) for column in _columns(values, scores, sample)
            ]
            edges.append(np.stack([f[0] for f in fitted]))
            shares.append(np.stack([f[1] for f in fitted]))
            medians.append(np.array([f[2] for f in fitted]))
        self.groups_ = pd.DataFrame(keys, columns=["group", "value", "rows", "slot"])
        self.edges_, self.shares_, self.medians_ = np.stack(edges), np.stack(shares), np.stack(medians)
        return self


def drift_reference(
    matrix: pd.DataFrame,
    scores: np.ndarray | None,
    groups: pd.DataFrame | None,
    bins: int = 10,
    min_rows: int = MIN_ROWS,
    max_rows: int = MAX_ROWS,
) -> DriftReference:
    """The drift reference of training rows: the model's input matrix, its scores and group columns per row."""
    return DriftReference(bins, min_rows, max_rows).fit(matrix, scores, groups)


def population_stability(
    reference: DriftReference,
    matrix: pd.DataFrame,
    scores: np.ndarray | None = None,
    groups: pd.DataFrame | None = None,
    min_rows: int = MIN_ROWS,
    max_rows: int = MAX_ROWS,
) -> pd.DataFrame:
    """PSI of each feature (and the score, when given) of a batch against the reference, for all rows and per
    group value, one row per (group, value, feature); ``level`` is ok, watch, drift, or few_rows (fewer than
    ``min_rows`` rows: too few to judge). A feature the batch lacks counts as missing. Groups of more than
    ``max_rows`` rows are judged on a sample of that many (``rows`` is the full count)."""
    _check_rows(matrix, scores, groups)
    if len(matrix) == 0:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    wanted = [f for f in reference.features_ if f != SCORE or scores is not None]
    index = np.array([reference.features_.index(f) for f in wanted], dtype=int)
    present = [f for f in wanted if f != SCORE]
    values = (matrix if list(matrix.columns) == present else matrix.reindex(columns=present)).to_numpy()
    slots = reference.groups_.set_index(["group", "value"])["slot"]
    tables = []
    for group, value, rows in _parts(len(matrix), groups):
        slot = int(slots.get((group, value), 0))
        columns = _columns(values, scores if SCORE in wanted else None, _sample(rows, max_rows))
        profile = [
            _profile(column, reference.edges_[slot, f], reference.bins)
            for column, f in zip(columns, index, strict=True)
        ]
        actual = np.maximum(np.stack([p[0] for p in profile]), SHARE_FLOOR)
        expected = np.maximum(reference.shares_[slot, index], SHARE_FLOOR)
        terms = (actual - expected) * np.log(actual / expected)
        tables.append(
            pd.DataFrame(
                {
                    "group": group,
                    "value": value,
                    "feature": wanted,
                    "rows": len(rows),
                    "psi": terms.sum(axis=1),
                    "psi_missing": terms[:, -1],
                    "missing": np.stack([p[0] for p in profile])[:, -1],
                    "reference_missing": reference.shares_[slot, index, -1],
                    "median": [p[1] for p in profile],
                    "reference_median": reference.medians_[slot, index],
                    "reference": "own" if slot or group == OVERALL else "overall",
                }
            )
        )
    table = pd.concat(tables, ignore_index=True)
    table["level"] = np.select(
        [table["rows"] < min_rows, table["psi"] >= PSI_DRIFT, table["psi"] >= PSI_WATCH],
        ["few_rows", "drift", "watch"],
        "ok",
    )
    return table[TABLE_COLUMNS]


def drift_warnings(table: pd.DataFrame, top: int = 5, levels: tuple[str, ...] = ("drift",)) -> list[str]:
    """Plain-words warnings for the ``top`` features with the highest PSI at the given levels, one per feature
    (its fleet-wide row when that is at those levels, else its worst group), and how many more features there are."""
    hit = table[table["level"].isin(levels)]
    others = hit.groupby("feature")["group"].transform("size") - 1
    hit = hit.assign(others=others, fleet=hit["group"] == OVERALL)
    worst = hit.sort_values(["fleet", "psi"], ascending=False, kind="stable").drop_duplicates("feature")
    worst = worst.sort_values("psi", ascending=False, kind="stable")
    lines = [_warning(row) for row in worst.head(top).to_dict("records")]
    if len(worst) > top:
        lines.append(f"and {len(worst) - top} more features at level {'/'.join(levels)}")
    return lines


def drift_groups(frame: pd.DataFrame, machines: pd.DataFrame | None = None) -> pd.DataFrame:
    """The groups of each row of a feature table, in row order: its machine's ``machine_type`` (when ``machines``
    has that column) and its operating ``mode`` (``operating_modes``)."""
    groups = pd.DataFrame(index=range(len(frame)))
    if machines is not None and "machine_type" in machines:
        types = machines.drop_duplicates("machine_id").set_index("machine_id")["machine_type"]
        groups["machine_type"] = frame["machine_id"].map(types).to_numpy()
    groups["mode"] = operating_modes(frame).to_numpy()
    return groups


def operating_modes(
    frame: pd.DataFrame, load: str = "tel__load_pct__last", step_pct: float = 50.0
) -> pd.Series:
    """Operating mode of each row of a feature table: its load band ('load 50-100 %'), NaN where load is unknown.
    The bands are the feature builder's load regimes (``FeatureConfig.regime_load_step_pct``)."""
    if load not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=object, name="mode")
    band = np.floor(frame[load].to_numpy(dtype=float) / step_pct)
    words = [f"load {b * step_pct:g}-{(b + 1) * step_pct:g} %" if np.isfinite(b) else np.nan for b in band]
    return pd.Series(words, index=frame.index, dtype=object, name="mode")


def _check_rows(matrix: pd.DataFrame, scores: np.ndarray | None, groups: pd.DataFrame | None) -> None:
    """Scores and groups must give one entry per matrix row, in the matrix's order."""
    for name, given in (("scores", scores), ("groups", groups)):
        if given is not None and len(given) != len(matrix):
            raise ValueError(
                f"drift: {len(given)} {name} for {len(matrix)} matrix rows; fix: give one per row, in row order"
            )


def _parts(rows: int, groups: pd.DataFrame | None) -> Iterator[tuple[str, str, np.ndarray]]:
    """(group, value, row positions): all rows, then the rows of each value of each group column (NaN: none)."""
    yield OVERALL, OVERALL, np.arange(rows)
    if groups is None:
        return
    for column in groups.columns:
        codes, values = pd.factorize(groups[column].to_numpy(), sort=True)
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(len(values) + 1))
        for code, value in enumerate(values):
            yield str(column), str(value), order[starts[code] : starts[code + 1]]


def _sample(rows: np.ndarray, max_rows: int) -> np.ndarray:
    """At most ``max_rows`` of the row positions, the same ones on every call, in their order."""
    if len(rows) <= max_rows:
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, max_rows, replace=False))


def _columns(values: np.ndarray, scores: np.ndarray | None, rows: np.ndarray) -> Iterator[np.ndarray]:
    """The given rows of each column of the matrix's values, then of the scores, as float arrays, one at a time."""
    for j in range(values.shape[1]):
        yield np.asarray(values[rows, j], dtype=float)
    if scores is not None:
        yield np.asarray(scores, dtype=float)[rows]


def _fit_column(column: np.ndarray, quantiles: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Inner bin edges (the quantiles of the column's values, NaN when it has none), shares per bin, median."""
    values = column[~np.isnan(column)]
    edges = np.quantile(values, quantiles) if values.size else np.full(len(quantiles), np.nan)
    return (edges, *_profile(column, edges, bins))


def _profile(column: np.ndarray, edges: np.ndarray, bins: int) -> tuple[np.ndarray, float]:
    """Share of the column's rows in each bin (edges' left side is closed), the last bin missing, and the median."""
    missing = np.isnan(column)
    values = column[~missing]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=bins)
    shares = np.append(counts, missing.sum()) / max(len(column), 1)
    return shares, float(np.median(values)) if values.size else np.nan


def _warning(row: dict) -> str:
    """'bearing temperature drifted (PSI 0.41, median 41 → 48 °C) for machine type pump'."""
    feature = str(row["feature"])
    name = "risk score" if feature == SCORE else short_description(feature)
    unit = "" if feature == SCORE else describe(feature).unit
    if row["psi_missing"] >= row["psi"] / 2:
        detail = f"missing in {row['missing']:.0%} of rows, {row['reference_missing']:.0%} in training"
    else:
        suffix = f" {unit}" if unit else ""
        detail = f"median {row['reference_median']:.3g} → {row['median']:.3g}{suffix}"
    where = "across the fleet"
    if row["group"] != OVERALL:
        where = f"for {GROUP_WORDS.get(row['group'], str(row['group']).replace('_', ' '))} {row['value']}"
        if row["reference"] == "overall":
            where += " (against the whole fleet: too few training rows of its own)"
    if row["others"]:
        where += f", and in {row['others']} {'other ' if row['group'] != OVERALL else ''}group"
        where += "s" if row["others"] > 1 else ""
    return f"{name} drifted (PSI {row['psi']:.2f}, {detail}) {where}"
