"""Physics-shaped simulated fleet of rotating machines in the equipment data contract v1 layout.

``simulate(out, config)`` writes (all timestamps ``timestamp[us, tz=UTC]``, machine ids like ``M0001``):

- ``machines.parquet``: fleet (type, site, install date, rated speed, bearing geometry, ISO 20816 class).
- ``telemetry/part-0000.parquet``: one row per machine and reading interval: bearing and ambient
  temperature (°C), shaft speed (rpm), load (%).
- ``waveforms/part-0000.parquet``: one vibration snapshot per machine and day on channel ``acc_horizontal``:
  ``sample_rate_hz``, ``speed_rpm`` (true speed during the snapshot), ``values`` (list<float32>, g).
- ``events.parquet``: ``failure`` and ``maintenance`` events with the ``component`` concerned.
- ``inbox/<YYYY-MM-DD>/``: with ``inbox_days=K`` the last K days are written here, one batch per day
  (machines copy, telemetry, waveforms, events if any), instead of into the history above.
- ``truth.parquet`` (not a contract table, for evaluation only), one row per episode:
  ``machine_id``; ``mode``: machine faults ``bearing_outer`` | ``bearing_inner`` | ``bearing_ball`` |
  ``imbalance`` | ``lubrication``, or sensor faults ``sensor_stuck`` | ``sensor_spikes`` | ``sensor_dropout``
  (the machine itself is healthy); ``onset``: hidden start of the degradation (may precede the first
  day: the fleet is aged) or of the sensor fault; ``end``: time of the failure or of the repairing
  maintenance, end of a sensor episode, NaT if the fault is still growing at the end of the period;
  ``ended_by``: ``failure`` | ``maintenance`` | ``none`` (still running, or a sensor episode).

Physics: operating regimes follow shifts (night low load, day high, lighter weekends); variable-speed
types run at 0.75-1.0 of rated speed with load, fixed-speed types only vary by motor slip. A snapshot is
1x/2x shaft tones + broadband noise + a structural resonance excited by friction and, for bearing faults,
by an impulse train at BPFO/BPFI/BSF (1-2 % slip jitter, amplitude-modulated at shaft speed for the inner
race and at FTF for balls). Severity grows exponentially from onset to failure (severity 1); the machine
then stops 1-3 days and restarts with a new component. Lubrication faults heat first, then add
high-frequency broadband vibration. Same seed gives byte-identical output.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import fft as sp_fft
from scipy.signal import lfilter

US_PER_DAY = 86_400_000_000
TS = pa.timestamp("us", tz="UTC")
CHANNEL = "acc_horizontal"
# byte-stream-split float32 samples compress ~25 % better under zstd at no speed cost
WAVEFORM_PARQUET = {
    "compression": "zstd",
    "use_dictionary": False,
    "use_byte_stream_split": ["values.list.element"],
}
WARMUP_DAYS = 30.0  # faults are drawn from before the first day so the fleet starts aged
FAULT_RATE_PER_DAY = 0.0075  # ~44 % of machines see a fault over 60 days, ~12 % degrading at the end
MAINTENANCE_RATE_PER_DAY = 0.05 / 30  # planned maintenance: ~5 % of machines per month
FAULT_MODES = ("bearing_outer", "bearing_inner", "bearing_ball", "imbalance", "lubrication")
FAULT_MODE_P = (0.3, 0.2, 0.1, 0.2, 0.2)
FAULT_COMPONENT = ("bearing", "bearing", "bearing", "rotor", "lubrication")
OUTER, INNER, BALL, IMBALANCE, LUBRICATION = range(5)
HEAT_MAX_C = (18.0, 18.0, 18.0, 6.0, 25.0)  # bearing heating at severity 1, per mode
SENSOR_RATE_PER_DAY = {"sensor_stuck": 0.03 / 60, "sensor_spikes": 0.04 / 60, "sensor_dropout": 0.04 / 60}
ADC_LSB_G = 2.0**-12  # 16-bit accelerometer ADC over +-8 g
ADC_RANGE_G = 8.0
SHIFT_HOURS = (0.0, 5.75, 6.25, 13.75, 14.25, 21.75, 22.25, 24.0)  # night / day / evening shifts
SHIFT_LEVEL = (0.4, 0.4, 0.92, 0.92, 0.75, 0.75, 0.4, 0.4)  # load fraction per shift
WEEKEND_FACTOR = 0.7


@dataclass(frozen=True)
class _MachineType:
    """Static description of one machine type (speeds in rpm, bearing geometry in mm/deg)."""

    name: str
    share: float
    rated_rpm: float
    sync_rpm: float
    variable_speed: bool
    n_balls: int
    ball_mm: float
    pitch_mm: float
    vibration_class: str
    shift_swing: float
    imbalance_g: float
    temp_rise_c: float


MACHINE_TYPES = (  # deep-groove bearings: 6309, 6205, 6311, 6206
    _MachineType("pump", 0.35, 2960.0, 3000.0, True, 8, 17.46, 72.39, "II", 0.8, 0.06, 22.0),
    _MachineType("fan", 0.25, 1480.0, 1500.0, True, 9, 7.94, 39.04, "I", 0.6, 0.03, 15.0),
    _MachineType("compressor", 0.15, 3560.0, 3600.0, False, 8, 20.64, 87.5, "III", 0.4, 0.08, 28.0),
    _MachineType("conveyor_motor", 0.25, 1780.0, 1800.0, False, 9, 9.53, 46.5, "I", 1.0, 0.03, 18.0),
)
SITES = (("plant_a", 18.0, 3.0), ("plant_b", 24.0, 5.0), ("plant_c", 21.0, 2.0))  # name, mean °C, swing °C


@dataclass(frozen=True)
class SimulationConfig:
    """Size, seed and sampling of a simulated fleet."""

    machines: int = 200
    days: int = 60
    seed: int = 0
    start: str = "2026-01-01"  # UTC date of the first day
    inbox_days: int = 0  # last K days go to OUT/inbox/<YYYY-MM-DD>/ instead of the history
    sample_rate_hz: float = 10240.0
    snapshot_samples: int = 4096
    telemetry_interval_minutes: int = 60


@dataclass(frozen=True)
class SimulationSummary:
    """What simulate() wrote, for the CLI to print (row/event counts cover history and inbox together)."""

    out: Path
    machines: int
    days: int
    telemetry_rows: int
    waveform_rows: int
    events: int
    failures: int
    faulty_at_end: int
    inbox_batches: list[Path]
    bytes_written: int


@dataclass
class _Fleet:
    """Per-machine parameters as arrays of length machines (rpm, mm, Hz, g, °C; hidden ones not written)."""

    ids: pa.Array
    kind: np.ndarray
    site: np.ndarray
    rated: np.ndarray
    sync: np.ndarray
    variable: np.ndarray
    n_balls: np.ndarray
    ball_mm: np.ndarray
    pitch_mm: np.ndarray
    resonance_hz: np.ndarray
    damping: np.ndarray
    slip_jitter: np.ndarray
    imbalance_g: np.ndarray
    misalign_g: np.ndarray
    noise_g: np.ndarray
    impulse_g: np.ndarray
    temp_rise_c: np.ndarray
    duty: np.ndarray
    swing: np.ndarray
    ambient_offset_c: np.ndarray
    snapshot_hour: np.ndarray
    installed_us: np.ndarray


@dataclass(frozen=True)
class _Episode:
    """One machine fault: times in days from the first day; fail_at is where severity reaches 1."""

    machine: int
    mode: int
    onset: float
    fail_at: float
    end: float  # nan while still running at the end
    ended_by: str


@dataclass
class _History:
    """Machine faults, events (machine, day, kind, component) and stops (machine, from, to) in days."""

    episodes: list[_Episode]
    events: list[tuple[int, float, str, str]]
    stops: list[tuple[int, float, float]]


@dataclass(frozen=True)
class _SensorFault:
    """A sensor episode on the telemetry grid: readings [first, stop) or the listed spike readings."""

    machine: int
    mode: str
    first: int
    stop: int
    spikes: tuple[int, ...] = ()
    spike_c: float = 0.0


def _validate(config: SimulationConfig) -> dt.date:
    """Check the config and return the start date."""
    if config.machines < 1:
        raise ValueError(f"machines must be >= 1, got {config.machines}")
    if config.days < 2:
        raise ValueError(f"days must be >= 2, got {config.days}")
    if not 0 <= config.inbox_days < config.days:
        raise ValueError(f"inbox_days must be in [0, days={config.days}), got {config.inbox_days}")
    if config.sample_rate_hz <= 0 or config.snapshot_samples < 256:
        raise ValueError("sample_rate_hz must be > 0 and snapshot_samples >= 256")
    if not 1 <= config.telemetry_interval_minutes <= 1440 or 1440 % config.telemetry_interval_minutes:
        raise ValueError("telemetry_interval_minutes must divide a day (1440 minutes)")
    try:
        return dt.date.fromisoformat(config.start)
    except (TypeError, ValueError):
        raise ValueError(f"start must be an ISO date like 2026-01-01, got {config.start!r}") from None


def _prepare_out(out: str | Path) -> Path:
    """Create the output folder, refusing to write into a non-empty one."""
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not empty: choose another folder or delete it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _make_fleet(rng: np.random.Generator, machines: int, start_us: int, fs: float) -> _Fleet:
    """Draw machine types, sites and per-machine physical parameters."""
    kind = rng.choice(len(MACHINE_TYPES), size=machines, p=[t.share for t in MACHINE_TYPES])
    site = rng.integers(0, len(SITES), size=machines)

    def col(attr: str) -> np.ndarray:
        return np.array([getattr(MACHINE_TYPES[k], attr) for k in kind])

    def spread(sigma: float) -> np.ndarray:
        return rng.lognormal(0.0, sigma, machines)

    width = max(4, len(str(machines)))
    ids = pa.array([f"M{i + 1:0{width}d}" for i in range(machines)])
    installed = start_us - rng.integers(30, 3650, machines) * US_PER_DAY
    return _Fleet(
        ids=ids, kind=kind, site=site, rated=col("rated_rpm"), sync=col("sync_rpm"),
        variable=col("variable_speed"), n_balls=col("n_balls"), ball_mm=col("ball_mm"),
        pitch_mm=col("pitch_mm"), resonance_hz=np.minimum(rng.uniform(2000, 4500, machines), 0.4 * fs),
        damping=rng.uniform(0.04, 0.09, machines), slip_jitter=rng.uniform(0.01, 0.02, machines),
        imbalance_g=col("imbalance_g") * spread(0.3), misalign_g=0.3 * col("imbalance_g") * spread(0.4),
        noise_g=rng.uniform(0.01, 0.03, machines), impulse_g=2.5 * spread(0.25),
        temp_rise_c=col("temp_rise_c") * spread(0.15), duty=rng.uniform(0.85, 1.05, machines),
        swing=col("shift_swing"), ambient_offset_c=rng.normal(0, 1.0, machines),
        snapshot_hour=np.round(rng.uniform(1, 23, machines) * 60) / 60, installed_us=installed,
    )  # fmt: skip


def _machines_table(fleet: _Fleet) -> pa.Table:
    """The fleet contract table."""
    kind = fleet.kind
    return pa.table({
        "machine_id": fleet.ids,
        "machine_type": pa.array([MACHINE_TYPES[k].name for k in kind]),
        "site": pa.array([SITES[s][0] for s in fleet.site]),
        "installed_at": pa.array(fleet.installed_us, type=TS),
        "rated_speed_rpm": pa.array(fleet.rated, type=pa.float64()),
        "bearing_n_balls": pa.array(fleet.n_balls, type=pa.int64()),
        "bearing_ball_diameter_mm": pa.array(fleet.ball_mm, type=pa.float64()),
        "bearing_pitch_diameter_mm": pa.array(fleet.pitch_mm, type=pa.float64()),
        "bearing_contact_angle_deg": pa.array(np.zeros(kind.size), type=pa.float64()),
        "vibration_class": pa.array([MACHINE_TYPES[k].vibration_class for k in kind]),
    })  # fmt: skip


def _machine_history(rng: np.random.Generator, machine: int, days: int) -> _History:
    """Draw one machine's fault episodes, failures, planned maintenance and stops (days from start)."""
    maint = np.sort(
        rng.uniform(-WARMUP_DAYS, days, rng.poisson(MAINTENANCE_RATE_PER_DAY * (days + WARMUP_DAYS)))
    )
    hist = _History([], [], [])
    repaired: dict[float, int] = {}
    t = -WARMUP_DAYS
    while (onset := t + rng.exponential(1 / FAULT_RATE_PER_DAY)) < days:
        mode = int(rng.choice(len(FAULT_MODES), p=FAULT_MODE_P))
        fail_at = onset + 5 + 20 * math.sqrt(rng.uniform())  # 5-25 days, slow wear more likely
        hits = maint[(maint > onset) & (maint < min(fail_at, days))]
        if hits.size:
            end, by, t = float(hits[0]), "maintenance", float(hits[0]) + 0.25
            repaired[end] = mode
        elif fail_at < days:
            end, by, t = fail_at, "failure", fail_at + rng.uniform(1, 3)
            hist.events.append((machine, fail_at, "failure", FAULT_COMPONENT[mode]))
            hist.stops.append((machine, fail_at, t))
            maint = maint[(maint < fail_at) | (maint >= t)]
        else:
            end, by = math.nan, "none"
        hist.episodes.append(_Episode(machine, mode, onset, fail_at, end, by))
        if by == "none":
            break
    for when in maint:
        comp = FAULT_COMPONENT[repaired[when]] if when in repaired else str(
            rng.choice(["lubrication", "bearing", "rotor"], p=[0.6, 0.25, 0.15])
        )  # fmt: skip
        hist.events.append((machine, float(when), "maintenance", comp))
        hist.stops.append((machine, float(when), float(when) + rng.uniform(2, 8) / 24))
    return _drop_before_start(hist)


