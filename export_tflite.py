"""Export a trained model as TFLite: `python export_tflite.py --ckpt_id ID [--int8 | --fp16] [--out DIR]`.

Writes a bundle (network int8 or fp16, float front end, end-to-end float model, manifest.json, the
complexity audit of the network file, and for int8 the firmware C arrays). `--ckpt_id` is a run id or a
`.keras` path. With `--int8`, a run fine-tuned with QAT (`--qat_epochs`) exports its QAT network, whose
scales come from training (`--ptq` recalibrates the float checkpoint instead); the manifest's
`quantization.method` says which. Exit status: 0 written, 2 a user error, 3 the network is over a challenge limit (nothing
written unless --keep_over_limit).
"""

from __future__ import annotations

import argparse
import sys

from asc_tf import console
from asc_tf.config import add_arguments, from_args
from asc_tf.export.metadata import DEFAULT_AUTHOR, DEFAULT_LICENCE

CONFIG_FLAGS = ("ckpt_id", "project_dir", "project_name", "dataset_dir", "split_dir", "num_workers", "batch_size",
                "seed")
DATA_FLAGS = ("dataset_dir", "split_dir", "tfrecords_dir", "num_workers", "batch_size", "seed")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, CONFIG_FLAGS, helps={"ckpt_id": "the run id (under --project_dir) or .keras file to export"})
    # Config's --tfrecords_dir carries the alias --out, which here names the bundle
    parser.add_argument("--tfrecords_dir", default=argparse.SUPPRESS, help="root folder of converted datasets")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--int8", dest="precision", action="store_const", const="int8",
                      help="int8 network, int8 input/output (default)")
    kind.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="float16-weight network")
    quant = parser.add_mutually_exclusive_group()
    quant.add_argument("--qat", dest="use_qat", action="store_const", const=True,
                       help="int8: export the run's QAT network (<run>/qat/, from --qat_epochs); the default "
                            "when the run has one")
    quant.add_argument("--ptq", dest="use_qat", action="store_const", const=False,
                       help="int8: post-training quantization of the float checkpoint, even if the run has QAT")
    parser.add_argument("--out", help="bundle folder (default: PROJECT_DIR/exports/<run id>_<precision>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument("--keep_over_limit", action="store_true",
                        help="write the bundle even when the network exceeds 128,000 bytes or 30 M MACs")
    parser.add_argument("--representative_size", type=int, default=200,
                        help="training-split clips calibrating the int8 network (default: 200)")
    parser.add_argument("--tflm_clips", type=int, default=4, help="clips run under TFLite Micro (default: 4)")
    parser.add_argument("--skip_accuracy", action="store_true", help="do not evaluate on the dev-test split")
    parser.add_argument("--firmware_figures", action="store_true",
                        help="int8: build firmware/ for Cortex-M4 (CMSIS-NN), run 4 dev-test clips under QEMU and "
                             "record flash, RAM, arena and instructions in the manifest (arm-none-eabi-gcc, qemu)")
    parser.add_argument("--vela", action="store_true",
                        help="int8: also compile the network with Arm's Vela for Ethos-U55-128 and Ethos-U65-256 "
                             "(npu/ in the bundle; Vela's estimated cycles, SRAM and flash in the manifest; Vela "
                             "runs in a venv made once from requirements-vela.txt, or in $ASC_TF_VELA_PYTHON)")
    parser.add_argument("--no_metadata", dest="metadata", action="store_false",
                        help="no TFLite Model Metadata on the end-to-end models (written by tflite-support in a venv "
                             "made once from requirements-metadata.txt, or in $ASC_TF_METADATA_PYTHON)")
    parser.add_argument("--require_metadata", action="store_true",
                        help="exit 2 and write nothing when the metadata cannot be written (default: warn, record why "
                             "in the manifest and export without it)")
    parser.add_argument("--model_author", default=DEFAULT_AUTHOR, help="author field of the model metadata")
    parser.add_argument("--model_licence", default=DEFAULT_LICENCE, help="licence field of the model metadata")
    console.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if not getattr(args, "ckpt_id", None):
        parser.error("--ckpt_id RUN_ID_OR_MODEL.keras is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console.setup(args.verbose)
    from asc_tf.errors import USER_ERRORS  # light: nothing in it imports TensorFlow
    from asc_tf.export.locate import bundle_dir, locate_source

    config = from_args(args)
    precision = args.precision or "int8"
    use_qat = False if precision == "fp16" else args.use_qat  # QAT concerns the int8 network only
    try:  # unknown run, missing checkpoint, existing bundle: refused before TensorFlow loads
        located = locate_source(str(config.ckpt_id), config, use_qat)
        bundle_dir(located.name, config.project_dir, precision, precision == "int8" and located.qat_network is not None,
                   args.out, args.overwrite)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console.import_tensorflow()
    from asc_tf.export.bundle import ExportOptions, OverLimitError, export_bundle, load_source

    options = ExportOptions(precision=precision, out=args.out, overwrite=args.overwrite,
                            keep_over_limit=args.keep_over_limit, representative_size=args.representative_size,
                            tflm_clips=args.tflm_clips, skip_accuracy=args.skip_accuracy,
                            firmware_figures=args.firmware_figures, vela=args.vela, metadata=args.metadata,
                            require_metadata=args.require_metadata,
                            author=args.model_author, licence=args.model_licence)
    overrides = {name: getattr(args, name) for name in DATA_FLAGS if hasattr(args, name)}
    try:
        result = export_bundle(load_source(str(config.ckpt_id), config, overrides, qat=use_qat), options)
    except OverLimitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(result.audit.verdict())
    if result.manifest["quantization"]["method"]:
        print(f"quantization: {result.manifest['quantization']['method']}")
    accuracy = result.manifest["accuracy"]
    if "macro_avg_acc" in accuracy:
        print("macro accuracy (dev-test): " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy["macro_avg_acc"].items())
              + f"; top-1 agreement {accuracy['top1_agreement']:.4f}")
    if "arena_bytes" in result.manifest["tflm"]:
        print(f"TFLite Micro arena: {result.manifest['tflm']['arena_bytes']:,} bytes")
    figures = (result.manifest.get("firmware") or {}).get("figures")
    if figures:
        f = figures[0]
        print(f"firmware {f['target']} {f['kernels']}: flash {f['memory']['flash']:,} B, RAM {f['memory']['ram']:,} B, "
              f"{f['frontend'] + f['network']:,} instructions per clip")
    metadata = result.manifest["metadata"]
    print(f"TFLite metadata: {len(metadata['models'])} end-to-end models ({metadata['writer']})" if "models" in metadata
          else f"TFLite metadata: NOT written ({metadata['skipped']})")
    print(f"bundle: {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
