"""Cost of a depth training step against the backbone forward, frozen and fine-tuned.

    python benchmarks/depth_step.py [--size 416 544] [--batch 2] [--repeats 5] [--device cuda]
    python benchmarks/depth_step.py --profile [--peer lin1-frozen]

Peers in one run, interleaved, on the same random weights (ViT-S/14-reg4, NYU-like 416x544
inputs padded by the backbone to 420x546, ground truth in metres with 5 % invalid pixels), the
heads and backbone settings read from ``configs/_base_/models``:
  forward       the backbone's forward alone, no grad, eval mode (the frozen reference),
  lin1-frozen   DINOv2's lin.1 depth probe (``depth_linear_vits_reg.py``): frozen backbone,
                ``LinearDepthHead`` (last layer, cls joined, 256 bins, x4 upsample), SigLoss
                at the input size, backward, AdamW; the head's classifier in the order the
                device takes by default (``classify_then_upsample_is_faster``),
  lin1-upsampled / lin1-grid  the same step in the other order: DINOv2's (classifier on the
                upsampled maps) or on the patch grid (``classify_before_upsample``),
  lin4-frozen   lin.4 (``depth_linear4_vits_reg.py``): blocks 2, 5, 8, 11 without the final norm,
  dpt-frozen    DINOv2's DPT (``depth_dpt_vits_reg.py``), if that file and ``DPTHead`` exist,
  lin1-tuned    lin.1 with the backbone trained too (forward, backward through it, AdamW).
Every step is ``model.train_step`` (preprocessing, loss, optimizer wrapper), what the runner
calls; on CUDA every call ends with a synchronisation. Target: lin1-frozen <= 1.3 x forward.
Ratios are of minima (and of medians). Noise: "load max / median" are the largest and median
share of the machine other processes used during a peer's samples (``/proc/stat``), "quiet" how
many samples stayed under ``--max-foreign``; a loaded sample is retried once, then kept.

``--profile`` runs torch.profiler over three steps of one peer and prints the operators by self
time.
"""

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from timing import LOAD_HEADER, Samples, device_name, interleave, load_columns, profile

from dinoreg_dense.heads.depth_bins import classify_then_upsample_is_faster
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "_base_" / "models"
HEAD_CONFIGS = {
    "lin1": "depth_linear_vits_reg.py",
    "lin4": "depth_linear4_vits_reg.py",
    "dpt": "depth_dpt_vits_reg.py",
}
TARGET = 1.3  # lin1-frozen step / forward, issue 8


def parse_args() -> argparse.Namespace:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(416, 544), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="samples per peer")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--max-foreign", type=float, default=0.1, help="see timing.interleave")
    parser.add_argument("--no-tuned", action="store_true", help="skip the fine-tuned step")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a 4-block, 64-wide ViT: smoke runs, numbers mean nothing",
    )
    parser.add_argument("--profile", action="store_true", help="profile one peer instead")
    parser.add_argument("--peer", default="lin1-frozen", help="with --profile: which step")
    return parser.parse_args()


def model_configs(tiny: bool) -> dict[str, tuple[dict, dict]]:
    """Name -> (backbone, decode_head) configs of ``configs/_base_/models`` (lin.1, lin.4 and DPT
    if its file and head exist); ``tiny``: a 4-block, 64-wide ViT with the same heads."""
    configs = {}
    for name, file in HEAD_CONFIGS.items():
        path = CONFIG_DIR / file
        if not path.exists():
            continue
        model = Config.fromfile(path).model.to_dict()
        if model["decode_head"]["type"] not in MODELS.module_dict:
            continue
        backbone = model["backbone"]
        if tiny:
            four = len(backbone["out_indices"]) == 4
            backbone.update(depth=4, embed_dim=64, num_heads=2)
            backbone["out_indices"] = (0, 1, 2, 3) if four else (-1,)
        configs[name] = (backbone, model["decode_head"])
    return configs


