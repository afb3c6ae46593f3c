"""Mask2Former head: our pure-PyTorch pixel decoder + masked-attention decoder against HF's.

    python benchmarks/mask2former.py [--size 512] [--batches 1 2] [--repeats 5] [--threads N]
    python benchmarks/mask2former.py --profile [--peer ours]
    python benchmarks/mask2former.py --tiny          # smoke run: tiny sizes, numbers mean nothing

Peers, timed interleaved in one process on the same inputs:
  ours         ``Mask2FormerHead``'s ``pixel_decoder`` (``MSDeformAttnPixelDecoder``) then its
               ``transformer_decoder`` (``MaskedAttentionDecoder``, class and mask predictions
               after every layer),
  hf           HF transformers' ``Mask2FormerPixelDecoder`` then ``Mask2FormerTransformerModule``
               and the class predictor on every layer's queries: what
               ``Mask2FormerForUniversalSegmentation`` runs after its backbone
               (``model.model.pixel_level_module.decoder``, ``model.model.transformer_module``,
               ``model.class_predictor``), built here from a ``Mask2FormerConfig`` with the same
               sizes,
  ours-pixel / hf-pixel              the pixel decoders alone,
  ours-transformer / hf-transformer  the transformer decoders alone, on the pixel decoder's
               output computed once.
Sizes are Mask2Former's (and both libraries' defaults): 256 channels, 6 deformable encoder layers
with 8 heads and 4 points over the 3 coarsest levels, FFN 1024; 9 masked-attention layers
(HF's ``decoder_layers=10``: it counts the prediction from the initial queries as a layer), 100
queries, 8 heads, FFN 2048, post-norm; 80 classes. Both sides start from their own
initialisation under the same seed (the parity tests, not this script, copy weights across).

Inputs: the four levels our ``SimpleFeaturePyramid`` gives for a ``--size`` x ``--size`` image
through a ViT-S/14 (random 384-channel patch map on the padded grid ceil(size / 14); at 512:
148, 74, 37 and 19 pixels square, 256 channels), computed once and fed to both peers, so the
comparison is like for like. Inference mode (``torch.inference_mode``, eval). Ratios are
ours / hf of minima (and of medians); target ours / hf <= 1.0. Noise: "load max / median" is the
share of the machine other processes used during a peer's samples (``/proc/stat``), "quiet" how
many samples stayed under ``--max-foreign``; a loaded sample is retried once, then kept.

Memory (``--memory-batch``, default 1, at ``--size``): each peer runs in its own subprocess, once
at a tiny size to load kernels and thread pools, then once at full size: the peak resident set
during the call (``VmHWM`` of ``/proc/self/status``, reset just before it through
``/proc/self/clear_refs``) minus the resident set just before it (``VmRSS``), in MiB, for the
forward (inference mode) and for forward + backward (train mode, a loss over every layer's class
and mask logits). Process RSS counts what the allocator keeps, not only live tensors, so it is an
upper bound on the tensors' peak; on CUDA the script reports ``torch.cuda.max_memory_allocated``
instead. ``--no-memory`` skips it.

``--profile`` runs torch.profiler over three forwards of one peer and prints operators by self time.
"""

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from timing import LOAD_HEADER, Samples, device_name, interleave, load_columns, profile
from torch import Tensor, nn

