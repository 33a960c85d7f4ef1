"""The official DCASE2024 Task 1 splits (split5 ... split100, test): lookup, download, validation, tiers."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import pandas as pd

from asc_tf.data.errors import SplitFilesMissing
from asc_tf.data.meta import MetadataError, read_file_list
from asc_tf.io import atomic_write_bytes

log = logging.getLogger(__name__)

SUBSETS: tuple[int, ...] = (5, 10, 25, 50, 100)
TRAIN_SPLITS: tuple[str, ...] = tuple(f"split{n}" for n in SUBSETS)
SPLITS: tuple[str, ...] = (*TRAIN_SPLITS, "test")
# Storage tiers: tier N holds the clips of split N that no smaller split has; split N = tiers up to N.
TIERS: tuple[str, ...] = (*(f"tier{n:03d}" for n in SUBSETS), "test")
DOWNLOAD_TIMEOUT_S = 30


def split_name(subset_or_name: int | str) -> str:
    """`25` or `"split25"` -> `"split25"`; `"test"` -> `"test"`; anything else is an error."""
    name = f"split{subset_or_name}" if isinstance(subset_or_name, int) else str(subset_or_name)
    if name not in SPLITS:
        raise ValueError(f"unknown split '{subset_or_name}': use one of {list(SUBSETS)} or {list(SPLITS)}")
    return name


def tiers_of(split: int | str) -> list[str]:
    """Storage tiers that make up a split (`split25` -> tier005, tier010, tier025)."""
    name = split_name(split)
    if name == "test":
        return ["test"]
    n = int(name[len("split"):])
    return [f"tier{m:03d}" for m in SUBSETS if m <= n]


def resolve_split_dir(dataset_dir: Optional[str | Path], split_dir: Optional[str | Path]) -> Path:
    """The split folder: `split_dir` if given, else `<dataset_dir>/split_setup` if it exists, else
    `./split_setup` as upstream (where missing files are downloaded)."""
    if split_dir is not None:
        return Path(split_dir)
    if dataset_dir is not None and (Path(dataset_dir) / "split_setup").is_dir():
        return Path(dataset_dir) / "split_setup"
    return Path("split_setup")


def ensure_split_files(split_dir: str | Path, url: str) -> Path:
    """Make sure split5.csv ... split100.csv and test.csv are in `split_dir`, downloading the missing
    ones from `url` (upstream's release) as upstream does; no network gives a clear error."""
    split_dir = Path(split_dir)
    for name in SPLITS:
        target = split_dir / f"{name}.csv"
        if target.is_file():
            continue
        source = url.rstrip("/") + f"/{name}.csv"
        log.info("downloading %s -> %s", source, target)
        try:
            with urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT_S) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise SplitFilesMissing(
                f"{target} is missing and could not be downloaded from {source} ({reason}): download "
                f"{', '.join(s + '.csv' for s in SPLITS)} from {url} into {split_dir}/ (or pass --split_dir)"
            ) from None
        atomic_write_bytes(target, data)
    return split_dir


def load_splits(meta: pd.DataFrame, split_dir: str | Path) -> dict[str, list[str]]:
    """Read and validate all splits against `meta` (from `read_meta`).

    Returns split name -> file names in meta.csv row order (upstream's selection order). Checks that
    every listed file is in meta.csv, that each split contains the smaller ones, and that train and
    test are disjoint.
    """
    split_dir = Path(split_dir)
    known = set(meta["filename"])
    order = {name: i for i, name in enumerate(meta["filename"])}
    out: dict[str, list[str]] = {}
    for name in SPLITS:
        path = split_dir / f"{name}.csv"
        frame = read_file_list(path)
        if frame.empty:
            raise MetadataError(f"{path}: no clips listed")
        absent = ~frame["filename"].isin(known)
        if absent.any():
            row = frame[absent].iloc[0]
            raise MetadataError(
                f"{path} line {row['_line']}: {row['filename']} is not in meta.csv "
                f"({int(absent.sum())} such clips): split files of another dataset?"
            )
        out[name] = sorted(frame["filename"], key=order.__getitem__)
    for smaller, larger in zip(TRAIN_SPLITS, TRAIN_SPLITS[1:]):
        lacking = set(out[smaller]) - set(out[larger])
        if lacking:
            raise MetadataError(
                f"{split_dir / (larger + '.csv')}: lacks {len(lacking)} clip(s) of {smaller}.csv "
                f"(e.g. {sorted(lacking)[0]}); the training splits must be nested"
            )
    overlap = set(out["split100"]) & set(out["test"])
    if overlap:
        raise MetadataError(
            f"{split_dir / 'test.csv'}: {len(overlap)} clip(s) are also in split100.csv "
            f"(e.g. {sorted(overlap)[0]}); train and test must be disjoint"
        )
    return out


def tier_files(splits: dict[str, list[str]]) -> dict[str, list[str]]:
    """Files of each storage tier: tier N = split N minus the next smaller split; `test` as is."""
    tiers: dict[str, list[str]] = {}
    previous: set[str] = set()
    for n, name in zip(SUBSETS, TRAIN_SPLITS):
        tiers[f"tier{n:03d}"] = [f for f in splits[name] if f not in previous]
        previous = set(splits[name])
    tiers["test"] = list(splits["test"])
    return tiers