def _drop_before_start(hist: _History) -> _History:
    """Keep only what is visible from day 0 on (episodes still running at day 0 are kept)."""
    return _History(
        [e for e in hist.episodes if not e.end < 0],
        [e for e in hist.events if e[1] >= 0],
        [s for s in hist.stops if s[2] > 0],
    )


def _fleet_history(rng: np.random.Generator, machines: int, days: int) -> _History:
    """Draw fault/maintenance histories for every machine, in machine order."""
    parts = [_machine_history(rng, m, days) for m in range(machines)]
    return _History(
        [e for p in parts for e in p.episodes],
        sorted((e for p in parts for e in p.events), key=lambda e: (e[1], e[0])),
        [s for p in parts for s in p.stops],
    )


def _sensor_faults(rng: np.random.Generator, machines: int, days: int, steps: int) -> list[_SensorFault]:
    """Draw stuck/spike/dropout temperature-sensor episodes on the telemetry grid (steps per day)."""
    faults = []
    total = days * steps
    for m in range(machines):
        for mode, rate in SENSOR_RATE_PER_DAY.items():
            for _ in range(rng.poisson(rate * days)):
                hours = {"sensor_stuck": (6, 72), "sensor_spikes": (24, 72), "sensor_dropout": (2, 24)}[mode]
                length = max(1, round(rng.uniform(*hours) * steps / 24))
                first = int(rng.integers(0, max(1, total - length)))
                stop = min(total, first + length)
                spikes = tuple(sorted({int(i) for i in rng.integers(first, stop, rng.integers(2, 7))}))
                if mode == "sensor_spikes":
                    first, stop = spikes[0], spikes[-1] + 1
                faults.append(_SensorFault(m, mode, first, stop, spikes, float(rng.uniform(250, 350))))
    return faults


