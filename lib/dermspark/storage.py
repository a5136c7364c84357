"""Every file dermspark itself reads or writes goes through here, over fsspec URLs.

Local paths, file://, s3:// and s3a:// (s3fs), hdfs:// (pyarrow) and any other installed fsspec
protocol are reached the same way on the driver, in executors' Python and in Horovod's ranks,
with the same credentials (the AWS_* environment variables for S3: see dermspark.session).
Spark's own tables (the predictions) go through Spark's writers; nothing here goes through
Hadoop's FileSystem, so an output on s3:// works where Spark has no S3A connector.

Outputs are staged beside their final path and committed whole: a rename where the store has
one (local disks, HDFS); on object stores, where a rename is a copy, a copy that puts every
`manifest.json` last, so dermspark's readers, which open that file first, never see a half
output.
"""

import contextlib
import os
import posixpath
import uuid
from urllib.parse import urlparse

from dermspark import DermsparkError

# Where a folder rename is a copy of every object: the commit copies, markers last.
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "abfs", "az", "oss")
# Written last by a commit to an object store; a reader that finds it finds the rest.
COMMIT_MARKERS = ("manifest.json",)


def to_url(path: str) -> str:
    """A bare local path becomes an absolute file:// URL; a URL is returned as it is."""
    if urlparse(path).scheme:
        return path.rstrip("/")
    return "file://" + os.path.abspath(os.path.expanduser(path))


def local_path(url: str) -> str | None:
    """The local file-system path of a file:// URL (or bare path), None for remote stores."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme else os.path.abspath(os.path.expanduser(url))
    return None


def scheme(url: str) -> str:
    return urlparse(url).scheme or "file"


def is_object_store(url: str) -> bool:
    return scheme(url) in OBJECT_STORES


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def fsspec_url(url: str) -> str:
    """Hadoop spells S3 s3a://; fsspec (s3fs) spells it s3://."""
    return "s3://" + url[len("s3a://") :] if url.startswith("s3a://") else url


def open_url(url: str):
    """(fsspec file system, path) for a URL."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(fsspec_url(url))
    except (ValueError, ImportError) as error:
        raise DermsparkError(f"cannot reach {url}: {error}") from None


def exists(url: str) -> bool:
    fs, path = open_url(url)
    return fs.exists(path)


def is_dir(url: str) -> bool:
    fs, path = open_url(url)
    return fs.isdir(path)


def glob(url: str, pattern: str) -> list[str]:
    """Names of a folder's entries that match a glob."""
    fs, path = open_url(url)
    return sorted(posixpath.basename(found.rstrip("/")) for found in fs.glob(posixpath.join(path, pattern)))


def glob_relative(url: str, pattern: str) -> list[str]:
    """Paths below a folder that match a glob (which may name subfolders), relative to it."""
    fs, path = open_url(url)
    base = path.rstrip("/") + "/"
    return sorted(
        found[len(base) :] if found.startswith(base) else posixpath.relpath(found, path)
        for found in fs.glob(posixpath.join(path, pattern))
    )


def files_below(url: str) -> list[str]:
    """Every file below a folder, relative to it."""
    fs, path = open_url(url)
    base = path.rstrip("/") + "/"
    return sorted(found[len(base) :] for found in fs.find(path) if found.startswith(base))


