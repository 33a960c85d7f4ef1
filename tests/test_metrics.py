"""Upstream's 69 metrics: names and order, and values against a direct, independent computation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from asc_tf.data.meta import CLASSES, DEVICE_GROUPS, DEVICES
from asc_tf.training.metrics import (METRIC_NAMES, MetricsAccumulator, compute_metrics, cross_entropy,
                                     metric_names, prefixed)

# Upstream's insertion order, spelled out (upstream.md section 6).
UPSTREAM_KEYS = [
    "acc", "loss",
    "loss.a", "acc.a", "cnt.a", "acc.real", "count.real", "lloss.real",
    "loss.b", "acc.b", "cnt.b", "loss.c", "acc.c", "cnt.c",
    "loss.s1", "acc.s1", "cnt.s1", "acc.seen", "count.seen", "lloss.seen",
    "loss.s2", "acc.s2", "cnt.s2", "loss.s3", "acc.s3", "cnt.s3",
    "loss.s4", "acc.s4", "cnt.s4", "acc.unseen", "count.unseen", "lloss.unseen",
    "loss.s5", "acc.s5", "cnt.s5", "loss.s6", "acc.s6", "cnt.s6",
    "loss.airport", "acc.airport", "cnt.airport", "loss.bus", "acc.bus", "cnt.bus",
    "loss.metro", "acc.metro", "cnt.metro", "loss.metro_station", "acc.metro_station", "cnt.metro_station",
    "loss.park", "acc.park", "cnt.park", "loss.public_square", "acc.public_square", "cnt.public_square",
    "loss.shopping_mall", "acc.shopping_mall", "cnt.shopping_mall",
    "loss.street_pedestrian", "acc.street_pedestrian", "cnt.street_pedestrian",
    "loss.street_traffic", "acc.street_traffic", "cnt.street_traffic", "loss.tram", "acc.tram", "cnt.tram",
    "macro_avg_acc",
]


def direct_metrics(batches: list[tuple[np.ndarray, np.ndarray, list[str]]]) -> dict[str, float]:
    """Upstream's definitions written out plainly, sample by sample (no shared code with the module)."""
    rows, batch_means = [], []
    for logits, labels, devices in batches:
        losses = []
        for x, y, d in zip(logits.astype(float), labels, devices):
            loss = math.log(sum(math.exp(v) for v in x)) - x[y]
            losses.append(loss)
            rows.append({"loss": loss, "correct": float(int(np.argmax(x)) == int(y)), "device": d,
                         "group": DEVICE_GROUPS[d], "label": CLASSES[int(y)]})
        batch_means.append(sum(losses) / len(losses))
    frame = pd.DataFrame(rows)
    nan = float("nan")

    def stats(column: str, value: str) -> tuple[float, float, float]:
        part = frame[frame[column] == value]
        n = float(len(part))
        return (part["loss"].sum() / n if n else nan, part["correct"].sum() / n if n else nan, n)

    out = {"acc": frame["correct"].mean(), "loss": sum(batch_means) / len(batch_means)}
    for d in DEVICES:
        out["loss." + d], out["acc." + d], out["cnt." + d] = stats("device", d)
    for g in ("real", "seen", "unseen"):
        out["lloss." + g], out["acc." + g], out["count." + g] = stats("group", g)
    for c in CLASSES:
        out["loss." + c], out["acc." + c], out["cnt." + c] = stats("label", c)
    out["macro_avg_acc"] = sum(out["acc." + c] for c in CLASSES) / len(CLASSES)
    return out


def assert_same(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert list(actual) == UPSTREAM_KEYS
    for key in UPSTREAM_KEYS:
        a, e = actual[key], expected[key]
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, rel=1e-12, abs=1e-12), key


def hand_made_batches() -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """10 clips in batches of 4, 4 and a partial 2; every class present; devices s5 and s6 absent."""
    logits = np.full((10, 10), -1.0)
    labels = np.arange(10)
    preds = [0, 1, 2, 0, 4, 5, 9, 7, 8, 1]          # wrong for labels 3, 6, 9
    for i, p in enumerate(preds):
        logits[i, p] = 2.0 + 0.5 * i                 # varied confidence -> varied losses
    logits[9, 9] = 1.0                               # the last (partial) batch has small and large losses
    devices = ["a", "a", "b", "c", "s1", "s2", "s3", "s4", "a", "s1"]
    return [(logits[s:s + 4], labels[s:s + 4], devices[s:s + 4]) for s in (0, 4, 8)]


def test_names_and_order_are_upstreams():
    assert len(UPSTREAM_KEYS) == 69 == len(set(UPSTREAM_KEYS))
    assert list(METRIC_NAMES) == metric_names() == UPSTREAM_KEYS