def _growth(u: np.ndarray) -> np.ndarray:
    """Exponential degradation curve from 0 at onset (u=0) to 1 at failure (u=1)."""
    return np.expm1(3.5 * np.clip(u, 0.0, 1.0)) / math.expm1(3.5)


def _fault_state(episodes: list[_Episode], times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active mode (-1 healthy), vibration severity and heating fraction at times (machines x n, days)."""
    mode = np.full(times.shape, -1, dtype=np.int8)
    vib, heat = np.zeros(times.shape), np.zeros(times.shape)
    for ep in episodes:
        row = times[ep.machine]
        on = (row >= ep.onset) & (row < (np.inf if math.isnan(ep.end) else ep.end))
        u = (row[on] - ep.onset) / (ep.fail_at - ep.onset)
        mode[ep.machine, on] = ep.mode
        if ep.mode == LUBRICATION:  # heats first, vibrates in the second half
            vib[ep.machine, on], heat[ep.machine, on] = _growth((u - 0.5) / 0.5), np.clip(u, 0, 1) ** 0.7
        else:
            vib[ep.machine, on], heat[ep.machine, on] = _growth(u), _growth(u)
    return mode, vib, heat


def _stopped(stops: list[tuple[int, float, float]], times: np.ndarray) -> np.ndarray:
    """True where a machine is stopped (failure downtime or maintenance) at times (machines x n, days)."""
    down = np.zeros(times.shape, dtype=bool)
    for machine, begin, end in stops:
        down[machine] |= (times[machine] >= begin) & (times[machine] < end)
    return down


def _operating_point(
    fleet: _Fleet, times: np.ndarray, weekday0: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Load (%) and true shaft speed (rpm) at times (machines x n, days from the first midnight)."""
    profile = np.interp((times % 1.0) * 24.0, SHIFT_HOURS, SHIFT_LEVEL)
    mean = float(np.mean(SHIFT_LEVEL))
    level = mean + fleet.swing[:, None] * (profile - mean)
    weekend = (weekday0 + np.floor(times).astype(np.int64)) % 7 >= 5
    level = np.where(weekend, level * WEEKEND_FACTOR, level)
    load = np.clip(100 * fleet.duty[:, None] * level + rng.normal(0, 3.0, times.shape), 5.0, 100.0)
    frac = 0.75 + 0.25 * np.clip((load - 30.0) / 60.0, 0.0, 1.0)
    var_speed = fleet.rated[:, None] * frac * (1 + rng.normal(0, 0.002, times.shape))
    slip = fleet.sync[:, None] - (fleet.sync - fleet.rated)[:, None] * load / 100.0
    fixed_speed = slip * (1 + rng.normal(0, 0.0003, times.shape))
    return load, np.where(fleet.variable[:, None], var_speed, fixed_speed)


def _ambient(fleet: _Fleet, times: np.ndarray, days: int, rng: np.random.Generator) -> np.ndarray:
    """True ambient temperature (°C): site mean + daily cycle peaking at 15:00 + slow weather drift."""
    weather = np.zeros((len(SITES), days + 2))
    for d in range(1, days + 2):
        weather[:, d] = 0.8 * weather[:, d - 1] + rng.normal(0, 1.2, len(SITES))
    drift = np.stack(
        [np.interp(times[m], np.arange(days + 2), weather[fleet.site[m]]) for m in range(len(times))]
    )
    mean = np.array([SITES[s][1] for s in fleet.site])[:, None]
    swing = np.array([SITES[s][2] for s in fleet.site])[:, None]
    daily = swing * np.cos(2 * np.pi * ((times % 1.0) * 24.0 - 15.0) / 24.0)
    return mean + daily + drift + fleet.ambient_offset_c[:, None]


def _bearing_temperature(
    fleet: _Fleet, ambient: np.ndarray, load: np.ndarray, speed: np.ndarray, heat_c: np.ndarray, dt_min: int
) -> np.ndarray:
    """True bearing temperature (°C): ambient + load/speed rise + fault heat, 90 min thermal lag."""
    running = speed > 0
    friction_c = fleet.temp_rise_c[:, None] * load / 100 * speed / fleet.rated[:, None]
    target = ambient + friction_c + heat_c * (0.5 + 0.5 * load / 100) * running
    a = math.exp(-dt_min / 90.0)
    return lfilter([1 - a], [1, -a], target, axis=1, zi=a * target[:, :1])[0]


def _telemetry(
    fleet: _Fleet, hist: _History, sensors: list[_SensorFault], cfg: SimulationConfig, start: dt.date, rng
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Telemetry readings on the grid as flat machine-major columns, and each row's day index."""
    weekday0 = start.weekday()
    steps = 1440 // cfg.telemetry_interval_minutes
    grid_us = np.arange(cfg.days * steps, dtype=np.int64) * cfg.telemetry_interval_minutes * 60_000_000
    times = np.broadcast_to(grid_us / US_PER_DAY, (cfg.machines, grid_us.size))
    down = _stopped(hist.stops, times)
    load, speed = _operating_point(fleet, times, weekday0, rng)
    load, speed = np.where(down, 0.0, load), np.where(down, 0.0, speed)
    ambient = _ambient(fleet, times, cfg.days, rng)
    mode, _, heat = _fault_state(hist.episodes, times)
    heat_c = np.where(mode >= 0, np.take(HEAT_MAX_C, np.maximum(mode, 0)) * heat, 0.0)
    temp = _bearing_temperature(fleet, ambient, load, speed, heat_c, cfg.telemetry_interval_minutes)
    temp = temp + rng.normal(0, 0.3, temp.shape)
    keep = ~down
    _apply_sensor_faults(sensors, temp, keep)
    rows, cols = np.nonzero(keep)
    columns = {
        "machine": rows,
        "timestamp": _epoch_us(start) + grid_us[cols],
        "temperature_bearing": np.round(temp[rows, cols], 2),
        "temperature_ambient": np.round(ambient[rows, cols] + rng.normal(0, 0.15, rows.size), 2),
        "speed_rpm": np.round(speed[rows, cols] * (1 + rng.normal(0, 0.0005, rows.size)), 1),
        "load_pct": np.round(load[rows, cols], 1),
    }
    return columns, cols // steps


def _apply_sensor_faults(sensors: list[_SensorFault], temp: np.ndarray, keep: np.ndarray) -> None:
    """Corrupt bearing temperature readings (stuck, spikes) and drop rows (dropout) in place."""
    for f in sensors:
        if f.mode == "sensor_stuck":
            temp[f.machine, f.first : f.stop] = round(float(temp[f.machine, f.first]), 1)
        elif f.mode == "sensor_spikes":
            temp[f.machine, list(f.spikes)] += f.spike_c
        else:
            keep[f.machine, f.first : f.stop] = False


def _defect_hz(fleet: _Fleet, rows: np.ndarray, mode: np.ndarray, shaft_hz: np.ndarray) -> tuple:
    """Defect impulse rate and modulation rate (Hz) per row for its bearing fault mode."""
    ratio = fleet.ball_mm[rows] / fleet.pitch_mm[rows]  # contact angle 0 for deep-groove bearings
    n = fleet.n_balls[rows]
    bpfo = n / 2 * shaft_hz * (1 - ratio)
    bpfi = n / 2 * shaft_hz * (1 + ratio)
    bsf = shaft_hz / (2 * ratio) * (1 - ratio**2)
    ftf = shaft_hz / 2 * (1 - ratio)
    rate = np.select([mode == OUTER, mode == INNER], [bpfo, bpfi], bsf)
    mod = np.select([mode == OUTER, mode == INNER], [np.zeros_like(shaft_hz), shaft_hz], ftf)
    return rate, mod


def _impulse_train(
    rng: np.random.Generator, rate: np.ndarray, mod_hz: np.ndarray, amp: np.ndarray, jitter: np.ndarray,
    fs: float, n: int,
) -> np.ndarray:  # fmt: skip
    """Impacts at rate (Hz) with slip jitter, amplitude amp (g) modulated at mod_hz, as rows of n samples."""
    k = math.ceil(n / fs * rate.max() * 1.2) + 2
    period = 1.0 / rate
    steps = period[:, None] * (1 + jitter[:, None] * rng.standard_normal((rate.size, k)))
    steps[:, 0] = rng.uniform(0, 1, rate.size) * period
    times = np.cumsum(steps, axis=1)
    phase = rng.uniform(0, 2 * np.pi, rate.size)[:, None]
    depth = np.where(mod_hz > 0, 0.6, 0.0)[:, None]
    envelope = 1 - depth / 2 * (1 - np.cos(2 * np.pi * mod_hz[:, None] * times + phase))
    heights = amp[:, None] * envelope * (1 + 0.1 * rng.standard_normal(times.shape))
    idx = np.rint(times * fs).astype(np.int64)
    valid = idx < n
    out = np.zeros((rate.size, n))
    np.add.at(
        out, (np.broadcast_to(np.arange(rate.size)[:, None], idx.shape)[valid], idx[valid]), heights[valid]
    )
    return out


def _ring(excitation: np.ndarray, resonance_hz: np.ndarray, damping: np.ndarray, fs: float) -> np.ndarray:
    """Structural response (g): excitation rows convolved with each row's damped-sinusoid impulse response."""
    n = excitation.shape[1]
    decay = damping * 2 * np.pi * resonance_hz
    length = min(n, math.ceil(fs * 7 / decay.min()))
    tk = np.arange(length) / fs
    kernel = np.exp(-decay[:, None] * tk) * np.sin(
        2 * np.pi * resonance_hz[:, None] * np.sqrt(1 - damping**2)[:, None] * tk
    )
    nfft = sp_fft.next_fast_len(n + length - 1, real=True)
    spec = sp_fft.rfft(excitation, nfft, axis=1) * sp_fft.rfft(kernel, nfft, axis=1)
    return sp_fft.irfft(spec, nfft, axis=1)[:, :n]


def _snapshots(
    fleet: _Fleet, rows: np.ndarray, speed: np.ndarray, mode: np.ndarray, sev: np.ndarray,
    rng: np.random.Generator, fs: float, n: int,
) -> np.ndarray:  # fmt: skip
    """Acceleration snapshots (g, float32, ADC-quantised) for the given machines, one row each."""
    t = np.arange(n) / fs
    shaft = speed / 60.0
    rel = speed / fleet.rated[rows]
    imb = fleet.imbalance_g[rows] * rel**2 * (1 + 5 * sev * (mode == IMBALANCE))
    phase = rng.uniform(0, 2 * np.pi, (2, rows.size, 1))
    x = imb[:, None] * np.sin(2 * np.pi * shaft[:, None] * t + phase[0])
    x += (fleet.misalign_g[rows] * rel**2)[:, None] * np.sin(4 * np.pi * shaft[:, None] * t + phase[1])
    x += fleet.noise_g[rows][:, None] * rng.standard_normal((rows.size, n))
    excitation = 0.01 * rng.standard_normal((rows.size, n))
    lub = np.flatnonzero((mode == LUBRICATION) & (sev > 0))
    if lub.size:
        friction = 0.6 * sev[lub, None] * rng.standard_normal((lub.size, n))
        excitation[lub] += friction
        x[lub, 1:] += 0.5 * np.diff(friction, axis=1)
    brg = np.flatnonzero(np.isin(mode, (OUTER, INNER, BALL)))
    if brg.size:
        rate, mod = _defect_hz(fleet, rows[brg], mode[brg], shaft[brg])
        amp = fleet.impulse_g[rows[brg]] * rel[brg] * (0.04 + 0.96 * sev[brg])
        excitation[brg] += _impulse_train(rng, rate, mod, amp, fleet.slip_jitter[rows[brg]], fs, n)
    x += _ring(excitation, fleet.resonance_hz[rows], fleet.damping[rows], fs)
    return _adc(x)


def _adc(x: np.ndarray) -> np.ndarray:
    """Quantise acceleration (g) like a 16-bit +-8 g accelerometer ADC, as float32."""
    full_scale = ADC_RANGE_G / ADC_LSB_G
    return (np.clip(np.rint(x / ADC_LSB_G), -full_scale, full_scale) * ADC_LSB_G).astype(np.float32)


def _waveform_schema() -> pa.Schema:
    """Arrow schema of the waveforms contract table."""
    return pa.schema([
        ("machine_id", pa.string()),
        ("timestamp", TS),
        ("channel", pa.string()),
        ("sample_rate_hz", pa.float64()),
        ("speed_rpm", pa.float64()),
        ("values", pa.list_(pa.float32())),
    ])  # fmt: skip


def _waveform_table(
    fleet: _Fleet, rows: np.ndarray, ts_us: np.ndarray, speed: np.ndarray, fs: float, x: np.ndarray
) -> pa.Table:
    """One waveform row per snapshot: values as list<float32> over the flat sample buffer."""
    offsets = pa.array(np.arange(rows.size + 1, dtype=np.int32) * x.shape[1])
    arrays = [
        fleet.ids.take(pa.array(rows, type=pa.int64())),
        pa.array(ts_us, type=TS),
        pa.array([CHANNEL] * rows.size, type=pa.string()),
        pa.array(np.full(rows.size, fs), type=pa.float64()),
        pa.array(speed, type=pa.float64()),
        pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1), type=pa.float32())),
    ]
    return pa.Table.from_arrays(arrays, schema=_waveform_schema())


