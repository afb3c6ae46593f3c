"""Forward speed of our ViT-S (DINOv2 /14-reg4 or DINOv3 /16) against Hugging Face (sdpa) and timm.

    python benchmarks/backbone.py [--family dinov2|dinov3] [--quick] [--sizes 224 518]
        [--batches 1 8] [--json OUT]

Runs on the CPU (the device is printed first). ``--quick`` is a smoke run of about a minute:
224 px, batch 2, fp32, 2 samples per peer, unless --sizes / --batches / --dtypes say otherwise.
``--family`` picks the models (``backbone_peers.FAMILIES``): dinov2 (default; sizes 224 518) or
dinov3 (sizes 224 512).

One process, one set of random weights copied into all three implementations (checked equal
before timing). Per (size, batch, dtype) case the peers run interleaved A B C, C B A, ... under
``torch.inference_mode``, bfloat16 through ``torch.autocast('cpu')``. Every sample waits for a
quiet machine, records the share of the machine other processes used (/proc/stat) and is dropped
when that share exceeds ``--max-foreign``; min and median over the kept samples are reported.
A 2048^2 matmul of the case's dtype runs in the same rotation; "% peak" (count_flops / time) is
measured against the larger of its rate and the 2048^2 / 4096^2 matmul peak measured at start-up,
so that a slow moment in the rotation cannot flatter it.

Peers:
  ours          RegisterViT as shipped: ``blocked_inference=None``, which on CPU means the
                cache-blocked inference path in every block (blocked path on).
  ours-plain    the same weights with ``blocked_inference=False`` (blocked path off; timed by
                default, --no-baseline skips it).
  ours-fp32core bfloat16 only: attention core (softmax(qk^T)v) in float32 through
                ``set_attention_core_dtype`` -- an explicit opt-in, never a default.
  ours-compile  ``torch.compile(ours)`` (--compile; compile time reported separately; compiled
                graphs take the plain ops, the blocked path is eager-only).
  hf-sdpa       transformers Dinov2WithRegistersModel (dinov3: DINOv3ViTModel),
                attn_implementation='sdpa'.
  timm          vit_small_patch14_reg4_dinov2 (dinov3: vit_small_patch16_dinov3_qkvb),
                dynamic_img_size=True.
"""

import argparse
import copy
import json
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
import transformers
from backbone_peers import EXTERNAL_PEERS, FAMILIES, build_models, patch_tokens
from timing import timed
from torch import Tensor, nn

from dinoreg_dense.backbones import ARCHS, count_flops
from dinoreg_dense.backbones.attention import set_attention_core_dtype

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Same weights, same fp32 arithmetic up to summation order: ~1e-6 on unit-scale normed tokens; a
# misplaced tensor gives ~1.
MAX_ABS_DIFF = 1e-4


def parse_args() -> argparse.Namespace:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="dinov2")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="default: 224 518, dinov3 224 512 (quick: 224)"
    )
    parser.add_argument("--batches", type=int, nargs="+", help="default: 1 8 (quick: 2)")
    parser.add_argument(
        "--dtypes", nargs="+", choices=sorted(DTYPES), help="default: fp32 bf16 (quick: fp32)"
    )
    parser.add_argument("--reps", type=int, default=5, help="clean samples wanted per peer")
    parser.add_argument("--quick", action="store_true", help="smoke run of about a minute")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time ours-plain (blocked path off) next to ours (on)",
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(ours)")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's choice")
    parser.add_argument("--max-foreign", type=float, default=0.05)
    parser.add_argument("--budget-min", type=float, default=None, help="default 9 (quick: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")
    args = parser.parse_args()
    defaults = (
        dict(sizes=[224], batches=[2], dtypes=["fp32"], budget_min=1.0)
        if args.quick
        else dict(
            sizes=list(FAMILIES[args.family].sizes),
            batches=[1, 8],
            dtypes=["fp32", "bf16"],
            budget_min=9.0,
        )
    )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick:
        args.reps = 2
    return args


# ---------------------------------------------------------------------------- numerics
def check_numerics(models: dict[str, nn.Module], sizes: list[int]) -> dict[str, float]:
    """Max abs differences on one float32 image (batch 2 so the blocked path groups images)."""
    plain = copy.deepcopy(models["ours"])
    for block in plain.blocks:
        block.blocked_inference = False
    out: dict[str, float] = {}
    for size in sizes:
        x = torch.randn(2, 3, size, size)
        with torch.inference_mode():
            ref = patch_tokens("ours", models["ours"], x)
            out[f"{size}: |ours - ours-plain|"] = (ref - patch_tokens("ours", plain, x)).abs().max()
            for peer in EXTERNAL_PEERS:
                diff = (ref - patch_tokens(peer, models[peer], x)).abs().max()
                out[f"{size}: |ours - {peer}|"] = diff
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = patch_tokens("ours", models["ours"], x).float()
            out[f"{size}: |ours bf16 - ours fp32| (info)"] = (ref - low).abs().max()
    return {key: float(value) for key, value in out.items()}


