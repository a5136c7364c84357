"""Packs .venv into one archive for executors that have nothing installed; prints its path.

spark-submit.sh ships it with `--archives ARCHIVE#environment` and points executors' Python at
./environment/bin/python. Built once per environment: the archive is named by the bootstrap
stamp (a hash of pyproject.toml, constraints.txt and bootstrap.sh), so it is rebuilt exactly
when the lock changes, and kept in the cache beside Horovod's wheel, so clean checkouts reuse it.

venv-pack, like virtualenv, leaves the interpreter out: executors need Python 3.11 at the path
.venv was made from (this project's bootstrap requirement on every machine).

    .venv/bin/python scripts/pack_env.py [--venv .venv] [--cache DIR]
"""

import argparse
import glob
import hashlib
import os
import sys
import tempfile

import venv_pack
import venv_pack.core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What goes in the archive is decided here too: a change to this script makes a new one.
with open(os.path.abspath(__file__), "rb") as _self:
    SCRIPT_KEY = hashlib.sha256(_self.read()).hexdigest()[:8]


def _check_editables(context) -> None:
    """venv-pack refuses any editable install; this project's own is one (tests and jobs import
    it from lib/), but executors get that code through --py-files, so only other editables
    count. The same test as venv_pack.core.check_no_editable_packages, less this project."""
    lib = os.path.join(ROOT, "lib")
    foreign = set()
    for path in glob.glob(os.path.join(context.prefix, context.py_lib, "site-packages", "*.pth")):
        with open(path) as handle:
            for line in handle:
                location = os.path.normpath(os.path.join(os.path.dirname(path), line.strip()))
                outside = not location.startswith(context.prefix) and location != lib
                if line.strip() and not line.startswith("#") and outside:
                    foreign.add(location)
    if foreign:
        raise venv_pack.core.VenvPackException(f"cannot pack editable installs: {', '.join(sorted(foreign))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", default=os.path.join(ROOT, ".venv"))
    default_cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dermspark")
    parser.add_argument("--cache", default=os.environ.get("DERMSPARK_CACHE", default_cache))
    args = parser.parse_args()
    stamp_path = os.path.join(args.venv, ".bootstrap-stamp")
    if not os.path.isfile(stamp_path):
        sys.exit(f"{args.venv} was not made by scripts/bootstrap.sh (no .bootstrap-stamp)")
    with open(stamp_path) as handle:
        stamp = handle.read().strip()
    # Executors (and a client-mode driver) unpack it once per application. gzip level 1 moves a
    # third of the bytes (0.5 GB against 1.6 GB) and started an application's executors faster
    # even on one machine (57 s against 70 s, both unpacking at once). (Spark unpacks a plain
    # .tar with a check that refuses the venv's symlink to its interpreter, so it is always
    # .tar.gz.) The bytecode pip compiled goes too: without it every executor's Python compiled
    # TensorFlow's modules again on import, 12 s against 5 s.
    level = int(os.environ.get("DERMSPARK_PACK_LEVEL", "1"))
    if not 0 <= level <= 9:
        sys.exit(f"DERMSPARK_PACK_LEVEL must be 0 to 9, not {level}")
    target = os.path.join(args.cache, "envs", f"dermspark-env-{stamp}-{SCRIPT_KEY}-gz{level}.tar.gz")
    if not os.path.isfile(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        print(f"[dermspark] packing {args.venv} for executors, once per lock: {target}", file=sys.stderr)
        venv_pack.core.check_no_editable_packages = _check_editables
        handle, staging = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".tar.gz")
        os.close(handle)
        try:
            venv_pack.pack(prefix=args.venv, output=staging, force=True, compress_level=level, filters=[
                ("exclude", "lib/python*/site-packages/__editable__*dermspark*"),
                ("exclude", "lib/python*/site-packages/dermspark-*.dist-info/*"),
                # Executors' Python needs neither Spark's jars (their JVM has its own) nor C headers.
                ("exclude", "lib/python*/site-packages/pyspark/jars/*"),
                ("exclude", "lib/python*/site-packages/tensorflow/include/*"),
                # What executors never run: the browser test's driver (165 MB), TensorFlow's
                # build-time libclang (62 MB), TensorBoard's data server, pip, the tests' S3 server
                # (moto, 49 MB; s3fs and botocore stay: checkpoint stores use them).
                ("exclude", "lib/python*/site-packages/playwright/*"),
                ("exclude", "lib/python*/site-packages/moto/*"),
                ("exclude", "lib/python*/site-packages/clang/*"),
                ("exclude", "lib/python*/site-packages/tensorboard_data_server/*"),
                ("exclude", "lib/python*/site-packages/pip/*"),
            ])
            os.chmod(staging, 0o644)
            os.replace(staging, target)
        finally:
            if os.path.exists(staging):
                os.remove(staging)
    print(target)


if __name__ == "__main__":
    main()