def _write(table: pa.Table, path: Path, waveforms: bool = False) -> None:
    """Write one Parquet file (zstd), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **(WAVEFORM_PARQUET if waveforms else {"compression": "zstd"}))


def _telemetry_table(fleet: _Fleet, cols: dict[str, np.ndarray]) -> pa.Table:
    """Telemetry contract table from flat columns."""
    return pa.table({
        "machine_id": fleet.ids.take(pa.array(cols["machine"])),
        "timestamp": pa.array(cols["timestamp"], type=TS),
        **{k: pa.array(cols[k], type=pa.float64()) for k in list(cols)[2:]},
    })  # fmt: skip


def _events_table(fleet: _Fleet, events: list[tuple[int, float, str, str]], start_us: int) -> pa.Table:
    """Events contract table (timestamps rounded to the second)."""
    return pa.table({
        "machine_id": fleet.ids.take(pa.array([e[0] for e in events], type=pa.int64())),
        "timestamp": pa.array(_to_us(start_us, np.array([e[1] for e in events], dtype=float)), type=TS),
        "kind": pa.array([e[2] for e in events], type=pa.string()),
        "component": pa.array([e[3] for e in events], type=pa.string()),
    })  # fmt: skip


def _epoch_us(day: dt.date) -> int:
    """Microseconds since the Unix epoch at midnight UTC of day."""
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY


def _to_us(start_us: int, days: np.ndarray) -> np.ndarray:
    """Days after start to epoch microseconds, rounded to the second (NaN maps to start: mask it)."""
    return start_us + np.rint(np.nan_to_num(days) * 86_400).astype(np.int64) * 1_000_000


def _truth_table(
    fleet: _Fleet, hist: _History, sensors: list[_SensorFault], start_us: int, step_days: float
) -> pa.Table:
    """Truth: machine fault and sensor episodes, sorted by machine and onset."""
    rows = [(e.machine, FAULT_MODES[e.mode], e.onset, e.end, e.ended_by) for e in hist.episodes]
    rows += [(f.machine, f.mode, f.first * step_days, f.stop * step_days, "none") for f in sensors]
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    ends = np.array([r[3] for r in rows], dtype=float)
    return pa.table({
        "machine_id": fleet.ids.take(pa.array([r[0] for r in rows], type=pa.int64())),
        "mode": pa.array([r[1] for r in rows], type=pa.string()),
        "onset": pa.array(_to_us(start_us, np.array([r[2] for r in rows], dtype=float)), type=TS),
        "end": pa.array(_to_us(start_us, ends), type=TS, mask=np.isnan(ends)),
        "ended_by": pa.array([r[4] for r in rows], type=pa.string()),
    })  # fmt: skip


def _snapshot_plan(fleet: _Fleet, hist: _History, cfg: SimulationConfig, weekday0: int, rng) -> dict:
    """Snapshot times (days, fixed time of day per machine + jitter), true speed, fault state, running."""
    jitter_min = np.clip(rng.normal(0, 3.0, (cfg.machines, cfg.days)), -10, 10)
    times = np.arange(cfg.days)[None, :] + (fleet.snapshot_hour[:, None] * 60 + jitter_min) / 1440
    times = np.rint(times * 86_400) / 86_400
    _, speed = _operating_point(fleet, times, weekday0, rng)
    mode, vib, _ = _fault_state(hist.episodes, times)
    return {"times": times, "speed": speed, "mode": mode, "sev": vib, "up": ~_stopped(hist.stops, times)}


def _day_waveforms(
    fleet: _Fleet, plan: dict, day: int, cfg: SimulationConfig, rng, start_us: int
) -> pa.Table:
    """Waveform table of one day's snapshots for the machines that are running."""
    rows = np.flatnonzero(plan["up"][:, day])
    speed = plan["speed"][rows, day]
    x = _snapshots(
        fleet, rows, speed, plan["mode"][rows, day], plan["sev"][rows, day], rng,
        cfg.sample_rate_hz, cfg.snapshot_samples,
    )  # fmt: skip
    ts = _to_us(start_us, plan["times"][rows, day])
    return _waveform_table(fleet, rows, ts, speed, cfg.sample_rate_hz, x)


