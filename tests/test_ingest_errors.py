"""The ingest job on bad input and bad states: one clear error, and nothing half-written."""

import json
from pathlib import Path

import pytest
from dermspark import DermsparkError
from dermspark.ingest import pipeline
from dermspark.ingest.pipeline import run_ingest
from dermspark.results import IngestResult
from dermspark.settings.ingest import IngestSettings
from messy import add_rows, make_messy_archive


@pytest.fixture(scope="module")
def messy_archive(synthetic_archive, tmp_path_factory) -> Path:
    return make_messy_archive(synthetic_archive.path, tmp_path_factory.mktemp("messy") / "archive")


def test_reject_limit_fails_after_writing_the_rejects(spark, messy_archive, tmp_path):
    output = tmp_path / "limited"
    with pytest.raises(DermsparkError, match=r"inputs rejected .* over --max-reject-fraction 0.05"):
        run_ingest(
            spark, IngestSettings(input=str(messy_archive), output=str(output), num_files=2, max_reject_fraction=0.05)
        )
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["failed"] and manifest["datasets"] == {}
    assert spark.read.parquet(str(output / "rejects.parquet")).count() == manifest["rejected"]
    assert not list(output.glob("images_*"))


def test_a_lost_outcome_stops_the_job_before_anything_is_committed(spark, messy_archive, tmp_path, monkeypatch):
    """The driver lines the decode's outcomes up with the rows it planned, without a join: a task
    that returned one outcome too few (a bug) is caught, and no output is committed."""
    from dermspark.ingest.decode_task import DecodeTask

    class Losing(DecodeTask):
        def __call__(self, planned):
            for outcomes in DecodeTask.__call__(self, planned):
                yield outcomes.iloc[1:]

    monkeypatch.setattr(pipeline, "DecodeTask", Losing)
    output = tmp_path / "lost"
    with pytest.raises(RuntimeError, match="not one each in the planned order; this is a dermspark bug"):
        run_ingest(spark, IngestSettings(input=str(messy_archive), output=str(output), num_files=2))
    assert not output.exists()


def test_an_archive_with_no_usable_image_gives_an_empty_readable_dataset(spark, tmp_path):
    from dermspark import petastorm_compat
    from petastorm import make_reader

    petastorm_compat.apply()
    (tmp_path / "images").mkdir()
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\n")
    add_rows(
        tmp_path,
        [
            {"lesion_id": "HAM_1", "image_id": "ISIC_1", "dx": "nv"},
            {"lesion_id": "HAM_2", "image_id": "ISIC_2", "dx": "mel"},
        ],
    )
    (tmp_path / "images" / "ISIC_1.jpg").write_text("not a picture")
    (tmp_path / "images" / "ISIC_2.jpg").write_bytes(b"")
    result = run_ingest(spark, IngestSettings(input=str(tmp_path), output=str(tmp_path / "o")))
    assert (result.manifest.inputs, result.manifest.written, result.manifest.rejected) == (2, 0, 2)
    with make_reader(f"file://{tmp_path}/o/images_75x100", num_epochs=1) as reader:
        assert list(reader) == []


def test_missing_folder_is_one_clear_error(spark, tmp_path):
    with pytest.raises(DermsparkError, match="does not exist"):
        run_ingest(spark, IngestSettings(input=str(tmp_path / "nowhere"), output=str(tmp_path / "o")))


def test_wrong_columns_are_named(spark, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "HAM10000_metadata.csv").write_text("image,label\nISIC_1,nv\n")
    with pytest.raises(DermsparkError, match="lacks the column.*lesion_id, image_id, dx"):
        run_ingest(spark, IngestSettings(input=str(tmp_path), output=str(tmp_path / "o")))


def test_empty_archive_is_one_clear_error(spark, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\n")
    with pytest.raises(DermsparkError, match="empty"):
        run_ingest(spark, IngestSettings(input=str(tmp_path), output=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_two_ingests_at_once_into_one_output_leave_one_whole_dataset(spark, synthetic_archive, tmp_path):
    """Both start before either commits (a barrier): with --mode error the later commit stops in
    one line and the first's dataset stays whole."""
    import threading

    output, barrier, results = tmp_path / "dataset", threading.Barrier(2), [None, None]

    def ingest(index: int) -> None:
        barrier.wait()
        try:
            results[index] = run_ingest(
                spark, IngestSettings(input=str(synthetic_archive.path), output=str(output), num_files=2, seed=index)
            )
        except DermsparkError as error:
            results[index] = error

    threads = [threading.Thread(target=ingest, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [result for result in results if isinstance(result, DermsparkError)]
    assert len(errors) == 1 and "another job wrote" in str(errors[0]), results
    winner = next(result for result in results if isinstance(result, IngestResult))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["seed"] == results.index(winner) and manifest["written"] == winner.manifest.written
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset"]
