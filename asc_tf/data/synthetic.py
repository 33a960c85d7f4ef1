"""A small synthetic dataset in the exact layout of TAU Urban Acoustic Scenes 2022 Mobile (development)
and of the 2024 evaluation set, so everything runs without the real data.

Scenes differ by their spectra (a spectral envelope, tonal components, events, amplitude modulation),
varied per location and per recording, so they are learnable but not trivially. Each device applies its
own frequency response, band limits, gain and noise floor; unseen devices s4-s6 are the harshest, so a
device mismatch is real and Freq-MixStyle has something to fix. Recordings (segments) are 10 s long as
in TAU and cut into 1 s clips, recorded by device `a` and sometimes by one more training device;
test recordings are recorded by several devices, unseen ones included.

    python -m asc_tf.data.synthetic --out DIR [--seed S] [--size tiny|small|medium|full] [--clips N]

`--size full` has the real development set's counts (train split 100: 139,620 clips, test: 29,680) and
proportions (devices, scenes, cities, nested splits); `--clips N` scales them to about N clips.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd
import soundfile as sf

from asc_tf import console
from asc_tf.data.meta import CITIES, CLASSES, DEV_DIR_NAME, DEVICES, EVAL_DIR_NAME
from asc_tf.data.splits import SUBSETS
from asc_tf.io import atomic_path, atomic_write_text, exclusive_lock, lock_path, staging_dir

log = logging.getLogger(__name__)

EVAL_LABELS_NAME = "synthetic-evaluation-labels.csv"
DESCRIPTION_NAME = "synthetic.json"  # how the dataset was made: seed, size, difficulty
SAMPLE_RATE = 44100
TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
DIFFICULTIES = ("tau", "easy")  # tau: as hard as TAU 2022 Mobile (the default); easy: learnt in seconds (tests)
WORLD_SEED = 2024  # scenes and devices are the same for every --seed: only the recordings change


@dataclass(frozen=True)
class Size:
    """How many recordings to make (per scene) and how many devices record them."""

    train_locations: int
    test_locations: int
    eval_locations: int
    segments_per_location: int
    clips_per_segment: int
    extra_device_prob: float  # chance that a train recording is also made by one of b, c, s1-s3
    test_devices: int  # devices recording each test / evaluation recording (rotating over all nine)


SIZES: dict[str, Size] = {
    "tiny": Size(2, 1, 1, 1, 4, 0.5, 3),
    "small": Size(3, 1, 1, 1, 10, 0.5, 3),
    "medium": Size(6, 2, 1, 2, 10, 0.4, 5),
}


# ----------------------------------------------------------------------------------------------
# The world: scene and device models (fixed by WORLD_SEED)


def _smooth_curve_db(freqs: np.ndarray, rng: np.random.Generator, amplitude_db: float, terms: int = 4) -> np.ndarray:
    """A smooth random curve in dB over log frequency (a frequency response or an EQ)."""
    octaves = np.log2(np.maximum(freqs, 20.0) / 20.0)
    curve = np.zeros_like(freqs)
    for k in range(1, terms + 1):
        curve += rng.normal(0.0, amplitude_db / k) * np.cos(2 * np.pi * k * octaves / 10.0 + rng.uniform(0, 2 * np.pi))
    return curve


@dataclass(frozen=True)
class SceneModel:
    slope_db_per_octave: float
    bumps: tuple[tuple[float, float, float], ...]  # (centre Hz, width octaves, gain dB)
    tones: tuple[float, ...]  # fundamental frequencies of tonal components (with 3 harmonics)
    tone_level: float
    event_rate: float  # events per second
    event_band: tuple[float, float]
    am_rate: float
    am_depth: float


@dataclass(frozen=True)
class DeviceModel:
    seed: int
    response_db: float
    highpass_hz: float
    lowpass_hz: float
    gain_db: float
    noise_dbfs: float


def _scene_models() -> dict[str, SceneModel]:
    rng = np.random.default_rng(WORLD_SEED)
    # Scenes come in families (indoor transport, outdoor street, quiet) sharing traits, so that
    # neighbours (metro / metro_station, street_pedestrian / street_traffic) are confusable.
    family = {"airport": 0, "bus": 1, "metro": 1, "metro_station": 0, "park": 2, "public_square": 2,
              "shopping_mall": 0, "street_pedestrian": 2, "street_traffic": 1, "tram": 1}
    family_slope = {0: -3.5, 1: -5.0, 2: -2.5}
    models = {}
    for name in CLASSES:
        fam = family[name]
        bumps = tuple(
            (float(math.exp(rng.uniform(math.log(60), math.log(9000)))), float(rng.uniform(0.4, 1.5)),
             float(rng.uniform(4, 14)))
            for _ in range(3)
        )
        tones = tuple(float(rng.uniform(40, 1500)) for _ in range(int(rng.integers(0, 3))))
        models[name] = SceneModel(
            slope_db_per_octave=family_slope[fam] + float(rng.normal(0, 0.6)),
            bumps=bumps,
            tones=tones,
            tone_level=float(rng.uniform(0.05, 0.3)),
            event_rate=float(rng.uniform(0.2, 3.0)),
            event_band=(lo := float(rng.uniform(300, 5000)), lo * float(rng.uniform(1.5, 3.0))),
            am_rate=float(rng.uniform(0.2, 6.0)),
            am_depth=float(rng.uniform(0.0, 0.5)),
        )
    return models


def _device_models() -> dict[str, DeviceModel]:
    rng = np.random.default_rng(WORLD_SEED + 1)
    harshness = {"a": 0, "b": 1, "c": 1, "s1": 2, "s2": 2, "s3": 2, "s4": 3, "s5": 3, "s6": 3}
    models = {}
    for i, name in enumerate(DEVICES):
        h = harshness[name]
        models[name] = DeviceModel(
            seed=WORLD_SEED + 10 + i,
            response_db=(1.0, 3.0, 5.0, 7.0)[h],
            highpass_hz=float(rng.uniform(*((20, 40), (60, 150), (100, 300), (200, 500))[h])),
            lowpass_hz=float(rng.uniform(*((18000, 20000), (11000, 16000), (7000, 12000), (4000, 8000))[h])),
            gain_db=float(rng.normal(0.0, (0.0, 3.0, 4.0, 5.0)[h])),
            noise_dbfs=(-80.0, -72.0, -66.0, -60.0)[h] + float(rng.uniform(-3, 3)),
        )
    return models


SCENES = _scene_models()
DEVICE_MODELS = _device_models()


def device_response(device: str, freqs: np.ndarray) -> np.ndarray:
    """Linear magnitude response of a device: smooth ripple, high-pass, low-pass, gain."""
    model = DEVICE_MODELS[device]
    ripple = _smooth_curve_db(freqs, np.random.default_rng(model.seed), model.response_db)
    f = np.maximum(freqs, 1.0)
    highpass = 1.0 / np.sqrt(1.0 + (model.highpass_hz / f) ** 4)
    lowpass = 1.0 / np.sqrt(1.0 + (f / model.lowpass_hz) ** 8)
    return 10 ** ((ripple + model.gain_db) / 20) * highpass * lowpass


# ----------------------------------------------------------------------------------------------
# Recordings


@dataclass(frozen=True)
class Recording:
    """One 10 s segment of a scene at a location, recorded by some devices."""

    scene: str
    city: str
    location: int
    segment: int
    devices: tuple[str, ...]
    part: str  # "train", "test" or "eval"

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location}"

    def filename(self, clip: int, device: str) -> str:
        return f"audio/{self.scene}-{self.city}-{self.location}-{self.segment}-{clip}-{device}.wav"


def plan_recordings(size: Size, seed: int) -> list[Recording]:
    """Every recording of the dataset, deterministic for (size, seed)."""
    rng = np.random.default_rng([seed, 1])
    recordings = []
    rotation = 0
    location_id = 1000
    segment_id = 40000
    for scene in CLASSES:
        parts = ["train"] * size.train_locations + ["test"] * size.test_locations + ["eval"] * size.eval_locations
        cities = rng.permutation(len(CITIES))
        for k, part in enumerate(parts):
            city = CITIES[cities[k % len(CITIES)]]
            location_id += int(rng.integers(1, 40))
            for _ in range(size.segments_per_location):
                segment_id += int(rng.integers(10, 400))
                if part == "train":
                    devices = ("a",)
                    if rng.random() < size.extra_device_prob:
                        devices += (str(rng.choice(TRAIN_DEVICES[1:])),)
                else:
                    devices = tuple(DEVICES[(rotation + j) % len(DEVICES)] for j in range(size.test_devices))
                    rotation += size.test_devices
                recordings.append(Recording(scene, city, location_id, segment_id, devices, part))
    return recordings


def _location_seed(recording: Recording, seed: int) -> list[int]:
    return [seed, 2, CLASSES.index(recording.scene), recording.location]


def synthesize_scene(recording: Recording, seconds: int, seed: int) -> np.ndarray:
    """The acoustic scene of one recording as heard by an ideal microphone (float64, 44.1 kHz)."""
    scene = SCENES[recording.scene]
    n = seconds * SAMPLE_RATE
    rng = np.random.default_rng([seed, 3, recording.segment])
    loc_rng = np.random.default_rng(_location_seed(recording, seed))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(freqs, 20.0) / 20.0)
    envelope_db = scene.slope_db_per_octave * octaves
    for centre, width, gain in scene.bumps:
        centre *= math.exp(loc_rng.normal(0, 0.12))  # each location sounds a little different
        envelope_db += gain * np.exp(-0.5 * ((octaves - math.log2(centre / 20.0)) / width) ** 2)
    envelope_db += _smooth_curve_db(freqs, loc_rng, 3.0) + _smooth_curve_db(freqs, rng, 1.5)
    spectrum = (rng.normal(size=freqs.size) + 1j * rng.normal(size=freqs.size)) * 10 ** (envelope_db / 20)
    x = np.fft.irfft(spectrum, n)
    x /= np.std(x) + 1e-12
    t = np.arange(n) / SAMPLE_RATE
    for f0 in scene.tones:
        f0 *= math.exp(loc_rng.normal(0, 0.03))
        wobble = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        for harmonic in (1, 2, 3):
            x += scene.tone_level * 2.0 / harmonic * np.sin(2 * np.pi * f0 * harmonic * t * wobble + rng.uniform(0, 6.3))
    x += _events(scene, n, rng)
    x *= 1 + scene.am_depth * np.sin(2 * np.pi * scene.am_rate * t + rng.uniform(0, 2 * np.pi))
    level_dbfs = -30.0 + float(loc_rng.normal(0, 3)) + float(rng.normal(0, 2))
    return x / (np.sqrt(np.mean(x**2)) + 1e-12) * 10 ** (level_dbfs / 20)


def _events(scene: SceneModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """Short band-limited bursts (doors, voices, brakes) at Poisson times."""
    out = np.zeros(n)
    count = rng.poisson(scene.event_rate * n / SAMPLE_RATE)
    for _ in range(count):
        length = int(rng.uniform(0.05, 0.4) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        spec = np.fft.rfft(rng.normal(size=length))
        f = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
        spec[(f < scene.event_band[0]) | (f > scene.event_band[1])] = 0
        burst = np.fft.irfft(spec, length) * np.hanning(length)
        out[start:start + length] += burst / (np.std(burst) + 1e-12) * rng.uniform(0.5, 2.5)
    return out


def record(scene_audio: np.ndarray, device: str, rng: np.random.Generator) -> np.ndarray:
    """What `device` records of a scene: its frequency response and gain, plus its noise floor."""
    freqs = np.fft.rfftfreq(scene_audio.size, 1.0 / SAMPLE_RATE)
    y = np.fft.irfft(np.fft.rfft(scene_audio) * device_response(device, freqs), scene_audio.size)
    y += rng.normal(size=y.size) * 10 ** (DEVICE_MODELS[device].noise_dbfs / 20)
    return np.clip(y, -1.0, 1.0 - 2.0**-23)


# ----------------------------------------------------------------------------------------------
# The real development set's counts (--size full, --clips N)


@dataclass(frozen=True)
class TauCounts:
    """Counts of 10 s segments as in TAU Urban Acoustic Scenes 2022 Mobile (development), in 1 s clips.

    Train (split 100): device `a` records every segment; 750 segments per device b, c, s1, s2, s3 are parallel
    recordings of `a` segments (DCASE2020 Task 1a's layout: 10,215 + 5 x 749 segments). Test: every recording
    is made by all nine devices (330 per device). Scenes are balanced, locations spread evenly over the cities.
    """

    train_segments: int  # segments of split 100 (one device each)
    test_segments: int
    eval_segments: int = 20  # the 2024 evaluation set is not rehearsed: a few recordings only
    extra_fraction: float = 3750 / 13962  # train segments by b, c, s1-s3 (parallel to `a`)
    segments_per_location: int = 10
    clips_per_segment: int = 10

    @classmethod
    def scaled(cls, clips: int) -> "TauCounts":
        """About `clips` train + test clips in the full set's proportions."""
        factor = clips / (TAU_FULL.train_segments + TAU_FULL.test_segments) / TAU_FULL.clips_per_segment
        return cls(max(10, round(TAU_FULL.train_segments * factor)), max(9, round(TAU_FULL.test_segments * factor)),
                   eval_segments=min(TauCounts.eval_segments, max(1, round(clips / 1000))))


TAU_FULL = TauCounts(train_segments=13962, test_segments=2968)  # 139,620 train and 29,680 test clips
MIN_TAU_CLIPS = 600  # below, the test split (>= one recording by each of the nine devices) is over-represented


def size_by_name(name: str) -> "Size | TauCounts":
    """A named size: tiny, small, medium, or full (the real set's counts)."""
    if name == "full":
        return TAU_FULL
    if name not in SIZES:
        raise ValueError(f"unknown size {name!r}: use one of {', '.join([*SIZES, 'full'])}")
    return SIZES[name]


def _device_sets(counts: TauCounts) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Devices of every train and test recording, hitting the segment counts exactly."""
    extra = round(counts.train_segments * counts.extra_fraction)
    train_recordings = counts.train_segments - extra
    extra = min(extra, train_recordings)
    train = [("a", TRAIN_DEVICES[1 + i % 5]) if i < extra else ("a",) for i in range(train_recordings)]
    test_recordings = -(-counts.test_segments // len(DEVICES))
    last = counts.test_segments - len(DEVICES) * (test_recordings - 1)
    test = [DEVICES if i < test_recordings - 1 else DEVICES[:last] for i in range(test_recordings)]
    return train, test


def plan_tau_recordings(counts: TauCounts, seed: int) -> list[Recording]:
    """Every recording of a dataset with the real set's counts, deterministic for (counts, seed): scenes in
    turn, consecutive recordings of a scene share a location, locations rotate over the cities."""
    rng = np.random.default_rng([seed, 6])
    train, test = _device_sets(counts)
    train = [train[i] for i in rng.permutation(len(train))]  # parallel recordings spread over scenes and cities
    evaluation = [(DEVICES[i % len(DEVICES)],) for i in range(counts.eval_segments)]
    recordings: list[Recording] = []
    location_id, segment_id = 1000, 40000
    for part, device_sets in (("train", train), ("test", test), ("eval", evaluation)):
        per_scene = [device_sets[k::len(CLASSES)] for k in range(len(CLASSES))]
        for scene, sets in zip(CLASSES, per_scene):
            cities = rng.permutation(len(CITIES))
            for start in range(0, len(sets), counts.segments_per_location):
                city = CITIES[cities[(start // counts.segments_per_location) % len(CITIES)]]
                location_id += int(rng.integers(1, 5))
                for devices in sets[start:start + counts.segments_per_location]:
                    segment_id += int(rng.integers(1, 20))
                    recordings.append(Recording(scene, city, location_id, segment_id, tuple(devices), part))
    return recordings


# ----------------------------------------------------------------------------------------------
# Splits and files


def nested_tiers(train: list[Recording], seed: int) -> dict[Recording, int]:
    """Smallest subset (5, 10, 25, 50, 100) each train recording belongs to; all clips of a recording
    stay together, every subset holds at least one recording, and every subset is as balanced over the scenes
    as its size allows (a small split that missed a scene by chance would measure sampling luck, not
    data efficiency)."""
    rng = np.random.default_rng([seed, 4])
    by_scene: dict[str, list[Recording]] = {}
    for index in rng.permutation(len(train)):
        by_scene.setdefault(train[index].scene, []).append(train[index])
    order: list[Recording] = []  # round robin over the scenes, in a fresh scene order each round
    for depth in range(max(len(group) for group in by_scene.values())):
        scenes = [scene for scene in by_scene if depth < len(by_scene[scene])]
        order += [by_scene[scenes[k]][depth] for k in rng.permutation(len(scenes))]
    return {recording: next(n for n in SUBSETS if rank < max(1, round(len(train) * n / 100)))
            for rank, recording in enumerate(order)}


def _clips(recording: Recording, size: Size, seed: int, difficulty: str = "easy"
           ) -> Iterator[tuple[str, str, np.ndarray]]:
    """(device, filename, 1 s clip) for each device and clip of a recording."""
    if difficulty == "tau":
        from asc_tf.data import synthetic_tau

        audio = synthetic_tau.synthesize_scene(recording.scene, recording.city, _location_seed(recording, seed),
                                               [seed, 3, recording.segment], size.clips_per_segment)
        recorder = synthetic_tau.record
    else:
        audio, recorder = synthesize_scene(recording, size.clips_per_segment, seed), record
    for device in recording.devices:
        rng = np.random.default_rng([seed, 5, recording.segment, DEVICES.index(device)])
        recorded = recorder(audio, device, rng)
        for clip in range(size.clips_per_segment):
            yield device, recording.filename(clip, device), recorded[clip * SAMPLE_RATE:(clip + 1) * SAMPLE_RATE]


def _write_wav(path: Path, clip: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        sf.write(str(tmp), clip.astype(np.float32), SAMPLE_RATE, subtype="PCM_24", format="WAV")


def _write_recording(job: tuple) -> list[dict]:
    """Write the clips of one recording (in a worker process); returns their metadata rows."""
    recording, size_spec, seed, difficulty, dev_dir, eval_dir, eval_offset = job
    rows = []
    for device, filename, clip in _clips(recording, size_spec, seed, difficulty):
        if recording.part == "eval":
            eval_name = f"audio/{eval_offset + len(rows)}.wav"
            _write_wav(eval_dir / eval_name, clip)
            rows.append({"filename": eval_name, "scene_label": recording.scene, "source_label": device})
        else:
            _write_wav(dev_dir / filename, clip)
            rows.append({"filename": filename, "scene_label": recording.scene, "identifier": recording.identifier,
                         "source_label": device})
    return rows


def generate(out: str | Path, seed: int = 0, size: str | Size = "small", difficulty: str = "tau",
             workers: Optional[int] = None) -> dict[str, Path]:
    """Write the development and evaluation folders under `out` (with `workers` processes, default: one per
    CPU); returns their paths.

    Deterministic for (seed, size, difficulty): the same call gives byte-identical files. `difficulty` is
    "tau" (as hard as TAU 2022 Mobile, asc_tf.data.synthetic_tau) or "easy" (quickly learnt, for tests).
    Safe to share: the files are written in a staging folder inside `out` and moved into place when complete
    (the description last), under a lock; a concurrent call for the same dataset waits and reuses it, and a
    killed call leaves only its staging folder, removed by the next call.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}: choose one of {', '.join(DIFFICULTIES)}")
    size_spec = size_by_name(size) if isinstance(size, str) else size
    out = Path(out)
    dev_dir, eval_dir = out / DEV_DIR_NAME, out / EVAL_DIR_NAME
    description = {"seed": seed, "size": size if isinstance(size, str) else None, "difficulty": difficulty}
    with exclusive_lock(lock_path(out), f"the synthetic dataset in {out}"):
        if (dev_dir / "meta.csv").is_file() and read_description(out) == description and isinstance(size, str):
            log.info("synthetic dataset already made in %s (by a concurrent call)", out)
            return {"development": dev_dir, "evaluation": eval_dir}
        for folder in (dev_dir, eval_dir):
            if (folder / "audio").exists() and any((folder / "audio").iterdir()):
                raise FileExistsError(f"{folder} already holds audio: choose another --out or remove it first")
        stage = staging_dir(out / "dataset")  # inside out: the moves below are renames on one file system
        try:
            counts = _write_dataset(stage, size_spec, seed, difficulty, workers)
            for name in (DEV_DIR_NAME, EVAL_DIR_NAME, EVAL_LABELS_NAME):
                os.replace(stage / name, out / name)  # a folder replaces only an empty one: never loses files
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        atomic_write_text(out / DESCRIPTION_NAME, json.dumps(description) + "\n")  # last: marks it complete
    log.info("synthetic dataset: %d development clips, %d evaluation clips in %s", *counts, out)
    return {"development": dev_dir, "evaluation": eval_dir}


