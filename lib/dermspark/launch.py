"""The launcher behind spark-submit.sh: a job's command line split into Spark's options and the
job's, the Spark profile, the environment executors run, the checks that need no JVM, and the
spark-submit command that runs jobs/JOB.py (or, for serve, the service with this Python).

spark-submit.sh checks that the environment is built and current, then runs `python -m
dermspark.launch ROOT JOB ...`. Everything a launch decides is in `plan()`, which starts nothing.
"""

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from dermspark import DermsparkError

JOBS = ("ingest", "train", "score", "monitor", "serve")
PACK_ENV = ("yes", "no", "auto")
USAGE = (
    "usage: spark-submit.sh {" + "|".join(JOBS) + "} [--master URL] [--conf KEY=VALUE]... [--profile NAME] "
    "[--pack-env yes|no|auto] [--env-archive URL | --env-dir DIR] [job options]\n"
    "       spark-submit.sh JOB --help   lists the options of one job"
)
# What every dermspark process runs with unless the caller set otherwise: the one place for these.
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # MLflow reports usage unless told not to; dermspark reaches no server but the one given.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # Petastorm 0.13 on pyarrow 14 warns on every call about APIs it cannot stop using.
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning,ignore::UnicodeWarning",
}
# Launcher options and the setting each stands for; everything else is the job's.
OPTIONS = {
    "--master": "master",
    "--conf": "conf",
    "--profile": "profile",
    "--pack-env": "pack_env",
    "--env-archive": "env_archive",
    "--env-dir": "env_dir",
}


class UsageError(DermsparkError):
    """A command line the launcher cannot read: the usage is printed with it."""


@dataclass(frozen=True)
class Launch:
    job: str
    master: str = ""
    profile: str = ""
    pack_env: str = "auto"  # yes: ship .venv packed; no: executors use this machine's path; auto: by master
    env_archive: str = ""  # an environment archive already on the cluster's storage
    env_dir: str = ""  # an environment already unpacked on every node
    conf: tuple[str, ...] = ()
    job_args: tuple[str, ...] = ()


def parse(argv: list[str], environ: Mapping[str, str]) -> Launch:
    """JOB and its arguments; DERMSPARK_PACK_ENV, _ENV_ARCHIVE and _ENV_DIR as defaults."""
    if not argv:
        raise UsageError("no job given")
    job, rest = argv[0], list(argv[1:])
    if job not in JOBS:
        raise UsageError(f"unknown job '{job}'")
    values = {
        "pack_env": environ.get("DERMSPARK_PACK_ENV") or "auto",
        "env_archive": environ.get("DERMSPARK_ENV_ARCHIVE", ""),
        "env_dir": environ.get("DERMSPARK_ENV_DIR", ""),
    }
    conf, job_args = [], []
    while rest:
        argument = rest.pop(0)
        option, equals, value = argument.partition("=")
        if option not in OPTIONS or job == "serve":
            job_args.append(argument)
            continue
        if not equals:
            if not rest:
                raise UsageError(f"{option} needs a value")
            value = rest.pop(0)
        if OPTIONS[option] == "conf":
            conf.append(value)
        else:
            values[OPTIONS[option]] = value
    return Launch(job, conf=tuple(conf), job_args=tuple(job_args), **values)


def profile_of(launch: Launch) -> str:
    """--profile, else by the master: standalone, yarn or k8s, else local."""
    if launch.profile:
        return launch.profile
    for prefix, name in (("spark://", "standalone"), ("yarn", "yarn"), ("k8s://", "k8s")):
        if launch.master.startswith(prefix):
            return name
    return "local"


@dataclass(frozen=True)
class Plan:
    """What a launch runs: its command line and the variables it sets."""

    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)


def plan(root: str, launch: Launch, environ: Mapping[str, str], pack_env_script=None) -> Plan:
    """The spark-submit command (or the service's) for a launch; raises DermsparkError for what
    would fail later. pack_env_script(*args) -> its output: scripts/pack_env.py's answer."""
    python = os.path.join(root, ".venv", "bin", "python")
    pack = pack_env_script or (lambda *args: _pack_env(root, *args))
    environment = {name: environ.get(name) or value for name, value in ENVIRONMENT.items()}
    if launch.job == "serve":
        return Plan([python, os.path.join(root, "jobs", "serve.py"), *launch.job_args], environment)
    profile = profile_of(launch)
    properties = os.path.join(root, "conf", "spark", f"{profile}.properties")
    if not os.path.isfile(properties):
        raise UsageError(f"no Spark profile {properties}")
    spark_args = [argument for value in launch.conf for argument in ("--conf", value)]
    if launch.master:
        spark_args += ["--master", launch.master]
    if launch.master.startswith("spark://"):
        _check_master(launch.master)
        spark_args += _local_cluster_ui(root, launch.master, environ)
    spark_args += _executor_environment(root, launch, pack)
    environment.update(PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python)
    if profile in ("local", "standalone"):
        environment["SPARK_LOCAL_IP"] = environ.get("SPARK_LOCAL_IP") or "127.0.0.1"
    # The driver's log settings only: a path on this machine means nothing to executors on other
    # nodes, and in local mode they are the driver.
    log4j = f"-Dlog4j2.configurationFile=file:{root}/conf/spark/log4j2.properties"
    command = [
        os.path.join(root, ".venv", "bin", "spark-submit"),
        "--properties-file",
        properties,
        "--driver-java-options",
        log4j,
        *spark_args,
        os.path.join(root, "jobs", f"{launch.job}.py"),
        *launch.job_args,
    ]
    return Plan(command, environment)


