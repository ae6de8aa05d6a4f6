"""Health indicators over the life of run-to-failure bearings, plotted, with monotonicity and trendability.

Usage: ``python benchmarks/femto_health_indicators.py DATA_DIR [--smooth-min 5] [--x life|hours]``

``DATA_DIR`` is a dataset in the equipment data contract v1 (e.g. FEMTO PRONOSTIA) where machines run to a
failure event; no machine is named here. A machine with no failure event after its first snapshot is left out,
and said; one whose data ends well before its failure is kept, and said.

Indicators, from ``features.build.build_features(load_dataset(DATA_DIR))`` at every snapshot time: for each
vibration channel its RMS, kurtosis and envelope-spectrum amplitudes at BPFO and BPFI
(``vib__<channel>__rms``, ``__kurtosis``, ``__envelope__bpfo_amp``, ``__envelope__bpfi_amp``), and every
``tel__temperature*__last`` column where the machine has temperatures.

Standard prognostics metrics, per machine and series (Coble & Hines 2009; Javed et al. 2015):

* monotonicity = |#(dx > 0) - #(dx < 0)| / (n - 1) on the smoothed series; smoothing = trailing (causal) mean
  over ``--smooth-min`` minutes of snapshots (time-based window, so cadence gaps are handled). A raw 10 s series
  is dominated by noise (monotonicity near 0); the figure's sensitivity line shows other windows.
* trendability = |Spearman rank correlation| between the raw series and time.

Means are over machines and channels (temperature: over the machines that have one). Outputs: a figure
(rows = machines, columns = indicators, x = life fraction or hours to failure; thin = raw, thick = smoothed),
default ``docs/figures/femto_health_indicators.png``; a CSV of the per-machine metrics, default
``benchmarks/results/femto_health_indicators.csv``; a headline as the last line printed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from contract import exit_2_on_input_error, load_or_exit, quarantine_notes, run_to_failure, until_failure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from scipy.stats import spearmanr

from features.build import build_features

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIGURE = ROOT / "docs" / "figures" / "femto_health_indicators.png"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "femto_health_indicators.csv"
# indicator label -> suffix of its vib__<channel>__ column
VIBRATION_INDICATORS = {
    "RMS": "rms",
    "kurtosis": "kurtosis",
    "envelope BPFO": "envelope__bpfo_amp",
    "envelope BPFI": "envelope__bpfi_amp",
}
TEMPERATURE = "temperature"
UNITS = {"RMS": "g", "kurtosis": "", "envelope BPFO": "g", "envelope BPFI": "g", TEMPERATURE: "°C"}
SENSITIVITY_MIN = (0.0, 1.0, 5.0, 15.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir", type=Path, help="run-to-failure dataset folder (equipment data contract v1)"
    )
    parser.add_argument("--smooth-min", type=float, default=5.0, help="trailing mean window (minutes)")
    parser.add_argument("--x", choices=("life", "hours"), default="life", help="x axis of the figure")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE, help="PNG of the grid")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the per-machine metrics")
    return parser.parse_args(argv)


def indicator_columns(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Indicator label -> {signal (channel or temperature sensor) -> column} for the columns present."""
    columns: dict[str, dict[str, str]] = {}
    for label, suffix in VIBRATION_INDICATORS.items():
        for column in frame.columns:
            parts = column.split("__", 2)
            if parts[0] == "vib" and len(parts) == 3 and parts[2] == suffix:
                columns.setdefault(label, {})[parts[1]] = column
    for column in frame.columns:
        parts = column.split("__")
        if (
            parts[0] == "tel"
            and parts[1].startswith("temperature")
            and parts[-1] == "last"
            and len(parts) == 3
        ):
            columns.setdefault(TEMPERATURE, {})[parts[1]] = column
    return columns


def smoothed(times: pd.Series, values: pd.Series, minutes: float) -> np.ndarray:
    """Trailing mean over ``minutes`` of readings (time-based window); 0 minutes returns the raw values."""
    if minutes <= 0:
        return values.to_numpy(dtype=float)
    series = pd.Series(values.to_numpy(dtype=float), index=pd.DatetimeIndex(times))
    return series.rolling(pd.Timedelta(minutes=minutes), min_periods=1).mean().to_numpy()


