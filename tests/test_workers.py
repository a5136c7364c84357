"""A Spark Python worker kept across tasks: its zip archives read once, its imports out of gc."""

import gc
import importlib
import sys
import zipfile
import zipimport

from dermspark.workers import steady_worker


def test_a_kept_worker_reads_its_zip_archives_once_and_still_imports_from_them(tmp_path, monkeypatch):
    # A zip archive on the path, as pyspark.zip and spark-core's jar are on a Spark worker's.
    archive = tmp_path / "modules.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("dermspark_zipped_first.py", "VALUE = 1\n")
        bundle.writestr("dermspark_zipped_second.py", "VALUE = 2\n")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.delitem(sys.modules, "dermspark_zipped_first", raising=False)
    monkeypatch.delitem(sys.modules, "dermspark_zipped_second", raising=False)
    importlib.import_module("dermspark_zipped_first")
    importer = sys.path_importer_cache[str(archive)]
    assert type(importer) is zipimport.zipimporter
    contents = importer._files
    importlib.invalidate_caches()  # what Spark's worker does before every task
    assert importer._files is not contents, "Python 3.11 reads the archive again: the cost this avoids"
    try:
        steady_worker()
        steady = sys.path_importer_cache[str(archive)]
        contents = steady._files
        importlib.invalidate_caches()
        assert steady._files is contents
        assert importlib.import_module("dermspark_zipped_second").VALUE == 2
        assert gc.get_freeze_count() > 0
        steady_worker()  # the next task: nothing more to replace
        assert sys.path_importer_cache[str(archive)] is steady
    finally:
        gc.unfreeze()
