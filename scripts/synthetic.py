"""Plain Python, no Spark: write a synthetic HAM10000-shaped archive for the demo."""

import argparse

from dermspark.synthetic import make_synthetic_ham10000


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/synthetic.py", description=__doc__)
    parser.add_argument("--output", required=True, help="folder to create the archive in")
    parser.add_argument("--images", type=int, default=600, help="about this many images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    archive = make_synthetic_ham10000(args.output, images=args.images, seed=args.seed)
    print(
        f"[dermspark] synthetic archive: {archive.images} images of {archive.lesions} lesions "
        f"in {archive.path} {archive.class_counts}"
    )


if __name__ == "__main__":
    main()