# ---------------------------------------------------------------------------- timing
@dataclass
class PeerStats:
    """Milliseconds per image of the kept samples, and what was dropped."""

    kept_ms: list[float] = field(default_factory=list)
    dropped_ms: list[float] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)
    calls_per_sample: int = 1

    def summary(self) -> dict[str, Any]:
        """min / median (kept samples; all samples, flagged, when none was kept)."""
        touched = not self.kept_ms
        values = self.kept_ms or self.dropped_ms
        return {
            "min_ms": min(values),
            "median_ms": statistics.median(values),
            "kept": len(self.kept_ms),
            "samples": len(self.kept_ms) + len(self.dropped_ms),
            "touched": touched,
            "foreign_mean": statistics.mean(self.foreign),
            "foreign_max": max(self.foreign),
        }


def wait_for_quiet(max_foreign: float, max_wait_s: float, window_s: float = 0.2) -> None:
    """Sleep in short windows until other processes use at most ``max_foreign`` of the CPUs."""
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        if timed(lambda: time.sleep(window_s))[1] <= max_foreign:
            return


def run_rotation(
    peers: dict[str, Callable[[], object]],
    images_per_call: dict[str, int],
    reps: int,
    max_foreign: float,
    deadline: float,
    min_sample_s: float = 0.25,
) -> dict[str, PeerStats]:
    """Interleave the peers (order reversed every round) until each has ``reps`` clean samples,
    ``2 * reps`` rounds have run, or ``deadline`` (perf_counter) passed after two rounds."""
    stats = {name: PeerStats() for name in peers}
    for name, fn in peers.items():
        fn()  # warm-up
        seconds, _ = timed(fn)
        stats[name].calls_per_sample = max(1, math.ceil(min_sample_s / seconds))
    names = list(peers)
    for round_index in range(2 * reps):
        enough = all(len(s.kept_ms) >= reps for s in stats.values())
        if enough or (round_index >= 2 and time.perf_counter() > deadline):
            break
        for name in names if round_index % 2 == 0 else names[::-1]:
            calls = stats[name].calls_per_sample
            wait_for_quiet(max_foreign, max_wait_s=3.0)
            seconds, foreign = timed(lambda fn=peers[name], n=calls: [fn() for _ in range(n)])
            ms = 1e3 * seconds / (calls * images_per_call[name])
            target = stats[name].kept_ms if foreign <= max_foreign else stats[name].dropped_ms
            target.append(ms)
            stats[name].foreign.append(foreign)
    return stats


def matmul_peer(dtype: torch.dtype, n: int = 2048) -> tuple[Callable[[], object], float]:
    """A square (n, n) @ (n, n) matmul in ``dtype`` and its GFLOP."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return (lambda: a @ b), 2 * n**3 / 1e9


def machine_peaks(
    max_foreign: float, reps: int, labels: list[str], sizes: tuple[int, ...]
) -> dict[str, float]:
    """Best GFLOP/s of large square matmuls (of each size in ``sizes``) per dtype label."""
    peaks = {}
    for label in labels:
        dtype = DTYPES[label]
        for n in sizes:
            fn, gflop = matmul_peer(dtype, n)
            fn()
            best = 0.0
            for _ in range(reps):
                wait_for_quiet(max_foreign, max_wait_s=3.0)
                seconds, foreign = timed(fn)
                if foreign <= max_foreign:
                    best = max(best, gflop / seconds)
            peaks[f"{label} {n}"] = best
        peaks[label] = max(peaks[f"{label} {n}"] for n in sizes)
    return peaks


# ---------------------------------------------------------------------------- cases
def case_peers(
    models: dict[str, nn.Module], args: argparse.Namespace, label: str, x: Tensor
) -> dict[str, Callable[[], object]]:
    """Callables running one forward of each peer (plus the matmul) in this case's dtype."""
    names = ["ours", *EXTERNAL_PEERS]
    names += ["ours-plain"] if args.baseline else []
    names += ["ours-fp32core"] if label == "bf16" else []
    names += ["ours-compile"] if args.compile else []

    def forward(name: str) -> Callable[[], object]:
        def run() -> Tensor:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, label == "bf16"):
                return patch_tokens(name, models[name], x)

        return run

    peers = {name: forward(name) for name in names}
    peers[f"matmul-{label}"] = matmul_peer(DTYPES[label])[0]
    return peers


