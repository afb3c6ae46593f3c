"""Speed of object discovery: our LOST step against NumPy, and discovery against the backbone.

    python benchmarks/discovery.py [--grids 37 64] [--size 518] [--batches 1 2] [--repeats 7]
    python benchmarks/discovery.py --grids 8 --size 56 --batches 1 --repeats 1 --tiny  # smoke

Two parts, each with its peers interleaved in one process (A B A B ...), ms per image as min and
median over the kept samples:

1. LOST step on (h, w, C) features for each ``--grids`` g (g x g patches, C = ``--channels``,
   random features with a common component as real keys have):
     ours    ``dinoreg_dense.discovery.lost``: blocked half Gram counted in cache, k rows, scipy
             labelling, box;
     numpy   the same steps written straightforwardly in NumPy (what LOST's
             ``object_discovery.py`` does, on arrays): the whole A = F F^T, a copy with the
             diagonal and the negatives zeroed, degrees, a stable argsort, the potentials'
             rows summed, scipy labelling, box.
   Both must give the same box (checked first). Target: numpy / ours >= 10 at 37 x 37.
2. End to end at ``--size`` px, batch ``--batches``, ViT-S/14-reg4 with random weights:
     backbone   ``forward_intermediates`` (last layer, normed), what a dense model pays;
     discovery  the same forward with ``return_attention=True``, ``discovery_features`` (keys)
                and ``lost_batch``.
   Target: discovery rate / backbone rate >= 0.9.

Noise: "load max / median" are the largest and median share of the machine that other processes
used during a peer's samples (``/proc/stat``), "quiet" how many samples stayed under
``--max-foreign``; a loaded sample is retried once, then kept. Ratios are of minima (and of
medians).
"""

import argparse
import logging
from collections.abc import Callable

import numpy as np
import scipy.ndimage
import torch
from timing import LOAD_HEADER, Samples, device_name, interleave, load_columns

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.discovery import discovery_features, lost, lost_batch

PATCH = 14
STEP_TARGET = 10.0
END_TO_END_TARGET = 0.9


def parse_args() -> argparse.Namespace:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[37, 64], help="patches a side")
    parser.add_argument("--channels", type=int, default=384, help="feature width (ViT-S: 384)")
    parser.add_argument("--size", type=int, default=518, help="image side for part 2 (0: skip)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7, help="samples per peer")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--max-foreign", type=float, default=0.1, help="see timing.interleave")
    parser.add_argument("--tiny", action="store_true", help="2-block 32-wide ViT (smoke runs)")
    return parser.parse_args()


def numpy_lost_box(features: np.ndarray, patch_size: int, k_patches: int = 100) -> list[int]:
    """LOST's steps on NumPy arrays, written the obvious way: (h, w, C) -> box x0, y0, x1, y1."""
    h, w, c = features.shape
    flat = features.reshape(h * w, c)
    similarity = flat @ flat.T
    counted = similarity.copy()
    np.fill_diagonal(counted, 0)
    counted[counted < 0] = 0
    degree = (counted > 0).sum(axis=1)
    order = np.argsort(degree, kind="stable")
    seed, potentials = order[0], order[:k_patches]
    similars = potentials[similarity[seed, potentials] > 0]
    summed = similarity[similars].sum(axis=0)
    labels, _ = scipy.ndimage.label((summed > 0).reshape(h, w))
    rows, cols = np.nonzero(labels == labels[divmod(int(seed), w)])
    return [cols.min() * patch_size, rows.min() * patch_size] + [
        (cols.max() + 1) * patch_size,
        (rows.max() + 1) * patch_size,
    ]


def step_peers(grid: int, channels: int) -> dict[str, Callable[[], object]]:
    """Ours and NumPy on the same random features; raises if their boxes differ."""
    generator = torch.Generator().manual_seed(grid)
    common = torch.randn(channels, generator=generator)
    features = common + 2.0 * torch.randn(grid, grid, channels, generator=generator)
    array = features.numpy()
    size = (grid * PATCH, grid * PATCH)
    ours = lost(features, PATCH, size).box.tolist()
    theirs = [float(v) for v in numpy_lost_box(array, PATCH)]
    if ours != theirs:
        raise RuntimeError(f"boxes differ at {grid}x{grid}: ours {ours}, numpy {theirs}")
    return {
        "ours": lambda: lost(features, PATCH, size),
        "numpy": lambda: numpy_lost_box(array, PATCH),
    }


