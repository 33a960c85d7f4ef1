"""QAT on an existing run: `python -m asc_tf.qat --ckpt_id RUN_ID --qat_epochs N [--overwrite]`.

Fine-tunes the run's trained network with quantization-aware training and writes `<run>/qat/`; then
`python export_tflite.py --ckpt_id RUN_ID --int8` exports the QAT network. Exit status 0, or 2 on a user error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asc_tf import console
from asc_tf.config import add_arguments, from_args

FLAGS = ("ckpt_id", "qat_epochs", "project_dir", "project_name", "dataset_dir", "split_dir", "tfrecords_dir",
         "num_workers")
DATA_FLAGS = ("dataset_dir", "split_dir", "tfrecords_dir", "num_workers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.qat", description=__doc__.split("\n\n")[0])
    add_arguments(parser, FLAGS)
    parser.add_argument("--overwrite", action="store_true", help="replace the run's existing qat/ artefact")
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "ckpt_id", None) or getattr(args, "qat_epochs", 0) < 1:
        print("error: --ckpt_id RUN_ID and --qat_epochs N (N >= 1) are required", file=sys.stderr)
        return 2
    console.setup(args.verbose)
    console.import_tensorflow()
    from asc_tf.errors import USER_ERRORS
    from asc_tf.qat.finetune import qat_finetune
    from asc_tf.training.runs import open_run

    config = from_args(args)
    try:
        run = open_run(config, str(config.ckpt_id))
        data = {name: getattr(args, name) for name in DATA_FLAGS if hasattr(args, name)}
        run_config = run.load_config().replace(project_dir=config.project_dir, qat_epochs=config.qat_epochs, **data)
        result = qat_finetune(run_config, run, config.qat_epochs, overwrite=args.overwrite)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    info = result.info
    print(f"QAT {info['epochs']} epoch(s): fake-quant test macro accuracy {info['test_fake_quant']['macro_avg_acc']:.4f}; "
          f"int8 network {info['audit']['parameter_bytes']:,} parameter bytes, {info['audit']['macs']:,} MACs")
    print(f"artefact: {result.artefact.path}\nnext: python export_tflite.py --ckpt_id {run.run_id} --int8"
          f"{'' if config.project_dir == '.' else ' --project_dir ' + config.project_dir}"
          f"   (writes {Path(config.project_dir) / 'exports' / (run.run_id + '_int8_qat')}, beside any PTQ bundle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
