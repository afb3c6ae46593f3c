"""Write the synthetic toy segmentation dataset in the ADE20K layout.

    python tools/make_toy_dataset.py data/toy --num-train 64 --num-val 16 --size 128 128

Then train on it with ``ADE20KDataset(data_root="data/toy", classes=TOY_CLASSES)``.
"""

import argparse

from dinoreg_dense.datasets.toy import TOY_CLASSES, make_toy_ade20k


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder; ADEChallengeData2016/ is written inside")
    parser.add_argument("--num-train", type=int, default=64, help="training images")
    parser.add_argument("--num-val", type=int, default=16, help="validation images")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"), help="image size"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


def main() -> None:
    """Write the dataset and print where it went."""
    args = parse_args()
    dataset_dir = make_toy_ade20k(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=tuple(args.size),
        seed=args.seed,
    )
    print(
        f"wrote {args.num_train} training and {args.num_val} validation images to {dataset_dir}\n"
        f"classes {TOY_CLASSES}: use ADE20KDataset(data_root='{args.out}', classes=TOY_CLASSES)"
    )


if __name__ == "__main__":
    main()
