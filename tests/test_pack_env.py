"""What spark-submit.sh gives a job's processes: dermspark installed from the checkout's wheel,
named by the code, and for executors an environment archive with it inside."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACK = [sys.executable, str(ROOT / "scripts" / "pack_env.py")]


def pack(*args: str) -> str:
    return subprocess.run([*PACK, *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_installed_copy_is_this_code_and_is_made_once(tmp_path):
    build = str(tmp_path / "build")
    folder = pack("--installed", "--build", build)
    assert os.path.dirname(folder) == os.path.join(build, "code")
    for name in ("train/state.py", "serve/page.html"):  # modules and package data
        with open(os.path.join(folder, "dermspark", name), "rb") as copy:
            assert copy.read() == (ROOT / "lib" / "dermspark" / name).read_bytes()
    assert any(name.startswith("dermspark-") and name.endswith(".dist-info") for name in os.listdir(folder))
    stamp = os.path.getmtime(os.path.join(folder, "dermspark", "__init__.py"))
    assert pack("--installed", "--build", build) == folder
    assert os.path.getmtime(os.path.join(folder, "dermspark", "__init__.py")) == stamp  # not reinstalled


def test_the_archive_unpacks_as_spark_does_into_an_environment_with_dermspark_installed(tmp_path):
    site = "lib/python3.11/site-packages"
    venv = tmp_path / "venv"
    for path in (
        f"{site}/numpy/__init__.py",
        f"{site}/pyspark/__init__.py",
        f"{site}/pyspark/jars/spark-core.jar",
        f"{site}/__editable__.dermspark-0.1.0.pth",
        "pyvenv.cfg",
        f"{site}/mlflow/tracking/client.py",
        f"{site}/mlflow/server/handlers.py",
        f"{site}/mlflow/server/js/build/index.html",
        f"{site}/sqlalchemy/__init__.py",
    ):
        (venv / path).parent.mkdir(parents=True, exist_ok=True)
        (venv / path).write_text(path)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".bootstrap-stamp").write_text("lock1\n")
    args = ("--venv", str(venv), "--cache", str(tmp_path / "cache"), "--build", str(tmp_path / "build"))
    archive = pack(*args)
    assert pack(*args) == archive
    unpacked = tmp_path / "environment"
    unpacked.mkdir()
    # Hadoop's FileUtil.unTar, which Spark calls for a .tar.gz: gzip -dc, then tar -xf.
    subprocess.run(f"gzip -dc '{archive}' | tar -xf -", shell=True, cwd=unpacked, check=True)
    assert (unpacked / site / "numpy" / "__init__.py").is_file()
    assert (unpacked / "bin" / "python").is_symlink() and (unpacked / "pyvenv.cfg").is_file()
    assert not (unpacked / site / "pyspark" / "jars").exists()
    assert not (unpacked / site / "__editable__.dermspark-0.1.0.pth").exists()
    # MLflow's client stays for the executors; its UI and database layer do not.
    assert (unpacked / site / "mlflow" / "tracking" / "client.py").is_file()
    assert not (unpacked / site / "mlflow" / "server" / "js").exists()
    assert not (unpacked / site / "sqlalchemy").exists()
    installed = unpacked / site / "dermspark" / "train" / "state.py"
    assert installed.read_bytes() == (ROOT / "lib" / "dermspark" / "train" / "state.py").read_bytes()
    # The environment is packed once per lock; the archive's name says which code it holds.
    bases = list((tmp_path / "cache" / "envs").glob("dermspark-base-lock1-*.gz"))
    assert len(bases) == 1
    assert os.path.basename(archive).endswith(
        f"-{os.path.basename(pack('--installed', '--build', str(tmp_path / 'build')))}.tar.gz"
    )


def test_an_environment_unpacked_once_on_a_shared_mount_is_named_by_its_archive(tmp_path):
    """--unpack: the archive unpacked whole into MOUNT/NAME (the archive's name less .tar.gz), the
    name spark-submit.sh's --env-dir checks; a second call finds it and unpacks nothing."""
    site = "lib/python3.11/site-packages"
    venv = tmp_path / "venv"
    (venv / site / "numpy").mkdir(parents=True)
    (venv / site / "numpy" / "__init__.py").write_text("numpy")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".bootstrap-stamp").write_text("lock2\n")
    args = ("--venv", str(venv), "--cache", str(tmp_path / "cache"), "--build", str(tmp_path / "build"))
    mount = tmp_path / "mount" / "envs"
    folder = pack("--unpack", str(mount), *args)
    assert folder == str(mount / os.path.basename(pack(*args))[: -len(".tar.gz")])
    assert (Path(folder) / site / "numpy" / "__init__.py").read_text() == "numpy"
    assert (Path(folder) / site / "dermspark" / "__init__.py").is_file()
    assert os.readlink(Path(folder) / "bin" / "python") == sys.executable
    assert [path.name for path in mount.iterdir()] == [Path(folder).name]  # no staging left behind
    (Path(folder) / "marker").write_text("kept")
    assert pack("--unpack", str(mount), *args) == folder and (Path(folder) / "marker").is_file()
