"""The `tau` difficulty profile of the synthetic dataset: scenes as mixtures of shared sound sources, city /
location / level variation and harsh device responses, so the task is about as hard as TAU 2022 Mobile.

Every scene mixes the same library of sources (rumble, engines, rails, traffic, voices, steps, birds, ...)
at its own levels; neighbouring scenes (bus / tram / metro, street_pedestrian / public_square, airport /
shopping_mall / metro_station) differ on a few sources by a few dB (times SCENE_CONTRAST), and every city,
location and recording moves each source's level and the room's EQ a little. Devices tilt the spectrum by 10 dB
and more, cut notches, limit the band, compress and add noise; the unseen devices s4-s6 come from a wider family
than the seen ones. Scenes, cities and devices are fixed (WORLD_SEED); locations and recordings follow the
dataset seed. The constants below were tuned with the demo recipe on split 100 (docs/data.md, "Synthetic dataset").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asc_tf.data.meta import CITIES, CLASSES, DEVICES

SAMPLE_RATE = 44100
WORLD_SEED = 2024 + 100  # another stream than the easy profile's world
GRID = np.geomspace(20.0, SAMPLE_RATE / 2, 160)  # curves are drawn on this log grid, then interpolated
GRID_OCT = np.log2(GRID / 20.0)


@dataclass(frozen=True)
class Source:
    """A sound source: a band (centre, width in octaves, slope) and how it evolves in time."""

    kind: str  # "bed" (stationary), "swell" (slow swells: passing cars, gusts), "babble" (syllabic), "tones", "events"
    centre_hz: float
    width_oct: float
    slope_db_per_octave: float = 0.0
    event_rate: float = 0.0  # events per second (kind "events")
    event_seconds: tuple[float, float] = (0.05, 0.3)
    tones: tuple[float, float] = (0.0, 0.0)  # range of the fundamental (kind "tones")
    harmonics: int = 0


SOURCES: dict[str, Source] = {
    "rumble": Source("bed", 70, 1.6, -2.0),
    "hvac": Source("bed", 400, 2.2, -3.0),
    "wind": Source("swell", 150, 2.5, -3.0),
    "water": Source("bed", 3000, 1.5, 0.0),
    "traffic": Source("swell", 600, 1.8, -2.0),
    "voices": Source("babble", 900, 1.3),
    "announce": Source("babble", 1200, 0.9),
    "engine": Source("tones", 0, 0, tones=(28, 55), harmonics=6),
    "squeal": Source("tones", 0, 0, tones=(900, 2600), harmonics=2),
    "hum": Source("tones", 0, 0, tones=(48, 62), harmonics=3),
    "music": Source("tones", 0, 0, tones=(180, 520), harmonics=4),
    "steps": Source("events", 2500, 1.8, event_rate=2.0, event_seconds=(0.02, 0.08)),
    "birds": Source("events", 4500, 0.6, event_rate=1.5, event_seconds=(0.05, 0.25)),
    "brakes": Source("events", 5000, 0.8, event_rate=0.3, event_seconds=(0.3, 1.2)),
    "doors": Source("events", 700, 1.5, event_rate=0.4, event_seconds=(0.2, 0.6)),
    "beeps": Source("events", 2000, 0.2, event_rate=0.3, event_seconds=(0.1, 0.4)),
}
S = list(SOURCES)
_ = -60.0  # absent

# Levels in dB of each source (columns in SOURCES order) per scene. Families share their sources; neighbours
# differ by a few dB only. A small world-seeded jitter is added on top.
#                      rumble hvac wind water traffic voices announce engine squeal hum music steps birds brakes doors beeps
SCENE_LEVELS: dict[str, tuple[float, ...]] = {
    "airport":           (-12, 0, _, _, -22, -2, -8, -26, _, -10, -20, -6, _, _, -16, -14),
    "shopping_mall":     (-14, -1, _, -22, _, -1, -14, _, _, -12, -9, -5, _, _, -14, -12),
    "metro_station":     (-7, -2, _, _, _, -3, -7, -20, -14, -11, -22, -6, _, -14, -12, -13),
    "bus":               (0, -10, _, _, -7, -6, -18, -3, _, -16, -24, -16, _, -12, -9, -15),
    "tram":              (-1, -11, _, _, -8, -6, -15, -10, -9, -14, _, -16, _, -12, -9, -13),
    "metro":             (0, -10, _, _, -22, -6, -12, -11, -8, -14, _, -16, _, -11, -10, -14),
    "park":              (-10, _, -3, -12, -12, -11, _, _, _, _, -24, -13, -5, _, _, _),
    "public_square":     (-7, _, -6, -11, -7, -4, -24, -22, _, _, -18, -7, -11, -24, _, _),
    "street_pedestrian": (-5, _, -8, -20, -5, -3, -22, -18, _, _, -20, -6, -14, -20, -24, _),
    "street_traffic":    (-1, _, -9, _, 0, -10, _, -6, _, _, _, -14, -20, -10, -22, -24),
}

SCENE_CONTRAST = 3.0  # scales the level differences between scenes (how far apart the scenes are)
# How much the world moves a source's level (dB, standard deviations): per city and per location.
CITY_SD_DB = 1.0
LOCATION_SD_DB = 1.0
RECORDING_SD_DB = 0.5
LEVEL_SD_DB = (2.0, 3.0, 2.0)  # overall level: city, location, recording
ROOM_DB = (0.5, 1.0)  # smooth EQ of a city's and a location's acoustics (amplitude of the ripple)


@dataclass(frozen=True)
class DeviceModel:
    """A microphone and its chain: response curve in dB on GRID, band limits, compression, noise, gain."""

    response_db: tuple[float, ...]
    highpass_hz: float
    lowpass_hz: float
    compress_ratio: float  # 1 = none
    compress_threshold_db: float  # relative to the clip's RMS
    noise_dbfs: float
    gain_db: float


def _gauss(octaves: np.ndarray, centre_hz: float, width_oct: float) -> np.ndarray:
    return np.exp(-0.5 * ((octaves - math.log2(centre_hz / 20.0)) / width_oct) ** 2)


def _smooth_db(rng: np.random.Generator, amplitude_db: float, terms: int = 4) -> np.ndarray:
    """A smooth random curve in dB on GRID (an EQ: a room, a city's acoustics, a microphone's ripple)."""
    curve = np.zeros_like(GRID)
    for k in range(1, terms + 1):
        curve += rng.normal(0.0, amplitude_db / k) * np.cos(2 * np.pi * k * GRID_OCT / 10.0 + rng.uniform(0, 2 * np.pi))
    return curve


def _world() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(WORLD_SEED)
    scenes = {name: SCENE_CONTRAST * np.asarray(SCENE_LEVELS[name], float) + rng.normal(0, 1.0, len(S))
              for name in CLASSES}
    city_levels = {city: rng.normal(0, CITY_SD_DB, len(S)) for city in CITIES}
    city_eq = {city: _smooth_db(rng, ROOM_DB[0]) for city in CITIES}
    return scenes, city_levels, city_eq


def _device_models() -> dict[str, DeviceModel]:
    """a: a good microphone; b, c, s1-s3: the seen family; s4-s6: a wider family (steeper tilts, deeper notches,
    narrower bands, more compression and noise)."""
    rng = np.random.default_rng(WORLD_SEED + 1)
    family = {"a": 0, "b": 1, "c": 1, "s1": 1, "s2": 1, "s3": 1, "s4": 2, "s5": 2, "s6": 2}
    models = {}
    for name in DEVICES:
        f = family[name]
        tilt = (0.0, rng.uniform(6, 12), rng.uniform(10, 20))[f] * rng.choice((-1.0, 1.0))  # dB over 20 Hz-22 kHz
        curve = tilt * (GRID_OCT / GRID_OCT[-1] - 0.5) + _smooth_db(rng, (1.0, 3.0, 5.0)[f])
        for _ in range((0, 1, 2)[f]):  # notches / resonances
            depth = (0.0, rng.uniform(8, 12), rng.uniform(10, 18))[f] * rng.choice((-1.0, 1.0), p=(0.7, 0.3))
            curve += depth * _gauss(GRID_OCT, math.exp(rng.uniform(math.log(400), math.log(8000))),
                                    rng.uniform(0.2, 0.6))
        models[name] = DeviceModel(
            response_db=tuple(float(v) for v in curve),
            highpass_hz=float(rng.uniform(*((20, 40), (80, 250), (150, 500))[f])),
            lowpass_hz=float(rng.uniform(*((18000, 20000), (8000, 16000), (4000, 9000))[f])),
            compress_ratio=float(rng.uniform(*((1, 1), (1.5, 3), (2.5, 5))[f])),
            compress_threshold_db=float(rng.uniform(*((0, 0), (-6, 0), (-10, -4))[f])),
            noise_dbfs=float(rng.uniform(*((-88, -84), (-74, -64), (-66, -56))[f])),
            gain_db=float(rng.normal(0, (0.0, 4.0, 6.0)[f])),
        )
    return models


SCENE_DB, CITY_DB, CITY_EQ = _world()
DEVICE_MODELS = _device_models()


def _interp(curve_db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    return np.interp(np.log2(np.maximum(freqs, 20.0) / 20.0), GRID_OCT, curve_db)


def _noise_spectrum(density_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.normal(size=density_db.size) + 1j * rng.normal(size=density_db.size)) * 10 ** (density_db / 20)


def _per_hz(power_db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Power per octave (on GRID) -> power density per frequency bin (dB)."""
    return _interp(power_db, freqs) - 10 * np.log10(np.maximum(freqs, 20.0))


