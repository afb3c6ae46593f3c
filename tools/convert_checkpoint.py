"""Convert any supported backbone checkpoint to dinoreg_dense safetensors (arch in metadata).

    python tools/convert_checkpoint.py dinov2_vits14_reg4_pretrain.pth vits14_reg4.safetensors
    python tools/convert_checkpoint.py hf_folder/ out.safetensors
    python tools/convert_checkpoint.py old.pth out.safetensors --set interpolate_offset=0.1

Without ``--arch`` the architecture comes from the file (HF config.json, our metadata, or tensor
shapes); the output then loads with ``RegisterViT(arch=None, checkpoint=OUT)``. ``--arch`` and
``--set`` are for what the tensors cannot tell (e.g. the position-embedding resampling of DINO v1
files); they must agree with the file's shapes.
"""

import argparse
import ast
import sys

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.checkpoint import CheckpointError, PretrainedFile, save_checkpoint
from dinoreg_dense.checkpoint.infer import describe_arch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="checkpoint file or Hugging Face model folder")
    parser.add_argument("output", help="output .safetensors file")
    parser.add_argument("--arch", help="preset name (see ARCHS); default: read from the file")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="ViTArch overrides, e.g. depth=4 interpolate_offset=0.0",
    )
    return parser.parse_args(argv)


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``['depth=4', 'norm_layer=rmsnorm']`` -> ``{'depth': 4, 'norm_layer': 'rmsnorm'}``."""
    overrides = {}
    for pair in pairs:
        field, equals, value = pair.partition("=")
        if not equals:
            raise ValueError(f"--set {pair}: expected FIELD=VALUE, e.g. depth=12")
        try:
            overrides[field] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[field] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        pretrained = PretrainedFile(args.input)  # read once for the format, arch and weights
        print(f"detected: {pretrained.format_name}")
        model = RegisterViT(arch=args.arch, checkpoint=pretrained, **parse_overrides(args.set))
    except (CheckpointError, FileNotFoundError, TypeError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, CheckpointError) and (args.arch or args.set):
            print(
                "On this command line, model.backbone.arch is --arch and its fields are "
                "--set FIELD=VALUE: drop both to take the architecture from the file.",
                file=sys.stderr,
            )
        return 1
    print(f"architecture: {describe_arch(model.arch)}")
    print(f"wrote {save_checkpoint(model, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