def run_case(
    models: dict[str, nn.Module],
    args: argparse.Namespace,
    size: int,
    batch: int,
    label: str,
    deadline: float,
    startup_peak: float,
) -> dict[str, Any]:
    """Time one (size, batch, dtype) case; returns its row of the JSON results."""
    x = torch.randn(batch, 3, size, size)
    peers = case_peers(models, args, label, x)
    matmul_name = f"matmul-{label}"
    images = {name: batch for name in peers} | {matmul_name: 1}
    compile_s = None
    if "ours-compile" in peers:
        start = time.perf_counter()
        peers["ours-compile"]()
        compile_s = time.perf_counter() - start
    stats = run_rotation(peers, images, args.reps, args.max_foreign, deadline)
    flop = count_flops(ARCHS[FAMILIES[args.family].arch], size, size) / 1e9
    peak_ms = stats.pop(matmul_name).summary()["min_ms"]
    rotation_peak = matmul_peer(DTYPES[label])[1] / (peak_ms / 1e3)
    peak = max(rotation_peak, startup_peak)
    rows = {}
    for name, peer_stats in stats.items():
        row = peer_stats.summary()
        row["gflops"] = flop / (row["min_ms"] / 1e3)
        row["frac_peak"] = row["gflops"] / peak
        rows[name] = row
    best = min(EXTERNAL_PEERS, key=lambda p: rows[p]["min_ms"])
    best_median = min(EXTERNAL_PEERS, key=lambda p: rows[p]["median_ms"])
    speedups = {
        name: {
            "vs_best_min": rows[best]["min_ms"] / rows[name]["min_ms"],
            "vs_best_median": rows[best_median]["median_ms"] / rows[name]["median_ms"],
        }
        for name in rows
        if name.startswith("ours")
    }
    return {
        "size": size,
        "batch": batch,
        "dtype": label,
        "gflop_per_image": flop,
        "matmul_peak_gflops": peak,
        "rotation_matmul_gflops": rotation_peak,
        "best_peer": best,
        "peers": rows,
        "speedup": speedups,
        "compile_s": compile_s,
    }