SCRIPT = Path(__file__).resolve()
NUM_CLASSES = 80
PATCH_SIZE = 14
BACKBONE_WIDTH = 384  # ViT-S
FULL = dict(channels=256, encoder_layers=6, decoder_layers=9, queries=100, heads=8)
TINY = dict(channels=32, encoder_layers=1, decoder_layers=2, queries=8, heads=4)
TARGET = 1.0  # ours / hf forward time, issue 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="samples per peer")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--max-foreign", type=float, default=0.1, help="see timing.interleave")
    parser.add_argument("--memory-batch", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-parts", action="store_true", help="time the whole heads only")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny sizes for a smoke run: numbers mean nothing"
    )
    parser.add_argument("--profile", action="store_true", help="profile one peer instead")
    parser.add_argument("--peer", default="ours", help="with --profile: ours or hf")
    parser.add_argument("--memory-child", nargs=2, metavar=("PEER", "MODE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sizes(tiny: bool) -> dict[str, int]:
    """The head's sizes: Mask2Former's, or tiny ones for smoke runs."""
    return TINY if tiny else FULL


def build_ours(tiny: bool) -> tuple[nn.Module, nn.Module]:
    """``Mask2FormerHead`` (random init, seed 0): its neck and (pixel decoder, transformer
    decoder) as one module each, sizes from :func:`sizes`."""
    from dinoreg_dense.registry import MODELS

    s = sizes(tiny)
    torch.manual_seed(0)
    head = MODELS.build(
        dict(
            type="Mask2FormerHead",
            in_channels=BACKBONE_WIDTH if not tiny else 16,
            num_classes=NUM_CLASSES,
            neck=dict(out_channels=s["channels"]),
            pixel_decoder=dict(
                conv_dim=s["channels"],
                mask_dim=s["channels"],
                num_encoder_layers=s["encoder_layers"],
                num_heads=s["heads"],
            ),
            transformer_decoder=dict(
                hidden_dim=s["channels"],
                num_queries=s["queries"],
                num_heads=s["heads"],
                num_layers=s["decoder_layers"],
            ),
        )
    )
    return head.neck, nn.ModuleList([head.pixel_decoder, head.transformer_decoder])


def build_hf(tiny: bool) -> nn.ModuleList:
    """HF's pixel decoder, transformer module and class predictor with :func:`sizes` (random
    init, seed 0), as ``Mask2FormerForUniversalSegmentation`` builds them."""
    from transformers import Mask2FormerConfig
    from transformers.models.mask2former import modeling_mask2former as modeling

    s = sizes(tiny)
    config = Mask2FormerConfig(
        feature_size=s["channels"],
        mask_feature_size=s["channels"],
        hidden_dim=s["channels"],
        encoder_layers=s["encoder_layers"],
        decoder_layers=s["decoder_layers"] + 1,  # HF counts the initial queries' prediction
        num_attention_heads=s["heads"],
        num_queries=s["queries"],
        num_labels=NUM_CLASSES,
        dropout=0.0,
        pre_norm=False,
        enforce_input_projection=False,
        feature_strides=[4, 8, 16, 32],
        common_stride=4,
    )
    torch.manual_seed(0)
    pixel = modeling.Mask2FormerPixelDecoder(config, feature_channels=[s["channels"]] * 4)
    transformer = modeling.Mask2FormerTransformerModule(s["channels"], config)
    class_predictor = nn.Linear(s["channels"], NUM_CLASSES + 1)
    return nn.ModuleList([pixel, transformer, class_predictor])


def ours_pixel(modules: nn.Module, levels: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """Our pixel decoder: (mask features, multi-scale features coarsest first)."""
    return modules[0](levels)


def ours_transformer(modules: nn.Module, decoded: tuple[Tensor, list[Tensor]]) -> dict:
    """Our masked-attention decoder on the pixel decoder's output."""
    mask_features, multi_scale = decoded
    return modules[1](multi_scale, mask_features)


def hf_pixel(modules: nn.Module, levels: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """HF's pixel decoder: (mask features, multi-scale features coarsest first)."""
    out = modules[0](levels)
    return out.mask_features, list(out.multi_scale_features)


def hf_transformer(modules: nn.Module, decoded: tuple[Tensor, list[Tensor]]) -> dict:
    """HF's transformer module and class predictor, as ``Mask2FormerForUniversalSegmentation``
    runs them: mask logits and class logits of every layer."""
    mask_features, multi_scale = decoded
    out = modules[1](multi_scale, mask_features, output_hidden_states=True)
    logits = [modules[2](h.transpose(0, 1)) for h in out.intermediate_hidden_states]
    return dict(pred_logits=logits, pred_masks=list(out.masks_queries_logits))


def make_levels(neck: nn.Module, image_size: int, batch: int, tiny: bool) -> list[Tensor]:
    """The neck's four levels (finest first) for ``batch`` images of ``image_size`` through a
    patch-14 ViT: a random patch map on the padded grid ceil(size / 14), seed 1."""
    grid = math.ceil(image_size / PATCH_SIZE)
    width = BACKBONE_WIDTH if not tiny else 16
    generator = torch.Generator().manual_seed(1)
    patch_map = torch.randn(batch, width, grid, grid, generator=generator)
    with torch.no_grad():
        # The neck reads only ``patch_maps`` of the backbone's ViTFeatures.
        return [level.clone() for level in neck(SimpleNamespace(patch_maps=[patch_map]))]


def all_logits(out: dict) -> list[Tensor]:
    """Every layer's class and mask logits of either peer's output, as one list."""
    if "aux_outputs" in out:
        layers = [*out["aux_outputs"], out]
        return [t for layer in layers for t in (layer["pred_logits"], layer["pred_masks"])]
    return [*out["pred_logits"], *out["pred_masks"]]


PEERS = {
    "ours": (build_ours, ours_pixel, ours_transformer),
    "hf": (build_hf, hf_pixel, hf_transformer),
}


def build_peers(
    args: argparse.Namespace, levels: list[Tensor], device: torch.device
) -> dict[str, Callable[[], None]]:
    """Name -> one timed inference call; the ``-pixel`` and ``-transformer`` parts too unless
    ``--no-parts``."""
    peers = {}
    parts = {}
    for name, (build, pixel, transformer) in PEERS.items():
        modules = build(args.tiny)
        modules = (modules[1] if name == "ours" else modules).to(device).eval()
        with torch.inference_mode():
            decoded = pixel(modules, levels)

        def whole(modules=modules, pixel=pixel, transformer=transformer) -> None:
            transformer(modules, pixel(modules, levels))

        peers[name] = whole
        parts[f"{name}-pixel"] = lambda modules=modules, pixel=pixel: pixel(modules, levels)
        parts[f"{name}-transformer"] = (
            lambda modules=modules, transformer=transformer, decoded=decoded: transformer(
                modules, decoded
            )
        )
    if not args.no_parts:
        peers.update(parts)

    def run(fn: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return call

    return {name: run(fn) for name, fn in peers.items()}


def report(results: dict[str, Samples], batch: int, max_foreign: float) -> None:
    """ms/img per peer, ours / hf of minima and medians per part, load and quiet samples."""
    print(f"{'peer':17s} {'ms/img min':>10s} {'median':>8s} {LOAD_HEADER}")
    for name, r in results.items():
        print(
            f"{name:17s} {r.min / batch * 1e3:10.1f} {r.median / batch * 1e3:8.1f}"
            f" {load_columns(r, max_foreign)}"
        )
    for part in ("", "-pixel", "-transformer"):
        if f"ours{part}" in results:
            ours, hf = results[f"ours{part}"], results[f"hf{part}"]
            print(
                f"ours{part} / hf{part}: {ours.min / hf.min:.2f} by min,"
                f" {ours.median / hf.median:.2f} by median"
            )
    ratio = results["ours"].min / results["hf"].min
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"batch {batch}: ours / hf {ratio:.2f} by min (target <= {TARGET}: {verdict})")


def _status_mib(field: str) -> float:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``) as MiB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def reset_peak_resident() -> None:
    """Set this process's peak resident set (``VmHWM``) to the current one: writing 5 to
    ``/proc/self/clear_refs`` (Linux 4.0+), so that the next peak is the call's own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_child(args: argparse.Namespace, peer: str, mode: str) -> None:
    """In a fresh process: one call of ``peer`` (``forward`` or ``backward``) at a tiny size,
    then the measured one at ``--size``; prints a JSON line with the peak memory in MiB."""
    device = torch.device(args.device)
    build, pixel, transformer = PEERS[peer]
    neck, ours_modules = build_ours(args.tiny)
    modules = (ours_modules if peer == "ours" else build(args.tiny)).to(device)
    modules.train(mode == "backward")
    del ours_modules

    def step(levels: list[Tensor]) -> None:
        if mode == "forward":
            with torch.inference_mode():
                transformer(modules, pixel(modules, levels))
            return
        outputs = all_logits(transformer(modules, pixel(modules, levels)))
        sum(out.float().square().mean() for out in outputs).backward()

    step([x.to(device) for x in make_levels(neck, 4 * PATCH_SIZE, args.memory_batch, args.tiny)])
    levels = [x.to(device) for x in make_levels(neck, args.size, args.memory_batch, args.tiny)]
    modules.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        step(levels)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        reset_peak_resident()
        before = _status_mib("VmRSS")
        step(levels)
        peak = _status_mib("VmHWM")
    print(json.dumps(dict(peer=peer, mode=mode, before=before, peak=peak, extra=peak - before)))


def measure_memory(args: argparse.Namespace) -> None:
    """One subprocess per peer and mode; print the extra peak memory of each call and ours / hf."""
    method = "max_memory_allocated" if args.device == "cuda" else "VmHWM - VmRSS before"
    print(
        f"memory at {args.size}x{args.size}, batch {args.memory_batch}, one subprocess per peer"
        f" ({method}, MiB):",
        flush=True,
    )
    extra = {}
    for mode in ("forward", "backward"):
        for peer in PEERS:
            command = [sys.executable, str(SCRIPT), *sys.argv[1:], "--memory-child", peer, mode]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"  {peer} {mode}: failed\n{done.stderr[-2000:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            extra[peer, mode] = result["extra"]
            label = "forward" if mode == "forward" else "forward + backward"
            print(
                f"  {peer:4s} {label:18s} {result['extra']:8.0f} MiB above"
                f" {result['before']:.0f} MiB before the call",
                flush=True,
            )
        if extra.get(("hf", mode), 0) > 0 and ("ours", mode) in extra:
            print(f"  ours / hf {mode}: {extra['ours', mode] / extra['hf', mode]:.2f}")


def main(argv: list[str] | None = None) -> None:
    """Time the peers interleaved per batch size (or profile one), then measure memory."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args, *args.memory_child)
        return
    device = torch.device(args.device)
    print(f"device: {device_name(device)}; torch {torch.__version__}")
    s = sizes(args.tiny)
    print(
        f"{args.size}x{args.size} image, patch {PATCH_SIZE}, {s['channels']} channels,"
        f" {s['encoder_layers']} encoder / {s['decoder_layers']} decoder layers,"
        f" {s['queries']} queries, {s['heads']} heads, random init",
        flush=True,
    )
    neck, _ = build_ours(args.tiny)
    for batch in args.batches:
        levels = [x.to(device) for x in make_levels(neck, args.size, batch, args.tiny)]
        shapes = ", ".join("x".join(map(str, x.shape[-2:])) for x in levels)
        print(f"batch {batch}: levels {shapes}", flush=True)
        peers = build_peers(args, levels, device)
        if args.profile:
            profile(peers[args.peer], device)
            return
        results = {name: Samples() for name in peers}
        for round_ in range(args.repeats):
            warmup = 1 if round_ == 0 else 0
            for name, r in interleave(peers, 1, warmup, args.max_foreign).items():
                results[name].seconds += r.seconds
                results[name].foreign += r.foreign
            times = ", ".join(f"{n} {r.seconds[-1]:.2f} s" for n, r in results.items())
            print(f"  [{round_ + 1}/{args.repeats}] {times}", flush=True)
        report(results, batch, args.max_foreign)
    if not args.no_memory:
        measure_memory(args)


if __name__ == "__main__":
    main()
