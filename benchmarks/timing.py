"""Timing with the hygiene of ANCHORS.md: interleaved peers, min and median, foreign load."""

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def _busy_and_total_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _own_jiffies() -> float:
    times = os.times()
    return (times.user + times.system) * os.sysconf("SC_CLK_TCK")


@dataclass
class Samples:
    """Wall-clock seconds per repetition, and the share of the machine other processes used."""

    seconds: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max_foreign(self) -> float:
        return max(self.foreign, default=0.0)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Run ``fn`` once: (seconds, fraction of all cores busy with *other* processes)."""
    busy0, total0 = _busy_and_total_jiffies()
    own0 = _own_jiffies()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    busy1, total1 = _busy_and_total_jiffies()
    foreign = (busy1 - busy0) - (_own_jiffies() - own0)
    return seconds, max(0.0, foreign / max(total1 - total0, 1))


def interleave(
    peers: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, max_foreign: float = 0.1
) -> dict[str, Samples]:
    """Time every peer ``repeats`` times in the order A B C A B C ...; a repetition during which
    other processes used more than ``max_foreign`` of the machine is dropped (and retried once)."""
    for fn in peers.values():
        for _ in range(warmup):
            fn()
    results = {name: Samples() for name in peers}
    for _ in range(repeats):
        for name, fn in peers.items():
            for _attempt in range(2):
                seconds, foreign = timed(fn)
                if foreign <= max_foreign:
                    break
            results[name].seconds.append(seconds)
            results[name].foreign.append(foreign)
    return results


LOAD_HEADER = f"{'load max':>8s} {'median':>6s} quiet"


def load_columns(samples: Samples, max_foreign: float) -> str:
    """The columns under ``LOAD_HEADER``: the largest and the median foreign load of the samples,
    and how many of them stayed at or under ``max_foreign`` (quiet)."""
    quiet = sum(f <= max_foreign for f in samples.foreign)
    median = statistics.median(samples.foreign)
    return f"{samples.max_foreign:8.0%} {median:6.0%} {quiet}/{len(samples.foreign)}"


def profile(peer: Callable[[], object], device: torch.device, steps: int = 3) -> None:
    """torch.profiler over ``steps`` calls of ``peer`` (after one warm-up call): prints the 25
    operators with the most self time (CUDA time on a GPU, CPU time otherwise)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    peer()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            peer()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model with its AVX-512 / AMX flags (from /proc/cpuinfo) and the
    torch thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    wanted = [f for f in flags if f in ("avx512f", "avx512_bf16", "amx_bf16")] or ["no AVX-512"]
    return f"{name} [{' '.join(wanted)}], {torch.get_num_threads()} threads"
