"""python -m asc_tf.edge BUNDLE FILE.wav... | BUNDLE -   (raw 16-bit mono PCM at the bundle's rate on stdin)
   python -m asc_tf.edge --selftest BUNDLE               (on the device: does it compute what was exported?)

Prints one decision per clip (one per second): [file] time, scene, probability [, latency]. A remainder
shorter than a clip is not classified: a warning names it. Exit codes: 0 done (warnings included), 2 bad
bundle or input (one `error:` line each; the other inputs are still classified), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

import numpy as np

from asc_tf.edge.audio import pcm_clips, read_clips
from asc_tf.edge.classifier import Classifier
from asc_tf.edge.errors import EdgeError


def _line(classifier: Classifier, clip: np.ndarray, seconds: float, latency: bool, prefix: str = "") -> str:
    probabilities, timing = classifier.predict_timed(clip)
    best = int(np.argmax(probabilities))
    text = f"{prefix}{seconds:8.1f} s  {classifier.classes[best]:<18s} {probabilities[best]:.3f}"
    if latency:
        text += (f"  {timing.total_ms:6.2f} ms (front end {timing.frontend_ms:.2f}, "
                 f"network {timing.network_ms:.2f})")
    return text


class _LowerCaseLevel(logging.Formatter):
    """`warning: ...`, in the style of the `error: ...` lines."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _version() -> str:
    """Package, TFLite interpreter backend (LiteRT or tflite_runtime) and numeric library versions."""
    import scipy

    from asc_tf import __version__
    from asc_tf.export.interpreter import describe

    return f"asc-tf {__version__}, interpreter {describe()}, numpy {np.__version__}, scipy {scipy.__version__}"


def _selftest(bundle: str, threads: int) -> int:
    from asc_tf.edge.selftest import run

    report = run(bundle, threads)
    if report.problem:
        print(f"error: selftest: {report.problem}", file=sys.stderr)
        return 2
    print(f"selftest passed: {report.summary}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asc_tf.edge", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="an export bundle folder (export_tflite.py)")
    parser.add_argument("inputs", nargs="*", help="audio files (any rate, mono), or - for raw 16-bit mono PCM on "
                        "standard input at the bundle's sample rate")
    parser.add_argument("--selftest", action="store_true",
                        help="check the interpreter, the CPU features, the files' sha256 and a known clip's output "
                             "against the export's; prints one line, exit 0 when it computes what was exported, else 2")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads (default 1)")
    parser.add_argument("--latency", action="store_true", help="also print the milliseconds spent per clip")
    parser.add_argument("--version", action="version", version=_version())
    args = parser.parse_args(argv)
    if args.selftest:
        return _selftest(args.bundle, args.threads)
    if not args.inputs:
        parser.error("give audio files or - (standard input), or --selftest")
    handler = logging.StreamHandler()
    handler.setFormatter(_LowerCaseLevel())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        classifier = Classifier(args.bundle, num_threads=args.threads)
    except EdgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds_per_clip = classifier.clip_samples / classifier.sample_rate
    status = 0
    for name in args.inputs:
        try:
            if name == "-":
                clips = pcm_clips(sys.stdin.buffer, classifier.clip_samples, classifier.sample_rate)
                for index, clip in enumerate(clips):
                    print(_line(classifier, clip, index * seconds_per_clip, args.latency), flush=True)
            else:
                for index, clip in enumerate(read_clips(name, classifier.sample_rate, classifier.clip_samples)):
                    print(_line(classifier, clip, index * seconds_per_clip, args.latency, f"{name}  "), flush=True)
        except EdgeError as error:  # bad input: say so, go on with the next input
            print(f"error: {error}", file=sys.stderr)
            status = 2
        except OSError as error:  # a failing read or write, not the input's fault
            print(f"error: {name}: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
