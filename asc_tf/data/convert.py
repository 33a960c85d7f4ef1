"""Convert a TAU-layout dataset once into sharded TFRecords that `tf.data` reads fast.

Each WAV is read with soundfile, checked (sample rate, channels, length), resampled 44.1 -> 32 kHz with
upstream's filter and stored as `storage_dtype`. Shards are laid out by split tier (tier N = clips of
split N that no smaller split has), so a split reads only its own clips and no clip is stored twice.
Every shard is written under a temporary name and renamed; progress is recorded after each shard, so an
interrupted conversion resumes and ends byte-identical to an uninterrupted one. A manifest records
counts, rates, dtype and a fingerprint of the source; shards of a changed source are never reused.

    python -m asc_tf.data.convert --dataset_dir D [--tfrecords_dir tfrecords] [--num_workers N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import logging
import multiprocessing
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd

from asc_tf import console
from asc_tf.config import Config, add_arguments, from_args
from asc_tf.data.audio import AudioFileError, load_clip
from asc_tf.data.errors import ConversionError, MissingAudioError, StaleShardsError
from asc_tf.data.meta import CLASSES, DEVICES, MetadataError, read_meta
from asc_tf.data.splits import (SPLITS, TIERS, SplitFilesMissing, ensure_split_files, load_splits,
                                resolve_split_dir, tier_files, tiers_of)
from asc_tf.io import (atomic_path, atomic_write_json, atomic_write_text, exclusive_lock, file_sha256, lock_path,
                       remove_stale_temporaries)

log = logging.getLogger(__name__)

FORMAT = "asc-tf-tfrecords/1"
MANIFEST = "manifest.json"
PROGRESS = "conversion.json"
SKIPPED = "skipped.csv"
INT16_SCALE = 32767.0
CLIP_SECONDS = 1.0


def reconvert_command(shards_dir: str | Path, dataset_dir: Optional[str] = None) -> str:
    """The command that checks every shard of `shards_dir` (sha256) and reconverts the damaged ones, with the
    settings the manifest records (other settings would be a different conversion)."""
    shards_dir = Path(shards_dir)
    try:
        manifest = json.loads((shards_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    dataset_dir = dataset_dir or manifest.get("dataset_dir") or "DATASET"
    parts = ["python", "-m", "asc_tf.data.convert", "--dataset_dir", str(dataset_dir),
             "--tfrecords_dir", str(shards_dir.parent)]
    defaults = Config()
    if manifest.get("split_dir") and Path(manifest["split_dir"]) != Path(dataset_dir) / "split_setup":
        parts += ["--split_dir", str(manifest["split_dir"])]
    for name in ("storage_dtype", "clips_per_shard", "orig_sample_rate", "sample_rate"):
        if name in manifest and manifest[name] != getattr(defaults, name):
            parts += [f"--{name}", str(manifest[name])]
    return shlex.join([*parts, "--verify"])


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its file name and the clips (meta.csv rows) it holds, in order."""

    name: str
    tier: str
    filenames: tuple[str, ...]
    labels: tuple[int, ...]
    devices: tuple[str, ...]
    cities: tuple[str, ...]


def converted_dir(config: Config) -> Path:
    """Where the shards of `config.dataset_dir` live: `<tfrecords_dir>/<dataset folder name>`."""
    if not config.dataset_dir:
        raise ConversionError("no dataset given: pass --dataset_dir or set $ASC_TF_DATASET_DIR")
    return Path(config.tfrecords_dir) / Path(config.dataset_dir).resolve().name


def encode_waveform(waveform: np.ndarray, storage_dtype: str) -> bytes:
    """Little-endian bytes of a float waveform in the storage dtype (int16: scaled by 32767, clipped)."""
    if storage_dtype == "int16":
        return np.round(np.clip(waveform, -1.0, 1.0) * INT16_SCALE).astype("<i2").tobytes()
    return waveform.astype("<f2" if storage_dtype == "float16" else "<f4").tobytes()


