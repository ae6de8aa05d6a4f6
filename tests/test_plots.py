"""Evaluation figures are written as PNG files without pyplot: a notebook's backend and open figures stay as
they were."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from models import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def svg_backend():
    """A backend other than Agg, as a notebook's inline one would be; restored afterwards."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield
    matplotlib.use(before)


def test_figures_are_pngs_and_leave_the_backend_and_pyplot_alone(tmp_path, svg_backend):
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    stamps = pd.date_range("2026-01-01", periods=6, freq="D", tz="UTC")
    timeline = pd.DataFrame(
        {"machine_id": ["A"] * 6, "timestamp": stamps, "failure_probability": np.linspace(0.1, 0.9, 6)}
    )
    failures = pd.DataFrame(
        {"machine_id": ["A"], "failure_at": [stamps[-1]], "warned": [True], "lead_h": [48.0]}
    )
    written = [
        plots.pr_curve(np.r_[0, 0, 1, 1], np.r_[0.1, 0.4, 0.35, 0.8], 0.5, tmp_path / "pr.png"),
        plots.calibration(
            pd.DataFrame({"predicted": [0.1, 0.5], "observed": [0.0, 0.6], "rows": [10, 5]}),
            tmp_path / "cal.png",
        ),
        plots.lead_times(failures, 24.0, tmp_path / "lead.png"),
        plots.risk_timelines(timeline, failures, {"high": 0.6, "medium": 0.3}, tmp_path / "timeline.png"),
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG, path.name
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == open_before
