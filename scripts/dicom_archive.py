"""A DICOM copy of an image archive, one folder per transfer syntax: what a hospital's export of
its dermoscopy would look like, made from real images (dermspark.dicom_archive), for the DICOM
tests, benchmarks and demos. Every header holds a fake patient's name, id and birth date, which
dermspark must never copy.

    .venv/bin/python scripts/dicom_archive.py ../shared/data/ham10000-600x450 RUNS/dicom \\
        --syntaxes explicit_little,jpeg_baseline,jpeg_ls_lossless,jpeg2000_lossless,rle
"""

import argparse
import glob
import os
import sys

from dermspark.dicom_archive import TRANSFER_SYNTAXES, write_copy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a folder of images (searched recursively for .jpg and .png)")
    parser.add_argument("output", help="the DICOM copy: OUTPUT/SYNTAX/IMAGE_ID.dcm")
    parser.add_argument(
        "--syntaxes", default=",".join(TRANSFER_SYNTAXES), help=f"comma-separated, of {', '.join(TRANSFER_SYNTAXES)}"
    )
    parser.add_argument("--limit", type=int, default=0, help="the first N images only (0: all)")
    args = parser.parse_args(argv)
    syntaxes = [name.strip() for name in args.syntaxes.split(",") if name.strip()]
    unknown = sorted(set(syntaxes) - set(TRANSFER_SYNTAXES))
    if unknown:
        print(f"unknown transfer syntax {', '.join(unknown)}; known: {', '.join(TRANSFER_SYNTAXES)}", file=sys.stderr)
        return 2
    paths = sorted(
        path
        for pattern in ("**/*.jpg", "**/*.png")
        for path in glob.glob(os.path.join(args.input, pattern), recursive=True)
    )
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        print(f"no .jpg or .png image under {args.input}", file=sys.stderr)
        return 2
    for syntax in syntaxes:
        written = write_copy(paths, os.path.join(args.output, syntax), syntax)
        print(f"{syntax}: {len(written)} files in {os.path.join(args.output, syntax)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
