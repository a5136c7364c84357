"""S3 credentials are given one way, the AWS_* variables, and reach Spark's S3A and every
executor from there; given only to S3A they are refused."""

import pytest
from dermspark import DermsparkError
from dermspark.session import check_s3_conf, s3_conf, show_progress

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "HOME": "/root",
}


def test_the_aws_variables_reach_executors_and_s3a():
    conf = s3_conf(ENV)
    assert conf["spark.executorEnv.AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert conf["spark.executorEnv.AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert "spark.executorEnv.HOME" not in conf
    assert conf["spark.hadoop.fs.s3a.access.key"] == "AKIDEXAMPLE"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "s3cr3t"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert "spark.hadoop.fs.s3a.session.token" not in conf


def test_a_session_token_selects_temporary_credentials():
    conf = s3_conf({**ENV, "AWS_SESSION_TOKEN": "t"})
    assert conf["spark.hadoop.fs.s3a.session.token"] == "t"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith("TemporaryAWSCredentialsProvider")


def test_no_variables_leave_both_sides_to_their_default_chains():
    assert s3_conf({"HOME": "/root"}) == {}


def test_secrets_are_names_spark_redacts():
    """Spark's default spark.redaction.regex, (?i)secret|password|token|access[.]key, hides the
    values of these keys in its UI, event logs and errors."""
    import re

    redacted = re.compile(r"(?i)secret|password|token|access[.]key")
    conf = s3_conf({**ENV, "AWS_SESSION_TOKEN": "t"})
    holding = [key for key, value in conf.items() if value in ("s3cr3t", "t")]
    # The secret and the token, each for the executors and for S3A.
    assert len(holding) == 4, holding
    for key in holding:
        assert redacted.search(key), key


def test_credentials_given_only_to_s3a_are_one_clear_error():
    given = {"spark.hadoop.fs.s3a.access.key": "AKIDEXAMPLE", "spark.hadoop.fs.s3a.secret.key": "s3cr3t"}
    with pytest.raises(DermsparkError, match="AWS_ACCESS_KEY_ID is not") as raised:
        check_s3_conf(given, {})
    assert "s3cr3t" not in str(raised.value)
    check_s3_conf(given, ENV)  # the same values both ways: fine
    check_s3_conf({}, {})


def test_the_progress_bar_is_for_a_terminal_and_never_for_ci():
    assert show_progress({}, interactive=True)
    assert not show_progress({}, interactive=False)
    assert not show_progress({"CI": "true"}, interactive=True)
