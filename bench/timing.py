"""Per-clip timing shared by the latency benchmarks: wall and this thread's CPU time, medians."""

from __future__ import annotations

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