def delete(url: str) -> None:
    """Removes a file or a whole folder; nothing to remove is not an error."""
    fs, path = open_url(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def makedirs(url: str) -> None:
    fs, path = open_url(url)
    fs.makedirs(path, exist_ok=True)


def read_bytes(url: str) -> bytes:
    fs, path = open_url(url)
    with fs.open(path, "rb") as handle:
        return handle.read()


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


def _whole(url: str, write) -> None:
    """A file whole or not at all: an object store's upload appears when it completes; elsewhere
    write(fs, path) goes to a hidden sibling that is then renamed over the file, so a killed job
    never leaves half a file."""
    fs, path = open_url(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if is_object_store(url):
        write(fs, path)
        return
    hidden = staging_url(path)
    try:
        write(fs, hidden)
        fs.mv(hidden, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(hidden)
        raise


def write_bytes(url: str, data: bytes) -> None:
    def write(fs, path: str) -> None:
        with fs.open(path, "wb") as handle:
            handle.write(data)

    _whole(url, write)


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


def put_file(local: str, url: str) -> None:
    _whole(url, lambda fs, path: fs.put_file(local, path))


def put_tree(local: str, url: str) -> None:
    """Uploads every file below a local folder, markers last (see COMMIT_MARKERS)."""
    for name in _ordered(
        os.path.relpath(os.path.join(folder, file), local).replace(os.sep, "/")
        for folder, _, files in os.walk(local)
        for file in files
    ):
        put_file(os.path.join(local, *name.split("/")), join(url, name))


def get_tree(url: str, local: str) -> None:
    """Downloads every file below a folder URL into a local folder."""
    fs, path = open_url(url)
    root = path.rstrip("/")
    for found in fs.find(root):
        target = os.path.join(local, *posixpath.relpath(found, root).split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get_file(found, target)


def copy_tree(source: str, target: str) -> None:
    """A small tree from any store to any other, through a local folder; nothing when absent."""
    import tempfile

    if not exists(source):
        return
    with tempfile.TemporaryDirectory(prefix="dermspark-copy-") as local:
        get_tree(source, local)
        put_tree(local, target)


def write_parquet(table, url: str) -> None:
    """A small pyarrow table as one Parquet file (ingest's rejects)."""
    import pyarrow.parquet as pq

    fs, path = open_url(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle)


def _ordered(names) -> list[str]:
    """Relative "/" paths, markers after everything else, deepest first: a bundle's manifest
    before its output's."""
    names = sorted(names)
    markers = sorted(
        (name for name in names if posixpath.basename(name) in COMMIT_MARKERS), key=lambda name: -name.count("/")
    )
    return [name for name in names if name not in markers] + markers


def move(source: str, target: str) -> None:
    """A folder or file to a new path on the same store: a rename, or on object stores a copy
    (markers last) and a delete."""
    fs, source_path = open_url(source)
    _, target_path = open_url(target)
    if not is_object_store(source):
        fs.makedirs(posixpath.dirname(target_path.rstrip("/")), exist_ok=True)
        fs.mv(source_path, target_path, recursive=True)
        return
    root = source_path.rstrip("/")
    if fs.isfile(root):
        fs.copy(root, target_path)
    else:
        files = [posixpath.relpath(found, root) for found in fs.find(root)]
        for name in _ordered(files):
            fs.copy(posixpath.join(root, name), posixpath.join(target_path.rstrip("/"), name))
    fs.rm(root, recursive=True)


def create_exclusive(url: str, data: bytes) -> bool:
    """Writes a small object only if none is there; False when one is. Atomic on S3 (a
    conditional PUT, If-None-Match); other stores check first, which two writers can both pass
    (docs/score.md says which guarantees hold where). Local disks lock with flock instead."""
    fs, path = open_url(url)
    if scheme(url) in ("s3", "s3a"):
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return True
    if fs.exists(path):
        return False
    fs.pipe_file(path, data)
    return True


def read_versioned(url: str) -> tuple[bytes, str] | None:
    """A small object's bytes and its version (the ETag), or None when it is gone. s3fs reads the
    bytes at the version it found, and fails when another writer changed the object between the
    two calls: then both are read again."""
    fs, path = open_url(url)
    for _ in range(20):
        fs.invalidate_cache(path)
        try:
            version = fs.info(path).get("ETag") or ""
            return fs.cat_file(path), version
        except FileNotFoundError:
            return None
        except OSError as error:
            if not _changed_meanwhile(error):
                raise
    raise DermsparkError(f"{url} kept changing while it was read")


def _changed_meanwhile(error: OSError) -> bool:
    words = str(error).lower()
    return "pre-condition" in words or "precondition" in words or "no longer exists" in words


def replace_if(url: str, data: bytes, version: str) -> bool:
    """Overwrites an object only if it is still at `version` (If-Match on S3); False when
    another writer changed or removed it first."""
    fs, path = open_url(url)
    try:
        fs.pipe_file(path, data, IfMatch=version)
    except FileNotFoundError:
        return False
    except OSError as error:
        if _changed_meanwhile(error):
            return False
        raise
    return True


def staging_url(final_url: str) -> str:
    """A hidden sibling of the final folder, so the commit stays within one store."""
    parent, _, name = final_url.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