def _write_waveforms(
    path: Path, fleet: _Fleet, plan: dict, cfg: SimulationConfig, start_us: int, rng: np.random.Generator,
    to_inbox: Callable[[int, pa.Table], None], progress: Callable[[int, int], None] | None,
) -> int:  # fmt: skip
    """Generate snapshots day by day into the history file (or to_inbox for the last days); return rows."""
    rows = 0
    day_rngs = rng.spawn(cfg.days)
    path.mkdir(parents=True)
    with pq.ParquetWriter(path / "part-0000.parquet", _waveform_schema(), **WAVEFORM_PARQUET) as writer:
        for day in range(cfg.days):
            waves = _day_waveforms(fleet, plan, day, cfg, day_rngs[day], start_us)
            rows += waves.num_rows
            if day < cfg.days - cfg.inbox_days:
                writer.write_table(waves)
            else:
                to_inbox(day, waves)
            if progress is not None:
                progress(day + 1, cfg.days)
    return rows


def simulate(
    out: str | Path,
    config: SimulationConfig = SimulationConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate a fleet and write it to OUT in the equipment data contract v1 layout."""
    start = _validate(config)
    path = _prepare_out(out)
    start_us, cut = _epoch_us(start), config.days - config.inbox_days
    fleet_rng, fault_rng, sensor_rng, telem_rng, plan_rng, wave_rng = np.random.default_rng(
        config.seed
    ).spawn(6)
    fleet = _make_fleet(fleet_rng, config.machines, start_us, config.sample_rate_hz)
    hist = _fleet_history(fault_rng, config.machines, config.days)
    steps = 1440 // config.telemetry_interval_minutes
    sensors = _sensor_faults(sensor_rng, config.machines, config.days, steps)
    cols, tel_day = _telemetry(fleet, hist, sensors, config, start, telem_rng)
    machines, telemetry = _machines_table(fleet), _telemetry_table(fleet, cols)
    events = _events_table(fleet, hist.events, start_us)
    ev_day = np.array([math.floor(e[1]) for e in hist.events], dtype=np.int64)
    _write(machines, path / "machines.parquet")
    _write(telemetry.filter(tel_day < cut), path / "telemetry" / "part-0000.parquet")
    _write(events.filter(ev_day < cut), path / "events.parquet")
    _write(_truth_table(fleet, hist, sensors, start_us, 1.0 / steps), path / "truth.parquet")
    inbox: list[Path] = []

    def to_inbox(day: int, waves: pa.Table) -> None:
        folder = path / "inbox" / (start + dt.timedelta(days=day)).isoformat()
        _write(machines, folder / "machines.parquet")
        _write(telemetry.filter(tel_day == day), folder / "telemetry" / "part-0000.parquet")
        _write(waves, folder / "waveforms" / "part-0000.parquet", waveforms=True)
        if (ev_day == day).any():
            _write(events.filter(ev_day == day), folder / "events.parquet")
        inbox.append(folder)

    plan = _snapshot_plan(fleet, hist, config, start.weekday(), plan_rng)
    waveform_rows = _write_waveforms(
        path / "waveforms", fleet, plan, config, start_us, wave_rng, to_inbox, progress
    )
    return SimulationSummary(
        out=path, machines=config.machines, days=config.days, telemetry_rows=telemetry.num_rows,
        waveform_rows=waveform_rows, events=events.num_rows,
        failures=sum(e[2] == "failure" for e in hist.events),
        faulty_at_end=sum(e.ended_by == "none" for e in hist.episodes), inbox_batches=inbox,
        bytes_written=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    )  # fmt: skip
