"""Reading an export bundle's manifest on a device (no TensorFlow): the checks are `asc_tf.export.manifest`'s,
shared with `asc_tf.export.bundle.load_bundle`; this module turns their errors into the edge runtime's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asc_tf.edge.errors import EdgeError
from asc_tf.export import manifest as _manifest
from asc_tf.export.manifest import FORMAT, MANIFEST, ManifestError

__all__ = ["FORMAT", "MANIFEST", "check_models", "read_manifest"]


def read_manifest(bundle_dir: str | Path, roles: tuple[str, ...] = ("network",)) -> dict[str, Any]:
    """The bundle's manifest, after checking the format, the fields and each file of `roles` (size and sha256)."""
    try:
        return _manifest.read_manifest(bundle_dir, roles)
    except ManifestError as error:
        raise EdgeError(str(error)) from None


def check_models(manifest: dict[str, Any], bundle_dir: str | Path, network: Any, frontend: Any = None,
                 numpy_frontend: Any = None) -> None:
    """The manifest's fields against the loaded models (`asc_tf.export.manifest.check_models`), as EdgeError."""
    try:
        _manifest.check_models(manifest, bundle_dir, network, frontend, numpy_frontend)
    except ManifestError as error:
        raise EdgeError(str(error)) from None
