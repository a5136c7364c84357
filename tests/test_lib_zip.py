"""The code zip spark-submit.sh ships: named by content, so a running job's zip is never replaced."""

import os
import subprocess
import sys
import time
import zipfile

from conftest import ROOT


def make_zip(lib, build) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "lib_zip.py"), str(lib), str(build)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_changed_code_gets_a_new_zip_and_the_running_one_stays(tmp_path):
    lib, build = tmp_path / "lib", tmp_path / "build"
    (lib / "dermspark" / "__pycache__").mkdir(parents=True)
    (lib / "dermspark" / "__init__.py").write_text("")
    (lib / "dermspark" / "worker.py").write_text("VERSION = 1\n")
    (lib / "dermspark" / "__pycache__" / "worker.cpython-311.pyc").write_bytes(b"stale")
    first = make_zip(lib, build)
    assert make_zip(lib, build) == first  # the same code: the same zip, not rewritten
    with zipfile.ZipFile(first) as archive:
        assert sorted(archive.namelist()) == ["dermspark/__init__.py", "dermspark/worker.py"]

    (lib / "dermspark" / "worker.py").write_text("VERSION = 2\n")
    second = make_zip(lib, build)
    assert second != first
    # A job started before the change still imports version 1 from its own zip.
    with zipfile.ZipFile(first) as archive:
        assert archive.read("dermspark/worker.py") == b"VERSION = 1\n"
    with zipfile.ZipFile(second) as archive:
        assert archive.read("dermspark/worker.py") == b"VERSION = 2\n"


def test_zips_unused_for_a_week_are_removed(tmp_path):
    lib, build = tmp_path / "lib", tmp_path / "build"
    (lib / "dermspark").mkdir(parents=True)
    (lib / "dermspark" / "__init__.py").write_text("")
    build.mkdir()
    old, recent = build / "dermspark-lib-0000000000000000.zip", build / "dermspark-lib-1111111111111111.zip"
    for path, age_days in ((old, 8), (recent, 6)):
        path.write_bytes(b"")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    current = make_zip(lib, build)
    assert sorted(path.name for path in build.iterdir()) == sorted([os.path.basename(current), recent.name])
