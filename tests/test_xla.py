"""`--jit_compile`: the training step runs with XLA auto-clustering (in a subprocess: the setting and TensorFlow's
CPU flag are process-wide) and computes the same first step as without it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


from asc_tf import Config, build_model
from asc_tf.console import QUIET_ENV
from asc_tf.training.trainer import compile_model

REPO = Path(__file__).resolve().parents[1]

STEP = textwrap.dedent("""
    import numpy as np, keras
    from asc_tf import Config, build_model
    from asc_tf.training.trainer import compile_model
    from asc_tf.training.xla import use_xla
    config = Config(batch_size=4, jit_compile={jit}, mixstyle_p={p}, freqm={freqm})
    use_xla(config.jit_compile)
    keras.utils.set_random_seed(0)
    model = build_model(config)
    compile_model(model, config, steps=100)
    rng = np.random.default_rng(0)
    waves, labels = (rng.normal(size=(4, 32000)) * 0.03).astype(np.float32), rng.integers(0, 10, 4)
    print("LOSS", model.train_on_batch(waves, labels)[0])
""")


def first_step_loss(jit: bool, augment: bool = False) -> tuple[float, str]:
    # TensorFlow's own INFO lines on: an earlier test's console.setup() may have put QUIET_ENV in this process's env
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != "TF_XLA_FLAGS"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-c", STEP.format(jit=jit, p=0.4 if augment else 0.0, freqm=48 if augment else 0)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    loss = next(float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("LOSS"))
    return loss, done.stderr


def test_jit_compile_runs_xla_and_trains_the_same_step():
    """Without the random augmentations (XLA draws its random numbers with another generator), the same loss."""
    xla_loss, log = first_step_loss(True)
    assert "Compiled cluster using XLA" in log  # TensorFlow's own line when a cluster ran through XLA
    plain_loss, plain_log = first_step_loss(False)
    assert "Compiled cluster using XLA" not in plain_log
    # XLA's and oneDNN's float32 convolutions sum in other orders: the loss of a 4-clip batch moves ~1e-6
    assert abs(xla_loss - plain_loss) < 1e-4 * abs(plain_loss)


def test_keras_never_compiles_the_whole_step_strictly():
    """Keras' jit_compile="auto" means strict XLA where a GPU is visible; the Beta draw has no XLA kernel."""
    config = Config(batch_size=4)
    model = build_model(config)
    compile_model(model, config, steps=10)
    assert model.jit_compile is False
