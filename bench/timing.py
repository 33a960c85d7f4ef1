"""Timing shared by the benchmarks: per-clip wall and thread CPU medians, and a process's CPU seconds."""

from __future__ import annotations

import resource
import time

import numpy as np


def per_clip_ms(fn, clips: list[np.ndarray]) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this thread) per call."""
    fn(clips[0])
    wall, cpu = [], []
    for clip in clips:
        w, c = time.perf_counter_ns(), time.thread_time_ns()
        fn(clip)
        cpu.append(time.thread_time_ns() - c)
        wall.append(time.perf_counter_ns() - w)
    return float(np.median(wall)) / 1e6, float(np.median(cpu)) / 1e6


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (worker pools, subprocesses)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
