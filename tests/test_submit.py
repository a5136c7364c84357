"""spark-submit.sh is a light submit: it runs jobs on a built environment and builds nothing,
so a gateway machine without a compiler submits, and a missing or stale environment is one line."""

import os
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT, path_without_compiler


def test_every_job_of_the_pipeline_submitted_without_a_compiler(pipeline):
    """The pipeline fixture's ingest, train and score ran with this PATH, and succeeded."""
    bare = (pipeline / "submit-path.txt").read_text()
    assert shutil.which("java", path=bare) and shutil.which("bash", path=bare)
    for compiler in ("c++", "g++", "gcc", "cc"):
        assert shutil.which(compiler, path=bare) is None, compiler
    assert "ingest done" in (pipeline / "ingest.out").read_text()
    assert (pipeline / "model" / "model" / "manifest.json").exists()
    assert "score done" in (pipeline / "score.out").read_text()


def _checkout(folder: Path, stamp_source: str) -> Path:
    """A copy of the files the submit reads, beside a link to the real environment."""
    (folder / "scripts").mkdir(parents=True)
    for name in (
        "spark-submit.sh",
        "pyproject.toml",
        "constraints.txt",
        "scripts/env_stamp.sh",
        "scripts/bootstrap.sh",
    ):
        shutil.copy2(ROOT / name, folder / name)
    with open(folder / "constraints.txt", "a") as handle:
        handle.write(stamp_source)
    return folder


def _submit(root: Path, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(root / "spark-submit.sh"), "ingest", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": path},
    )


def test_a_missing_or_stale_environment_is_one_line_and_nothing_is_built(tmp_path):
    bare = path_without_compiler(tmp_path / "bin")
    missing = _submit(_checkout(tmp_path / "missing", ""), bare)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        f"[dermspark] ingest failed: no environment at {tmp_path}/missing/.venv: build it once with "
        "scripts/bootstrap.sh"
    ]
    # A lock that moved since the environment was built: the stamp no longer matches.
    stale = _checkout(tmp_path / "stale", "# a pin added after the build\n")
    (stale / ".venv").symlink_to(ROOT / ".venv")
    result = _submit(stale, bare)
    assert result.returncode == 2 and "[bootstrap]" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"[dermspark] ingest failed: the environment at {stale}/.venv is not current with pyproject.toml and "
        "constraints.txt: rerun scripts/bootstrap.sh"
    ]


def test_an_environment_archive_of_other_code_is_refused_in_one_line():
    """--env-archive names what it holds (the lock, pack_env.py and the code): one of another
    checkout would have executors run other code than the driver."""
    stale = "hdfs:///apps/dermspark/dermspark-env-0123456789abcdef-00000000-0000000000000000.tar.gz"
    result = subprocess.run(
        [str(ROOT / "spark-submit.sh"), "ingest", "--env-archive", stale, "--input", "x", "--output", "y"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expected = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "pack_env.py"), "--name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"[dermspark] ingest failed: --env-archive {stale} is not this checkout's environment ({expected}): "
        "put it there with scripts/pack_env.py --upload hdfs:///apps/dermspark/"
    )


def test_an_unpacked_environment_of_other_code_is_refused_in_one_line():
    """--env-dir is named as the archive it was unpacked from, and is checked the same way."""
    stale = "/mnt/shared/envs/dermspark-env-0123456789abcdef-00000000-0000000000000000"
    expected = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "pack_env.py"), "--name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()

    def submit(*args):
        return subprocess.run(
            [str(ROOT / "spark-submit.sh"), "ingest", *args, "--input", "x", "--output", "y"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    result = submit("--env-dir", stale + "/")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"[dermspark] ingest failed: --env-dir {stale} is not this checkout's environment "
        f"({expected.removesuffix('.tar.gz')}): unpack it there with scripts/pack_env.py --unpack /mnt/shared/envs/"
    )
    both = submit("--env-dir", stale, "--env-archive", f"/mnt/shared/{expected}")
    assert both.returncode == 2
    assert (
        both.stderr.strip().splitlines()[-1] == "[dermspark] ingest failed: give --env-archive or --env-dir, not both"
    )