def decode_waveform(data: bytes, storage_dtype: str) -> np.ndarray:
    """Inverse of `encode_waveform`, as float32 (used by tests and tools; the pipeline decodes in TF)."""
    if storage_dtype == "int16":
        return np.frombuffer(data, "<i2").astype(np.float32) / INT16_SCALE
    return np.frombuffer(data, "<f2" if storage_dtype == "float16" else "<f4").astype(np.float32)


def _read_shard_clips(job: ShardJob, dataset_dir: str, orig_sr: int, sample_rate: int,
                      storage_dtype: str) -> tuple[list[Optional[bytes]], list[tuple[str, str]]]:
    """Worker: read, check and resample every clip of a shard. Returns encoded clips (None for a bad
    file) and (filename, reason) for each bad file."""
    encoded: list[Optional[bytes]] = []
    bad: list[tuple[str, str]] = []
    for filename in job.filenames:
        try:
            clip = load_clip(Path(dataset_dir) / filename, orig_sr, sample_rate, CLIP_SECONDS)
        except AudioFileError as error:
            encoded.append(None)
            bad.append((filename, str(error)))
            continue
        encoded.append(encode_waveform(clip, storage_dtype))
    return encoded, bad


def _serialize(job: ShardJob, index: int, waveform: bytes) -> bytes:
    import tensorflow as tf

    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "waveform": bytes_feature(waveform),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[job.labels[index]])),
        "filename": bytes_feature(job.filenames[index].encode()),
        "device": bytes_feature(job.devices[index].encode()),
        "city": bytes_feature(job.cities[index].encode()),
    })).SerializeToString(deterministic=True)  # sorted map keys: same bytes in every process


