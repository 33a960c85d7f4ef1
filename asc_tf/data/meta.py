"""TAU Urban Acoustic Scenes 2022 Mobile metadata: classes, devices, `meta.csv`, as upstream reads them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:  # pandas loads with the first table read: refusals before it stay quick
    import pandas as pd

from asc_tf.data.errors import MetadataError
from asc_tf.io import atomic_write_text

# Upstream's LabelEncoder order (alphabetical) of scene_label.
CLASSES: tuple[str, ...] = (
    "airport", "bus", "metro", "metro_station", "park", "public_square",
    "shopping_mall", "street_pedestrian", "street_traffic", "tram",
)
DEVICES: tuple[str, ...] = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
CITIES: tuple[str, ...] = ("amsterdam", "barcelona", "helsinki", "lisbon", "london", "lyon",  # TAU 2022's 12 cities
                           "madrid", "milan", "paris", "prague", "stockholm", "vienna")
DEVICE_GROUPS: dict[str, str] = {
    "a": "real", "b": "real", "c": "real",
    "s1": "seen", "s2": "seen", "s3": "seen",
    "s4": "unseen", "s5": "unseen", "s6": "unseen",
}
META_COLUMNS: tuple[str, ...] = ("filename", "scene_label", "identifier", "source_label")
DEV_DIR_NAME = "TAU-urban-acoustic-scenes-2022-mobile-development"  # upstream's folder names
EVAL_DIR_NAME = "TAU-urban-acoustic-scenes-2024-mobile-evaluation"


def device_from_filename(filename: str) -> str:
    """Device id parsed from the file name as upstream does (`...-0-s4.wav` -> `s4`)."""
    return filename.rsplit("-", 1)[1][:-4]


def city_from_identifier(identifier: str) -> str:
    """City of a recording location identifier (`lisbon-1000` -> `lisbon`)."""
    return identifier.split("-")[0]


def read_tsv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a tab-separated file with a header holding `required` columns, all values as strings.

    Raises MetadataError naming the file and line for: a missing file, commas instead of tabs,
    missing columns, rows with the wrong number of fields, empty values in required columns.
    """
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise MetadataError(f"{path} line 1: empty file, expected a tab-separated header {list(required)}")
    header = [cell.strip() for cell in rows[0]]
    if len(header) == 1 and "," in header[0]:
        raise MetadataError(
            f"{path} line 1: columns are separated by commas; this file must be tab-separated "
            f"with columns {list(required)}"
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise MetadataError(f"{path} line 1: missing column(s) {missing}; header is {header}")
    records = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise MetadataError(
                f"{path} line {line_no}: {len(row)} tab-separated fields, the header has {len(header)}"
            )
        record = dict(zip(header, (cell.strip() for cell in row)))
        empty = [name for name in required if not record[name]]
        if empty:
            raise MetadataError(f"{path} line {line_no}: empty value in column(s) {empty}")
        record["_line"] = line_no
        records.append(record)
    import pandas as pd

    return pd.DataFrame.from_records(records, columns=[*header, "_line"])


def _check_unique(frame: pd.DataFrame, path: Path) -> None:
    duplicated = frame["filename"].duplicated()
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        first = frame[frame["filename"] == row["filename"]].iloc[0]
        raise MetadataError(
            f"{path} line {row['_line']}: {row['filename']} is listed twice (first on line {first['_line']})"
        )


def read_meta(path: str | Path) -> pd.DataFrame:
    """Read and validate TAU's `meta.csv`.

    Returns one row per clip in file order, with the four TAU columns plus `label` (index into
    CLASSES), `device` (from the file name), `device_group` and `city`.
    """
    path = Path(path)
    frame = read_tsv(path, META_COLUMNS)
    if frame.empty:
        raise MetadataError(f"{path}: no clips listed")
    _check_unique(frame, path)
    unknown = ~frame["scene_label"].isin(CLASSES)
    if unknown.any():
        row = frame[unknown].iloc[0]
        raise MetadataError(
            f"{path} line {row['_line']}: unknown scene '{row['scene_label']}'; scenes are {list(CLASSES)}"
        )
    frame["device"] = [_device_or_error(name, line, path) for name, line in zip(frame["filename"], frame["_line"])]
    frame["label"] = frame["scene_label"].map({name: i for i, name in enumerate(CLASSES)}).astype("int64")
    frame["device_group"] = frame["device"].map(DEVICE_GROUPS)
    frame["city"] = frame["identifier"].map(city_from_identifier)
    return frame.reset_index(drop=True)


def _device_or_error(filename: str, line: int, path: Path) -> str:
    if not filename.endswith(".wav") or "-" not in filename:
        raise MetadataError(f"{path} line {line}: file name '{filename}' is not <scene>-...-<device>.wav")
    device = device_from_filename(filename)
    if device not in DEVICES:
        raise MetadataError(f"{path} line {line}: unknown device '{device}' in '{filename}'; devices are {list(DEVICES)}")
    return device


def read_file_list(path: str | Path) -> pd.DataFrame:
    """Read a split or evaluation list: a tab-separated file with a `filename` column (other columns kept)."""
    path = Path(path)
    frame = read_tsv(path, ("filename",))
    _check_unique(frame, path)
    return frame


def write_tsv(frame: pd.DataFrame, path: str | Path, columns: Iterable[str]) -> None:
    """Write columns of `frame` tab-separated with a header, atomically (temp file + rename)."""
    atomic_write_text(path, frame.to_csv(sep="\t", index=False, columns=list(columns)))
