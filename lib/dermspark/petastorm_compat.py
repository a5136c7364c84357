"""Fixes for Petastorm 0.13.1, its last release, on the pyarrow it has to run with here.

1. A race that ends finite reads early. ThreadPool.get_results decides the read is over when
every worker is idle with nothing queued and, checked afterwards, the ventilator has completed.
If the ventilator thread hands out the remaining row groups between those two checks, the reader
stops early: with no rows at all when it happens at the start, silently short when it happens
later (uber/petastorm#71 describes the same ambiguity). Endless readers (num_epochs=None) never
complete, so only finite reads, such as evaluation on the test split, are exposed. Reading
completion first closes the gap: if ventilation was over before the workers were all seen idle,
the read really is over.

2. Datasets on object stores. Petastorm passes fsspec file systems (s3fs) to pyarrow 14's
ParquetDataset together with options only pyarrow's legacy implementation takes
(validate_schema), and fails; a file system of pyarrow's legacy kind selects that
implementation. `filesystem(url)` gives one for any fsspec store, and None where Petastorm's
own choice works (local disks, HDFS).

3. Every reader's exit prints "Cache cleanup complete." to stdout, once per split read, whether
or not it had a cache; jobs' output is for the user. The replacement cleans the same cache
without printing.
"""

import warnings

from petastorm.local_disk_cache import LocalDiskCache
from petastorm.reader import Reader
from petastorm.workers_pool.thread_pool import ThreadPool

_original_all_workers_done = ThreadPool.all_workers_done


def _all_workers_done(self) -> bool:
    ventilation_over = self._ventilator is None or self._ventilator.completed()
    return ventilation_over and _original_all_workers_done(self)


def _cleanup_cache(self) -> None:
    if isinstance(self.cache, LocalDiskCache):
        self.cache.cleanup()


def apply() -> None:
    """Idempotent; call before creating readers in any process that reads."""
    ThreadPool.all_workers_done = _all_workers_done
    Reader.cleanup_cache = _cleanup_cache


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from pyarrow.filesystem import DaskFileSystem


class _FsspecFileSystem(DaskFileSystem):
    """pyarrow's legacy wrapper of an fsspec file system, with the two queries it leaves out."""

    def isdir(self, path) -> bool:
        return self.fs.isdir(str(path))

    def isfile(self, path) -> bool:
        return self.fs.isfile(str(path))


def filesystem(url: str):
    """For make_reader(filesystem=...), get_schema_from_dataset_url and ParquetDataset."""
    from dermspark import storage

    if _petastorm_reaches(url):
        return None
    fs, _ = storage.open_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _FsspecFileSystem(fs)


def _petastorm_reaches(url: str) -> bool:
    from dermspark import storage

    return storage.scheme(url) in ("file", "hdfs")
