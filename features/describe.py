"""Feature names in words: units, one-line descriptions, and the phrases a maintenance crew reads."""

from __future__ import annotations

import re
from dataclasses import dataclass

from features.iso import ZONE_LETTERS
from features.vibration import vibration_feature_info

_WINDOW = re.compile(r"^(mean|std|min|max|slope)__(\d+)h$")
_STAT_WORDS = {
    "mean": "mean",
    "std": "variability (std)",
    "min": "minimum",
    "max": "maximum",
    "slope": "trend",
}


@dataclass(frozen=True)
class Described:
    unit: str
    description: str


def sensor_words(sensor: str) -> str:
    """``temperature_bearing`` -> ``bearing temperature``; other names with spaces for underscores."""
    if sensor.startswith("temperature_"):
        return f"{sensor.removeprefix('temperature_').replace('_', ' ')} temperature"
    for suffix in ("_rpm", "_pct", "_psia", "_hz", "_mm_s"):
        sensor = sensor.removesuffix(suffix)
    return _words(sensor)


def _words(signal: str) -> str:
    """``acc_horizontal`` -> ``acc horizontal`` (``bearing1__x`` -> ``bearing1 x``)."""
    return " ".join(signal.replace("_", " ").split())


def sensor_unit(sensor: str) -> str:
    """Unit of a telemetry column from the data contract's naming rules."""
    if sensor.startswith("temperature"):
        return "°C"
    for suffix, unit in (("_rpm", "rpm"), ("_pct", "%"), ("_psia", "psia"), ("_hz", "Hz"), ("_mm_s", "mm/s")):
        if sensor.endswith(suffix):
            return unit
    return ""


def split_name(name: str) -> tuple[str, str, str]:
    """``<kind>__<signal>__<feature>`` -> (kind, signal, feature). A signal may hold '__' itself (a channel
    named ``bearing1__x``): the split is the first that leaves a feature this library computes."""
    kind, _, tail = name.partition("__")
    parts = tail.split("__")
    for cut in range(1, len(parts)):
        signal, rest = "__".join(parts[:cut]), "__".join(parts[cut:])
        if _known(kind, signal, rest):
            return kind, signal, rest
    return kind, parts[0], "__".join(parts[1:])


def _known(kind: str, signal: str, rest: str) -> bool:
    if kind == "vib":
        if rest == "iso_zone":
            return True
        base = rest.split("__slope__")[0].removesuffix("__ratio_to_baseline")
        try:
            vibration_feature_info(base)
        except KeyError:
            return False
        return True
    if kind == "tel":
        return signal == "maintenance" or rest in _TEL_FEATURES or _WINDOW.match(rest) is not None
    return False


_TEL_FEATURES = ("last", "rise_over_ambient", "rise_over_fleet")


def describe(name: str) -> Described:
    """Unit and one-line description of any feature column."""
    kind, signal, rest = split_name(name)
    if kind == "vib" and rest == "iso_zone":
        return Described(
            "zone",
            f"ISO 20816 vibration severity zone, 1=A (new) to 4=D (damage) ({_words(signal)})",
        )
    if kind == "vib" and "__slope__" in rest:
        base, window = rest.split("__slope__")
        info = vibration_feature_info(base)
        unit = f"{info.unit}/h" if info.unit else "per h"
        return Described(unit, f"{info.description} ({_words(signal)}) trend over {window[:-1]} h")
    if kind == "vib":
        ratio = rest.endswith("__ratio_to_baseline")
        info = vibration_feature_info(rest.removesuffix("__ratio_to_baseline"))
        where = f" ({_words(signal)})"
        if ratio:
            return Described("x", f"{info.description}{where} relative to its healthy level")
        return Described(info.unit, f"{info.description}{where}")
    if kind == "tel" and signal == "maintenance":
        return Described("h", "time since last maintenance or repair")
    words, unit = sensor_words(signal), sensor_unit(signal)
    if rest == "last":
        return Described(unit, f"{words}")
    if rest == "rise_over_ambient":
        return Described(unit, f"{words} above ambient")
    if rest == "rise_over_fleet":
        return Described(unit, f"{words} above the median of its machine type")
    if match := _WINDOW.match(rest):
        stat, hours = match.groups()
        slope_unit = f"{unit}/h" if unit else "per h"
        return Described(
            slope_unit if stat == "slope" else unit, f"{words} {_STAT_WORDS[stat]} over {hours} h"
        )
    return Described("", name)


def short_description(name: str) -> str:
    """The description without its parenthetical explanations and definitions, for one-line risk drivers."""
    text = re.sub(r"\s*\([^)]*\)", "", describe(name).description).split(":")[0]
    channel = _words(split_name(name)[1]) if name.startswith("vib__") else ""
    return f"{text} ({channel})" if channel else text


def driver_base(name: str) -> str:
    """The feature a driver is about: a ratio to baseline and the level itself count as one driver."""
    return name.removesuffix("__ratio_to_baseline")


def driver_phrase(name: str, value: float) -> str:
    """How a crew reads a risk driver: 'bearing temperature 14 °C above ambient', 'outer-race ... 6.0x its healthy level'."""
    info = describe(name)
    if name.endswith("__ratio_to_baseline"):
        return f"{short_description(driver_base(name))} {value:.1f}x its healthy level"
    if name.endswith("__rise_over_ambient"):
        return f"{info.description.removesuffix(' above ambient')} {value:.0f} {info.unit} above ambient"
    if name.endswith("__rise_over_fleet"):
        base = info.description.removesuffix(" above the median of its machine type")
        return f"{base} {value:.0f} {info.unit} above the median of its machine type"
    if name.endswith("__iso_zone") and value in ZONE_LETTERS:
        return f"ISO 20816 zone {ZONE_LETTERS[int(value)]} ({_words(split_name(name)[1])})"
    if name.startswith("vib__") and "__slope__" in name:
        base, window = name.split("__slope__")
        direction = "rising" if value >= 0 else "falling"
        return f"{short_description(base)} {direction} {abs(value):.2g} {info.unit} over {window[:-1]} h"
    if "__slope__" in name:
        direction = "rising" if value >= 0 else "falling"
        return f"{info.description.replace(' trend', '')} {direction} {abs(value):.2g} {info.unit}"
    unit = f" {info.unit}" if info.unit and info.unit != "x" else ""
    return f"{short_description(name)} {value:.3g}{unit}"
