"""The risk list as one self-contained HTML page a maintenance supervisor opens from an e-mail attachment.

Plain Python (no Prefect): a flow, the CLI or a notebook calls :func:`render_report`. Styles are inline and the
plots are base64 PNG images inside the page, so it opens offline and requests nothing from the network.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from features.describe import describe, short_description

# (risk list column, table heading); a column the risk list lacks is shown as empty cells
TABLE_COLUMNS = [
    ("rank", "#"),
    ("machine_id", "machine"),
    ("site", "site"),
    ("machine_type", "type"),
    ("status", "status"),
    ("failure_probability", "failure probability"),
    ("risk_band", "band"),
    ("remaining_life_hours", "remaining life"),
    ("likely_fault", "likely fault"),
    ("days_flagged", "days flagged"),
    ("change", "change"),
    ("drivers", "drivers"),
]
STATUSES = ("scored", "insufficient_history", "no_recent_data", "check_sensor", "failed")
DEFAULT_WEEKS = 4

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Arial, sans-serif; color: #222; margin: 1.5em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
.meta { color: #555; margin: .2em 0; }
.counts span { display: inline-block; margin-right: 1.2em; }
.warn { background: #fff4e5; border-left: 4px solid #e8890c; padding: .5em .8em; margin: .8em 0; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; white-space: nowrap; }
.band-high { color: #b00020; font-weight: bold; } .band-medium { color: #b36b00; }
.change-new, .change-rising { font-weight: bold; }
details summary { cursor: pointer; font-weight: bold; margin-top: 1.6em; }
.plots { display: flex; flex-wrap: wrap; gap: 0 2em; }
.machine { flex: 0 1 560px; } .machine img { max-width: 100%; height: auto; display: block; }
td.nowrap { white-space: nowrap; }
footer { margin-top: 2em; color: #444; border-top: 1px solid #ccc; padding-top: .5em; }
footer dt { font-weight: bold; } footer dd { margin: 0 0 .5em 1.5em; }
"""


def render_report(risk: pd.DataFrame, history: pd.DataFrame, meta: dict, out: Path) -> Path:
    """Write the report of one risk list to ``out`` (one HTML file, nothing external) and return ``out``.

    ``meta`` (every key optional): ``model_name``, ``model_version``, ``as_of``, ``thresholds`` (``high``, and
    ``medium``), ``remaining_life_cap_h``, ``horizon_h`` (default 168), ``drift`` (warnings, strings or dicts),
    ``driver_features`` (machine id -> feature columns of ``history``), ``history_weeks`` (default 4),
    ``precision`` (weekly real precision from crew findings, ``pipelines.feedback.list_precision``).
    """
    risk = ranked(risk)
    flagged = flagged_rows(risk)
    others = ~flagged & (text_column(risk, "risk_band") != "low")
    cap_h = meta.get("remaining_life_cap_h")
    sections = [
        header(risk, flagged, meta),
        "<h2>Flagged machines: inspect these</h2>",
        risk_table(risk[flagged], cap_h, "flagged", "No machine is flagged.", link=True),
        "<details><summary>Other machines that are not low risk "
        f"({int(others.sum())}: medium band, above the crew's capacity, or not scored)</summary>",
        risk_table(risk[others], cap_h, "others", "None."),
        "</details>",
        machine_plots(risk[flagged], history, meta),
        precision_section(meta.get("precision")),
        footer(meta),
    ]
    title = f"wearcast risk list {model_label(risk, meta)}"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out


def precision_section(precision: pd.DataFrame | None) -> str:
    """The lists' real precision per week from the crew's findings (``wearcast feedback``), when there are any."""
    if precision is None or len(precision) == 0 or not precision["inspected"].sum():
        return ""  # no finding recorded yet: flagged counts alone say nothing about how right the lists were
    rows = "".join(
        f"<tr><td>{escape(str(pd.Timestamp(week).date()))}</td><td class='num'>{flagged}</td>"
        f"<td class='num'>{inspected}</td><td class='num'>{confirmed}</td><td class='num'>{nothing}</td>"
        f"<td class='num'>{percent(share)}</td></tr>"
        for week, flagged, inspected, confirmed, nothing, share in precision[
            ["week", "flagged", "inspected", "confirmed", "nothing_found", "precision"]
        ].itertuples(index=False)
    )
    return (
        "<h2>How right were the lists? (crew findings)</h2><table><tr><th>week</th><th>flagged</th>"
        "<th>inspected</th><th>fault confirmed</th><th>nothing found</th><th>precision</th></tr>"
        f"{rows}</table>"
    )


