"""What a job's processes run: dermspark installed from this checkout's wheel. Prints a path.

    .venv/bin/python scripts/pack_env.py --installed   # a folder, for the driver's PYTHONPATH
    .venv/bin/python scripts/pack_env.py               # the archive executors receive
    .venv/bin/python scripts/pack_env.py --upload hdfs:///apps/dermspark/   # put it on the cluster's storage
    .venv/bin/python scripts/pack_env.py --unpack /mnt/shared/envs/   # unpacked once, for --env-dir

--installed: the wheel installed (pip --target) into build/code/HASH, HASH naming the code. The
driver, and in local mode every Python worker and Horovod rank, import dermspark from there, not
from lib/, so a job never sees its code change under it: a 50-epoch run once died at its
evaluation when the code it imported from was replaced mid-run.

Without it: an archive for `--archives ARCHIVE#environment`, whose ./environment/bin/python (and
so every Horovod rank) imports dermspark from its own site-packages. It is two gzip members,
which `gzip -dc` (how Spark unpacks a .tar.gz) reads as one tar:
- the environment: .venv less its editable dermspark and what executors never run, built once
  per lock (the bootstrap stamp) and kept in ~/.cache/dermspark/envs beside Horovod's wheel;
- dermspark from the wheel, built in seconds per code hash.
The archive is named by both, so a running job's archive is never replaced. Like virtualenv, it
leaves the interpreter out: nodes need Python 3.11 at the path .venv was made from.
Archives and installs unused for a week are removed.
"""

import argparse
import compileall
import fnmatch
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = "lib/python3.11/site-packages"
UNUSED_FOR = 7 * 86400  # seconds
# What executors never need. A change to this script makes a new environment member.
LEAVE_OUT = [
    f"{SITE}/__editable__*dermspark*",
    f"{SITE}/dermspark-*.dist-info",
    # Their JVM has Spark's own jars; nothing compiles against TensorFlow's headers.
    f"{SITE}/pyspark/jars",
    f"{SITE}/tensorflow/include",
    # The browser test's driver (165 MB), TensorFlow's build-time libclang (62 MB), TensorBoard's
    # data server, pip, the tests' S3 server (moto; s3fs and botocore stay for S3 stores).
    f"{SITE}/playwright",
    f"{SITE}/moto",
    f"{SITE}/clang",
    f"{SITE}/tensorboard_data_server",
    f"{SITE}/pip",
    # MLflow's server side: executors are its clients (rank 0 logs epochs, scoring fetches
    # registered bundles over HTTP). Its web UI (29 MB), its database layer and web servers.
    f"{SITE}/mlflow/server/js",
    f"{SITE}/sqlalchemy",
    f"{SITE}/alembic",
    f"{SITE}/gunicorn",
    f"{SITE}/huey",
    f"{SITE}/graphene",
    f"{SITE}/graphql",
    f"{SITE}/graphql_relay",
    f"{SITE}/docker",
    f"{SITE}/skops",
]
with open(os.path.abspath(__file__), "rb") as _self:
    SCRIPT_KEY = hashlib.sha256(_self.read()).hexdigest()[:8]


def code_hash() -> str:
    """Of everything the wheel is made from: the package's files and pyproject.toml."""
    digest = hashlib.sha256()
    paths = [os.path.join(ROOT, "pyproject.toml")]
    for folder, dirs, files in os.walk(os.path.join(ROOT, "lib", "dermspark")):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        paths += sorted(os.path.join(folder, name) for name in files if not name.endswith(".pyc"))
    for path in paths:
        with open(path, "rb") as handle:
            digest.update(os.path.relpath(path, ROOT).encode() + b"\0" + handle.read() + b"\0")
    return digest.hexdigest()[:16]