def _check_master(master: str) -> None:
    address = master.removeprefix("spark://").split(",")[0]  # the first of several (standby) masters
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError):
        raise DermsparkError(
            f"the Spark master {master} does not answer (nothing listens at {address}): start it "
            "(scripts/cluster.sh start for a local one) or fix --master"
        ) from None


def _local_cluster_ui(root: str, master: str, environ: Mapping[str, str]) -> list[str]:
    """The local cluster of scripts/cluster.sh: where its master's web UI is, for the job's checks."""
    state = os.path.join(environ.get("DERMSPARK_CLUSTER_DIR") or os.path.join(root, "build", "cluster"), "master")
    if not os.path.isfile(state):
        return []
    with open(state) as handle:
        lines = handle.read().splitlines()
    return ["--conf", f"spark.dermspark.masterWebUI={lines[1]}"] if len(lines) > 1 and lines[0] == master else []


def _executor_environment(root: str, launch: Launch, pack) -> list[str]:
    """What executors run: an environment already on every node (--env-dir), an archive on the
    cluster's storage (--env-archive), one packed here (--pack-env yes), or this machine's."""
    if launch.pack_env not in PACK_ENV:
        raise UsageError(f"--pack-env must be yes, no or auto, not '{launch.pack_env}'")
    pack_env = launch.pack_env
    if pack_env == "auto":
        pack_env = "no" if not launch.master or launch.master.startswith("local") else "yes"
    archive, folder = launch.env_archive, launch.env_dir.rstrip("/")
    if archive and folder:
        raise DermsparkError("give --env-archive or --env-dir, not both")
    if archive or folder:
        # Its name says which lock and which code it holds: executors running other code than
        # this driver would fail in ways far from the cause.
        _check_environment_name(archive, folder, pack("--name"))
    python = ""
    if folder:
        pack_env, python = "no", f"{folder}/bin/python"
    elif archive:
        pack_env = "yes"
    elif pack_env == "yes":
        archive = pack()
    arguments = []
    if pack_env == "yes":
        # Unpacked by Spark in each executor's folder; its Python, and so every Horovod rank,
        # imports dermspark from its own site-packages.
        arguments += ["--archives", f"{archive}#environment"]
        python = "./environment/bin/python"
    if python:
        arguments += [
            "--conf",
            f"spark.pyspark.python={python}",
            "--conf",
            f"spark.pyspark.driver.python={root}/.venv/bin/python",
        ]
    return arguments


def _check_environment_name(archive: str, folder: str, expected: str) -> None:
    if archive and archive.rsplit("/", 1)[-1] != expected:
        raise DermsparkError(
            f"--env-archive {archive} is not this checkout's environment ({expected}): put it there "
            f"with scripts/pack_env.py --upload {archive.rsplit('/', 1)[0]}/"
        )
    unpacked = expected.removesuffix(".tar.gz")
    if folder and folder.rsplit("/", 1)[-1] != unpacked:
        raise DermsparkError(
            f"--env-dir {folder} is not this checkout's environment ({unpacked}): unpack it there "
            f"with scripts/pack_env.py --unpack {folder.rsplit('/', 1)[0]}/"
        )


def _pack_env(root: str, *args: str) -> str:
    done = subprocess.run(
        [os.path.join(root, ".venv", "bin", "python"), os.path.join(root, "scripts", "pack_env.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise DermsparkError(f"scripts/pack_env.py {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def environment_lines(environ: Mapping[str, str]) -> str:
    """`export NAME=VALUE` lines of the defaults (a value already set wins), for a shell to
    eval: how scripts/test.sh takes them from here rather than repeating them."""
    import shlex

    values = {
        **{name: environ.get(name) or value for name, value in ENVIRONMENT.items()},
        "SPARK_LOCAL_IP": environ.get("SPARK_LOCAL_IP") or "127.0.0.1",
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def main(argv: list[str] | None = None) -> None:
    """python -m dermspark.launch ROOT JOB [arguments]: runs the job in this process's place.
    python -m dermspark.launch --environment: the defaults as shell exports."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--environment"]:
        print(environment_lines(os.environ))
        return
    root, *rest = argv
    job = rest[0] if rest else "dermspark"
    try:
        launch = parse(rest, os.environ)
        planned = plan(root, launch, os.environ)
    except UsageError as error:
        print(f"{error}\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    except DermsparkError as error:
        print(f"[dermspark] {job} failed: {error}", file=sys.stderr)
        sys.exit(2)
    sys.stdout.flush()
    os.execve(planned.command[0], planned.command, {**os.environ, **planned.environment})


if __name__ == "__main__":
    main()
