"""Training progress as people read it: a header before epoch 1, then per epoch "epoch 3/12" with the total.

On a terminal each epoch is a tqdm bar redrawn in place and closed by its summary line; elsewhere (a log file,
a pipe) each epoch is one line, so a 12-epoch log holds 12 lines instead of Keras' redrawn ANSI bar.
Epochs are numbered from 1 everywhere (these lines, validation lines, history plots), as Keras prints them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import keras

log = logging.getLogger(__name__)


def epoch_label(epoch: int, total: int) -> str:
    """`epoch 3/12` for the zero-based `epoch` 2 of 12."""
    return f"epoch {epoch + 1}/{total}"


class EpochProgress(keras.callbacks.Callback):
    """Per-epoch progress for `model.fit(verbose=0)`: a bar on a terminal (`bar=True`), else nothing until the
    epoch's summary line (logged)."""

    def __init__(self, total_epochs: int, steps_per_epoch: int, bar: bool) -> None:
        super().__init__()
        self.total_epochs, self.steps, self.bar = total_epochs, steps_per_epoch, bar
        self._tqdm: Any = None
        self._started = 0.0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch, self._started = epoch, time.perf_counter()
        if self.bar:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self.steps, unit="step", desc=epoch_label(epoch, self.total_epochs),
                              leave=False, dynamic_ncols=True)

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self._tqdm is not None:
            logs = logs or {}
            self._tqdm.set_postfix(loss=f"{float(logs.get('loss', float('nan'))):.4f}",
                                   acc=f"{float(logs.get('acc', float('nan'))):.4f}", refresh=False)
            self._tqdm.update(1)

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        logs = logs or {}
        log.info("%s: loss %.4f acc %.4f (%.0f s)", epoch_label(epoch, self.total_epochs),
                 float(logs.get("loss", float("nan"))), float(logs.get("acc", float("nan"))),
                 time.perf_counter() - self._started)
