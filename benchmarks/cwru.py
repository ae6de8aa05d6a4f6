"""Bearing fault type (ball / inner race / outer race) from the library's vibration features, on CWRU-like data.

Usage: ``python benchmarks/cwru.py DATA_DIR [--out benchmarks/results/cwru.csv] [--seed 0] [--trees 500]``

``DATA_DIR`` is a dataset in the equipment data contract v1 (one machine per recording, one or more vibration
channels, bearing geometry and speed in ``machines``/``waveforms``) plus ``labels.parquet``: ``machine_id``,
``fault_location``, ``fault_size_in``, ``load_hp``. Labels only score and split; machine ids spell the label and are
never a feature. Nothing here names a file, a machine or a value of this folder: the splits come from the
labels' own values.

Features: ``features.build.build_features`` with its default configuration, one row per snapshot time (every
channel as columns). ``__ratio_to_baseline`` columns are dropped: each recording is its own machine here, so its
baseline is itself. Feature families (by suffix): time (rms, peak, crest, kurtosis, ...), bands (band
energies), spectral (centroid, hf ratio, velocity, ISO zone, shaft orders), envelope-raw (envelope line
amplitudes in g and envelope RMS), envelope-normalised (whitened-envelope line SNRs in dB).

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

Prints the ablation table (families alone, all, all but one) for both classifiers, the confusion matrices of
the headline model (``et`` on envelope-normalised features), saves the table as CSV, and ends with one headline
line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from features.build import KEYS, build_features
from features.dataset import load_dataset

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cwru.csv"
LABEL_COLUMNS = ("fault_location", "fault_size_in", "load_hp")
FAMILIES = ("time", "bands", "spectral", "envelope-raw", "envelope-normalised")
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
HEADLINE_SET, HEADLINE_MODEL = "envelope-normalised", "et"
BASELINE_SET, BASELINE_MODEL = "time+bands+envelope-raw", "rf"
MIN_LEAF_SHARE = 0.04


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="dataset folder (contract v1) with labels.parquet")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the ablation table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=300, help="trees per forest")
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
    if suffix.startswith("envelope__"):
        return "envelope-normalised" if suffix.endswith("_snr") else "envelope-raw"
    return None


def feature_table(data_dir: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Snapshot rows with labels, and the feature columns of each family."""
    labels_path = data_dir / "labels.parquet"
    if not labels_path.exists():
        raise SystemExit(f"{labels_path}: not found (machine_id, {', '.join(LABEL_COLUMNS)} per recording)")
    labels = pd.read_parquet(labels_path)
    missing = [c for c in ("machine_id", *LABEL_COLUMNS) if c not in labels]
    if missing:
        raise SystemExit(f"{labels_path}: missing columns {missing}")
    frame = build_features(load_dataset(data_dir)).frame
    columns: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for column in frame.columns:
        if column.startswith("vib__") and (kind := family(column.split("__", 2)[2])) is not None:
            columns[kind].append(column)
    rows = frame.merge(labels[["machine_id", *LABEL_COLUMNS]], on="machine_id", how="inner")
    return rows.sort_values(KEYS).reset_index(drop=True), columns