def _shaped_noise(power_db: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of unit RMS whose power per octave follows `power_db` (on GRID)."""
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    x = np.fft.irfft(_noise_spectrum(_per_hz(power_db, freqs), rng), n)
    return x / (np.std(x) + 1e-12)


def _band_db(source: Source) -> np.ndarray:
    return 20 * np.log10(_gauss(GRID_OCT, source.centre_hz, source.width_oct) + 1e-4) + source.slope_db_per_octave * (
        GRID_OCT - math.log2(max(source.centre_hz, 20.0) / 20.0))


def _control(n: int) -> np.ndarray:
    return np.arange(0, n + 441, 441) / SAMPLE_RATE  # 10 ms control rate


def _swells(n: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Slow swells (passing vehicles, gusts): a sum of Gaussian bumps at Poisson times."""
    t = _control(n)
    env = np.full(t.size, 0.3)
    for centre in rng.uniform(-2, n / SAMPLE_RATE + 2, rng.poisson(rate * (n / SAMPLE_RATE + 4))):
        env += rng.uniform(0.5, 2.0) * np.exp(-0.5 * ((t - centre) / rng.uniform(0.7, 2.5)) ** 2)
    return np.interp(np.arange(n) / SAMPLE_RATE, t, env)


def _syllables(n: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Syllabic modulation of speech (3-6 Hz, with pauses)."""
    t = _control(n)
    env = 0.2 + 0.8 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3)) ** 2
    env *= np.repeat(rng.random(t.size // 50 + 1) < 0.75, 50)[: t.size] * 0.8 + 0.2
    return np.interp(np.arange(n) / SAMPLE_RATE, t, env)


def _add_tones(spectrum: np.ndarray, source: Source, gain: float, n: int, rng: np.random.Generator,
               loc_rng: np.random.Generator) -> None:
    """Add a harmonic tone with a little frequency jitter as narrow spectral lines (cheap: no sin over n samples)."""
    f0 = math.exp(loc_rng.uniform(math.log(source.tones[0]), math.log(source.tones[1]))) * math.exp(rng.normal(0, 0.02))
    weights = np.array([rng.uniform(0.3, 1.0) / h for h in range(1, source.harmonics + 1)])
    weights *= gain / math.sqrt(np.sum(weights**2) / 2)  # the tone's RMS is `gain`
    for h, weight in enumerate(weights, start=1):
        centre = f0 * h * n / SAMPLE_RATE  # in bins
        spread = max(1.0, 0.003 * centre)  # jitter broadens the line
        bins = np.arange(int(centre - 3 * spread), int(centre + 3 * spread) + 1)
        bins = bins[(bins > 0) & (bins < spectrum.size)]
        shape = np.exp(-0.5 * ((bins - centre) / spread) ** 2)
        shape /= np.sqrt(np.sum(shape**2)) + 1e-12
        phases = np.exp(1j * rng.uniform(0, 2 * np.pi, bins.size))
        spectrum[bins] += weight * shape * phases * n / 2  # irfft scaling: amplitude `weight` sine


def _events(source: Source, n: int, rng: np.random.Generator, room_db: np.ndarray) -> np.ndarray:
    out = np.zeros(n)
    band = _band_db(source) + room_db
    for _ in range(rng.poisson(source.event_rate * n / SAMPLE_RATE * rng.uniform(0.3, 1.7))):
        length = int(rng.uniform(*source.event_seconds) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        burst = _shaped_noise(band + rng.normal(0, 3), length, rng) * np.hanning(length)
        out[start:start + length] += burst * rng.uniform(0.3, 2.0)
    return out


def synthesize_scene(scene: str, city: str, location_seed: list[int], segment_seed: list[int], seconds: int) -> np.ndarray:
    """One recording of `scene` at a location of `city`, as an ideal microphone hears it (float64, 44.1 kHz)."""
    n = seconds * SAMPLE_RATE
    loc_rng = np.random.default_rng(location_seed)
    rng = np.random.default_rng(segment_seed)
    levels = SCENE_DB[scene] + CITY_DB[city] + loc_rng.normal(0, LOCATION_SD_DB, len(S)) + rng.normal(
        0, RECORDING_SD_DB, len(S))
    room_db = CITY_EQ[city] + _smooth_db(loc_rng, ROOM_DB[1])  # the place's acoustics
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    room = 10 ** (_interp(room_db, freqs) / 20)
    groups: dict[str, np.ndarray] = {}  # summed power per octave of the noise-like sources, by temporal kind
    bed = np.zeros(freqs.size, complex)  # tones join the stationary bed as spectral lines
    x = np.zeros(n)
    for name, level in zip(S, levels):
        source = SOURCES[name]
        if level < -45:
            continue
        gain = 10 ** (level / 20)
        if source.kind in ("bed", "swell", "babble"):
            band = 10 ** (_band_db(source) / 10)
            groups[source.kind] = groups.get(source.kind, 0) + gain**2 * band / np.sum(band)
        elif source.kind == "tones":
            _add_tones(bed, source, gain, n, rng, loc_rng)
        else:
            x += gain * _events(source, n, rng, room_db)
    groups.setdefault("bed", np.full(GRID.size, 1e-12))  # carries the tones
    for kind in ("bed", "swell", "babble"):
        if kind not in groups:
            continue
        power = groups[kind]
        spectrum = _noise_spectrum(_per_hz(10 * np.log10(power + 1e-30), freqs), rng)
        spectrum *= n * math.sqrt(float(np.sum(power)) / 2 / np.sum(np.abs(spectrum) ** 2))  # RMS = sqrt(power)
        if kind == "bed":
            noise = np.fft.irfft((spectrum + bed) * room, n)
        else:
            noise = np.fft.irfft(spectrum * room, n) * (_swells(n, rng, 0.4) if kind == "swell" else
                                                         _syllables(n, rng, rng.uniform(3, 6)))
        x += noise
    city_level = float(np.random.default_rng([WORLD_SEED, 7, sorted(CITY_DB).index(city)]).normal(0, LEVEL_SD_DB[0]))
    level_dbfs = -30.0 + city_level + float(loc_rng.normal(0, LEVEL_SD_DB[1])) + float(rng.normal(0, LEVEL_SD_DB[2]))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12) * 10 ** (level_dbfs / 20)


def device_response_db(device: str, freqs: np.ndarray) -> np.ndarray:
    """Magnitude response of a device in dB: curve, band limits and gain."""
    model = DEVICE_MODELS[device]
    f = np.maximum(freqs, 1.0)
    highpass = -10 * np.log10(1.0 + (model.highpass_hz / f) ** 4)
    lowpass = -10 * np.log10(1.0 + (f / model.lowpass_hz) ** 8)
    return _interp(np.asarray(model.response_db), freqs) + highpass + lowpass + model.gain_db


def _compress(y: np.ndarray, ratio: float, threshold_db: float) -> np.ndarray:
    """A feed-forward compressor on 10 ms RMS frames (automatic gain control of phone recorders)."""
    if ratio <= 1.0:
        return y
    hop = 441
    frames = y[: y.size // hop * hop].reshape(-1, hop)
    env_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    threshold = 10 * np.log10(np.mean(y**2) + 1e-20) + threshold_db
    gain_db = np.minimum(0.0, (threshold - env_db) * (1 - 1 / ratio))
    gain_db = np.convolve(gain_db, np.ones(5) / 5, mode="same")  # attack / release smoothing
    centres = (np.arange(gain_db.size) + 0.5) * hop
    return y * 10 ** (np.interp(np.arange(y.size), centres, gain_db) / 20)


def record(scene_audio: np.ndarray, device: str, rng: np.random.Generator) -> np.ndarray:
    """What `device` records of a scene: response, compression, noise floor, clipping."""
    model = DEVICE_MODELS[device]
    freqs = np.fft.rfftfreq(scene_audio.size, 1.0 / SAMPLE_RATE)
    y = np.fft.irfft(np.fft.rfft(scene_audio) * 10 ** (device_response_db(device, freqs) / 20), scene_audio.size)
    y = _compress(y, model.compress_ratio, model.compress_threshold_db)
    y += rng.normal(size=y.size) * 10 ** (model.noise_dbfs / 20)
    return np.clip(y, -1.0, 1.0 - 2.0**-23)
