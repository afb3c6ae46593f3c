"""Write the synthetic toy depth dataset in the NYU Depth v2 layout.

    python tools/make_toy_depth_dataset.py data/toy_nyu --num-train 64 --num-val 16 --size 96 128

Then train on it with ``NYUDepthDataset(data_root="data/toy_nyu", split="train")``.
"""

import argparse

from dinoreg_dense.datasets.toy_depth import make_toy_nyu


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder; nyu_train.txt, nyu_test.txt and scenes inside")
    parser.add_argument("--num-train", type=int, default=64, help="images in nyu_train.txt")
    parser.add_argument("--num-val", type=int, default=16, help="images in nyu_test.txt")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"), help="image size"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


def main() -> None:
    """Write the dataset and print where it went."""
    args = parse_args()
    root = make_toy_nyu(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=tuple(args.size),
        seed=args.seed,
    )
    print(
        f"wrote {args.num_train} training and {args.num_val} test images to {root}\n"
        f"use NYUDepthDataset(data_root='{args.out}', split='train' or 'test')"
    )


if __name__ == "__main__":
    main()