def monotonicity(values: np.ndarray) -> float:
    """|#positive diffs - #negative diffs| / (n - 1), NaN readings dropped."""
    values = values[np.isfinite(values)]
    if len(values) < 3:
        return float("nan")
    diffs = np.diff(values)
    return float(abs((diffs > 0).sum() - (diffs < 0).sum()) / (len(values) - 1))


def trendability(hours: np.ndarray, values: np.ndarray) -> float:
    """|Spearman correlation| between time and the raw series, NaN readings dropped."""
    known = np.isfinite(values)
    if known.sum() < 3 or np.ptp(values[known]) == 0:
        return float("nan")
    return float(abs(spearmanr(hours[known], values[known]).statistic))


def machine_metrics(
    rows: pd.DataFrame, failure: pd.Timestamp, columns: dict[str, dict[str, str]], minutes: float
) -> list[dict]:
    """One record per indicator and signal of one machine (signals with no reading are left out)."""
    times = rows["timestamp"]
    hours = ((times - times.iloc[0]).dt.total_seconds() / 3600.0).to_numpy()
    records = []
    for label, signals in columns.items():
        for signal, column in signals.items():
            if rows[column].notna().sum() < 3:
                continue
            record = {
                "machine_id": rows["machine_id"].iloc[0],
                "indicator": label,
                "signal": signal,
                "column": column,
                "n": int(rows[column].notna().sum()),
                "run_h": (failure - times.iloc[0]).total_seconds() / 3600.0,
                "monotonicity": monotonicity(smoothed(times, rows[column], minutes)),
                "trendability": trendability(hours, rows[column].to_numpy(dtype=float)),
            }
            for window in SENSITIVITY_MIN:
                record[f"monotonicity_{window:g}min"] = monotonicity(smoothed(times, rows[column], window))
            records.append(record)
    return records


def metrics_table(
    frame: pd.DataFrame, failures: pd.Series, columns: dict[str, dict[str, str]], minutes: float
) -> pd.DataFrame:
    records = []
    for machine, rows in frame.groupby("machine_id", sort=True):
        if machine in failures.index:
            records += machine_metrics(rows, failures[machine], columns, minutes)
    return pd.DataFrame(records)