def test_hand_made_case_matches_direct_computation():
    batches = hand_made_batches()
    acc = MetricsAccumulator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # 0/0 must not warn
        for logits, labels, devices in batches:
            acc.update(logits, labels, devices=devices)
        metrics = acc.compute()
    assert_same(metrics, direct_metrics(batches))
    assert metrics["acc"] == pytest.approx(0.7)
    assert metrics["macro_avg_acc"] == pytest.approx(0.7)
    assert metrics["cnt.a"] == 3 and metrics["count.real"] == 5 and metrics["count.unseen"] == 1
    for key in ("loss.s5", "acc.s5", "loss.s6", "acc.s6"):
        assert math.isnan(metrics[key]), key
    assert metrics["cnt.s5"] == 0
    assert acc.per_device()["a"] == (3, 3) and acc.per_device()["s5"] == (0, 0)
    assert acc.confusion.sum() == 10 and acc.confusion[9, 1] == 1 and np.trace(acc.confusion) == 7


def test_loss_is_mean_of_batch_means():
    batches = hand_made_batches()
    acc = MetricsAccumulator()
    for logits, labels, devices in batches:
        acc.update(logits, labels, devices=devices)
    per_batch = [cross_entropy(x, y).mean() for x, y, _ in batches]
    pooled = np.concatenate([cross_entropy(x, y) for x, y, _ in batches]).mean()
    loss = acc.compute()["loss"]
    assert loss == pytest.approx(np.mean(per_batch), rel=1e-12)
    assert abs(loss - pooled) > 1e-3              # the partial last batch weighs as a full one


def test_absent_group_and_class_give_nan_without_warnings():
    acc = MetricsAccumulator()
    logits = np.eye(10)[[0, 1, 2]] * 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        acc.update(logits, np.array([0, 1, 1]), devices=["a", "s1", "b"])
        metrics = acc.compute()
    assert math.isnan(metrics["acc.unseen"]) and math.isnan(metrics["lloss.unseen"])
    assert metrics["count.unseen"] == 0
    assert math.isnan(metrics["acc.tram"]) and metrics["cnt.tram"] == 0
    assert math.isnan(metrics["macro_avg_acc"])     # torch.mean over a NaN class accuracy, as upstream
    assert metrics["acc"] == pytest.approx(2 / 3)


def test_file_names_bytes_and_device_indices_agree():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=6)
    devices = ["a", "s4", "s6", "b", "c", "s2"]
    files = [f"audio/airport-lisbon-1000-4000{i}-0-{d}.wav" for i, d in enumerate(devices)]
    by_name, by_file, by_bytes, by_index = (MetricsAccumulator() for _ in range(4))
    by_name.update(logits, labels, devices=devices)
    by_file.update(logits, labels, files=files)
    by_bytes.update(logits, labels, files=[f.encode() for f in files])
    by_index.update(logits, labels, devices=np.array([DEVICES.index(d) for d in devices]))
    reference = by_name.compute()
    for other in (by_file, by_bytes, by_index):
        assert_same(other.compute(), reference)


def test_random_batches_and_compute_metrics_match_direct():
    rng = np.random.default_rng(0)
    n, batch = 203, 64
    logits = rng.normal(scale=3.0, size=(n, 10))
    labels = rng.integers(0, 10, size=n)
    devices = list(rng.choice(DEVICES[:8], size=n))       # s6 absent
    batches = [(logits[s:s + batch], labels[s:s + batch], devices[s:s + batch]) for s in range(0, n, batch)]
    assert_same(compute_metrics(logits, labels, devices, batch_size=batch), direct_metrics(batches))


def test_dtype_agnostic_and_numerically_stable():
    logits16 = (np.random.default_rng(2).normal(size=(8, 10)) * 4).astype(np.float16)
    labels = np.arange(8)
    a16, a64 = MetricsAccumulator(), MetricsAccumulator()
    a16.update(logits16, labels, devices=["a"] * 8)
    a64.update(logits16.astype(np.float64), labels, devices=["a"] * 8)
    assert_same(a16.compute(), a64.compute())
    big = np.array([[1000.0, 0.0] + [-1000.0] * 8, [0.0, 1000.0] + [0.0] * 8])
    loss = cross_entropy(big, np.array([1, 1]))
    assert np.all(np.isfinite(loss))
    assert loss == pytest.approx([1000.0, 0.0])


def test_prefixed_keeps_order():
    acc = MetricsAccumulator()
    acc.update(np.zeros((2, 10)), np.array([0, 1]), devices=["a", "b"])
    val = prefixed(acc.compute(), "val/")
    assert list(val) == ["val/" + k for k in UPSTREAM_KEYS]


@pytest.mark.parametrize("kwargs, match", [
    ({"logits": np.zeros((2, 9)), "labels": [0, 1], "devices": ["a", "b"]}, "shape"),
    ({"logits": np.zeros((2, 10)), "labels": [0, 1], "devices": ["a", "x9"]}, "unknown device"),
    ({"logits": np.zeros((2, 10)), "labels": [0, 10], "devices": ["a", "b"]}, "labels"),
    ({"logits": np.zeros((2, 10)), "labels": [0], "devices": ["a", "b"]}, "batch sizes"),
    ({"logits": np.zeros((2, 10)), "labels": [0, 1]}, "exactly one"),
])
def test_bad_input_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetricsAccumulator().update(**kwargs)
