"""Train the DCASE2024 Task 1 baseline with TensorFlow: `python train.py --subset 100`.

Flags are upstream's (`run_training.py`) plus asc-tf's own; every flag and default comes from
`asc_tf.config.Config`. `--evaluate --ckpt_id ID` evaluates a run as upstream; `--demo` runs the whole
pipeline on the built-in synthetic dataset.
"""

from __future__ import annotations

import argparse
import logging
import sys

from asc_tf.config import add_arguments, from_args
from asc_tf.errors import USER_ERRORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from asc_tf.training.demo import demo_base, demo_config

    # --demo changes the defaults (a short run); flags given on the command line still win
    demo = getattr(args, "demo", False)
    config = from_args(args, base=demo_base() if demo else None)
    if demo and not hasattr(args, "dataset_dir"):
        config = config.replace(dataset_dir=None)  # the demo's own dataset, not $ASC_TF_DATASET_DIR
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from asc_tf.training.evaluation import evaluate_run
    from asc_tf.training.trainer import train

    try:
        if config.evaluate:
            if not config.ckpt_id:
                parser.error("--evaluate needs --ckpt_id RUN_ID")
            metrics = evaluate_run(config)
            print(f"test/macro_avg_acc {metrics['test/macro_avg_acc']:.4f} (float16), run id: {config.ckpt_id}")
            return 0
        if config.demo:
            config = demo_config(config)
        result = train(config, on_start=lambda run: print(f"run id: {run.run_id}  ({run.path})", flush=True))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"macro average accuracy: {result.metrics['test/macro_avg_acc']:.4f} (test split, float16; "
          f"float32: {result.metrics['val/macro_avg_acc']:.4f})")
    print(f"run id: {result.run.run_id}  ({result.run.path})")
    if config.demo:
        print(f"next: python export_tflite.py --ckpt_id {result.run.run_id} --int8\n"
              f"      python predict.py --ckpt_id {result.run.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