def x_values(rows: pd.DataFrame, failure: pd.Timestamp, axis: str) -> np.ndarray:
    """Life fraction (0 at the first snapshot, 1 at failure) or hours to failure (negative, 0 at failure)."""
    to_failure = (failure - rows["timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    if axis == "hours":
        return -to_failure
    life = (failure - rows["timestamp"].iloc[0]).total_seconds() / 3600.0
    return 1.0 - to_failure / life


def draw_panel(ax, x: np.ndarray, rows: pd.DataFrame, signals: dict[str, str], label: str, minutes: float):
    """Raw (thin) and smoothed (thick) series of every signal of one indicator on one machine."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = [(s, c) for s, c in signals.items() if rows[c].notna().any()]
    if not shown:
        ax.text(0.5, 0.5, f"no {label}", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_yticks([])
        return
    for i, (signal, column) in enumerate(shown):
        color = colors[i % len(colors)]
        ax.plot(x, rows[column], color=color, lw=0.4, alpha=0.35)
        ax.plot(x, smoothed(rows["timestamp"], rows[column], minutes), color=color, lw=1.3, label=signal)
    if label == TEMPERATURE:
        clip_outliers(ax, rows[[c for _, c in shown]].to_numpy(dtype=float))
    else:
        log_axis(ax)


def log_axis(ax) -> None:
    """Log y axis labelled with plain numbers at 1-2-5 steps (finer when it spans less than a decade)."""
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if hi / lo > 8 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def clip_outliers(ax, values: np.ndarray) -> None:
    """Limit the y range to the 1st-99th percentile span (plus margin) and say how many readings lie above it."""
    known = values[np.isfinite(values)]
    lo, hi = np.percentile(known, [1, 99])
    margin = 0.15 * (hi - lo) + 1.0
    ax.set_ylim(lo - margin, hi + margin)
    above = int((known > hi + margin).sum())
    if above:
        ax.text(
            0.02,
            0.92,
            f"{above} readings above view (max {known.max():.0f})",
            transform=ax.transAxes,
            fontsize=7,
            va="top",
            color="firebrick",
        )


def plot_grid(
    frame: pd.DataFrame,
    failures: pd.Series,
    columns: dict[str, dict[str, str]],
    args: argparse.Namespace,
) -> None:
    machines = [m for m in sorted(frame["machine_id"].unique()) if m in failures.index]
    labels = list(columns)
    fig, axes = plt.subplots(
        len(machines), len(labels), figsize=(3.3 * len(labels), 1.9 * len(machines) + 1.2), squeeze=False
    )
    for r, machine in enumerate(machines):
        rows = frame[frame["machine_id"] == machine].sort_values("timestamp")
        x = x_values(rows, failures[machine], args.x)
        run_h = (failures[machine] - rows["timestamp"].iloc[0]).total_seconds() / 3600.0
        for c, label in enumerate(labels):
            ax = axes[r, c]
            draw_panel(ax, x, rows, columns[label], label, args.smooth_min)
            ax.tick_params(labelsize=7)
            if r == 0:
                unit = f" ({UNITS[label]})" if UNITS[label] else ""
                ax.set_title(f"{label}{unit}", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{machine}\n{run_h:.1f} h", fontsize=9)
            if r == len(machines) - 1:
                ax.set_xlabel(
                    "life fraction" if args.x == "life" else "hours to failure (0 = failure)", fontsize=8
                )
            ax.grid(alpha=0.3, lw=0.5)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize=8, ncol=len(names))
    fig.suptitle(
        f"{args.data_dir.name}: health indicators over life (thin: every snapshot; "
        f"thick: trailing {args.smooth_min:g}-min mean; vibration on log scale)",
        fontsize=11,
        x=0.01,
        ha="left",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=90)
    plt.close(fig)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean metrics per indicator over machines and signals, with the number of machines."""
    grouped = table.groupby("indicator", sort=False)
    means = grouped[["monotonicity", "trendability", *sensitivity_columns(table)]].mean()
    return means.assign(machines=grouped["machine_id"].nunique())


def sensitivity_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("monotonicity_")]


def print_tables(table: pd.DataFrame, means: pd.DataFrame) -> None:
    wide = table.pivot_table(
        index="machine_id", columns="indicator", values=["monotonicity", "trendability"], aggfunc="mean"
    )
    order = [c for c in means.index if c in wide["monotonicity"].columns]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 2):
        print("per machine (mean over its channels):")
        print(wide.reindex(columns=order, level=1).round(2).to_string(na_rep="-"))
        print("mean over machines and channels (monotonicity_<w>min: other smoothing windows, 0 = raw):")
        print(means.round(2).to_string())


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def headline(name: str, means: pd.DataFrame, n_machines: int, minutes: float) -> str:
    def part(metric: str) -> str:
        items = []
        for label, row in means.iterrows():
            note = f" ({plural(int(row['machines']), 'bearing')})" if row["machines"] < n_machines else ""
            items.append(f"{label} {row[metric]:.2f}{note}")
        return ", ".join(items)

    return (
        f"{name} health indicators ({plural(n_machines, 'bearing')}): monotonicity {part('monotonicity')}; "
        f"trendability {part('trendability')} (monotonicity on a trailing {minutes:g}-min mean, "
        f"trendability = |Spearman| with time on raw values)"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    dataset = load_or_exit(args.data_dir)
    for note in quarantine_notes(dataset):
        print(f"note: {note}")
    frame = build_features(dataset).frame.sort_values(["machine_id", "timestamp"]).reset_index(drop=True)
    built = time.perf_counter() - start
    columns = indicator_columns(frame)
    if not columns:
        raise SystemExit(f"{args.data_dir}: no vibration or temperature indicator column")
    failures, notes = run_to_failure(frame, dataset.events)
    for note in notes:
        print(f"note: {note}")
    frame = until_failure(frame, failures).reset_index(drop=True)
    if failures.empty:
        raise SystemExit(
            f"{args.data_dir}: no machine has a failure event after its first snapshot; these indicators are "
            "read over a life that ends in failure (events table, kind 'failure')"
        )
    table = metrics_table(frame, failures, columns, args.smooth_min)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    plot_grid(frame, failures, columns, args)
    means = summary(table)
    print(f"{args.data_dir}: {len(frame)} snapshot times, features built in {built:.1f} s")
    print_tables(table, means)
    print(f"figure saved to {args.figure}; metrics saved to {args.out}")
    print(headline(args.data_dir.name, means, len(failures), args.smooth_min))


if __name__ == "__main__":
    exit_2_on_input_error(main)
