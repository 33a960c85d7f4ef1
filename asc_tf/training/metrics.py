"""Upstream's 69 validation/test metrics (accuracy, loss, per device, device group and class, macro average
accuracy), accumulated batch by batch in numpy float64, with upstream's names, order and definitions.

Pure numpy on purpose: the same code scores a Keras model, a float16 variant or a TFLite export.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from asc_tf.data.meta import CLASSES, DEVICE_GROUPS, DEVICES, device_from_filename

logger = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(DEVICE_GROUPS[d] for d in DEVICES))  # real, seen, unseen


def metric_names() -> list[str]:
    """The 69 metric names in upstream's insertion order (group keys appear at a group's first device)."""
    names = ["acc", "loss"]
    seen_groups: set[str] = set()
    for device in DEVICES:
        names += [f"loss.{device}", f"acc.{device}", f"cnt.{device}"]
        group = DEVICE_GROUPS[device]
        if group not in seen_groups:
            seen_groups.add(group)
            names += [f"acc.{group}", f"count.{group}", f"lloss.{group}"]
    for label in CLASSES:
        names += [f"loss.{label}", f"acc.{label}", f"cnt.{label}"]
    return names + ["macro_avg_acc"]


METRIC_NAMES: tuple[str, ...] = tuple(metric_names())


def prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """The metrics with every key prefixed (`"val/"`, `"test/"`), order kept, as upstream logs them."""
    return {f"{prefix}{key}": value for key, value in metrics.items()}


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy in float64 via a numerically stable log-softmax (torch's reduction='none')."""
    x = np.asarray(logits, dtype=np.float64)
    top = x.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(x - top).sum(axis=1))
    return log_norm - x[np.arange(x.shape[0]), np.asarray(labels, dtype=np.int64)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0 (upstream's 0/0), without a RuntimeWarning."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den != 0)


def _device_indices(devices: Iterable[object]) -> np.ndarray:
    """Indices into DEVICES of device names (str or bytes, e.g. from tf.data) or of integer indices."""
    lookup = {name: i for i, name in enumerate(DEVICES)}
    out = []
    for device in devices:
        if isinstance(device, bytes):
            device = device.decode("utf-8")
        if isinstance(device, (int, np.integer)) and 0 <= int(device) < len(DEVICES):
            out.append(int(device))
        elif isinstance(device, str) and device in lookup:
            out.append(lookup[device])
        else:
            raise ValueError(f"unknown device {device!r}; devices are {list(DEVICES)}")
    return np.asarray(out, dtype=np.int64)


class MetricsAccumulator:
    """Collects per-batch sums (loss, correct, count per device and class, confusion) and computes upstream's
    epoch-end metrics. Feed it with `update` once per batch; the batch boundaries matter for `loss`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (start of a validation epoch)."""
        n_dev, n_cls = len(DEVICES), len(CLASSES)
        self.batch_losses: list[float] = []
        self.device_loss = np.zeros(n_dev)
        self.device_correct = np.zeros(n_dev, dtype=np.int64)
        self.device_count = np.zeros(n_dev, dtype=np.int64)
        self.class_loss = np.zeros(n_cls)
        self.confusion = np.zeros((n_cls, n_cls), dtype=np.int64)  # rows: true label, columns: prediction

    @property
    def count(self) -> int:
        """Samples seen so far."""
        return int(self.device_count.sum())

    def update(self, logits: np.ndarray, labels: np.ndarray, files: Optional[Sequence[object]] = None,
               devices: Optional[Sequence[object]] = None) -> None:
        """Add one batch: logits [B, 10] (any float dtype), integer labels [B], and either file names (device
        parsed from the name as upstream) or devices (names or indices into DEVICES)."""
        x = np.asarray(logits, dtype=np.float64)
        y = np.asarray(labels).astype(np.int64).reshape(-1)
        if (files is None) == (devices is None):
            raise ValueError("give exactly one of files= or devices=")
        if files is not None:
            devices = [device_from_filename(f.decode("utf-8") if isinstance(f, bytes) else str(f)) for f in files]
        dev = _device_indices(np.asarray(devices, dtype=object).reshape(-1))
        if x.ndim != 2 or x.shape[1] != len(CLASSES):
            raise ValueError(f"logits must have shape [B, {len(CLASSES)}], got {x.shape}")
        if not (x.shape[0] == y.shape[0] == dev.shape[0]):
            raise ValueError(f"batch sizes differ: logits {x.shape[0]}, labels {y.shape[0]}, devices {dev.shape[0]}")
        if y.size and (y.min() < 0 or y.max() >= len(CLASSES)):
            raise ValueError(f"labels must be in [0, {len(CLASSES)}), got {y.min()}..{y.max()}")
        if y.size == 0:
            logger.debug("empty batch ignored")
            return
        loss = cross_entropy(x, y)
        preds = x.argmax(axis=1)
        correct = (preds == y).astype(np.int64)
        self.batch_losses.append(float(loss.mean()))
        n_dev = len(DEVICES)
        self.device_loss += np.bincount(dev, weights=loss, minlength=n_dev)
        self.device_correct += np.bincount(dev, weights=correct, minlength=n_dev).astype(np.int64)
        self.device_count += np.bincount(dev, minlength=n_dev)
        self.class_loss += np.bincount(y, weights=loss, minlength=len(CLASSES))
        np.add.at(self.confusion, (y, preds), 1)

    def per_device(self) -> dict[str, tuple[int, int]]:
        """(correct, count) per device, in DEVICES order."""
        return {d: (int(c), int(n)) for d, c, n in zip(DEVICES, self.device_correct, self.device_count)}

    def compute(self) -> dict[str, float]:
        """Upstream's 69 metrics (unprefixed) in upstream's order; NaN where a device, group or class is absent."""
        class_count = self.confusion.sum(axis=1)
        class_correct = np.diag(self.confusion)
        total = self.device_count.sum()
        values: dict[str, float] = {
            "acc": float(_ratio(self.device_correct.sum(), total)),
            "loss": float(np.mean(self.batch_losses)) if self.batch_losses else float("nan"),
        }
        dev_loss = _ratio(self.device_loss, self.device_count)
        dev_acc = _ratio(self.device_correct, self.device_count)
        for i, device in enumerate(DEVICES):
            values.update({f"loss.{device}": float(dev_loss[i]), f"acc.{device}": float(dev_acc[i]),
                           f"cnt.{device}": float(self.device_count[i])})
        for group in GROUPS:
            members = np.array([DEVICE_GROUPS[d] == group for d in DEVICES])
            count = self.device_count[members].sum()
            values.update({f"acc.{group}": float(_ratio(self.device_correct[members].sum(), count)),
                           f"count.{group}": float(count),
                           f"lloss.{group}": float(_ratio(self.device_loss[members].sum(), count))})
        cls_loss = _ratio(self.class_loss, class_count)
        cls_acc = _ratio(class_correct, class_count)
        for i, label in enumerate(CLASSES):
            values.update({f"loss.{label}": float(cls_loss[i]), f"acc.{label}": float(cls_acc[i]),
                           f"cnt.{label}": float(class_count[i])})
        values["macro_avg_acc"] = float(np.mean(cls_acc))  # NaN if a class is absent, as torch.mean
        return {name: values[name] for name in METRIC_NAMES}


def compute_metrics(logits: np.ndarray, labels: np.ndarray, devices: Sequence[object],
                    batch_size: int) -> dict[str, float]:
    """Upstream's metrics of whole-split predictions, as if fed in batches of `batch_size` (matters for `loss`)."""
    acc = MetricsAccumulator()
    devices = list(devices)
    for start in range(0, len(labels), batch_size):
        stop = start + batch_size
        acc.update(logits[start:stop], labels[start:stop], devices=devices[start:stop])
    return acc.compute()