def _write_shard(path: Path, job: ShardJob, encoded: list[Optional[bytes]]) -> dict:
    """Write the shard atomically; returns its manifest entry (clips, bytes, sha256)."""
    import tensorflow as tf

    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            count = 0
            for i, waveform in enumerate(encoded):
                if waveform is not None:
                    writer.write(_serialize(job, i, waveform))
                    count += 1
    return {"file": path.name, "clips": count, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def plan_shards(meta: pd.DataFrame, splits: dict[str, list[str]], clips_per_shard: int) -> list[ShardJob]:
    """Shards per tier. Training tiers are stored in a fixed shuffled order (so every shard mixes
    scenes and devices); the test tier keeps meta.csv order, so evaluation batches are upstream's."""
    by_name = meta.set_index("filename")
    jobs = []
    for tier, files in tier_files(splits).items():
        if tier != "test":
            seed = int.from_bytes(hashlib.sha256(tier.encode()).digest()[:4], "little")
            files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
        count = max(1, -(-len(files) // clips_per_shard))
        for k in range(count):
            chunk = files[k * clips_per_shard:(k + 1) * clips_per_shard]
            rows = by_name.loc[chunk] if chunk else by_name.iloc[:0]
            jobs.append(ShardJob(
                name=f"{tier}-{k:05d}-of-{count:05d}.tfrecord", tier=tier, filenames=tuple(chunk),
                labels=tuple(int(v) for v in rows["label"]), devices=tuple(rows["device"]),
                cities=tuple(rows["city"]),
            ))
    return jobs


def source_fingerprint(dataset_dir: Path, split_dir: Path, files: list[str], config: Config) -> str:
    """Hash of meta.csv, the split files, every clip's (name, size, mtime) and the storage settings."""
    digest = hashlib.sha256()
    settings = (FORMAT, config.orig_sample_rate, config.sample_rate, config.storage_dtype, config.clips_per_shard)
    digest.update(repr(settings).encode())
    digest.update((dataset_dir / "meta.csv").read_bytes())
    for name in SPLITS:
        digest.update((split_dir / f"{name}.csv").read_bytes())
    for filename in files:
        try:
            stat = (dataset_dir / filename).stat()
            digest.update(f"{filename}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{filename}\0missing\n".encode())
    return digest.hexdigest()


def _check_previous(out: Path, fingerprint: str, overwrite: bool) -> dict:
    """Progress of an earlier run on the same source, or {} (removing stale shards if allowed)."""
    for name in (MANIFEST, PROGRESS):
        path = out / name
        if not path.exists():
            continue
        previous = json.loads(path.read_text())
        if previous.get("fingerprint") == fingerprint:
            return previous
        if not overwrite:
            raise StaleShardsError(
                f"{out} holds shards converted from a different source or with other settings "
                f"(fingerprint {str(previous.get('fingerprint'))[:12]} != {fingerprint[:12]}): pass --overwrite "
                f"to replace them, or choose another --tfrecords_dir"
            )
        log.warning("replacing stale shards in %s", out)
        for stale in [*out.glob("*.tfrecord"), out / MANIFEST, out / PROGRESS, out / SKIPPED]:
            stale.unlink(missing_ok=True)
        return {}
    return {}


def convert_dataset(config: Config, *, progress: bool = True, max_new_shards: Optional[int] = None,
                    verify: bool = False) -> Path:
    """Convert `config.dataset_dir` into `converted_dir(config)`; returns that folder.

    Already converted (same fingerprint): returns at once, after checking every shard's size (and sha256
    with `verify`); a damaged shard is reconverted alone and named in a warning. Interrupted earlier: resumes.
    `max_new_shards` stops after writing that many shards (incremental conversion; used by tests).
    """
    dataset_dir = Path(config.dataset_dir or "")
    if not config.dataset_dir or not (dataset_dir / "meta.csv").is_file():
        raise ConversionError(
            f"no TAU dataset at '{config.dataset_dir}': expected meta.csv and audio/ there; pass --dataset_dir "
            f"(or set $ASC_TF_DATASET_DIR), or make a synthetic one with python -m asc_tf.data.synthetic --out DIR"
        )
    out = converted_dir(config)
    split_dir = ensure_split_files(resolve_split_dir(dataset_dir, config.split_dir), config.split_url)
    meta = read_meta(dataset_dir / "meta.csv")
    splits = load_splits(meta, split_dir)
    jobs = plan_shards(meta, splits, config.clips_per_shard)
    all_files = [f for job in jobs for f in job.filenames]
    if not config.skip_bad:
        _check_present(dataset_dir, meta, all_files)
    fingerprint = source_fingerprint(dataset_dir, split_dir, all_files, config)
    out.mkdir(parents=True, exist_ok=True)
    # one conversion of a folder at a time: a second one (another job, another checkout) waits, then resumes or
    # finds it done
    with exclusive_lock(lock_path(out), f"the conversion into {out}"):
        for stale in remove_stale_temporaries(out):  # what a killed conversion was writing
            log.info("removed %s, left by an interrupted conversion", stale.name)
        previous = _check_previous(out, fingerprint, config.overwrite)
        if previous.get("format") == FORMAT and (out / MANIFEST).exists():  # finished earlier
            damaged = damaged_shards(out, previous, full=verify)
            if not damaged:
                log.info("%s is already converted", out)
                return out
            for path, problem in damaged:
                log.warning("%s: %s: reconverting it", path, problem)
            done = _done_from_manifest(out, previous, jobs, {path.name for path, _ in damaged})
        else:
            done = {
                name: entry for name, entry in previous.get("done", {}).items()
                if (out / name).is_file() and (out / name).stat().st_size == entry["bytes"]
            }
        state = {"fingerprint": fingerprint, "dataset_dir": str(dataset_dir.resolve()), "done": done}
        atomic_write_json(out / PROGRESS, state)
        todo = [job for job in jobs if job.name not in done]
        if max_new_shards is not None:
            todo = todo[:max_new_shards]
        bar = console.progress(len(all_files), f"converting {dataset_dir.name}", "clips",
                               initial=sum(len(j.filenames) for j in jobs if j.name in done), enabled=progress)
        if todo:
            console.import_tensorflow()  # the shard writer: its start-up lines hidden unless --verbose
        try:
            for job, (encoded, bad) in _run_jobs(todo, config):
                if bad and not config.skip_bad:
                    raise AudioFileError(
                        f"{bad[0][1]} ({len(bad)} bad file(s) in shard {job.name}): replace the file with a good copy, "
                        f"or remove its row from {dataset_dir / 'meta.csv'}, or pass --skip_bad to skip bad files and "
                        f"list them in {out / SKIPPED}"
                    )
                entry = _write_shard(out / job.name, job, encoded)
                entry["skipped"] = [{"filename": f, "reason": r} for f, r in bad]
                done[job.name] = entry
                atomic_write_json(out / PROGRESS, state)
                bar.update(len(job.filenames))
        finally:
            bar.close()
        if any(job.name not in done for job in jobs):
            log.info("conversion stopped with %d of %d shards written; run it again to resume", len(done), len(jobs))
            return out
        _write_manifest(out, jobs, done, splits, fingerprint, dataset_dir, split_dir, config)
        return out


def _check_present(dataset_dir: Path, meta: pd.DataFrame, files: list[str]) -> None:
    """Every clip to convert is on disk; else one error naming the first missing one and its meta.csv line."""
    missing = [f for f in files if not (dataset_dir / f).is_file()]
    if missing:
        line = int(meta.loc[meta["filename"] == missing[0], "_line"].iloc[0])
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MissingAudioError(
            f"{dataset_dir / missing[0]}: listed in {dataset_dir / 'meta.csv'} line {line} but missing on disk{more}: "
            f"restore the file or remove its row from meta.csv, or pass --skip_bad to skip missing and bad clips"
        )


def _done_from_manifest(out: Path, manifest: dict, jobs: list[ShardJob], damaged: set[str]) -> dict[str, dict]:
    """Progress entries of a finished conversion's intact shards (for reconverting only the damaged ones)."""
    shard_of = {f: job.name for job in jobs for f in job.filenames}
    skipped: dict[str, list[dict]] = {}
    if (out / SKIPPED).is_file():
        for row in pd.read_csv(out / SKIPPED, sep="\t", dtype=str, keep_default_na=False).to_dict("records"):
            skipped.setdefault(shard_of.get(row["filename"], ""), []).append(
                {"filename": row["filename"], "reason": row["reason"]})
    return {entry["file"]: {**entry, "skipped": skipped.get(entry["file"], [])}
            for tier in manifest["tiers"].values() for entry in tier["shards"] if entry["file"] not in damaged}


@contextlib.contextmanager
def single_threaded_children() -> Iterator[None]:
    """Child processes started inside get one BLAS/OpenMP thread each: N workers with N threads each
    oversubscribe the cores (measured: 10x slower resampling with two workers on two cores)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker as soon as the conversion that started it is gone (kill -9
    included). A pool worker otherwise waits forever on a work queue that it holds open itself."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_jobs(jobs: list[ShardJob], config: Config):
    """Yield (job, worker result) as shards are read: in-process for one worker, else in a process pool
    (spawned, so workers never inherit TensorFlow's threads)."""
    args = (str(config.dataset_dir), config.orig_sample_rate, config.sample_rate, config.storage_dtype)
    workers = max(1, min(config.num_workers, os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        for job in jobs:
            yield job, _read_shard_clips(job, *args)
        return
    context = multiprocessing.get_context("spawn")
    with single_threaded_children(), concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_read_shard_clips, job, *args): job for job in jobs}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _write_manifest(out: Path, jobs: list[ShardJob], done: dict[str, dict], splits: dict[str, list[str]],
                    fingerprint: str, dataset_dir: Path, split_dir: Path, config: Config) -> None:
    import tensorflow as tf

    tiers: dict[str, dict] = {}
    for tier in TIERS:
        entries = [{k: v for k, v in done[j.name].items() if k != "skipped"} for j in jobs if j.tier == tier]
        tiers[tier] = {"clips": sum(e["clips"] for e in entries), "shards": entries}
    skipped = [dict(s, tier=j.tier) for j in jobs for s in done[j.name]["skipped"]]
    if skipped:
        frame = pd.DataFrame(skipped, columns=["filename", "tier", "reason"])
        atomic_write_text(out / SKIPPED, frame.to_csv(sep="\t", index=False))
        log.warning("%d bad clip(s) skipped, listed in %s", len(skipped), out / SKIPPED)
    manifest = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "dataset_dir": str(dataset_dir.resolve()),
        "split_dir": str(split_dir.resolve()),
        "clips_per_shard": config.clips_per_shard,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "orig_sample_rate": config.orig_sample_rate,
        "sample_rate": config.sample_rate,
        "samples": int(round(config.sample_rate * CLIP_SECONDS)),
        "storage_dtype": config.storage_dtype,
        "classes": list(CLASSES),
        "devices": list(DEVICES),
        "splits": {name: sum(tiers[t]["clips"] for t in tiers_of(name)) for name in SPLITS},
        "skipped": len(skipped),
        "tiers": tiers,
        "tensorflow": tf.__version__,
    }
    atomic_write_json(out / MANIFEST, manifest)
    (out / PROGRESS).unlink(missing_ok=True)
    log.info("converted %s: %s", out, manifest["splits"])


def damaged_shards(out: Path, manifest: dict, split: Optional[str] = None, full: bool = False
                   ) -> list[tuple[Path, str]]:
    """(path, problem) of the shards a manifest lists (all, or those of `split`) that are missing, of the
    wrong size or, with `full`, of the wrong contents (sha256). Empty when everything is in place."""
    problems = []
    tiers = tiers_of(split) if split else list(manifest.get("tiers", {}))
    for tier in tiers:
        for entry in manifest["tiers"][tier]["shards"]:
            path = out / entry["file"]
            if not path.is_file():
                problems.append((path, "shard missing"))
            elif path.stat().st_size != entry["bytes"]:
                problems.append((path, f"{path.stat().st_size} bytes, the manifest says {entry['bytes']} "
                                       f"(truncated or corrupt)"))
            elif full and file_sha256(path) != entry["sha256"]:
                problems.append((path, "contents differ from the manifest's sha256 (corrupt)"))
    return problems


def missing_or_damaged(out: Path, manifest: dict, split: Optional[str] = None, full: bool = False) -> list[str]:
    """`damaged_shards` as one message per shard."""
    return [f"{path}: {problem}" for path, problem in damaged_shards(out, manifest, split, full)]


def main(argv: Optional[list[str]] = None) -> int:
    """The command line; bad input is one `error:` line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m asc_tf.data.convert", description=__doc__.split("\n\n")[0])
    add_arguments(parser, ["dataset_dir", "split_dir", "split_url", "tfrecords_dir", "storage_dtype",
                           "clips_per_shard", "num_workers", "orig_sample_rate", "sample_rate", "skip_bad", "overwrite"])
    parser.add_argument("--verify", action="store_true",
                        help="check every shard's sha256 (not only its size) and reconvert the damaged ones")
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    config = from_args(args)
    try:
        out = convert_dataset(config, verify=args.verify)
        manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).exists() else {}
        problems = missing_or_damaged(out, manifest, full=args.verify) if manifest else []
    except (ConversionError, MetadataError, SplitFilesMissing, AudioFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if problems:  # still damaged after reconverting: the source changed under the same names, sizes and times
        print(f"error: {problems[0]}, even after reconverting it: the source changed without a new fingerprint; "
              f"convert again with --overwrite", file=sys.stderr)
        return 2
    print(f"{out}: " + ", ".join(f"{k} {v}" for k, v in manifest.get("splits", {}).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
