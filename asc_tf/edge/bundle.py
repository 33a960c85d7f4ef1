"""Reading an export bundle's manifest and checking the files the edge runtime runs (no TensorFlow).

`asc_tf.export.bundle.load_bundle` does the same with the export machinery loaded; this reader needs only
the standard library, so a device installs no more than `requirements-edge.txt`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asc_tf.edge.errors import EdgeError
from asc_tf.io import file_sha256

FORMAT = "asc-tf-export/1"
MANIFEST = "manifest.json"


def read_manifest(bundle_dir: str | Path, roles: tuple[str, ...] = ("network",)) -> dict[str, Any]:
    """The bundle's manifest, after checking the format and each file of `roles` (size and sha256)."""
    path = Path(bundle_dir)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise EdgeError(f"{path}: not an export bundle ({MANIFEST}: {getattr(error, 'strerror', None) or error})"
                        ) from None
    if manifest.get("format") != FORMAT:
        raise EdgeError(f"{path / MANIFEST}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for role in roles:
        entry = manifest["files"][role]
        target = path / entry["path"]
        if not target.is_file() or target.stat().st_size != entry["bytes"] or file_sha256(target) != entry["sha256"]:
            raise EdgeError(f"{target}: missing or changed since export (size/sha256 differ from {MANIFEST})")
    return manifest
