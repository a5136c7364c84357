"""Spark's Python workers, made cheap to reuse for dermspark's tasks.

Spark runs many tasks in one Python worker, and around each it does two things whose cost grows
with what the worker holds:
- before a task, `importlib.invalidate_caches()`: on Python 3.11 each zip archive on the worker's
  path is read again, and PySpark puts pyspark.zip (2.4 MB) and spark-core's jar (15 MB) there:
  some 70 ms a task, 99% of a trivial task's time (py-spy on a worker);
- after it, a full `gc.collect()` over every object the worker's imports made: 45 ms with
  ingest's (pandas, pyarrow, Petastorm, Pillow), 140 ms once TensorFlow is imported.
At 2,000 images a task those are 3-10% of the work. Measured in docs/benchmarks.md.
"""

import gc
import sys
import zipimport


class _SteadyArchive(zipimport.zipimporter):
    """A zip archive's importer that keeps the table of contents it read: the archives on a
    worker's path are Spark's own, and none changes while the worker runs."""

    def invalidate_caches(self):
        pass


def steady_worker() -> None:
    """Call at the start of a task, after its imports (and after loading what the worker keeps,
    such as a model). The zip archives already on the path keep their tables of contents, and the
    objects alive now are left out of the collections Spark runs after each task: modules and
    kept models are never garbage. Objects the task makes are still collected."""
    for path, finder in list(sys.path_importer_cache.items()):
        if type(finder) is zipimport.zipimporter:
            sys.path_importer_cache[path] = _SteadyArchive(path)
    gc.freeze()
