"""Plain Python, no Spark: write the out-of-distribution image set (dermspark.ood_set), images
that are not dermoscopy, for `train --ood-check` and the review flag's figures."""

import argparse

from dermspark.ood_set import make_ood_set


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/ood_set.py", description=__doc__)
    parser.add_argument("--output", required=True, help="folder to create the set in")
    parser.add_argument("--per-kind", type=int, default=50, help="images of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    made = make_ood_set(args.output, per_kind=args.per_kind, seed=args.seed)
    print(f"[dermspark] out-of-distribution set: {sum(made.counts.values())} images in {made.path} {made.counts}")


if __name__ == "__main__":
    main()
