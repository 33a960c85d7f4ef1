"""Which model file an export reads and where its bundle goes, found from the run folders alone (no TensorFlow):
export_tflite.py refuses an unknown run, a missing checkpoint or an existing bundle before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from asc_tf.config import Config
from asc_tf.export.errors import ExportError
from asc_tf.export.manifest import MANIFEST
from asc_tf.qat.artefact import qat_artefact
from asc_tf.training.runs import Run, open_run


@dataclass(frozen=True)
class Located:
    """The `.keras` file to export, the run configuration it was trained with, and the run's QAT network."""

    checkpoint: Path
    config: Config
    run_id: Optional[str]
    qat_network: Optional[Path] = None

    @property
    def name(self) -> str:
        return self.run_id or self.checkpoint.stem


def run_config_near(path: Path) -> Optional[Config]:
    """The run configuration beside a `.keras` file of a run (`run/model.keras`, `run/checkpoints/last.keras`)."""
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.json").is_file():
            return Run(folder).load_config()
    return None


def locate_source(ckpt: str, config: Config, qat: Optional[bool] = None) -> Located:
    """A run id (its last checkpoint, or its QAT artefact: `qat` None takes it when there is one, True requires
    it, False ignores it) or a `.keras` path; ExportError / RunError name what is missing."""
    path = Path(ckpt)
    if path.suffix == ".keras":
        if qat:
            raise ExportError("--qat needs a run id (--ckpt_id RUN_ID), not a .keras file")
        if not path.is_file():
            raise ExportError(f"{path} does not exist")
        return Located(path, run_config_near(path) or config, None)
    run = open_run(config, ckpt)
    path, qat_network = run.last_checkpoint, None
    artefact = qat_artefact(run)
    if qat and not artefact.exists():
        raise ExportError(f"run {run.run_id} has no QAT artefact ({artefact.path}): run python -m asc_tf.qat "
                          f"--ckpt_id {run.run_id} --qat_epochs N first, or export without --qat")
    if qat is not False and artefact.exists():
        path, qat_network = artefact.model_file, artefact.network_file
    if not path.is_file():
        raise ExportError(f"{path} does not exist: run {run.run_id} has no completed epoch to export")
    return Located(path, run.load_config(), run.run_id, qat_network)


def bundle_dir(name: str, project_dir: str | Path, precision: str, qat: bool, out: Optional[str | Path] = None,
               overwrite: bool = False) -> Path:
    """The bundle folder (`--out`, else PROJECT_DIR/exports/<name>_<precision>[_qat]); an existing bundle only
    with `overwrite`, and never a non-empty folder that is not a bundle."""
    target = Path(out) if out else Path(project_dir) / "exports" / f"{name}_{precision}{'_qat' if qat else ''}"
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return target
    if not overwrite:
        raise ExportError(f"{target} exists: pass --overwrite to replace the bundle, or choose another --out")
    if not (target / MANIFEST).is_file():
        raise ExportError(f"{target} is a non-empty folder that is not an export bundle: refusing to replace it")
    return target
