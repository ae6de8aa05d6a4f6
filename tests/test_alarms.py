"""Alarm hysteresis and episode scoring: known answers on hand-made timelines, and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.alarms import AlarmConfig, alarm_episodes, alarm_states, evaluate_episodes, hysteresis


def hour(h: float) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=h)


def timeline(risk: dict[str, list[float]]) -> pd.DataFrame:
    """One point per hour and machine, starting at hour 0."""
    return pd.DataFrame(
        [(m, hour(i), r) for m, values in risk.items() for i, r in enumerate(values)],
        columns=["machine_id", "timestamp", "risk"],
    )


def test_opens_at_alert_and_holds_until_below_clear():
    config = AlarmConfig(alert=0.8, clear=0.3)
    states = alarm_states(timeline({"A": [0.1, 0.8, 0.5, 0.3, 0.29, 0.7, 0.9]}), config)
    assert states["alarm"].tolist() == [False, True, True, True, False, False, True]
    episodes = alarm_episodes(states)
    assert episodes["start"].tolist() == [hour(1), hour(6)]
    assert episodes["end"].tolist() == [hour(3), hour(6)]
    assert episodes["open_at_end"].tolist() == [False, True]


def test_a_single_spike_is_suppressed_by_open_after():
    risk = [0.1, 0.95, 0.1, 0.9, 0.9, 0.9, 0.2]
    assert hysteresis(np.array(risk), AlarmConfig(alert=0.8, clear=0.5)).tolist() == [
        False, True, False, True, True, True, False,
    ]  # fmt: skip
    assert hysteresis(np.array(risk), AlarmConfig(alert=0.8, clear=0.5, open_after=3)).tolist() == [
        False, False, False, False, False, True, False,
    ]  # fmt: skip


def test_nan_risk_neither_opens_nor_closes():
    config = AlarmConfig(alert=0.8, clear=0.5, open_after=2)
    assert hysteresis(np.array([0.9, np.nan, 0.9, 0.9, np.nan, 0.1]), config).tolist() == [
        False, False, False, True, True, False,
    ]  # fmt: skip


def test_machines_are_independent_and_row_order_is_kept():
    frame = timeline({"A": [0.9, 0.9], "B": [0.1, 0.9]}).iloc[[3, 0, 2, 1]]
    states = alarm_states(frame, AlarmConfig(alert=0.8, clear=0.5, open_after=2))
    assert states.index.tolist() == [3, 0, 2, 1]
    assert states["alarm"].tolist() == [False, False, False, True]


def test_clear_above_alert_is_refused():
    with pytest.raises(ValueError, match="clear <= alert"):
        AlarmConfig(alert=0.5, clear=0.6)


def test_warning_lead_and_false_alarms():
    # A: a false alarm at hours 1-2, then the warning from hour 6, still open at the failure (hour 10)
    # B: one episode that clears at hour 3 before its failure at hour 5: missed, one false alarm
    # C: never fails; its one episode is a false alarm
    states = alarm_states(
        timeline(
            {
                "A": [0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.6, 0.9, 0.9],
                "B": [0.1, 0.9, 0.9, 0.1, 0.1],
                "C": [0.9, 0.1],
            }
        ),
        AlarmConfig(alert=0.8, clear=0.5),
    )
    failures = pd.Series({"A": hour(10), "B": hour(5), "C": pd.NaT})
    scored = evaluate_episodes(alarm_episodes(states), failures, pd.Series({m: hour(0) for m in "ABC"}))
    scored = scored.set_index("machine_id")
    assert scored["warned"].tolist() == [True, False, False]
    assert scored.loc["A", "warning_start"] == hour(6)
    assert scored.loc["A", "lead_h"] == pytest.approx(4.0)
    assert scored.loc["A", "lead_fraction"] == pytest.approx(0.4)
    assert np.isnan(scored.loc["B", "lead_h"])
    assert scored["false_alarms"].tolist() == [1, 1, 1]


def test_an_episode_lasting_past_the_failure_is_the_warning():
    states = alarm_states(timeline({"A": [0.1, 0.9, 0.9, 0.9, 0.1]}), AlarmConfig(alert=0.8, clear=0.5))
    scored = evaluate_episodes(alarm_episodes(states), pd.Series({"A": hour(2.5)}), pd.Series({"A": hour(0)}))
    assert bool(scored["warned"].iloc[0])
    assert scored["lead_h"].iloc[0] == pytest.approx(1.5)
    assert scored["false_alarms"].iloc[0] == 0


def test_no_episodes_gives_an_empty_typed_table():
    states = alarm_states(timeline({"A": [0.1, 0.2]}), AlarmConfig(alert=0.8, clear=0.5))
    episodes = alarm_episodes(states)
    assert episodes.empty and list(episodes.columns) == ["machine_id", "start", "end", "open_at_end"]
    scored = evaluate_episodes(episodes, pd.Series({"A": hour(3)}), pd.Series({"A": hour(0)}))
    assert not bool(scored["warned"].iloc[0]) and scored["false_alarms"].iloc[0] == 0


risks = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=60)
levels = st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)).map(sorted)


def episode_lengths(risk: list[float], config: AlarmConfig) -> list[int]:
    """Number of points in alarm of each episode, in time order."""
    state = hysteresis(np.array(risk), config)
    lengths, current = [], 0
    for on in state:
        if on:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    return [*lengths, current] if current else lengths


@settings(max_examples=200, deadline=None)
@given(risk=risks, levels=levels, open_after=st.integers(1, 4))
def test_raising_the_clear_threshold_never_lengthens_alarms(risk, levels, open_after):
    low, high, alert = levels
    looser = hysteresis(np.array(risk), AlarmConfig(alert=alert, clear=low, open_after=open_after))
    tighter = hysteresis(np.array(risk), AlarmConfig(alert=alert, clear=high, open_after=open_after))
    assert tighter.sum() <= looser.sum()
    assert max(
        episode_lengths(risk, AlarmConfig(alert=alert, clear=high, open_after=open_after)), default=0
    ) <= max(episode_lengths(risk, AlarmConfig(alert=alert, clear=low, open_after=open_after)), default=0)


@settings(max_examples=200, deadline=None)
@given(risk=risks, levels=levels, open_after=st.integers(1, 3))
def test_alarm_points_lie_between_plain_threshold_rules(risk, levels, open_after):
    _, clear, alert = levels
    values = np.array(risk)
    state = hysteresis(values, AlarmConfig(alert=alert, clear=clear, open_after=open_after))
    assert np.all(values[state] >= clear)  # in alarm only while at or above the clear threshold
    assert np.all(state[values >= alert] | (open_after > 1))  # with open_after=1, every point >= alert alarms


@settings(max_examples=100, deadline=None)
@given(risk=risks, levels=levels, open_after=st.integers(1, 4))
def test_more_points_to_open_never_adds_alarm_time(risk, levels, open_after):
    _, clear, alert = levels
    fewer = hysteresis(np.array(risk), AlarmConfig(alert=alert, clear=clear, open_after=open_after))
    more = hysteresis(np.array(risk), AlarmConfig(alert=alert, clear=clear, open_after=open_after + 1))
    assert np.all(fewer[more])


def test_a_timeline_with_repeated_index_labels_keeps_its_row_order():
    parts = [timeline({"A": [0.1, 0.9, 0.9]}), timeline({"B": [0.9, 0.1, 0.1]})]
    together = pd.concat(parts)  # index 0, 1, 2, 0, 1, 2
    states = alarm_states(together, AlarmConfig(alert=0.8, clear=0.3))
    expected = pd.concat([alarm_states(part, AlarmConfig(alert=0.8, clear=0.3)) for part in parts])
    assert states["alarm"].tolist() == expected["alarm"].tolist() and states.index.equals(together.index)