def _write_dataset(out: Path, size_spec: "Size | TauCounts", seed: int, difficulty: str,
                   workers: Optional[int]) -> tuple[int, int]:
    """Write the development and evaluation folders and the evaluation labels into `out` (a staging folder);
    returns the number of development and evaluation clips."""
    dev_dir, eval_dir = out / DEV_DIR_NAME, out / EVAL_DIR_NAME
    recordings = (plan_tau_recordings(size_spec, seed) if isinstance(size_spec, TauCounts)
                  else plan_recordings(size_spec, seed))
    tiers = nested_tiers([r for r in recordings if r.part == "train"], seed)
    meta_rows, eval_rows = [], []
    split_rows: dict[str, list[dict]] = {f"split{n}": [] for n in SUBSETS} | {"test": []}
    jobs, eval_offset = [], 0
    for recording in recordings:
        jobs.append((recording, size_spec, seed, difficulty, dev_dir, eval_dir, eval_offset))
        if recording.part == "eval":
            eval_offset += len(recording.devices) * size_spec.clips_per_segment
    workers = min(workers or os.cpu_count() or 1, len(recordings) // 50 or 1)  # small sets: no pool start-up
    with contextlib.ExitStack() as stack:
        if workers > 1:  # recordings are independent and seeded each: the same files whatever the worker count
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
            results = pool.map(_write_recording, jobs, chunksize=4)
        else:
            results = map(_write_recording, jobs)
        total = sum(len(recording.devices) * size_spec.clips_per_segment for recording in recordings)
        bar = stack.enter_context(console.progress(total, f"making the synthetic dataset ({difficulty})", "clips"))
        for recording, rows in zip(recordings, results):
            bar.update(len(rows))
            if recording.part == "eval":
                eval_rows += rows
                continue
            meta_rows += rows
            for row in rows:
                if recording.part == "test":
                    split_rows["test"].append(row)
                else:
                    for n in SUBSETS:
                        if n >= tiers[recording]:
                            split_rows[f"split{n}"].append(row)
    meta = pd.DataFrame(meta_rows)
    _write_table(dev_dir / "meta.csv", meta, ["filename", "scene_label", "identifier", "source_label"])
    for name, rows in split_rows.items():
        columns = ["filename"] if name == "test" else ["filename", "scene_label"]
        _write_table(dev_dir / "split_setup" / f"{name}.csv", pd.DataFrame(rows), columns)
    evaluation = pd.DataFrame(eval_rows)
    _write_table(eval_dir / "evaluation_setup" / "fold1_test.csv", evaluation, ["filename"])
    _write_table(out / EVAL_LABELS_NAME, evaluation, ["filename", "scene_label", "source_label"])
    return len(meta), len(evaluation)


def read_description(out: str | Path) -> dict:
    """How the dataset in `out` was made ({} for one made before the description existed)."""
    try:
        return json.loads((Path(out) / DESCRIPTION_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_table(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    atomic_write_text(path, frame.to_csv(sep="\t", index=False, columns=columns))


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder that receives the two dataset folders")
    parser.add_argument("--seed", type=int, default=0, help="seed of the recordings (default: 0)")
    parser.add_argument("--size", choices=[*sorted(SIZES), "full"], default="small",
                        help="tiny (tests), small (default, a few hundred clips), medium (a demo that learns), "
                        "full (the real development set's 169,300 train and test clips)")
    parser.add_argument("--clips", type=int, default=None,
                        help="about N train + test clips in the real set's proportions (instead of --size)")
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="tau",
                        help="tau (default): as hard as TAU 2022 Mobile; easy: the quickly learnt profile for tests")
    args = parser.parse_args(argv)
    if args.clips is not None and args.clips < MIN_TAU_CLIPS:
        parser.error(f"--clips must be at least {MIN_TAU_CLIPS} (one recording per scene and split)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = generate(args.out, args.seed, TauCounts.scaled(args.clips) if args.clips else args.size,
                         args.difficulty)
    except FileExistsError as error:  # bad input: one line, exit code 2 (docs/faults.md)
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"development set: {paths['development']}\nevaluation set:  {paths['evaluation']}")


if __name__ == "__main__":
    main()


__all__ = ["generate", "DIFFICULTIES", "SIZES", "Size", "TauCounts", "TAU_FULL", "plan_tau_recordings", "DEV_DIR_NAME",
           "EVAL_DIR_NAME", "EVAL_LABELS_NAME"]
