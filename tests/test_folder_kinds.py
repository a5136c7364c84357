"""Each output folder records the job that wrote it; a job refuses another job's folder, and a
folder of the wrong kind for --model or --dataset, in one line, whatever --mode says."""

import json

import pytest
from dermspark import DermsparkError, commit
from dermspark.bundle import read_manifest
from dermspark.train.dataset import read_manifest as read_dataset_manifest


def test_every_output_of_the_pipeline_names_its_job(pipeline):
    for folder, job in (("dataset", "ingest"), ("model", "train"), ("scores", "score")):
        assert json.loads((pipeline / folder / commit.MARKER).read_text())["written_by"] == job
        assert commit.kind_of(str(pipeline / folder)) == job
    assert commit.kind_of(str(pipeline / "model" / "model")) == "bundle"


@pytest.mark.parametrize(
    ("folder", "job", "message"),
    [
        ("dataset", "score", "--output {} holds an ingested dataset; score writes a predictions table"),
        ("scores", "train", "--output {} holds a predictions table; train writes a training output"),
        ("model", "ingest", "--output {} holds a training output; ingest writes an ingested dataset"),
        ("model/model", "score", "--output {} holds a model bundle; score writes a predictions table"),
        ("archive", "train", "--output {} is not empty and was not written by dermspark"),
    ],
)
def test_a_job_refuses_another_jobs_folder_even_with_mode_overwrite(pipeline, folder, job, message):
    url = str(pipeline / folder)
    for mode in ("error", "overwrite"):
        with pytest.raises(DermsparkError, match="^" + message.format(url).replace("(", r"\(")):
            commit.prepare_output(url, mode, job)
    assert (pipeline / folder).exists()


def test_a_folder_of_the_wrong_kind_for_model_or_dataset_is_one_line(pipeline, tmp_path):
    with pytest.raises(DermsparkError, match="is an ingested dataset, not a model bundle"):
        read_manifest(str(pipeline / "dataset"))
    with pytest.raises(DermsparkError, match=r"is a training output, not a model bundle: its bundle is .*/model$"):
        read_manifest(str(pipeline / "model"))
    with pytest.raises(DermsparkError, match="is a model bundle, not an ingested dataset"):
        read_dataset_manifest(str(pipeline / "model" / "model"))
    commit.check_kind(str(tmp_path / "empty"), "ingest")
    (tmp_path / "empty").mkdir()
    commit.check_kind(str(tmp_path / "empty"), "ingest")
    commit.prepare_output(str(tmp_path / "empty"), "overwrite", "ingest")


def test_score_and_serve_given_a_dataset_for_a_model_fail_in_one_line(spark, pipeline, tmp_path):
    from dermspark.score.job import run_score
    from dermspark.serve.app import make_app
    from dermspark.settings.score import ScoreSettings
    from dermspark.settings.serve import ServeSettings

    with pytest.raises(DermsparkError, match="is an ingested dataset, not a model bundle"):
        run_score(
            spark,
            ScoreSettings(
                model=str(pipeline / "dataset"), input=str(pipeline / "archive"), output=str(tmp_path / "out")
            ),
        )
    with pytest.raises(DermsparkError, match="is an ingested dataset, not a model bundle"):
        make_app(ServeSettings(model=str(pipeline / "dataset")))
    with pytest.raises(DermsparkError, match="holds an ingested dataset"):
        run_score(
            spark,
            ScoreSettings(
                model=str(pipeline / "model" / "model"),
                input=str(pipeline / "archive"),
                output=str(pipeline / "dataset"),
            ),
        )
    assert not (pipeline / "dataset" / "predictions").exists()
