"""Speed of an exported model in onnxruntime (CPU) against the same model in PyTorch eager.

    python benchmarks/onnx_export.py [--size 518] [--batch 1] [--threads 1 2] [--repeats 7]
    python benchmarks/onnx_export.py --tiny --size 56 --repeats 1 --threads 1   # smoke

The model is ViT-S/14-reg4 + DINOv2's linear segmentation head (150 classes), random weights,
wrapped as tools/export.py exports it (:class:`~dinoreg_dense.engine.export.PixelOutputModel`:
normalised images in, logits at the input size out) and exported once with dynamic batch, height
and width (``--fixed``: fixed to the benchmark's size). ``--tiny`` takes a 2-block, 64-wide ViT
instead (for the smoke test). Both outputs are compared first.

Per thread count, the peers run interleaved (A B A B ...) in one process on the same input:
  torch        the module under ``torch.inference_mode`` (the blocked CPU path of the blocks on,
               as tools/infer.py runs it), ``torch.set_num_threads(n)``;
  onnxruntime  ``InferenceSession`` on the CPU provider, ``intra_op_num_threads=n``, full graph
               optimisation.
ms per batch as min and median over the kept samples; "load" is the largest share of the machine
other processes used during a peer's samples (/proc/stat), samples above ``--max-foreign`` are
retried once. The ratio torch / onnxruntime is of minima (and of medians): above 1, onnxruntime
is faster.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from mmengine.registry import init_default_scope
from timing import Samples, device_name, interleave

from dinoreg_dense.engine.export import PixelOutputModel, export_onnx
from dinoreg_dense.registry import MODELS


def parse_args() -> argparse.Namespace:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=518, help="input side in pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7, help="samples per peer")
    parser.add_argument("--fixed", action="store_true", help="export with a fixed input shape")
    parser.add_argument("--tiny", action="store_true", help="2-block 64-wide ViT (smoke test)")
    parser.add_argument("--max-foreign", type=float, default=0.1)
    return parser.parse_args()


def build_module(tiny: bool) -> PixelOutputModel:
    """The benchmarked model with seeded random weights."""
    backbone = dict(type="RegisterViT", arch="vits14_reg4")
    if tiny:
        backbone.update(depth=2, embed_dim=64, num_heads=4, pos_embed_grid=(4, 4))
    torch.manual_seed(0)
    head = dict(type="LinearHead", in_channels=None, num_classes=150)
    return PixelOutputModel(
        MODELS.build(dict(type="Segmentor", backbone=backbone, decode_head=head))
    )


def report(results: dict[str, Samples], batch: int) -> None:
    """One line per peer: ms per batch min / median, load; then the ratio."""
    for name, samples in results.items():
        print(
            f"  {name:12s} {samples.min * 1e3:8.1f} / {samples.median * 1e3:8.1f} ms "
            f"(batch {batch}), load max {samples.max_foreign:.0%}"
        )
    torch_s, onnx_s = results["torch"], results["onnxruntime"]
    print(
        f"  torch / onnxruntime {torch_s.min / onnx_s.min:.2f} by min, "
        f"{torch_s.median / onnx_s.median:.2f} by median"
    )


def main() -> None:
    args = parse_args()
    logging.getLogger("dinoreg_dense.backbones.vit").setLevel(logging.ERROR)  # random init
    init_default_scope("dinoreg_dense")
    module = build_module(args.tiny)
    shape = (args.size, args.size)
    print(f"device: {device_name(torch.device('cpu'))}, torch {torch.__version__}, ", end="")
    print(f"onnxruntime {onnxruntime.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        print(f"exporting ({'fixed' if args.fixed else 'dynamic'} shape) ...", flush=True)
        start = time.perf_counter()
        export_onnx(module, path, shape, dynamic=not args.fixed)
        print(f"exported in {time.perf_counter() - start:.0f} s", flush=True)
        images = torch.randn(args.batch, 3, *shape)
        feed = {"images": images.numpy()}
        for threads in args.threads:
            torch.set_num_threads(threads)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

            def eager() -> None:
                with torch.inference_mode():
                    module(images)

            def ort(session: onnxruntime.InferenceSession = session) -> None:
                session.run(None, feed)

            with torch.inference_mode():
                expected = module(images).numpy()
            diff = float(np.abs(session.run(None, feed)[0] - expected).max())
            print(
                f"{threads} thread(s), {args.batch} x 3 x {args.size} x {args.size}, "
                f"max abs diff {diff:.2g}, {args.repeats} rounds",
                flush=True,
            )
            results = interleave(
                {"torch": eager, "onnxruntime": ort}, args.repeats, max_foreign=args.max_foreign
            )
            report(results, args.batch)


if __name__ == "__main__":
    main()