def ranked(risk: pd.DataFrame) -> pd.DataFrame:
    """The list in rank order (as given when it has no ``rank`` column)."""
    if "rank" not in risk.columns:
        return risk.reset_index(drop=True)
    return risk.sort_values("rank", kind="stable", na_position="last").reset_index(drop=True)


def text_column(risk: pd.DataFrame, name: str) -> pd.Series:
    """A column as strings ("" where absent or missing)."""
    if name not in risk.columns:
        return pd.Series("", index=risk.index, dtype=object)
    return risk[name].map(lambda v: "" if is_missing(v) else str(v))


def flagged_rows(risk: pd.DataFrame) -> pd.Series:
    """The ``flagged`` column as booleans; without one, the high band stands in for it."""
    if "flagged" in risk.columns:
        return risk["flagged"].map(lambda v: not is_missing(v) and bool(v)).astype(bool)
    return text_column(risk, "risk_band") == "high"


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and lists are values, not missing
        return False


def model_label(risk: pd.DataFrame, meta: Mapping) -> str:
    """'wearcast-demo v3' from meta, else from the list's own model columns."""
    name, version = meta.get("model_name"), meta.get("model_version")
    if name is None and "model_name" in risk.columns and len(risk):
        name = risk["model_name"].iloc[0]
    if version is None and "model_version" in risk.columns and len(risk):
        version = risk["model_version"].iloc[0]
    return " ".join(
        part for part in (str(name or "model"), f"v{version}" if version is not None else "") if part
    )


def as_of_text(risk: pd.DataFrame, meta: Mapping) -> str:
    when: Any = meta.get("as_of")
    if when is None and "as_of" in risk.columns:
        when = pd.to_datetime(risk["as_of"], utc=True, errors="coerce").max()
    if is_missing(when):
        return "unknown"
    if isinstance(when, str):
        return when
    return pd.Timestamp(when).strftime("%Y-%m-%d %H:%M %Z").strip()


def header(risk: pd.DataFrame, flagged: pd.Series, meta: Mapping) -> str:
    """Title, model, as-of time, machines per status, how many flagged, drift warnings."""
    status = text_column(risk, "status")
    names = [*STATUSES, *sorted(set(status) - set(STATUSES) - {""})]
    counts = "".join(
        f"<span>{escape(name.replace('_', ' '))}: <b>{int((status == name).sum())}</b></span>"
        for name in names
    )
    high = meta.get("thresholds", {}).get("high")
    alert = f"; alert threshold {percent(high)}" if high is not None else ""
    basis = "" if "flagged" in risk.columns else " (the list has no flagged column: the high band is shown)"
    parts = [
        f"<h1>Risk list: {int(flagged.sum())} machine{'s' * (int(flagged.sum()) != 1)} to inspect</h1>",
        f'<p class="meta">Model <b>{escape(model_label(risk, meta))}</b>, data as of '
        f"<b>{escape(as_of_text(risk, meta))}</b>{escape(alert)}</p>",
        f'<p class="meta counts">{len(risk)} machines: {counts}</p>',
        f'<p class="meta">Flagged: <b>{int(flagged.sum())}</b>{escape(basis)}</p>',
    ]
    drift = list(meta.get("drift") or [])
    if drift:
        items = "".join(f"<li>{escape(drift_text(item))}</li>" for item in drift)
        parts.append(
            '<div class="warn"><b>Drift warning</b>: the incoming data differ from what the model was '
            f"trained on; treat the scores with care.<ul>{items}</ul></div>"
        )
    return "\n".join(parts)


def drift_text(item: Any) -> str:
    if isinstance(item, Mapping):
        return ", ".join(
            f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}"
            for key, value in item.items()
        )
    return str(item)


def percent(value: Any) -> str:
    if is_missing(value):
        return ""
    share = 100 * float(value)
    return f"{share:.1f} %" if share < 10 else f"{share:.0f} %"


