"""Scoring runs that overlap on one output: each content keeps one row per model version.
Runs in threads of one Spark session are released together by a barrier or staggered; two
spark-submit processes are started at once."""

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from dermspark import DermsparkError
from dermspark.results import ScoreResult
from dermspark.score.job import run_score
from dermspark.settings.score import ScoreSettings

IMAGES = 200


@pytest.fixture(scope="module")
def two_hundred(real_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two-hundred")
    for path in sorted((real_data / "ham10000-200x150" / "images").glob("*.jpg"))[:IMAGES]:
        shutil.copy(path, folder / path.name)
    return folder


def _together(runs: list[dict], delays: list[float]) -> list:
    """run_score for each settings dict, in threads released at once, each after its delay;
    each run's result or the error it raised."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    barrier, results = threading.Barrier(len(runs)), [None] * len(runs)

    def run(index: int) -> None:
        barrier.wait()
        time.sleep(delays[index])
        try:
            results[index] = run_score(spark, ScoreSettings(**runs[index]))
        except DermsparkError as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _rows(spark, output: Path):
    return spark.read.parquet(str(output / "predictions"))


@pytest.mark.parametrize("delays", [[0, 0], [0, 0.5], [0, 3.0]], ids=["at-once", "half-second", "three-seconds"])
def test_two_incremental_runs_at_once_leave_one_row_a_file(spark, pipeline, two_hundred, tmp_path, delays):
    output = tmp_path / "out"
    settings = {
        "model": str(pipeline / "model" / "model"),
        "input": str(two_hundred),
        "output": str(output),
        "incremental": True,
    }
    results = _together([settings, settings], delays)
    assert all(isinstance(result, ScoreResult) for result in results), results
    rows = _rows(spark, output)
    assert rows.count() == IMAGES and rows.select("sha256").distinct().count() == IMAGES
    for result in results:
        assert result.inputs == IMAGES == result.scored + result.errors + result.skipped
        recorded = json.loads((output / "runs" / result.run_id / "summary.json").read_text())
        assert recorded["skipped"] == result.skipped
    # What each run committed is what its record says it scored.
    per_run = {row["run_id"]: row["count"] for row in rows.groupBy("run_id").count().collect()}
    assert {
        result.run_id: result.scored + result.errors for result in results if result.scored + result.errors
    } == per_run
    assert not list((output / "_staging").glob("*"))
    if delays == [0, 0]:
        # Both read an empty table at their start, so the later commit had to drop its rows.
        assert sorted(result.record["skipped_at_commit"] for result in results) == [0, IMAGES]


def test_of_two_first_runs_of_a_version_at_once_the_later_writes_nothing(spark, pipeline, two_hundred, tmp_path):
    output = tmp_path / "out"
    settings = {"model": str(pipeline / "model" / "model"), "input": str(two_hundred), "output": str(output)}
    results = _together([settings, settings], [0, 0])
    errors = [result for result in results if isinstance(result, DermsparkError)]
    assert len(errors) == 1, results
    assert "committed rows of model version" in str(errors[0]) and "this one wrote nothing" in str(errors[0])
    winner = next(result for result in results if isinstance(result, ScoreResult))
    assert [path.name for path in (output / "runs").iterdir()] == [winner.run_id]
    assert _rows(spark, output).count() == IMAGES


def test_two_spark_submit_runs_started_at_once(spark, pipeline, two_hundred, tmp_path):
    from conftest import SPARK_SUBMIT

    output = tmp_path / "out"
    command = [
        SPARK_SUBMIT,
        "score",
        "--model",
        str(pipeline / "model" / "model"),
        "--input",
        str(two_hundred),
        "--output",
        str(output),
        "--incremental",
    ]
    jobs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [job.communicate(timeout=900)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    rows = _rows(spark, output)
    assert rows.count() == IMAGES and rows.select("sha256").distinct().count() == IMAGES
    summaries = [json.loads(path.read_text()) for path in (output / "runs").glob("*/summary.json")]
    assert len(summaries) == 2
    assert sum(summary["scored"] + summary["errors"] for summary in summaries) == IMAGES
