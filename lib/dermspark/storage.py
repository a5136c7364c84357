"""Paths Spark reaches (local, file://, hdfs://, s3a://) and atomic commits of output folders.

Driver-side file operations go through Spark's own Hadoop FileSystem, so they see exactly the
paths, credentials and connectors the Spark job sees; Python code on executors (checkpoints,
ingest's dataset parts) goes through fsspec, as Petastorm's readers do.
"""

import contextlib
import os
import uuid
from urllib.parse import urlparse

from dermspark import DermsparkError


def to_url(path: str) -> str:
    """A bare local path becomes an absolute file:// URL; a URL is returned as it is."""
    if urlparse(path).scheme:
        return path.rstrip("/")
    return "file://" + os.path.abspath(os.path.expanduser(path))


def local_path(url: str) -> str | None:
    """The local file-system path of a file:// URL (or bare path), None for remote stores."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme else os.path.abspath(url)
    return None


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def fsspec_url(url: str) -> str:
    """Hadoop spells S3 s3a://; fsspec (s3fs) spells it s3://."""
    return "s3://" + url[len("s3a://"):] if url.startswith("s3a://") else url


def open_url(url: str):
    """(fsspec file system, path) for a URL, as Python code on executors reaches it: the way
    Petastorm's readers reach the same datasets, unlike the driver's HadoopFS below."""
    import fsspec

    return fsspec.core.url_to_fs(fsspec_url(url))


class HadoopFS:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem for one SparkSession."""

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, url: str):
        return self._jvm.org.apache.hadoop.fs.Path(url)

    def _fs(self, url: str):
        return self._path(url).getFileSystem(self._conf)

    def exists(self, url: str) -> bool:
        return self._fs(url).exists(self._path(url))

    def is_dir(self, url: str) -> bool:
        return self.exists(url) and self._fs(url).getFileStatus(self._path(url)).isDirectory()

    def glob(self, url: str, pattern: str) -> list[str]:
        """Names of a folder's entries that match a glob. Asked of the file system, so a folder
        of 10,000 images does not cross py4j one name at a time (3 s) to find a few."""
        statuses = self._fs(url).globStatus(self._path(join(url, pattern))) or []
        return [status.getPath().getName() for status in statuses]

    def delete(self, url: str) -> None:
        self._fs(url).delete(self._path(url), True)

    def mkdirs(self, url: str) -> None:
        self._fs(url).mkdirs(self._path(url))

    def rename(self, source: str, target: str) -> None:
        if not self._fs(source).rename(self._path(source), self._path(target)):
            raise OSError(f"could not move {source} to {target}")

    def copy_from_local(self, local: str, url: str) -> None:
        self._fs(url).copyFromLocalFile(False, True, self._path("file://" + local), self._path(url))

    def write_text(self, url: str, text: str) -> None:
        stream = self._fs(url).create(self._path(url), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, url: str) -> str:
        stream = self._fs(url).open(self._path(url))
        try:
            # py4j copies Java arrays into Python, so read the text on the Java side.
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()


def staging_url(final_url: str) -> str:
    """A sibling of the final folder, so the commit is a rename within one file system."""
    parent, _, name = final_url.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"


def prepare_output(fs: HadoopFS, url: str, mode: str) -> None:
    """Checked before any work, so a job that would not be allowed to commit fails at once."""
    if mode not in ("error", "overwrite"):
        raise DermsparkError(f"--mode must be 'error' or 'overwrite', got {mode!r}")
    if mode == "error" and fs.exists(url):
        raise DermsparkError(f"output {url} already exists; pass --mode overwrite to replace it")


@contextlib.contextmanager
def staged_output(fs: HadoopFS, final_url: str):
    """Yields a hidden sibling folder to write into. When the block finishes, the folder replaces
    final_url; when it fails, it is removed. A killed job leaves only a hidden .tmp folder."""
    staging = staging_url(final_url)
    try:
        yield staging
    except BaseException:
        if fs.exists(staging):
            fs.delete(staging)
        raise
    if fs.exists(final_url):
        fs.delete(final_url)
    fs.rename(staging, final_url)