def life_text(hours: Any, cap_h: float | None) -> str:
    """Remaining life in days, '> N d' at the model's cap."""
    if is_missing(hours):
        return ""
    if cap_h is not None and float(hours) >= float(cap_h) - 1e-9:
        return f"&gt; {float(cap_h) / 24:.0f} d"
    return f"{float(hours):.1f} h" if float(hours) < 48 else f"{float(hours) / 24:.1f} d"


def cell(row: Mapping, column: str, cap_h: float | None, link_to: str = "") -> str:
    """One escaped, formatted table cell."""
    if column == "remaining_life_hours":  # the foundation's list calls it remaining_life_h
        life = row.get("remaining_life_hours", row.get("remaining_life_h"))
        return f'<td class="num">{life_text(life, cap_h)}</td>'
    value: Any = row.get(column)
    if is_missing(value):
        return "<td></td>"
    if column == "failure_probability":
        return f'<td class="num">{percent(value)}</td>'
    if column in ("rank", "days_flagged"):
        return f'<td class="num">{int(value)}</td>'
    if column == "drivers":
        return "<td>" + "<br>".join(escape(part) for part in str(value).split("; ")) + "</td>"
    text = escape(str(value))
    if column == "machine_id":
        return (
            f'<td class="machine-id"><a href="#{link_to}">{text}</a></td>' if link_to else f"<td>{text}</td>"
        )
    if column in ("risk_band", "change"):
        return f'<td class="{column.split("_")[-1]}-{escape(str(value), quote=True)}">{text}</td>'
    return f'<td class="nowrap">{text.replace("_", " ") if column == "status" else text}</td>'


def risk_table(rows: pd.DataFrame, cap_h: float | None, table_id: str, empty: str, link: bool = False) -> str:
    """The rows as a table; with ``link``, each machine id leads to its plots further down."""
    if rows.empty:
        return f"<p>{escape(empty)}</p>"
    heads = "".join(f"<th>{escape(head)}</th>" for _, head in TABLE_COLUMNS)
    body = "\n".join(
        "<tr>"
        + "".join(cell(row, column, cap_h, anchor(at) if link else "") for column, _ in TABLE_COLUMNS)
        + "</tr>"
        for at, row in zip(rows.index, rows.to_dict("records"), strict=True)
    )
    return f'<table id="{table_id}"><thead><tr>{heads}</tr></thead><tbody>\n{body}\n</tbody></table>'


def machine_plots(flagged: pd.DataFrame, history: pd.DataFrame, meta: Mapping) -> str:
    """Per flagged machine: its risk over the last weeks against the alert threshold, and its main drivers."""
    if flagged.empty:
        return ""
    parts = ['<h2>Flagged machines over the last weeks</h2><div class="plots">']
    weeks = float(meta.get("history_weeks", DEFAULT_WEEKS))
    threshold = meta.get("thresholds", {}).get("high")
    chosen = meta.get("driver_features") or {}
    for at, row in zip(flagged.index, flagged.to_dict("records"), strict=True):
        machine = row["machine_id"]
        title = " · ".join(
            str(row[key]) for key in ("site", "machine_type") if not is_missing(row.get(key)) and row[key]
        )
        rank = "" if is_missing(row.get("rank")) else f"#{int(row['rank'])} "
        parts.append(
            f'<section class="machine" id="{anchor(at)}"><h3>{escape(rank + str(machine))} <small>{escape(title)}</small></h3>'
        )
        rows = machine_history(history, machine, weeks)
        if rows.empty:
            parts.append("<p>No history for this machine in the last weeks.</p></section>")
            continue
        drivers = [name for name in list(chosen.get(machine, []))[:3] if name in rows.columns]
        png = figure_png(rows, threshold, drivers)
        alt = f"risk of {machine} over the last {weeks:g} weeks" + (
            " and its main drivers" if drivers else ""
        )
        parts.append(f'<img alt="{escape(alt)}" src="data:image/png;base64,{png}"></section>')
    return "\n".join([*parts, "</div>"])


def anchor(position: Any) -> str:
    """The id of a flagged machine's plots (a row position: machine ids can hold any character)."""
    return f"machine-{position}"