def installed(build: str) -> str:
    """build/code/HASH: the wheel installed there, with its bytecode; made once per code hash."""
    target = os.path.join(build, "code", code_hash())
    if not os.path.isdir(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as work:
            # Built from a copy: setuptools never empties its build folder, so a module deleted
            # from lib/ would still be packed from an earlier in-tree build.
            source = os.path.join(work, "source")
            shutil.copytree(
                os.path.join(ROOT, "lib", "dermspark"),
                os.path.join(source, "lib", "dermspark"),
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
            for name in ("pyproject.toml", "README.md"):
                shutil.copy(os.path.join(ROOT, name), source)
            pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
            subprocess.run(
                [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", work, source], check=True, stdout=sys.stderr
            )
            (wheel,) = [name for name in os.listdir(work) if name.endswith(".whl")]
            site = os.path.join(work, "site")
            subprocess.run(
                [*pip, "install", "--no-deps", "--target", site, os.path.join(work, wheel)],
                check=True,
                stdout=sys.stderr,
            )
            compileall.compile_dir(site, quiet=1)
            try:
                os.rename(site, target)  # whole or not at all, for submits racing to make it
            except OSError:
                if not os.path.isdir(target):
                    raise
    os.utime(target)  # in use: the week starts again
    _remove_unused(os.path.dirname(target), keep={target})
    return target


def _left_out(relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in LEAVE_OUT)


def _environment_member(venv: str, path: str) -> None:
    """.venv as a gzip member holding a tar without its end-of-archive blocks, which the code
    member brings."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as packed:
        tar = tarfile.open(fileobj=packed, mode="w")  # noqa: SIM115 (never closed: see below)
        for folder, dirs, files in os.walk(venv):
            relative = os.path.relpath(folder, venv)
            kept = []
            for name in sorted(dirs):
                entry = os.path.normpath(os.path.join(relative, name))
                if _left_out(entry):
                    continue
                tar.add(os.path.join(folder, name), entry, recursive=False)
                if not os.path.islink(os.path.join(folder, name)):
                    kept.append(name)
            dirs[:] = kept
            for name in sorted(files):
                entry = os.path.normpath(os.path.join(relative, name))
                if not _left_out(entry):
                    tar.add(os.path.join(folder, name), entry, recursive=False)
        # No tar.close(): it would end the archive here, before dermspark.


def _code_member(site: str, path: str) -> None:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in sorted(os.listdir(site)):
            tar.add(os.path.join(site, name), f"{SITE}/{name}")


def _stamp(venv: str) -> str:
    stamp_path = os.path.join(venv, ".bootstrap-stamp")
    if not os.path.isfile(stamp_path):
        sys.exit(f"{venv} was not made by scripts/bootstrap.sh (no .bootstrap-stamp)")
    with open(stamp_path) as handle:
        return handle.read().strip()


def archive_name(venv: str, build: str) -> str:
    """The lock's stamp, this script's and the code's hash: equal names, equal contents."""
    return f"dermspark-env-{_stamp(venv)}-{SCRIPT_KEY}-{os.path.basename(installed(build))}.tar.gz"


def archive(venv: str, cache: str, build: str) -> str:
    stamp = _stamp(venv)
    envs = os.path.join(cache, "envs")
    os.makedirs(envs, exist_ok=True)
    code = installed(build)
    target = os.path.join(envs, archive_name(venv, build))
    if not os.path.isfile(target):
        base = os.path.join(envs, f"dermspark-base-{stamp}-{SCRIPT_KEY}.gz")
        if not os.path.isfile(base):
            print(f"[dermspark] packing {venv} for executors, once per lock: {base}", file=sys.stderr)
            _build(base, lambda path: _environment_member(venv, path))
        with tempfile.TemporaryDirectory(dir=envs) as work:
            member = os.path.join(work, "code.tar.gz")
            _code_member(code, member)
            _build(target, lambda path: _concatenate(path, [base, member]))
    os.utime(target)
    _remove_unused(
        envs, keep={target, os.path.join(envs, f"dermspark-base-{stamp}-{SCRIPT_KEY}.gz")}, prefix="dermspark-"
    )
    return target


def _concatenate(path: str, parts: list[str]) -> None:
    with open(path, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, 16 * 2**20)


def _build(target: str, write) -> None:
    """Writes target whole or not at all: under a temporary name, then renamed."""
    handle, staging = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".tmp")
    os.close(handle)
    try:
        write(staging)
        os.chmod(staging, 0o644)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def _remove_unused(folder: str, keep: set[str], prefix: str = "") -> None:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith(prefix) and path not in keep and time.time() - os.path.getmtime(path) > UNUSED_FOR:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def upload(archive_path: str, folder_url: str) -> str:
    """Puts the archive, under its own name, in a folder on any store Spark and fsspec both read
    (hdfs://, s3a://, a network mount); a job then takes it with --env-archive URL. Whole or not
    at all, and skipped when that name is there already (the name says what is inside)."""
    from dermspark import storage

    url = storage.join(storage.to_url(folder_url.rstrip("/")), os.path.basename(archive_path))
    if not storage.exists(url):
        print(f"[dermspark] uploading {archive_path} to {url}", file=sys.stderr)
        storage.put_file(archive_path, url)
    return url


def unpack(archive_path: str, folder: str) -> str:
    """Unpacks the archive once into a folder every node mounts at the same path, under the
    archive's own name; jobs then run it with --env-dir instead of each executor fetching and
    unpacking 0.6 GB per application. Whole or not at all, skipped when that name is there."""
    target = os.path.join(os.path.abspath(folder), os.path.basename(archive_path)[: -len(".tar.gz")])
    if not os.path.isdir(target):
        print(f"[dermspark] unpacking {archive_path} into {target}", file=sys.stderr)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".unpacking-")
        try:
            # Two gzip members that read as one tar, as Spark's `gzip -dc | tar -x` reads them;
            # tar itself, as it is five times faster than tarfile over 100,000 small files.
            subprocess.run(["tar", "-xzf", archive_path, "-C", staging], check=True)
            os.chmod(staging, 0o755)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--installed", action="store_true", help="print the installed folder, pack nothing")
    parser.add_argument(
        "--name", action="store_true", help="print the file name this checkout's archive has, pack nothing"
    )
    parser.add_argument(
        "--upload",
        metavar="FOLDER_URL",
        help="pack, put the archive in FOLDER_URL and print its URL, for --env-archive",
    )
    parser.add_argument(
        "--unpack",
        metavar="FOLDER",
        help="pack, unpack into FOLDER (a mount every node shares) and print the environment's folder, for --env-dir",
    )
    parser.add_argument("--venv", default=os.path.join(ROOT, ".venv"))
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    default_cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "dermspark")
    parser.add_argument("--cache", default=os.environ.get("DERMSPARK_CACHE", default_cache))
    args = parser.parse_args()
    if args.installed:
        print(installed(args.build))
    elif args.name:
        print(archive_name(args.venv, args.build))
    elif args.unpack:
        print(unpack(archive(args.venv, args.cache, args.build), args.unpack))
    elif args.upload:
        print(upload(archive(args.venv, args.cache, args.build), args.upload))
    else:
        print(archive(args.venv, args.cache, args.build))


if __name__ == "__main__":
    main()
