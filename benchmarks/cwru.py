"""Bearing fault type (ball / inner race / outer race) from the library's vibration features, on CWRU-like data.

Usage: ``python benchmarks/cwru.py DATA_DIR [--out benchmarks/results/cwru.csv] [--seed 0] [--trees 300]
[--inner-trees 100]``

``DATA_DIR`` is a dataset in the equipment data contract v1 (one machine per recording, one or more vibration
channels, bearing geometry and speed in ``machines``/``waveforms``) plus ``labels.parquet``: ``machine_id``,
``fault_location``, ``fault_size_in``, ``load_hp``. Labels only score and split; machine ids spell the label and are
never a feature. Nothing here names a file, a machine or a value of this folder: the splits come from the
labels' own values.

Features: ``features.build.build_features`` with its default configuration, one row per snapshot time (every
channel as columns). ``__ratio_to_baseline`` columns are dropped: each recording is its own machine here, so its
baseline is itself. Feature families (by suffix): time (rms, peak, crest, kurtosis, ...), bands (band
energies), spectral (centroid, hf ratio, velocity, ISO zone, shaft orders), envelope-raw (envelope line
amplitudes in g and envelope RMS), invariant (computed here from those: the level features made gain-free,
see ``level_free``), and the four physics families of the whitened envelope, all in dB: lines (BPFO, BPFI,
BSF, 2xBSF, FTF line SNRs), sidebands (BPFI +- 1x, 2xBSF +- FTF), harmonics (1-3x BPFO, 1-3x BPFI, 1-4x BSF
family SNRs), ratios (BPFI/BPFO, BSF/BPFO, BSF/BPFI family ratios).

Splits (accuracy over snapshots, confusion matrices):

* across loads: train on every load but the highest, test on the highest;
* across bearings: hold out one fault size at a time (each size is a different damaged bearing), train on the
  others; report each and the mean. This is the honest one: any feature that fingerprints a recording (band
  energies, absolute levels) is useless on a bearing never seen.

Classifiers (fixed seed): ``rf``, a plain random forest (scikit-learn defaults: the reference baseline), and
``et``, extremely randomised trees whose leaves must hold at least 4 % of the training snapshots: the snapshots
of one recording are near-copies, so a leaf smaller than a recording's share lets a tree separate recordings
instead of fault types; random split points also interpolate between the training bearings' severities instead
of cutting at the midpoint of the nearest two (which is where a new bearing's SNR falls).

Model choice (the headline): for every outer split, each (feature set, classifier) of the ablation is scored by
a cross-validation inside the training rows of the same kind as the split (leave one training load out;
leave one training fault size, i.e. bearing, out), with ``--inner-trees`` trees; the best inner accuracy wins
(ties: lower inner log loss, then fewer features, then table order). Across bearings only the gain-free physics
sets (the four families alone, together, and without each one) are candidates: a level or band feature
fingerprints a recording, and with two training bearings the inner cross-validation can reward a fingerprint that
happens to transfer between them. Where a split leaves one training load or size (no inner cross-validation), the
a-priori model is used. The held-out rows play no part in the choice. Also printed: the model fixed a priori
(``et`` on every physics family) and the baseline (``rf`` on time, bands, raw envelope).

Other subsets: ``labels.csv`` is read as well; sizes and loads may carry their unit ("0.014 in", "2 hp"). A
healthy recording (``fault_location`` normal, healthy, none or baseline; no size) is a fourth class: across loads
it is held out with its load; across bearings the healthy recordings are dealt to the fault-size folds in turn (by
load, then id), so each fold tests some and trains on the others (one healthy recording alone stays in training).
Where the healthy recordings are one bearing at several loads (CWRU's baseline), its healthy test rows have the
same physical bearing in training: for that class the split is across loads, not across bearings.
A split that cannot hold anything out (one load, one fault size) is left out and said. Bad labels (a fault without
a size, an empty location, a repeated id, a load that is not a number) stop the run with the file, column,
recordings and fix.

Prints the ablation table (families alone; the physics families together, without each one, and with the
invariant family; all; all but one) for both classifiers, the chosen models and their confusion matrices, saves the table (with the inner
scores) as CSV, and ends with one headline line.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from contract import exit_2_on_input_error, load_or_exit, quarantine_notes, some
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from features.build import KEYS, build_features

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cwru.csv"
LABEL_COLUMNS = ("fault_location", "fault_size_in", "load_hp")
PHYSICS = ("lines", "sidebands", "harmonics", "ratios")  # whitened envelope: dimensionless, in dB
FAMILIES = ("time", "bands", "spectral", "envelope-raw", "invariant", *PHYSICS)
TIME = (
    "rms",
    "peak",
    "peak_to_peak",
    "crest_factor",
    "kurtosis",
    "skewness",
    "shape_factor",
    "impulse_factor",
)
SPECTRAL = ("spectral_centroid_hz", "hf_ratio", "velocity_rms_mm_s", "iso_zone")
PRIOR_SET, PRIOR_MODEL = "physics", "et"  # fixed before any run: every physics family, extra-trees
BASELINE_SET, BASELINE_MODEL = "time+bands+envelope-raw", "rf"
MIN_LEAF_SHARE = 0.04
SPLIT_KEYS = {"across loads": "load_hp", "across bearings": "bearing_group"}
HEALTHY_LOCATIONS = ("normal", "healthy", "none", "baseline")
UNIT_SUFFIX = {"fault_size_in": r'(?i)\s*(in|inch|inches|")$', "load_hp": r"(?i)\s*hp$"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="dataset folder (contract v1) with labels.parquet")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the ablation table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=300, help="trees per forest")
    parser.add_argument(
        "--inner-trees", type=int, default=100, help="trees per forest in the inner cross-validation"
    )
    return parser.parse_args(argv)


def family(suffix: str) -> str | None:
    """Feature family of a vibration feature suffix (None: not used here)."""
    if suffix.endswith("__ratio_to_baseline"):
        return None
    if suffix in TIME:
        return "time"
    if suffix.startswith("band_energy__"):
        return "bands"
    if suffix in SPECTRAL or suffix.startswith("order_"):
        return "spectral"
    if suffix.endswith("_harmonics_snr"):
        return "harmonics"
    if suffix.endswith("_sideband_snr"):
        return "sidebands"
    if suffix.startswith("envelope__") and suffix.endswith("_snr"):
        return "lines"
    if suffix.startswith("envelope__") and suffix.endswith("_db"):
        return "ratios"
    if suffix.startswith("envelope__"):
        return "envelope-raw"
    return None


def read_labels(data_dir: Path) -> pd.DataFrame:
    """``labels.parquet`` (or ``labels.csv``) of ``data_dir``, checked: one row per recording, numeric sizes and
    loads, a fault size for every fault and none for a healthy recording (``fault_location`` one of
    ``HEALTHY_LOCATIONS``, size 0 or empty). Raises SystemExit naming the file, column, recordings and fix."""
    path = next(
        (data_dir / f"labels.{ext}" for ext in ("parquet", "csv") if (data_dir / f"labels.{ext}").exists()),
        None,
    )
    if path is None:
        raise SystemExit(
            f"{data_dir / 'labels.parquet'}: not found (nor labels.csv); give one row per recording with "
            f"machine_id, {', '.join(LABEL_COLUMNS)}"
        )
    # CSV as text, as written: no "None"/"NA" turned into NaN, no "007" into 7; empty cells are empty strings
    labels = (
        pd.read_parquet(path)
        if path.suffix == ".parquet"
        else pd.read_csv(path, dtype=str, keep_default_na=False)
    )
    missing = [c for c in ("machine_id", *LABEL_COLUMNS) if c not in labels]
    if missing:
        raise SystemExit(
            f"{path}: missing columns {missing}; give one row per recording with machine_id, "
            f"{', '.join(LABEL_COLUMNS)} (fault_size_in empty for a healthy recording)"
        )
    labels = labels[["machine_id", *LABEL_COLUMNS]].copy()
    labels["machine_id"] = labels["machine_id"].astype(str)
    repeated = labels["machine_id"][labels["machine_id"].duplicated()].unique()
    if len(repeated):
        raise SystemExit(f"{path}: machine_id {some(repeated)} labelled more than once; keep one row each")
    location = labels["fault_location"].astype("string").str.strip().str.lower()
    unnamed = labels["machine_id"][location.isna() | (location == "")]
    if len(unnamed):
        raise SystemExit(
            f"{path}: column fault_location is empty for {some(unnamed)}; name the faulty part (e.g. inner_race), "
            f"or one of {', '.join(HEALTHY_LOCATIONS)} for a healthy recording"
        )
    labels["fault_location"] = location.astype(str)
    for column in ("fault_size_in", "load_hp"):
        text = labels[column].astype("string").str.strip().str.replace(UNIT_SUFFIX[column], "", regex=True)
        numeric = pd.to_numeric(text, errors="coerce")  # "2 hp", '0.007"' and "0.007 in" read as numbers
        bad = labels["machine_id"][numeric.isna() & text.fillna("").ne("")]  # empty: no value, not a bad one
        if len(bad):
            raise SystemExit(f"{path}: column {column} is not a number for {some(bad)}; write it as a number")
        labels[column] = numeric.astype(float)
    no_load = labels["machine_id"][labels["load_hp"].isna()]
    if len(no_load):
        raise SystemExit(f"{path}: column load_hp is empty for {some(no_load)}; give each recording its load")
    healthy = labels["fault_location"].isin(HEALTHY_LOCATIONS)
    unsized = ~healthy & ~(labels["fault_size_in"] > 0)
    if unsized.any():
        raise SystemExit(
            f"{path}: column fault_size_in is empty or not positive for the faulty {some(labels['machine_id'][unsized])}; "
            f"give the fault size, or set fault_location to one of {', '.join(HEALTHY_LOCATIONS)} for a healthy "
            "recording"
        )
    sized = healthy & (labels["fault_size_in"] > 0)
    if sized.any():
        raise SystemExit(
            f"{path}: healthy recordings {some(labels['machine_id'][sized])} have a fault_size_in; leave it empty "
            "or 0"
        )
    labels.loc[healthy, "fault_size_in"] = np.nan
    labels["bearing_group"] = _bearing_groups(labels)
    return labels


def _bearing_groups(labels: pd.DataFrame) -> pd.Series:
    """The across-bearings fold of each recording: its fault size; healthy recordings (no size) are dealt to the
    sizes in turn (ordered by load, then id), so each fold tests some healthy recordings and trains on the
    others. One healthy recording alone stays in every training set (NaN: never held out)."""
    groups = labels["fault_size_in"].copy()
    sizes = np.sort(groups.dropna().unique())
    healthy = labels[groups.isna()].sort_values(["load_hp", "machine_id"]).index
    if len(healthy) >= 2 and len(sizes):
        groups.loc[healthy] = sizes[np.arange(len(healthy)) % len(sizes)]
    return groups


def feature_table(data_dir: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Snapshot rows with labels, and the feature columns of each family. Recordings without features or
    without labels are named and left out."""
    labels = read_labels(data_dir)
    dataset = load_or_exit(data_dir)
    for note in quarantine_notes(dataset):  # rows set aside change the result: say so
        print(f"note: {note}")
    frame = build_features(dataset).frame
    columns: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for column in frame.columns:
        if column.startswith("vib__") and (kind := family(column.split("__", 2)[2])) is not None:
            columns[kind].append(column)
    invariant = level_free(frame, columns)
    columns["invariant"] = list(invariant.columns)
    frame = pd.concat([frame, invariant], axis=1)
    recorded = set(frame["machine_id"].astype(str))
    unused = sorted(set(labels["machine_id"]) - recorded)
    unlabelled = sorted(recorded - set(labels["machine_id"]))
    for ids, what in ((unused, "labelled but without vibration features"), (unlabelled, "without a label")):
        if ids:
            print(f"note: {len(ids)} recordings {what}, left out: {some(ids)}")
    rows = frame.merge(labels, on="machine_id", how="inner")
    if rows.empty:
        raise SystemExit(f"{data_dir}: no recording has both labels and vibration features")
    return rows.sort_values(KEYS).reset_index(drop=True), columns