def machine_history(history: pd.DataFrame, machine: Any, weeks: float) -> pd.DataFrame:
    """One machine's history, its last ``weeks`` weeks, time in UTC without a zone, sorted."""
    if history.empty or not {"machine_id", "timestamp"} <= set(history.columns):
        return history.iloc[0:0]
    rows = history[history["machine_id"] == machine].copy()
    rows["timestamp"] = pd.to_datetime(rows["timestamp"], utc=True, errors="coerce").dt.tz_localize(None)
    rows = rows.dropna(subset=["timestamp"]).sort_values("timestamp")
    if rows.empty:
        return rows
    return rows[rows["timestamp"] >= rows["timestamp"].iloc[-1] - pd.Timedelta(weeks=weeks)]


def figure_png(rows: pd.DataFrame, threshold: float | None, drivers: Iterable[str]) -> str:
    """Risk (top panel) and each driver (one small panel each) over time, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    drivers = list(drivers)
    fig, axes = plt.subplots(
        1 + len(drivers), 1, figsize=(7, 1.9 + 1.3 * len(drivers)), sharex=True, squeeze=False
    )
    risk_ax, when = axes[0, 0], rows["timestamp"].to_numpy()
    if "failure_probability" in rows.columns:
        risk_ax.plot(when, 100 * rows["failure_probability"].to_numpy(dtype=float), color="#1f4e9a", lw=1.5)
    if threshold is not None:
        risk_ax.axhline(
            100 * float(threshold), color="#b00020", ls="--", lw=1, label=f"alert {percent(threshold)}"
        )
        risk_ax.legend(loc="upper left", fontsize=8, frameon=False)
    risk_ax.set(ylim=(0, 100), ylabel="risk %")
    for ax, name in zip(axes[1:, 0], drivers, strict=True):
        ax.plot(when, rows[name].to_numpy(dtype=float), color="#555", lw=1.2)
        ax.set_title(feature_words(name), fontsize=8, loc="left")
    locator = mdates.AutoDateLocator()
    axes[-1, 0].xaxis.set_major_locator(locator)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes[:, 0]:
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def feature_words(name: str) -> str:
    """'bearing temperature mean over 24 h (°C)'; the column name when it is not a wearcast feature."""
    try:
        unit = describe(name).unit
        return f"{short_description(name)} ({unit})" if unit else short_description(name)
    except (KeyError, ValueError, IndexError):
        return name


def footer(meta: Mapping) -> str:
    horizon_h = float(meta.get("horizon_h", 168))
    horizon = f"{horizon_h / 24:g} days" if horizon_h % 24 == 0 else f"{horizon_h:g} hours"
    cap_h: Any = meta.get("remaining_life_cap_h")
    cap = (
        ""
        if is_missing(cap_h)
        else f" '&gt; {float(cap_h) / 24:.0f} d' means at least that long: the model does not estimate further."
    )
    terms = [
        (
            "Failure probability",
            f"The chance that the machine fails within the next {escape(horizon)}, calibrated on past failures: of 100 machines shown at 20 %, about 20 fail within that time.",
        ),
        (
            "Band",
            "High: at or above the alert threshold chosen when the model was trained (dashed red line in the plots): inspect. Medium: elevated, watch it. Low: nothing to do (not listed here).",
        ),
        (
            "Remaining life",
            "The model's estimate of the time left before a failure, in days; a rough guide for planning, less certain than the probability."
            + cap,
        ),
        (
            "Likely fault",
            "Which kind of fault: a bearing defect line or an imbalance signature in the vibration first, else the feature family that drives the risk (outer race, inner race, ball, imbalance, lubrication), or unknown.",
        ),
        (
            "Days flagged / change",
            "How many days in a row the machine has been flagged, and how it moved since the last list: new (just flagged), rising, falling, cleared (no longer flagged).",
        ),
        (
            "Drivers",
            "The measurements that raised this machine's risk most, with their values; for machines that are not scored, why not.",
        ),
        (
            "Status",
            "Scored; insufficient history (too new to score); no recent data (stopped reporting); check sensor (a sensor looks stuck or dead); failed (a failure was recorded after the machine's latest reading: it is down, not at risk).",
        ),
    ]
    items = "".join(f"<dt>{escape(term)}</dt><dd>{text}</dd>" for term, text in terms)
    return f"<footer><h2>How to read this</h2><dl>{items}</dl></footer>"
