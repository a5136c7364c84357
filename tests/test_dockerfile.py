"""The Dockerfile, checked without a container runtime: the image's environment can only be the
lock's, built by the same bootstrap (so the same Horovod build flags), on Python 3.11 and Java 17."""

import re
import shlex

from conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
BOOTSTRAP = (ROOT / "scripts" / "bootstrap.sh").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    )
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def test_the_image_is_python_311_with_java_17_and_no_compiler():
    stages = [args for name, args in instructions() if name == "FROM"]
    assert stages and all(re.match(r"python:3\.11[.-]", stage) for stage in stages), stages
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "openjdk-17-jre-headless" in final
    assert not re.search(r"\b(g\+\+|gcc|build-essential|clang)\b", final), "the image itself needs no compiler"


def test_every_package_comes_from_the_bootstrap_and_so_from_the_lock():
    runs = " && ".join(args for name, args in instructions() if name == "RUN")
    commands = [shlex.split(command) for command in re.split(r"&&|;", runs)]
    assert ["scripts/bootstrap.sh"] in commands, "the image's environment is made by scripts/bootstrap.sh"
    assert not [command for command in commands if "pip" in " ".join(command)], "no pip install besides the bootstrap's"
    assert not re.search(r"^\s*(ENV|ARG)\b.*HOROVOD_", DOCKERFILE, re.MULTILINE), "no Horovod flag of its own"
    copied = [args for name, args in instructions() if name == "COPY"]
    bootstrap_at = DOCKERFILE.index("scripts/bootstrap.sh \\")
    for needed in ("pyproject.toml", "constraints.txt", "scripts", "lib"):
        assert any(needed in args.split() and DOCKERFILE.index(args) < bootstrap_at for args in copied), needed
    # The bootstrap itself installs nothing outside the lock: every pip install is constrained
    # by constraints.txt, but Horovod's own wheel, built from the pinned source with its flags.
    installs = [
        line
        for line in BOOTSTRAP.splitlines()
        if re.search(r"pip\S*\s+install", line) and not line.lstrip().startswith("#") and "quiet_pip()" not in line
    ]
    assert installs
    for line in installs:
        assert '-c "$root/constraints.txt"' in line or "horovod-*.whl" in line, line
    assert "horovod==$horovod_version" in BOOTSTRAP and 'horovod_version="0.28.1"' in BOOTSTRAP
    flags = set(re.findall(r"HOROVOD_\w+=1", BOOTSTRAP))
    assert flags == {
        "HOROVOD_WITH_TENSORFLOW=1",
        "HOROVOD_WITH_GLOO=1",
        "HOROVOD_WITHOUT_MPI=1",
        "HOROVOD_WITHOUT_PYTORCH=1",
        "HOROVOD_WITHOUT_MXNET=1",
    }


def test_executor_pods_start_the_kubernetes_backend_and_jobs_ship_nothing():
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in entrypoint
    for variable in (
        "SPARK_DRIVER_URL",
        "SPARK_EXECUTOR_ID",
        "SPARK_EXECUTOR_CORES",
        "SPARK_APPLICATION_ID",
        "SPARK_EXECUTOR_POD_IP",
        "SPARK_EXECUTOR_POD_NAME",
        "SPARK_EXECUTOR_MEMORY",
    ):
        assert f"${variable}" in entrypoint or f"${{{variable}" in entrypoint, variable
    jars = ROOT / ".venv" / "lib" / "python3.11" / "site-packages" / "pyspark" / "jars"
    assert list(jars.glob("spark-kubernetes_*.jar")), "the backend's class is in pyspark's own jars"
    env = " ".join(args for name, args in instructions() if name == "ENV")
    assert "DERMSPARK_PACK_ENV=no" in env and "PYSPARK_PYTHON=/opt/dermspark/.venv/bin/python" in env
    assert "/opt/entrypoint.sh" in dict(instructions())["ENTRYPOINT"]
