"""The launcher's decisions, without starting anything: what spark-submit.sh runs for a command
line (tests/test_submit.py runs it for real)."""

import socket

import pytest
from conftest import ROOT
from dermspark import DermsparkError
from dermspark.launch import (
    ENVIRONMENT,
    Launch,
    UsageError,
    environment_lines,
    parse,
    plan,
    profile_of,
)

EXPECTED = "dermspark-env-abc.tar.gz"  # what scripts/pack_env.py --name would say


def _pack(*args):
    return EXPECTED if args == ("--name",) else "/tmp/packed/" + EXPECTED


def _plan(argv, environ=None):
    return plan(str(ROOT), parse(argv, environ or {}), environ or {}, _pack)


def test_launcher_options_are_split_from_the_jobs_in_either_form():
    launch = parse(
        [
            "train",
            "--master=local[2]",
            "--conf",
            "a=1",
            "--epochs",
            "3",
            "--conf=b=2",
            "--profile",
            "standalone",
            "--dataset",
            "d",
        ],
        {},
    )
    assert launch == Launch(
        "train",
        master="local[2]",
        profile="standalone",
        conf=("a=1", "b=2"),
        job_args=("--epochs", "3", "--dataset", "d"),
    )
    # The service runs no Spark job: every argument is its own.
    assert parse(["serve", "--master", "x"], {}).job_args == ("--master", "x")
    assert parse(["score"], {"DERMSPARK_ENV_DIR": "/envs/e", "DERMSPARK_PACK_ENV": "yes"}).env_dir == "/envs/e"


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "no job given"), (["fit"], "unknown job 'fit'"), (["train", "--master"], "--master needs a value")],
)
def test_a_command_line_it_cannot_read_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match=message):
        parse(argv, {})


@pytest.mark.parametrize(
    ("master", "profile"),
    [
        ("", "local"),
        ("local[4]", "local"),
        ("spark://h:7077", "standalone"),
        ("yarn", "yarn"),
        ("k8s://https://h:6443", "k8s"),
    ],
)
def test_the_spark_profile_follows_the_master(master, profile):
    assert profile_of(Launch("train", master=master)) == profile
    assert profile_of(Launch("train", master=master, profile="mine")) == "mine"


def test_a_local_job_runs_on_this_machines_environment_with_the_defaults():
    planned = _plan(["ingest", "--input", "i"])
    assert planned.command[0] == str(ROOT / ".venv" / "bin" / "spark-submit")
    assert planned.command[1:3] == ["--properties-file", str(ROOT / "conf" / "spark" / "local.properties")]
    assert planned.command[-3:] == [str(ROOT / "jobs" / "ingest.py"), "--input", "i"]
    assert "--archives" not in planned.command and "--master" not in planned.command
    assert planned.environment["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert {name: planned.environment[name] for name in ENVIRONMENT} == ENVIRONMENT
    # A value the caller set wins over the default.
    assert _plan(["ingest"], {"TF_CPP_MIN_LOG_LEVEL": "0"}).environment["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_the_service_runs_with_this_python():
    planned = _plan(["serve", "--model", "m"])
    assert planned.command == [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "jobs" / "serve.py"), "--model", "m"]


def test_a_cluster_gets_the_environment_packed_or_named():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        master = f"spark://127.0.0.1:{listening.getsockname()[1]}"
        packed = _plan(["train", "--master", master])
        assert packed.command[packed.command.index("--archives") + 1] == f"/tmp/packed/{EXPECTED}#environment"
        assert "spark.pyspark.python=./environment/bin/python" in packed.command
        unpacked = _plan(["train", "--master", master, "--env-dir", "/mnt/envs/dermspark-env-abc/"])
        assert "spark.pyspark.python=/mnt/envs/dermspark-env-abc/bin/python" in unpacked.command
        assert "--archives" not in unpacked.command
        stored = _plan(["train", "--master", master, "--env-archive", f"http://store/{EXPECTED}"])
        assert f"http://store/{EXPECTED}#environment" in stored.command
        assert "SPARK_LOCAL_IP" in packed.environment  # standalone


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--env-archive", "s3://b/other.tar.gz"], "is not this checkout's environment"),
        (["train", "--env-dir", "/envs/other"], "is not this checkout's environment"),
        (["train", "--env-dir", "/e/dermspark-env-abc", "--env-archive", f"s3://b/{EXPECTED}"], "not both"),
        (["train", "--pack-env", "maybe"], "--pack-env must be yes, no or auto"),
        (["train", "--profile", "nowhere"], "no Spark profile"),
    ],
)
def test_what_would_fail_later_fails_here(argv, message):
    with pytest.raises(DermsparkError, match=message):
        _plan(argv)


def test_a_master_that_does_not_answer_is_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DermsparkError, match=f"nothing listens at 127.0.0.1:{port}"):
        _plan(["score", "--master", f"spark://127.0.0.1:{port}"])


def test_the_test_command_takes_its_defaults_from_the_launcher():
    lines = environment_lines({"PYTHONWARNINGS": "error"}).splitlines()
    assert "export PYTHONWARNINGS=error" in lines and "export TF_CPP_MIN_LOG_LEVEL=2" in lines
    assert "export SPARK_LOCAL_IP=127.0.0.1" in lines