def level_free(frame: pd.DataFrame, columns: dict[str, list[str]]) -> pd.DataFrame:
    """Gain-free versions of the level features, per channel (a sensor's gain or mounting cancels): each band's
    share of the bands' energy, shaft-order and envelope RMS over the RMS, envelope-line amplitudes over the
    envelope RMS; and between the first two channels the log10 ratio of their RMS and envelope RMS (the
    transfer path from the source to each sensor)."""
    out: dict[str, pd.Series] = {}
    channels = sorted({c.split("__")[1] for c in columns["time"]})
    with np.errstate(divide="ignore", invalid="ignore"):
        for channel in channels:
            prefix = f"vib__{channel}__"
            bands = [c for c in columns["bands"] if c.startswith(prefix)]
            total = frame[bands].sum(axis=1)
            out |= {f"{c}__share": frame[c] / total for c in bands}
            rms, envelope_rms = frame[f"{prefix}rms"], frame[f"{prefix}envelope__rms"]
            for c in columns["spectral"]:
                if c.startswith(prefix) and c.endswith("_amp"):
                    out[f"{c}__over_rms"] = frame[c] / rms
            out[f"{prefix}envelope__rms__over_rms"] = envelope_rms / rms
            for c in columns["envelope-raw"]:
                if c.startswith(prefix) and c.endswith("_amp"):
                    out[f"{c}__over_envelope_rms"] = frame[c] / envelope_rms
        if len(channels) >= 2:
            first, second = (f"vib__{channel}__" for channel in channels[:2])
            for suffix in ("rms", "envelope__rms"):
                name = f"vib__{channels[0]}_over_{channels[1]}__{suffix}__log10"
                ratio = frame[f"{first}{suffix}"] / frame[f"{second}{suffix}"]
                out[name] = pd.Series(np.log10(ratio), index=frame.index)
    return pd.DataFrame(out, index=frame.index)


