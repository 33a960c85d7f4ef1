"""Quantization-aware training: the tf_keras twin reproduces the Keras 3 network, a short QAT run on the
synthetic set exports to int8 with QAT's own scales and passes the audit, and Keras 3 stays Keras 3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from asc_tf.export.audit import audit_file
from asc_tf.export.bundle import ExportOptions, export_bundle, load_source
from asc_tf.export.errors import ExportError
from asc_tf.export.memory_plan import with_offline_plan
from asc_tf.training.runs import Run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def qat_run(trained_run, tmp_path_factory):
    """A copy of the session's trained run (the shared run stays without QAT), fine-tuned for one QAT epoch."""
    from asc_tf.qat.finetune import qat_finetune

    config = trained_run.run.load_config()
    root = tmp_path_factory.mktemp("qat_project")
    run = Run(root / config.project_name / trained_run.run.run_id)
    shutil.copytree(trained_run.run.path, run.path, ignore=shutil.ignore_patterns("wandb"))
    config = config.replace(project_dir=str(root))
    return config, run, qat_finetune(config, run, epochs=1)


def test_twin_reproduces_the_keras3_network(trained_run):
    from asc_tf.qat.legacy import legacy_keras
    from asc_tf.qat.twin import build_twin

    network = keras.saving.load_model(trained_run.run.final_model, compile=False).get_layer("network")
    tk, _ = legacy_keras()
    twin = build_twin(network, tk)
    assert [layer.name for layer in twin.layers] == [layer.name for layer in network.layers]
    x = np.random.default_rng(0).normal(-4.0, 3.0, (4, *network.input.shape[1:])).astype(np.float32)
    expected = np.asarray(network(x, training=False))
    np.testing.assert_allclose(twin(x, training=False).numpy(), expected, atol=1e-5, rtol=0)


def test_qat_run_exports_int8_with_its_own_scales_and_passes(qat_run, tmp_path):
    config, run, result = qat_run
    info = json.loads(result.artefact.info_file.read_text())
    assert info["method"] == "qat" and info["epochs"] == 1 and info["first_epoch"] == config.n_epochs
    assert info["audit"]["passed"] and 0.0 <= info["test_fake_quant"]["macro_avg_acc"] <= 1.0
    source = load_source(run.run_id, config)
    assert source.qat_network == result.artefact.network_file
    exported = export_bundle(source, ExportOptions("int8", out=str(tmp_path / "qat"), skip_accuracy=True))
    assert exported.manifest["quantization"]["method"] == "qat" and exported.manifest["representative_set"] is None
    network = exported.path / "network_int8.tflite"
    # not recalibrated: the QAT network itself, with only TFLite Micro's offline memory plan added by the export
    assert network.read_bytes() == with_offline_plan(result.artefact.network_file.read_bytes())[0]
    audit = audit_file(network)
    assert audit.passed and set(audit.parameter_elements["weights"]) == {"INT8"}
    ptq = export_bundle(load_source(run.run_id, config, qat=False),
                        ExportOptions("int8", out=str(tmp_path / "ptq"), skip_accuracy=True))
    assert ptq.manifest["quantization"]["method"] == "ptq"


def test_qat_export_refusals(trained_run):
    with pytest.raises(ExportError, match="has no QAT artefact"):
        load_source(trained_run.run.run_id, trained_run.run.load_config(), qat=True)


def test_keras_stays_keras3_after_qat(qat_run):
    assert "TF_USE_LEGACY_KERAS" not in os.environ
    import tensorflow as tf

    assert keras.__version__.startswith("3.") and tf.keras.version().startswith("3.")
    # a fresh process whose first Keras contact is tfmot: tf.keras, `import keras` and the environment stay Keras 3
    code = ("import os; from asc_tf.qat.legacy import legacy_keras; tk, tfmot = legacy_keras(); "
            "import keras, tensorflow as tf; "
            "print(os.environ.get('TF_USE_LEGACY_KERAS'), keras.__version__, tf.keras.version(), tk.__version__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.split()
    assert out[0] == "None" and out[1].startswith("3.") and out[2].startswith("3.") and out[3].startswith("2.")


def test_qat_bundle_goes_beside_a_ptq_bundle(qat_run, tmp_path):
    """The QAT hint `export_tflite.py --ckpt_id ID --int8` works as printed when a PTQ bundle already exists at
    the default place: the QAT bundle's default folder is <id>_int8_qat."""
    from asc_tf.export.bundle import _out_dir
    from asc_tf.export.source import Source

    config, run, _ = qat_run
    config = config.replace(project_dir=str(tmp_path))
    ptq = tmp_path / "exports" / f"{run.run_id}_int8"
    ptq.mkdir(parents=True)
    (ptq / "manifest.json").write_text("{}")
    qat_source = Source(None, config, run.last_checkpoint, run.run_id, qat_network=run.path / "qat" / "x.tflite")
    assert _out_dir(qat_source, ExportOptions("int8")) == tmp_path / "exports" / f"{run.run_id}_int8_qat"
    with pytest.raises(ExportError, match="exists: pass --overwrite"):  # the PTQ bundle is still never replaced
        _out_dir(Source(None, config, run.last_checkpoint, run.run_id), ExportOptions("int8"))
