"""Train the DCASE2024 Task 1 baseline with TensorFlow: `python train.py --subset 100`.

Flags are upstream's (`run_training.py`) plus asc-tf's own; every flag and default comes from
`asc_tf.config.Config`. `--evaluate --ckpt_id ID` evaluates a run as upstream (dev-test metrics and the
evaluation set's output.csv in predictions/ID/); `--demo` runs the whole pipeline on the built-in synthetic
dataset. TensorFlow's own log lines are shown with --verbose only.
"""

from __future__ import annotations

import argparse
import sys

from asc_tf import console
from asc_tf.config import Config, add_arguments, from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--eval_dir", help="--evaluate: evaluation set folder (default: "
                        "TAU-urban-acoustic-scenes-2024-mobile-evaluation next to the development set)")
    console.add_verbose_flag(parser)
    return parser


def check_before_tensorflow(config: Config, eval_dir: str | None) -> str | None:
    """The refusals that need no TensorFlow, made before it loads (a second, not a minute under load): a bad
    configuration, an unknown run or missing checkpoint for --resume / --evaluate, an evaluated run, a given
    --eval_dir without a file list. For --evaluate, returns why the evaluation set will be skipped (or None)."""
    from asc_tf.training.runs import evaluable_run, resumable_run

    config.check()
    if config.resume:
        resumable_run(config)
    if not config.evaluate:
        return None
    run, _ = evaluable_run(config)
    from asc_tf.predict import PredictionError, find_evaluation_set  # pandas: after the run is known

    try:
        find_evaluation_set(eval_dir, config.dataset_dir or run.load_config().dataset_dir)  # before anything is written
    except PredictionError as error:
        if eval_dir is not None:
            raise
        return str(error)
    return None


def evaluate(config: Config, eval_dir: str | None, skip_reason: str | None) -> int:
    """Upstream's --evaluate: the dev-test metrics and pictures, then the evaluation set's output.csv with the same
    model and precision (kept when predict.py already made it from the same model), all in predictions/<id>/;
    `skip_reason`: why there is no evaluation set to predict (from `check_before_tensorflow`)."""
    from asc_tf.predict import predict_evaluation_set
    from asc_tf.training.evaluation import evaluate_run

    result = evaluate_run(config)
    print(f"test/macro_avg_acc {result.metrics['test/macro_avg_acc']:.4f} (dev-test, float16 network; float32 "
          f"{result.metrics['val/macro_avg_acc']:.4f}), model {result.model_file}")
    if skip_reason is None:
        output = predict_evaluation_set(config, ckpt_id=str(config.ckpt_id), eval_dir=eval_dir, reuse=True,
                                        progress=True)
        print(f"evaluation set predictions: {output}")
    else:
        print(f"warning: evaluation set not found, output.csv not written ({skip_reason})", file=sys.stderr)
    print(f"evaluation: {result.out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console.setup(args.verbose)
    from asc_tf.training.demo import demo_base

    # --demo changes the defaults (a short run); flags given on the command line still win
    demo = getattr(args, "demo", False)
    config = from_args(args, base=demo_base() if demo else None)
    if demo and not hasattr(args, "dataset_dir"):
        config = config.replace(dataset_dir=None)  # the demo's own dataset, not $ASC_TF_DATASET_DIR
    if config.evaluate and not config.ckpt_id:
        print("error: --evaluate needs --ckpt_id RUN_ID", file=sys.stderr)
        return 2
    from asc_tf.errors import USER_ERRORS  # light: nothing in it imports TensorFlow

    try:
        skip_reason = check_before_tensorflow(config, args.eval_dir)  # and before any folder is made
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if config.jit_compile:
        from asc_tf.training.xla import request_cpu_xla

        request_cpu_xla()  # before TensorFlow loads: it reads the flag once
    console.import_tensorflow()
    from asc_tf.training.demo import demo_config
    from asc_tf.training.trainer import train

    try:
        if config.evaluate:
            return evaluate(config, args.eval_dir, skip_reason)
        if config.demo:
            config = demo_config(config)
        # a resumed run keeps its own W&B mode (a run made with --wandb disabled stays so) unless --wandb is given
        result = train(config, on_start=lambda run: print(f"run id: {run.run_id}  ({run.path})", flush=True),
                       keep_run_wandb=not hasattr(args, "wandb"))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"macro average accuracy: {result.metrics['test/macro_avg_acc']:.4f} (test split, float16; "
          f"float32: {result.metrics['val/macro_avg_acc']:.4f})")
    print(f"run id: {result.run.run_id}  ({result.run.path})")
    if config.demo:
        where = "" if config.project_dir == "." else f" --project_dir {config.project_dir}"
        run_id = result.run.run_id
        print(f"next: python export_tflite.py --ckpt_id {run_id} --int8{where}\n"
              f"      python train.py --evaluate --ckpt_id {run_id}{where}   (dev-test metrics and the evaluation "
              "set's output.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