def feature_sets(columns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Ablation: each family alone, the physics families together and without each one, the baseline set,
    all families, and all but one."""

    def union(names: tuple[str, ...] | list[str]) -> list[str]:
        return [c for name in names for c in columns[name]]

    sets = {name: columns[name] for name in FAMILIES}
    sets["physics"] = union(PHYSICS)
    sets["physics+invariant"] = union([*PHYSICS, "invariant"])
    sets |= {f"physics but {name}": union([o for o in PHYSICS if o != name]) for name in PHYSICS}
    sets[BASELINE_SET] = union(("time", "bands", "envelope-raw"))
    sets["all"] = union(FAMILIES)
    sets |= {f"all but {name}": union([o for o in FAMILIES if o != name]) for name in FAMILIES}
    return {name: cols for name, cols in sets.items() if cols}


def classifiers(seed: int, trees: int) -> dict[str, Callable[[int], object]]:
    """Classifier factories by name; the argument is the number of training rows."""
    return {
        "rf": lambda n: make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1),
        ),
        "et": lambda n: make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            ExtraTreesClassifier(
                n_estimators=trees,
                min_samples_leaf=max(1, round(MIN_LEAF_SHARE * n)),
                random_state=seed,
                n_jobs=1,
            ),
        ),
    }


def splits(rows: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(split, held-out value, test mask): the highest load, then each fault size in turn (with the healthy
    recordings dealt to it, ``_bearing_groups``). A split needs two values to hold one out: with one load or
    one fault size it is left out, and said."""
    loads, sizes = np.sort(rows["load_hp"].unique()), np.sort(rows["bearing_group"].dropna().unique())
    out = []
    if len(loads) >= 2:
        out.append(("across loads", f"load {loads[-1]:g}", (rows["load_hp"] == loads[-1]).to_numpy()))
    if len(sizes) >= 2:
        out += [("across bearings", f"{size:g}", np.isclose(rows["bearing_group"], size)) for size in sizes]
    return out


def split_notes(rows: pd.DataFrame) -> list[str]:
    """Why a split is left out, and where the healthy recordings are tested; SystemExit if none is left."""
    loads, sizes = np.sort(rows["load_hp"].unique()), np.sort(rows["bearing_group"].dropna().unique())
    notes = []
    if len(loads) < 2:
        notes.append(f"across loads left out: every recording has load {loads[0]:g}")
    if len(sizes) < 2:
        notes.append(f"across bearings left out: {len(sizes)} fault size(s); two are needed to hold one out")
    healthy = rows.drop_duplicates("machine_id").query("fault_size_in != fault_size_in")  # NaN: healthy
    if len(healthy) and len(sizes) >= 2:
        if healthy["bearing_group"].isna().all():
            notes.append(
                "one healthy recording: in every across-bearings training set, tested across loads only"
            )
        else:
            notes.append(
                f"{len(healthy)} healthy recordings dealt to the across-bearings folds by load: "
                + ", ".join(
                    f"{m} -> {g:g}"
                    for m, g in zip(healthy["machine_id"], healthy["bearing_group"], strict=True)
                )
            )
    if not splits(rows):
        raise SystemExit("nothing to hold out: the labelled recordings need two loads or two fault sizes")
    return notes


def inner_folds(rows: pd.DataFrame, train: np.ndarray, split: str) -> list[np.ndarray]:
    """Test masks of the cross-validation inside the training rows, of the same kind as the outer split:
    leave one training load out (across loads) or one training fault size, i.e. bearing (across bearings).
    Empty when the training rows hold only one such value: no inner cross-validation is possible."""
    key = rows[SPLIT_KEYS[split]].to_numpy(dtype=float)
    values = np.unique(key[train & ~np.isnan(key)])
    if len(values) < 2:
        return []
    return [train & np.isclose(key, value) for value in values]


def fit_predict(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, make) -> np.ndarray:
    return make(int(train.sum())).fit(x[train], y[train]).predict(x[test])


def inner_scores(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, make
) -> tuple[float, float]:
    """Accuracy and log loss (mean -ln p of the true class, p floored at 0.001) on one inner fold."""
    model = make(int(train.sum())).fit(x[train], y[train])
    proba = model.predict_proba(x[test])
    known = np.isin(y[test], model.classes_)  # a class absent from the inner training rows has p = 0
    column = np.minimum(np.searchsorted(model.classes_, y[test]), len(model.classes_) - 1)
    true = np.where(known, proba[np.arange(len(proba)), column], 0.0)
    predicted = model.classes_[proba.argmax(axis=1)]
    return float(np.mean(predicted == y[test])), float(-np.mean(np.log(np.maximum(true, 1e-3))))


def evaluate(rows: pd.DataFrame, cols: list[str], make, make_inner) -> list[dict]:
    """Per split: accuracy and confusion matrix (true x predicted) on the held-out rows, and the inner
    cross-validated accuracy inside the training rows (``make_inner``), which alone may choose a model."""
    x = rows[cols].to_numpy(dtype=np.float64)
    y = rows["fault_location"].to_numpy()
    classes = np.sort(np.unique(y))
    results = []
    for split, held_out, test in splits(rows):
        predicted = fit_predict(x, y, ~test, test, make)
        folds = inner_folds(rows, ~test, split)
        inner = np.array([inner_scores(x, y, ~test & ~f, f, make_inner) for f in folds]).reshape(-1, 2)
        confusion = pd.crosstab(
            pd.Categorical(y[test], classes), pd.Categorical(predicted, classes), dropna=False
        )
        confusion.index.name, confusion.columns.name = "true", "predicted"
        results.append(
            {
                "split": split,
                "held_out": held_out,
                "accuracy": float((predicted == y[test]).mean()),
                "cv_accuracy": float(inner[:, 0].mean()) if len(inner) else np.nan,
                "cv_log_loss": float(inner[:, 1].mean()) if len(inner) else np.nan,
                "confusion": confusion,
            }
        )
    return results


def summary_rows(name: str, model: str, results: list[dict], n_features: int) -> list[dict]:
    """CSV rows of one (feature set, classifier): each split, then the across-bearings mean."""
    keys = {"feature_set": name, "classifier": model, "n_features": n_features}
    scores = ("accuracy", "cv_accuracy", "cv_log_loss")
    rows = [keys | {k: r[k] for k in ("split", "held_out", *scores)} for r in results]
    bearings = [r for r in rows if r["split"] == "across bearings"]
    if not bearings:
        return rows
    mean = {k: float(np.mean([r[k] for r in bearings])) for k in scores}
    return [*rows, keys | {"split": "across bearings", "held_out": "mean"} | mean]


def physics_only(feature_set: str) -> bool:
    """True for a feature set made of the whitened-envelope families only (dB, gain-free)."""
    return feature_set in (*PHYSICS, "physics") or (
        feature_set.startswith("physics but ") and feature_set.removeprefix("physics but ") in PHYSICS
    )


def select(table: pd.DataFrame) -> pd.DataFrame:
    """Per held-out split, the (feature set, classifier) with the best inner cross-validated accuracy (ties:
    lower inner log loss, i.e. more confident in the right class, then fewer features, then table order); the
    a-priori model where the training rows hold one load or size only (no inner cross-validation).
    Across bearings the candidates are the gain-free physics sets only (``physics_only``) when there are any
    (without shaft speed or bearing geometry there are none, and every set stays a candidate): a level or band
    feature fingerprints a recording, and with two training bearings the inner cross-validation can reward a
    fingerprint that happens to transfer between them. Held-out accuracies play no part in the choice."""
    candidates = table[table["held_out"] != "mean"].assign(
        order=np.arange((table["held_out"] != "mean").sum())
    )
    bearings = candidates["split"] == "across bearings"
    physics = candidates["feature_set"].map(physics_only)
    if (bearings & physics).any():  # a new bearing: only the gain-free physics sets may be chosen
        candidates = candidates[~bearings | physics]
    prior = (candidates["feature_set"] == PRIOR_SET) & (candidates["classifier"] == PRIOR_MODEL)
    no_cv = candidates.groupby(["split", "held_out"])["cv_accuracy"].transform(lambda v: v.isna().all())
    if prior.any():  # no inner cross-validation possible: the a-priori model (else the first of the ranking)
        candidates = candidates[~no_cv | prior]
    ranked = candidates.sort_values(
        ["cv_accuracy", "cv_log_loss", "n_features", "order"], ascending=[False, True, True, True]
    )
    chosen = ranked.groupby(["split", "held_out"], sort=False).head(1)
    size = pd.to_numeric(chosen["held_out"], errors="coerce")  # NaN for "load 3": loads first, then sizes
    order = np.lexsort((size.fillna(-1.0).to_numpy(), chosen["split"] != "across loads"))
    return chosen.iloc[order].drop(columns="order").reset_index(drop=True)


def print_table(table: pd.DataFrame) -> None:
    wide = table.pivot_table(
        index=["feature_set", "classifier", "n_features"], columns="held_out", values="accuracy", sort=False
    )
    order = [c for c in wide.columns if c.startswith("load")] + [
        c for c in wide.columns if not c.startswith("load") and c != "mean"
    ]
    means = ["mean"] if "mean" in wide.columns else []
    wide = (wide[[*order, *means]] * 100).round(1)
    wide.columns = [f"{c} %" if c.startswith("load") else f"size {c} %" for c in order] + [
        "bearings mean %" for _ in means
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(wide.to_string())


def line_table(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Median whitened-envelope SNR (dB) per fault size and location: is the fault's own signature there?"""
    lines = ("bpfo_snr", "bpfi_snr", "bsf_2x_snr", "_harmonics_snr")
    chosen = [c for c in columns if c.endswith(lines)]
    table = rows.groupby(["fault_size_in", "fault_location"], dropna=False)[chosen].median().round(1)
    table.columns = [
        c.removeprefix("vib__").replace("acc_", "").replace("__envelope__", ":").removesuffix("_snr")
        for c in chosen
    ]
    return table


def largest_errors(confusions: dict[str, pd.DataFrame]) -> str:
    """The largest off-diagonal cell of each across-bearings confusion matrix, in words."""
    parts = []
    for title, confusion in confusions.items():
        if not title.startswith("across bearings"):
            continue
        errors = confusion.to_numpy().copy()
        np.fill_diagonal(errors, 0)
        if errors.max() == 0:
            continue
        i, j = np.unravel_index(errors.argmax(), errors.shape)
        held_out = title.split("held out ")[-1].split(" (")[0]
        parts.append(
            f"{held_out}: {confusion.index[i]} read as {confusion.columns[j]} "
            f"({errors[i, j]} of {confusion.iloc[i].sum()})"
        )
    return "; ".join(parts) if parts else "none"


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def headline(table: pd.DataFrame, chosen: pd.DataFrame) -> str:
    """One line: the inner-CV-selected models per split, the a-priori physics model, the baseline."""

    def row(feature_set: str, model: str) -> pd.DataFrame:
        return table[(table["feature_set"] == feature_set) & (table["classifier"] == model)]

    def mean(frame: pd.DataFrame) -> float:
        return float(frame[frame["held_out"] == "mean"]["accuracy"].iloc[0])

    parts = []
    loads = chosen[chosen["split"] == "across loads"]
    if len(loads):
        parts.append(f"across loads {pct(loads['accuracy'].iloc[0])}")
    sizes = chosen[chosen["split"] == "across bearings"]
    if len(sizes):
        sizes = sizes.iloc[np.argsort(sizes["held_out"].astype(float).to_numpy(), kind="stable")]
        per_size = ", ".join(
            f"{h}: {100 * a:.0f} %" for h, a in zip(sizes["held_out"], sizes["accuracy"], strict=True)
        )
        parts.append(f"across bearings mean {pct(sizes['accuracy'].mean())} ({per_size})")
    line = "CWRU " + ", ".join(parts) + ", models chosen by cross-validation inside the training data"
    prior, baseline = row(PRIOR_SET, PRIOR_MODEL), row(BASELINE_SET, BASELINE_MODEL)
    for name, frame in (
        (f"a priori {PRIOR_MODEL} on {PRIOR_SET}", prior),
        ("RF baseline on time+band+raw envelope", baseline),
    ):
        if len(frame):
            scores = [
                frame[frame["split"] == "across loads"]["accuracy"],
                frame[frame["held_out"] == "mean"]["accuracy"],
            ]
            line += f"; {name}: " + " / ".join(pct(v.iloc[0]) for v in scores if len(v))
    return line


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    rows, columns = feature_table(args.data_dir)
    print(
        f"{args.data_dir}: {len(rows)} snapshot rows, {rows['machine_id'].nunique()} recordings, "
        f"features in {time.perf_counter() - start:.1f} s; "
        + ", ".join(f"{name} {len(cols)}" for name, cols in columns.items())
    )
    for note in split_notes(rows):
        print(f"note: {note}")
    records, confusions = [], {}
    models, inner_models = classifiers(args.seed, args.trees), classifiers(args.seed, args.inner_trees)
    for name, cols in feature_sets(columns).items():
        for model_name, make in models.items():
            results = evaluate(rows, cols, make, inner_models[model_name])
            records += summary_rows(name, model_name, results, len(cols))
            confusions |= {(name, model_name, r["split"], r["held_out"]): r["confusion"] for r in results}
    table = pd.DataFrame(records)
    print_table(table)
    chosen = select(table)
    print("\nmodels chosen by inner cross-validation (same kind of split, inside the training rows only):")
    with pd.option_context("display.width", 200):
        print(
            chosen.assign(cv_accuracy=chosen["cv_accuracy"] * 100, accuracy=chosen["accuracy"] * 100)
            .round({"accuracy": 1, "cv_accuracy": 1, "cv_log_loss": 3})
            .to_string(index=False)
        )
    chosen_confusions = {
        f"{r.split}, held out {r.held_out} ({r.classifier} on {r.feature_set})": confusions[
            r.feature_set, r.classifier, r.split, r.held_out
        ]
        for r in chosen.itertuples()
    }
    print("\nconfusion matrices of the chosen models:")
    for title, confusion in chosen_confusions.items():
        print(f"-- {title}\n{confusion.to_string()}")
    print("\nmedian whitened-envelope SNR (dB) per fault: a fault without its own lines cannot transfer")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(line_table(rows, [c for name in PHYSICS for c in columns[name]]).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    confusion_out = args.out.with_name(f"{args.out.stem}_confusion.csv")
    pd.concat(
        [c.stack().rename("snapshots").reset_index().assign(split=t) for t, c in chosen_confusions.items()]
    ).to_csv(confusion_out, index=False)
    print(f"\nsaved {args.out} and {confusion_out} ({time.perf_counter() - start:.0f} s)")
    print(f"largest across-bearings errors of the chosen models: {largest_errors(chosen_confusions)}")
    if not table["feature_set"].map(physics_only).any():
        print(
            "note: no whitened-envelope (physics) feature set: no shaft speed or bearing geometry in the data"
        )
    print(headline(table, chosen))


if __name__ == "__main__":
    exit_2_on_input_error(main)