def print_table(cases: list[dict[str, Any]]) -> None:
    """One line per peer and case; ratios are speed-ups (>1: ours is faster)."""
    header = (
        f"{'size':>4} {'b':>2} {'dtype':5} {'peer':14} {'min ms/img':>10} {'med ms/img':>10} "
        f"{'kept':>5} {'GFLOP/s':>7} {'%peak':>6} {'foreign':>13} {'x best (min/med)':>16}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        for name, row in case["peers"].items():
            ratio = case["speedup"].get(name)
            ratio_text = (
                f"{ratio['vs_best_min']:.2f}/{ratio['vs_best_median']:.2f}" if ratio else ""
            )
            kept = f"{row['kept']}/{row['samples']}" + ("!" if row["touched"] else "")
            print(
                f"{case['size']:>4} {case['batch']:>2} {case['dtype']:5} {name:14} "
                f"{row['min_ms']:>10.1f} {row['median_ms']:>10.1f} {kept:>5} "
                f"{row['gflops']:>7.0f} {100 * row['frac_peak']:>5.0f}% "
                f"{row['foreign_mean']:>5.2f}/{row['foreign_max']:.2f} {ratio_text:>16}"
            )
        print(
            f"{'':14} matmul in rotation {case['rotation_matmul_gflops']:.0f} GFLOP/s, "
            f"peak used {case['matmul_peak_gflops']:.0f}; "
            f"best peer: {case['best_peer']}"
            + (f"; compile {case['compile_s']:.0f} s" if case["compile_s"] else "")
        )


def bf16_vs_timm_fp32(cases: list[dict[str, Any]]) -> dict[str, float]:
    """timm fp32 ms/img (min) / ours bf16 ms/img (min) per size and batch (>1: bf16 faster)."""
    by_key = {(c["size"], c["batch"], c["dtype"]): c for c in cases}
    out = {}
    for (size, batch, label), case in by_key.items():
        fp32 = by_key.get((size, batch, "fp32"))
        if label != "bf16" or fp32 is None:
            continue
        for name in ("ours", "ours-fp32core"):
            ratio = fp32["peers"]["timm"]["min_ms"] / case["peers"][name]["min_ms"]
            out[f"{size} b{batch} {name} bf16 vs timm fp32"] = ratio
    return out


def target_report(cases: list[dict[str, Any]], bf16_ratios: dict[str, float]) -> list[str]:
    """Issue #2's targets against the largest size measured (min-based numbers)."""
    fp32 = [c for c in cases if c["dtype"] == "fp32"]
    if not fp32:
        return []
    size = max(c["size"] for c in fp32)
    lines = []
    for case in (c for c in fp32 if c["size"] == size):
        speedup = case["speedup"]["ours"]["vs_best_min"]
        frac = case["peers"]["ours"]["frac_peak"]
        tag = f"fp32 {size} b{case['batch']}"
        lines.append(f"target {tag}: ours/best peer {speedup:.2f}x (>= 1.15: {speedup >= 1.15})")
        lines.append(f"target {tag}: fraction of matmul peak {frac:.2f} (>= 0.85: {frac >= 0.85})")
    for key, value in bf16_ratios.items():
        lines.append(f"target {key}: {value:.2f}x (>= 2: {value >= 2})")
    return lines


def main() -> None:
    """Build, check, time, print (and optionally write JSON)."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("dinoreg_dense").setLevel(logging.ERROR)  # random weights on purpose
    start = time.perf_counter()
    print(f"device cpu: {cpu_name()}; threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")
    family = FAMILIES[args.family]
    print(f"family {args.family}: ours {family.arch}, timm {family.timm_name}")
    print(
        "peers: ours = blocked path on (blocked_inference=None is on for CPU tensors), "
        "ours-plain = off" + ("" if args.baseline else " (not timed: --no-baseline)"),
        flush=True,
    )
    models = build_models(family, args.seed)
    print(f"built models ({time.perf_counter() - start:.0f} s)", flush=True)
    numerics = check_numerics(models, args.sizes)
    models["ours-plain"] = copy.deepcopy(models["ours"])
    for block in models["ours-plain"].blocks:
        block.blocked_inference = False
    models["ours-fp32core"] = copy.deepcopy(models["ours"])
    if set_attention_core_dtype(models["ours-fp32core"], torch.float32) == 0:
        raise RuntimeError("no attention layer found for ours-fp32core")
    if args.compile:
        compiled = copy.deepcopy(models["ours"])
        compiled.forward_features = torch.compile(compiled.forward_features)
        models["ours-compile"] = compiled
    print("numerics (max abs diff, fp32 patch tokens):")
    for key, value in numerics.items():
        print(f"  {key}: {value:.2e}")
    unequal = [key for key, value in numerics.items() if "(info)" not in key]
    unequal = [key for key in unequal if not numerics[key] <= MAX_ABS_DIFF]
    if unequal:
        raise SystemExit(f"peers differ by more than {MAX_ABS_DIFF:g}: {', '.join(unequal)}")
    peak_sizes = (2048,) if args.quick else (2048, 4096)
    peaks = machine_peaks(args.max_foreign, 2 if args.quick else 4, args.dtypes, peak_sizes)
    print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))

    todo = [(s, b, d) for d in args.dtypes for s in args.sizes for b in args.batches]
    # Time shares follow the work per sample, plus a floor for the quiet-waits every case pays.
    arch = ARCHS[family.arch]
    floor = count_flops(arch, max(family.sizes), max(family.sizes))
    weights = [floor + count_flops(arch, s, s) * b * (2 if d == "bf16" else 1) for s, b, d in todo]
    budget_end = start + 60 * args.budget_min
    cases = []
    for index, (size, batch, label) in enumerate(todo):
        share = weights[index] / sum(weights[index:])
        deadline = time.perf_counter() + share * max(0.0, budget_end - time.perf_counter())
        case = run_case(models, args, size, batch, label, deadline, peaks[label])
        cases.append(case)
        print(f"done {size} b{batch} {label} ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print_table(cases)
    ratios = bf16_vs_timm_fp32(cases)
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}x")
    for line in target_report(cases, ratios):
        print(line)
    foreign = [f for c in cases for r in c["peers"].values() for f in (r["foreign_mean"],)]
    print(
        f"threads {torch.get_num_threads()}; foreign load mean over peers "
        f"{statistics.mean(foreign):.2f}; wall {time.perf_counter() - start:.0f} s"
    )
    if args.json_out:
        meta = {
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "timm": timm.__version__,
            "args": vars(args),
            "wall_s": time.perf_counter() - start,
        }
        result = {"meta": meta, "numerics": numerics, "matmul_peaks": peaks, "cases": cases}
        result["bf16_vs_timm_fp32"] = ratios
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)


def cpu_name() -> str:
    """CPU model and the matmul-relevant ISA flags, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor()
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "")
    flags = next(
        (ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []
    )
    wanted = [f for f in flags if f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")]
    return f"{name} [{' '.join(wanted)}]"


if __name__ == "__main__":
    main()