def build_depther(backbone: dict, head: dict, frozen: bool, device: torch.device):
    """A ``Depther`` (random weights, seed 0) in training mode on ``device``."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type="Depther",
            data_preprocessor=dict(type="DenseDataPreProcessor", size=None),
            backbone=dict(backbone, frozen=frozen),
            decode_head=head,
        )
    )
    return model.to(device).train()


def make_batch(batch: int, size: tuple[int, int]) -> dict:
    """uint8 images (3, H, W) and samples with a ``gt_depth_map`` in metres, 5 % invalid."""
    torch.manual_seed(1)
    images = [torch.randint(0, 256, (3, *size), dtype=torch.uint8) for _ in range(batch)]
    samples = []
    for _ in range(batch):
        depth = torch.empty(size).uniform_(0.5, 9.5)
        depth[torch.rand(size) < 0.05] = 0.0
        samples.append(DenseDataSample(gt_depth_map=depth, metainfo=dict(ori_shape=size)))
    return dict(inputs=images, data_samples=samples)


def synchronised(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by a wait for the device's queued kernels (nothing to wait for on CPU)."""

    def run() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def build_peers(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], None]]:
    """Name -> one timed call (forward or training step), all on the same backbone weights."""
    batch = make_batch(args.batch, tuple(args.size))
    optim = dict(optimizer=dict(type="AdamW", lr=1e-4, weight_decay=1e-4))

    def train_step(model) -> Callable[[], None]:
        wrapper = build_optim_wrapper(model, optim)

        def run() -> None:
            samples = [s.clone() for s in batch["data_samples"]]
            model.train_step(dict(inputs=list(batch["inputs"]), data_samples=samples), wrapper)

        return run

    configs = model_configs(args.tiny)
    reference = build_depther(*configs["lin1"], frozen=True, device=device)
    inputs = reference.data_preprocessor(dict(batch), training=True)["inputs"]

    def forward() -> None:
        with torch.no_grad():
            reference.backbone(inputs)

    peers = {"forward": forward, "lin1-frozen": train_step(reference)}
    grid_by_default = classify_then_upsample_is_faster(device.type)
    backbone, head = configs["lin1"]
    other = dict(head, classify_before_upsample=not grid_by_default)
    name = "lin1-upsampled" if grid_by_default else "lin1-grid"
    peers[name] = train_step(build_depther(backbone, other, True, device))
    for name, (backbone, head) in configs.items():
        if name != "lin1":
            peers[f"{name}-frozen"] = train_step(build_depther(backbone, head, True, device))
    if not args.no_tuned:
        tuned = build_depther(*configs["lin1"], frozen=False, device=device)
        peers["lin1-tuned"] = train_step(tuned)
    return {name: synchronised(fn, device) for name, fn in peers.items()}


def report(results: dict[str, Samples], batch: int, max_foreign: float) -> None:
    """Print ms/img per peer and each step's ratio to the forward, by min and by median, with the
    largest and the median foreign load of its samples and how many were quiet."""
    forward = results["forward"]
    print(
        f"{'peer':14s} {'ms/img min':>10s} {'median':>8s} {'/ fwd min':>9s} {'median':>7s}"
        f" {LOAD_HEADER}"
    )
    for name, r in results.items():
        print(
            f"{name:14s} {r.min / batch * 1e3:10.1f} {r.median / batch * 1e3:8.1f}"
            f" {r.min / forward.min:9.2f} {r.median / forward.median:7.2f}"
            f" {load_columns(r, max_foreign)}"
        )
    ratio = results["lin1-frozen"].min / forward.min
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"lin1-frozen / forward {ratio:.2f} by min (target <= {TARGET}: {verdict})")


def main() -> None:
    """Build the peers, time them interleaved (or profile one), print the table."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init_default_scope("dinoreg_dense")
    logging.getLogger("dinoreg_dense.backbones.vit").setLevel(logging.ERROR)  # random init: known
    print(f"device: {device_name(device)}")
    model = "tiny 4-block ViT" if args.tiny else "ViT-S/14-reg4"
    print(f"input {args.batch} x 3 x {args.size[0]} x {args.size[1]}, {model}, random init")
    peers = build_peers(args, device)
    if "dpt-frozen" not in peers:
        print("DPTHead not registered: no dpt-frozen row")
    if args.profile:
        profile(peers[args.peer], device)
        return
    print(f"timing {', '.join(peers)}; {args.repeats} rounds", flush=True)
    results = {name: Samples() for name in peers}
    for round_ in range(args.repeats):
        warmup = 1 if round_ == 0 else 0
        for name, r in interleave(peers, 1, warmup, args.max_foreign).items():
            results[name].seconds += r.seconds
            results[name].foreign += r.foreign
        times = ", ".join(f"{n} {r.seconds[-1]:.2f} s" for n, r in results.items())
        print(f"  [{round_ + 1}/{args.repeats}] {times}", flush=True)
    report(results, args.batch, args.max_foreign)


if __name__ == "__main__":
    main()