def end_to_end_peers(model: RegisterViT, size: int, batch: int) -> dict[str, Callable[[], object]]:
    """Backbone forward alone, and forward with attention + keys + LOST."""
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))

    def backbone() -> None:
        with torch.inference_mode():
            model.forward_intermediates(images)

    def discovery() -> None:
        with torch.inference_mode():
            out = model.forward_intermediates(images, return_attention=True)
            lost_batch(discovery_features(out.attention, "k"), PATCH, [(size, size)] * batch)

    return {"backbone": backbone, "discovery": discovery}


def timed_rounds(
    peers: dict[str, Callable[[], object]], repeats: int, max_foreign: float
) -> dict[str, Samples]:
    """``repeats`` interleaved rounds, progress printed after each."""
    results = {name: Samples() for name in peers}
    for round_ in range(repeats):
        for name, r in interleave(peers, 1, 1 if round_ == 0 else 0, max_foreign).items():
            results[name].seconds += r.seconds
            results[name].foreign += r.foreign
        times = ", ".join(f"{n} {r.seconds[-1] * 1e3:.1f} ms" for n, r in results.items())
        print(f"  [{round_ + 1}/{repeats}] {times}", flush=True)
    return results


def report(results: dict[str, Samples], per_call: int, max_foreign: float) -> None:
    """ms per image per peer, min and median, with the load on the machine."""
    print(f"  {'peer':10s} {'ms/img min':>10s} {'median':>8s} {LOAD_HEADER}")
    for name, r in results.items():
        print(
            f"  {name:10s} {r.min / per_call * 1e3:10.2f} {r.median / per_call * 1e3:8.2f}"
            f" {load_columns(r, max_foreign)}"
        )


def main() -> None:
    """Time both parts and print the tables and verdicts."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("dinoreg_dense.backbones.vit").setLevel(logging.ERROR)  # random init: known
    print(f"device: {device_name(torch.device('cpu'))}, torch {torch.__version__}")
    for grid in args.grids:
        print(f"LOST step, {grid}x{grid} patches, C={args.channels}, {args.repeats} rounds")
        results = timed_rounds(step_peers(grid, args.channels), args.repeats, args.max_foreign)
        report(results, 1, args.max_foreign)
        ours, numpy_ = results["ours"], results["numpy"]
        ratio = numpy_.min / ours.min
        verdict = ""
        if grid == 37:
            verdict = f" (target >= {STEP_TARGET:g}: {'met' if ratio >= STEP_TARGET else 'MISSED'})"
        by_median = numpy_.median / ours.median
        print(f"  numpy / ours {ratio:.1f} by min, {by_median:.1f} by median{verdict}")
    if not args.size:
        return
    model_kwargs = dict(embed_dim=32, depth=2, num_heads=2, pos_embed_grid=4) if args.tiny else {}
    model = RegisterViT("vits14_reg4", **model_kwargs).eval()
    name = "tiny ViT/14-reg4" if args.tiny else "ViT-S/14-reg4"
    for batch in args.batches:
        print(f"end to end, {batch} x 3 x {args.size} x {args.size}, {name}, random init")
        peers = end_to_end_peers(model, args.size, batch)
        results = timed_rounds(peers, args.repeats, args.max_foreign)
        report(results, batch, args.max_foreign)
        backbone, discovery = results["backbone"], results["discovery"]
        ratio = backbone.min / discovery.min
        verdict = "met" if ratio >= END_TO_END_TARGET else "MISSED"
        print(
            f"  discovery rate / backbone rate {ratio:.2f} by min,"
            f" {backbone.median / discovery.median:.2f} by median"
            f" (target >= {END_TO_END_TARGET:g}: {verdict})"
        )


if __name__ == "__main__":
    main()