def feature_sets(columns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Ablation: each family alone, the baseline set, all families, and all but one."""
    sets = {name: columns[name] for name in FAMILIES}
    sets[BASELINE_SET] = columns["time"] + columns["bands"] + columns["envelope-raw"]
    sets["all"] = [c for name in FAMILIES for c in columns[name]]
    for name in FAMILIES:
        sets[f"all but {name}"] = [c for other in FAMILIES if other != name for c in columns[other]]
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
    """(split, held-out value, test mask): the highest load, then each fault size in turn."""
    loads, sizes = np.sort(rows["load_hp"].unique()), np.sort(rows["fault_size_in"].unique())
    out = [("across loads", f"load {loads[-1]:g}", (rows["load_hp"] == loads[-1]).to_numpy())]
    out += [("across bearings", f"{size:g}", np.isclose(rows["fault_size_in"], size)) for size in sizes]
    return out


def evaluate(
    rows: pd.DataFrame, cols: list[str], make: Callable[[int], object]
) -> list[tuple[str, str, float, pd.DataFrame]]:
    """Accuracy and confusion matrix (true x predicted) per split."""
    x = rows[cols].to_numpy(dtype=np.float64)
    y = rows["fault_location"].to_numpy()
    classes = np.sort(np.unique(y))
    results = []
    for split, held_out, test in splits(rows):
        model = make(int((~test).sum()))
        model.fit(x[~test], y[~test])
        predicted = model.predict(x[test])
        confusion = pd.crosstab(
            pd.Categorical(y[test], classes), pd.Categorical(predicted, classes), dropna=False
        )
        confusion.index.name, confusion.columns.name = "true", "predicted"
        results.append((split, held_out, float((predicted == y[test]).mean()), confusion))
    return results


def summary_rows(name: str, model: str, results: list, n_features: int) -> list[dict]:
    """CSV rows of one (feature set, classifier): each split, then the across-bearings mean."""
    rows = [
        {
            "feature_set": name,
            "classifier": model,
            "n_features": n_features,
            "split": s,
            "held_out": h,
            "accuracy": a,
        }
        for s, h, a, _ in results
    ]
    bearings = [a for s, _, a, _ in results if s == "across bearings"]
    rows.append(
        {
            "feature_set": name,
            "classifier": model,
            "n_features": n_features,
            "split": "across bearings",
            "held_out": "mean",
            "accuracy": float(np.mean(bearings)),
        }
    )
    return rows


def print_table(table: pd.DataFrame) -> None:
    wide = table.pivot_table(
        index=["feature_set", "classifier", "n_features"], columns="held_out", values="accuracy", sort=False
    )
    order = [c for c in wide.columns if c.startswith("load")] + [
        c for c in wide.columns if not c.startswith("load") and c != "mean"
    ]
    wide = (wide[[*order, "mean"]] * 100).round(1)
    wide.columns = [f"{c} %" if c.startswith("load") else f"size {c} %" for c in order] + ["bearings mean %"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(wide.to_string())


def line_table(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Median whitened-line SNR (dB) per fault size and location: is the fault's own line there at all?"""
    lines = ("bpfo_snr", "bpfi_snr", "bsf_2x_snr")
    chosen = [c for c in columns if c.endswith(lines)]
    table = rows.groupby(["fault_size_in", "fault_location"])[chosen].median().round(1)
    table.columns = [
        c.removeprefix("vib__").replace("__envelope__", ":").removesuffix("_snr") for c in chosen
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
        held_out = title.split("held out ")[-1]
        parts.append(
            f"{held_out}: {confusion.index[i]} read as {confusion.columns[j]} "
            f"({errors[i, j]} of {confusion.iloc[i].sum()})"
        )
    return "; ".join(parts) if parts else "none"


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def headline(table: pd.DataFrame) -> str:
    def row(feature_set: str, model: str) -> pd.DataFrame:
        return table[(table["feature_set"] == feature_set) & (table["classifier"] == model)]

    ours, base, everything = (
        row(HEADLINE_SET, HEADLINE_MODEL),
        row(BASELINE_SET, BASELINE_MODEL),
        row("all", "rf"),
    )
    loads = ours[ours["split"] == "across loads"]["accuracy"].iloc[0]
    sizes = ours[(ours["split"] == "across bearings") & (ours["held_out"] != "mean")]
    mean = ours[ours["held_out"] == "mean"]["accuracy"].iloc[0]
    per_size = ", ".join(
        f"{h}: {100 * a:.0f} %" for h, a in zip(sizes["held_out"], sizes["accuracy"], strict=True)
    )
    all_loads = everything[everything["split"] == "across loads"]["accuracy"].iloc[0]
    base_mean = base[base["held_out"] == "mean"]["accuracy"].iloc[0]
    return (
        f"CWRU across loads {pct(loads)} (all features, rf: {pct(all_loads)}), across bearings mean {pct(mean)} "
        f"({per_size}); RF baseline on time+band+raw envelope {pct(base_mean)}"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    rows, columns = feature_table(args.data_dir)
    print(
        f"{args.data_dir}: {len(rows)} snapshot rows, {rows['machine_id'].nunique()} recordings, "
        f"features in {time.perf_counter() - start:.1f} s; "
        + ", ".join(f"{name} {len(cols)}" for name, cols in columns.items())
    )
    records, confusions = [], {}
    models = classifiers(args.seed, args.trees)
    for name, cols in feature_sets(columns).items():
        for model_name, make in models.items():
            results = evaluate(rows, cols, make)
            records += summary_rows(name, model_name, results, len(cols))
            if (name, model_name) == (HEADLINE_SET, HEADLINE_MODEL):
                confusions = {f"{s}, held out {h}": c for s, h, _, c in results}
    table = pd.DataFrame(records)
    print_table(table)
    print(f"\nconfusion matrices of the headline model ({HEADLINE_MODEL} on {HEADLINE_SET} features):")
    for title, confusion in confusions.items():
        print(f"-- {title}\n{confusion.to_string()}")
    print("\nmedian whitened-envelope line SNR (dB) per fault: a fault without its own line cannot transfer")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(line_table(rows, columns["envelope-normalised"]).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    confusion_out = args.out.with_name(f"{args.out.stem}_confusion.csv")
    pd.concat(
        [c.stack().rename("snapshots").reset_index().assign(split=title) for title, c in confusions.items()]
    ).to_csv(confusion_out, index=False)
    print(f"\nsaved {args.out} and {confusion_out} ({time.perf_counter() - start:.0f} s)")
    print(f"largest across-bearings errors of the headline model: {largest_errors(confusions)}")
    print(headline(table))


if __name__ == "__main__":
    sys.exit(main())
