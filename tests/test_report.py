"""The HTML report of a risk list, opened in headless Chromium (Debian's package; `make test` installs it)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.report import TABLE_COLUMNS, render_report

TEMPERATURE = "tel__temperature_bearing__mean__24h"
VIBRATION = "vib__acc_horizontal__rms"
META = {
    "model_name": "wearcast-demo",
    "model_version": "7",
    "as_of": pd.Timestamp("2026-02-10 06:00", tz="UTC"),
    "thresholds": {"high": 0.5, "medium": 0.2},
    "remaining_life_cap_h": 240.0,
    "drift": ["tel__temperature_bearing__mean__24h PSI 0.31 on pumps (threshold 0.25)"],
    "driver_features": {"M01": [VIBRATION, TEMPERATURE], "M<script>": [TEMPERATURE, "not_in_history"]},
}
SHOWN_FLAGGED = ["M01", "M<script>", "M04"]
SHOWN_OTHERS = ["M03", "M05", "M07", "M08"]


def risk_list() -> pd.DataFrame:
    """Ranks 1, 2 and 4 flagged; 3 high but beyond the crew's capacity; 6 low (not shown); 7 and 8 unscored."""
    rows = [
        (1, "M01", "scored", 0.93, "high", 60.0, "outer race", 3, "rising", True),
        (2, "M<script>", "scored", 0.88, "high", 240.0, "lubrication", 1, "new", True),
        (3, "M03", "scored", 0.80, "high", 150.0, "unknown", 0, "new", False),
        (4, "M04", "scored", 0.45, "medium", 200.0, "imbalance", 6, "falling", True),
        (5, "M05", "scored", 0.30, "medium", 240.0, "unknown", 0, "rising", False),
        (6, "M06", "scored", 0.02, "low", 240.0, "", 0, "", False),
        (7, "M07", "check_sensor", np.nan, "", np.nan, "", 0, "", False),
        (8, "M08", "no_recent_data", np.nan, "", np.nan, "", 0, "cleared", False),
    ]
    names = ["rank", "machine_id", "status", "failure_probability", "risk_band", "remaining_life_hours"]
    frame = pd.DataFrame(rows, columns=[*names, "likely_fault", "days_flagged", "change", "flagged"])
    frame["site"], frame["machine_type"] = "Plant A", "pump"
    frame["drivers"] = (
        "overall vibration level (acc horizontal) 6.6x its healthy level; bearing temperature 14 °C above ambient"
    )
    frame["model_name"], frame["model_version"] = "wearcast-demo", "7"
    return frame.sample(frac=1.0, random_state=3)  # the report ranks, whatever order it gets


def history() -> pd.DataFrame:
    """Six weeks, every 6 h, for every machine: risk ramping up, two driver features."""
    when = pd.date_range("2025-12-30", "2026-02-10 06:00", freq="6h", tz="UTC")
    ramp = np.linspace(0.0, 1.0, len(when))
    return pd.concat(
        pd.DataFrame(
            {
                "machine_id": machine,
                "timestamp": when,
                "failure_probability": np.clip(0.02 + p * ramp**3, 0, 1),
                TEMPERATURE: 40 + 15 * ramp,
                VIBRATION: 0.2 + p * ramp**2,
            }
        )
        for machine, p in zip(
            risk_list()["machine_id"], risk_list()["failure_probability"].fillna(0.1), strict=True
        )
    )


class Dom(HTMLParser):
    """Tags, attributes, each table's rows of cell texts, and the images under ``section.machine``."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.plots: list[str] = []
        self.table: str | None = None
        self.cell: list[str] | None = None
        self.in_machine = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {name: value or "" for name, value in attrs}
        self.attrs.extend(values.items())
        if tag == "table":
            self.table = values.get("id", "")
            self.tables[self.table] = []
        elif tag == "tr" and self.table is not None:
            self.tables[self.table].append([])
        elif tag == "td" and self.table is not None:
            self.cell = []
        elif tag == "section" and "machine" in values.get("class", ""):
            self.in_machine = True
        elif tag in ("img", "svg") and self.in_machine:
            self.plots.append(values.get("src", "<svg>"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None
        elif tag == "td" and self.table is not None and self.cell is not None:
            self.tables[self.table][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "section":
            self.in_machine = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def chromium(*args: str) -> str:
    """Run headless Chromium (Debian's package) and return what it printed."""
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed: run `make browser` (make test does it)"
    done = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def column(rows: list[list[str]], name: str) -> list[str]:
    at = [key for key, _ in TABLE_COLUMNS].index(name)
    return [row[at] for row in rows if row]


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = render_report(risk_list(), history(), META, tmp_path / "report" / "risk.html")
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = Dom()
    dom.feed(chromium(profile, "--dump-dom", page.as_uri()))

    flagged, others = dom.tables["flagged"], dom.tables["others"]
    assert column(flagged, "machine_id") == SHOWN_FLAGGED
    assert column(flagged, "rank") == ["1", "2", "4"]
    assert column(others, "machine_id") == SHOWN_OTHERS
    assert column(flagged, "failure_probability") == ["93 %", "88 %", "45 %"]
    assert column(flagged, "remaining_life_hours") == ["2.5 d", "> 10 d", "8.3 d"]
    assert column(flagged, "change") == ["rising", "new", "falling"]
    assert column(others, "status")[2:] == ["check sensor", "no recent data"]
    assert all(len(row) == len(TABLE_COLUMNS) for row in flagged + others if row)

    assert len(dom.plots) == len(SHOWN_FLAGGED)  # one figure per flagged machine
    for src in dom.plots:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.width >= 400

    assert "script" not in dom.tags and "link" not in dom.tags and "iframe" not in dom.tags
    external = [(name, value) for name, value in dom.attrs if name in ("src", "href", "srcset", "action")]
    assert not [v for _, v in external if not v.startswith(("data:", "#"))], "the page must need no network"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", text)
    assert "M&lt;script&gt;" in text and "<script" not in text

    shot = tmp_path / "risk.png"
    chromium(profile, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1280) and pixels.std() > 10  # something was drawn, not a blank page


def test_report_header_and_footer(tmp_path: Path) -> None:
    text = render_report(risk_list(), history(), META, tmp_path / "risk.html").read_text(encoding="utf-8")
    assert "wearcast-demo v7" in text and "2026-02-10 06:00 UTC" in text
    for status, count in [("scored", 6), ("insufficient history", 0), ("check sensor", 1), ("failed", 0)]:
        assert f"{status}: <b>{count}</b>" in text
    assert "Flagged: <b>3</b>" in text and "Drift warning" in text and "PSI 0.31 on pumps" in text
    assert "How to read this" in text and "Remaining life" in text


def test_missing_columns_are_empty_cells_not_errors(tmp_path: Path) -> None:
    """The foundation's list has no flagged/likely_fault/days_flagged/change: the high band stands in."""
    bare = risk_list()[["rank", "machine_id", "status", "failure_probability", "risk_band"]]
    bare = bare.assign(remaining_life_h=100.0)
    page = render_report(bare, pd.DataFrame(), {}, tmp_path / "bare.html")
    dom = Dom()
    dom.feed(page.read_text(encoding="utf-8"))
    assert column(dom.tables["flagged"], "machine_id") == ["M01", "M<script>", "M03"]
    assert column(dom.tables["flagged"], "likely_fault") == ["", "", ""]
    assert column(dom.tables["flagged"], "remaining_life_hours") == ["4.2 d"] * 3
    assert dom.plots == []  # no history: said in words, no empty figure
