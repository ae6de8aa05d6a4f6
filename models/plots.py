"""Figures of an evaluation, written as PNG files: PR curve, calibration, lead times, risk timelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """A figure and its axes without pyplot: no backend is chosen or changed (a notebook's inline plots keep
    working), nothing is kept open, and it works on servers and in workers."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def pr_curve(y: np.ndarray, probability: np.ndarray, alert: float, path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 4))
    if len(np.unique(y)) == 2:
        precision, recall, cuts = precision_recall_curve(y, probability)
        ax.plot(recall, precision)
        at = int(np.clip(np.searchsorted(cuts, alert), 0, len(cuts) - 1))
        ax.scatter([recall[at]], [precision[at]], color="red", zorder=3, label=f"alert at p >= {alert:.2f}")
        ax.axhline(float(np.mean(y)), color="grey", linestyle=":", label="chance")
        ax.legend()
    ax.set(
        xlabel="recall (rows before a failure)", ylabel="precision", title="Precision-recall", ylim=(0, 1.02)
    )
    return _save(fig, path)


def calibration(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.plot(table["predicted"], table["observed"], marker="o", label="model")
    for x, y, n in table[["predicted", "observed", "rows"]].itertuples(index=False):
        ax.annotate(str(int(n)), (x, y), fontsize=7, textcoords="offset points", xytext=(3, -8))
    ax.set(
        xlabel="predicted failure probability",
        ylabel="observed failure rate",
        title="Calibration (rows per bin)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend()
    return _save(fig, path)


def lead_times(failures: pd.DataFrame, min_lead_h: float, path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 4))
    leads = failures.loc[failures["warned"], "lead_h"].to_numpy(dtype=float)
    if len(leads):
        ax.hist(leads, bins=min(20, max(5, len(leads) // 2)))
    ax.axvline(min_lead_h, color="red", linestyle="--", label=f"minimum useful lead {min_lead_h:g} h")
    missed = int((~failures["warned"]).sum())
    ax.set(
        xlabel="warning lead time before failure (h)",
        ylabel="failures",
        title=f"Lead times ({len(leads)} warned, {missed} missed)",
    )
    ax.legend()
    return _save(fig, path)


def risk_timelines(
    timeline: pd.DataFrame,
    failures: pd.DataFrame,
    thresholds: dict[str, float],
    path: Path,
    machines: int = 6,
) -> Path:
    """Risk over time of a few machines: the failed ones first, then the highest-risk others."""
    failed = list(dict.fromkeys(failures["machine_id"]))
    peak = timeline.groupby("machine_id")["failure_probability"].max().sort_values(ascending=False)
    chosen = (failed + [m for m in peak.index if m not in failed])[:machines]
    fig, axes = _subplots(len(chosen), 1, figsize=(8, 1.6 * max(len(chosen), 1)), sharex=True, squeeze=False)
    for ax, machine in zip(axes[:, 0], chosen, strict=True):
        mine = timeline[timeline["machine_id"] == machine]
        ax.plot(mine["timestamp"], mine["failure_probability"], marker=".")
        ax.axhline(thresholds["high"], color="red", linestyle="--", linewidth=0.8)
        ax.axhline(thresholds["medium"], color="orange", linestyle=":", linewidth=0.8)
        for when in failures.loc[failures["machine_id"] == machine, "failure_at"]:
            ax.axvline(when, color="black", linewidth=1.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel(str(machine), rotation=0, ha="right", fontsize=8)
    axes[0, 0].set_title("Risk timelines (dashed: alert, dotted: clear, black: failure)")
    fig.autofmt_xdate()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
