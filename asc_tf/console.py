"""What a command prints: its own lines and progress; TensorFlow, absl, converter and LiteRT chatter only with
`--verbose`. Standard library only (no TensorFlow), so scripts call it before anything heavy is imported.

`setup(verbose)` configures logging and the environment TensorFlow reads at import; `quiet_stderr()` hides
the C-level lines that no setting reaches (printed to file descriptor 2 before absl's logging starts, or by
the converter's and LiteRT's C++ code); `import_tensorflow()` imports TensorFlow under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Any, Callable, Iterator, Optional, TextIO

# Read by TensorFlow's C++ logging at import: 3 hides INFO, WARNING and ERROR lines (cuInit error 303,
# "DT_HALF only on AVX-512"); the gRPC and glog variables do the same for the libraries TensorFlow links.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3",
             "KERAS_BACKEND": "tensorflow", "WANDB_SILENT": "true"}  # wandb's "Tracking run ..." banner too
NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "wandb", "urllib3", "numexpr", "jax")

_state = {"verbose": False}


def verbose() -> bool:
    """Whether the command was started with `--verbose` (library code asks before hiding anything)."""
    return _state["verbose"]


def add_verbose_flag(parser: Any) -> None:
    """`--verbose`: show TensorFlow's, absl's, the converter's and LiteRT's own log lines."""
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow, absl, converter and LiteRT log lines (hidden by default)")


def setup(verbose: bool = False, stream: Optional[TextIO] = None) -> None:
    """Configure logging (our INFO lines as plain text; other libraries' only when verbose) and, unless verbose,
    the environment variables that silence TensorFlow's C++ logging. Call before TensorFlow is imported."""
    _state["verbose"] = verbose
    if not verbose:
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_asc_tf", False):
            root.removeHandler(handler)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler._asc_tf = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    if not verbose:
        handler.addFilter(_OwnLinesFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore", module=r"(tensorflow|keras|tf_keras|tensorflow_model_optimization|absl)")
        warnings.filterwarnings("ignore", category=DeprecationWarning)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at each record (it may be replaced after setup, e.g. by a test)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _OwnLinesFilter(logging.Filter):
    """asc-tf's INFO lines (warnings prefixed `warning:`); other libraries' records only from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "__main__" or record.name.startswith("asc_tf")
        if not own and record.levelno < logging.ERROR:
            return False
        if record.levelno >= logging.WARNING and not str(record.msg).startswith(("warning:", "error:")):
            record.msg = f"{record.levelname.lower()}: {record.msg}"
        return True


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what C/C++ code writes to file descriptor 2 (unless verbose). Written by hand: no library
    redirects a file descriptor, and TensorFlow's pre-absl lines and the converter's TensorSpec dump are
    printed there, out of reach of Python's sys.stderr and of every logging setting."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreter): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Hide what C/C++ code and Python write to file descriptor 1 (unless verbose): the converter's SavedModel
    export prints a TensorSpec line per captured variable there."""
    if verbose():
        yield
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(open(os.devnull, "w")) as devnull:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            devnull.close()


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Both descriptors hidden (unless verbose): around the TFLite converter and LiteRT interpreter creation."""
    with quiet_stdout(), quiet_stderr():
        yield


def import_tensorflow() -> Any:
    """`import tensorflow` with its start-up banner (oneDNN, cudart, printed twice) hidden unless verbose."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_stderr():
        import tensorflow as tf
    if not verbose():
        tf.get_logger().setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def run_command(main: Callable[[], int]) -> int:
    """A command's exit code; a reader that closes stdout early (`--json | head`) ends the command quietly with
    128 + SIGPIPE, as a shell tool killed by SIGPIPE, instead of a BrokenPipeError traceback."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit: to nowhere now
        return 128 + 13


class _LineProgress:
    """tqdm's `update`/`close` for a log file or a pipe: one line per tenth of the work (and at the end) instead
    of a bar redrawn with carriage returns. Hand-written: tqdm redraws with `\r` into a file too (its `mininterval`
    only thins the redraws), and its lines would bypass logging and so `--verbose`'s formatting."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self._next = self._step_after(initial)

    def _step_after(self, done: int) -> int:
        step = max(1, -(-self.total // 10))
        return (done // step + 1) * step

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= min(self._next, self.total):
            logging.getLogger("asc_tf.progress").info("%s: %d/%d %s (%d %%)", self.desc, self.done, self.total,
                                                      self.unit, 100 * self.done // max(self.total, 1))
            self._next = self._step_after(self.done)

    def close(self) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass  # a bar's live figures; the lines carry counts only

    def __enter__(self) -> "_LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True) -> Any:
    """Progress of long work: a tqdm bar on a terminal, a line per tenth elsewhere (logged, so hidden where logging
    is), nothing when not `enabled`. Supports `update(n)`, `close()` and `with`."""
    if not enabled or total <= 0:
        from tqdm.auto import tqdm

        return tqdm(total=total, disable=True)
    if is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True)
    return _LineProgress(total, desc, unit, initial)


def is_terminal(stream: Optional[TextIO] = None) -> bool:
    """Whether progress may be a redrawn bar (a terminal) rather than a line per step (a log file, a pipe)."""
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
