"""The part files decode tasks write: equal row groups sized by bytes, nulls kept, retried attempts replace."""

import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dermspark.ingest.parts import (
    PartWriter,
    arrow_schema,
    equal_groups,
    read_footers,
    write_empty,
    write_metadata,
)
from dermspark.schema import make_schema

SCHEMA = make_schema(2, 3)


def rows(numbers, age=lambda number: 40.0) -> pd.DataFrame:
    """A task's rows as the driver plans them: a pandas frame, missing values as None or NaN;
    `image` holds what the decode encodes."""
    return pd.DataFrame([row(number, age=age(number)) for number in numbers])


def add(writer: PartWriter, frame: pd.DataFrame) -> None:
    """As a decode task adds a batch: the columns converted once, the images beside them."""
    writer.add(writer.arrow_rows(frame), frame["image"].tolist())


def row(number: int, image_bytes: int = 1000, age: float = 40.0) -> dict:
    return {
        "image_id": f"ISIC_{number:07d}",
        "lesion_id": None,
        "dx": "nv",
        "label": 5,
        "split": "train",
        "fold": None,
        "age": age,
        "age_imputed": False,
        "sex": "male",
        "localization": None,
        "dx_type": "histo",
        "frame": None,
        "image": bytes([number % 256]) * image_bytes,
    }


def test_rows_go_in_equal_row_groups_of_about_the_given_bytes(tmp_path):
    writer = PartWriter(f"file://{tmp_path}/images", 3, SCHEMA, row_group_bytes=4500, rows=23)
    # Batches of 7 rows: groups close mid-batch.
    for start in range(0, 23, 7):
        add(writer, rows(range(start, min(start + 7, 23)), age=lambda number: math.nan if number == 7 else 40.0))
    writer.commit()
    part = pq.ParquetFile(tmp_path / "images" / "part-00003.parquet")
    # 4,500 bytes are reached at the 5th row of 1,000, so the 23 rows make 5 groups, of 5 or 4
    # rows: not four of 5 and a last one of 3.
    assert [part.metadata.row_group(index).num_rows for index in range(part.num_row_groups)] == [5, 5, 5, 4, 4]
    columns = part.metadata.row_group(0)
    image = columns.column(part.schema_arrow.get_field_index("image"))
    label = columns.column(part.schema_arrow.get_field_index("label"))
    # PNG bytes are not compressed again nor summarised; the small columns are.
    assert (image.compression, image.is_stats_set) == ("UNCOMPRESSED", False)
    assert (label.compression, label.is_stats_set) == ("SNAPPY", True)
    table = part.read()
    assert table.schema == arrow_schema(SCHEMA)
    assert table.column("image_id").to_pylist() == [f"ISIC_{number:07d}" for number in range(23)]
    # NaN is how pandas holds a missing age; Parquet must hold a null, as Spark writes it.
    assert table.column("age").null_count == 1 and table.column("age")[7].as_py() is None
    assert table.column("lesion_id").null_count == 23
    assert table.column("image")[4].as_py() == bytes([4]) * 1000
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == ["part-00003.parquet"]


@pytest.mark.parametrize(
    ("planned", "added", "groups"),
    [
        (23, 23, [5, 5, 5, 4, 4]),
        (25, 23, [5, 5, 5, 5, 3]),  # two rejected images: the last group is short by them
        (4, 4, [4]),  # never reaches the bytes: one group
        (10, 10, [5, 5]),
    ],
)
def test_a_parts_row_groups_differ_by_a_row_at_most(tmp_path, planned, added, groups):
    """Petastorm gives row group i to rank i % ranks: equal groups make equal shards."""
    writer = PartWriter(f"file://{tmp_path}/images", 0, SCHEMA, row_group_bytes=4500, rows=planned)
    for start in range(0, added, 3):
        add(writer, rows(range(start, min(start + 3, added))))
    writer.commit()
    part = pq.ParquetFile(tmp_path / "images" / "part-00000.parquet")
    assert [part.metadata.row_group(index).num_rows for index in range(part.num_row_groups)] == groups
    assert equal_groups(1250, 357) == [313, 313, 312, 312]


def test_a_retried_task_replaces_the_failed_attempts_part(tmp_path):
    url = f"file://{tmp_path}/images"
    failed = PartWriter(url, 0, SCHEMA, row_group_bytes=1500, rows=4)
    add(failed, rows(range(4)))  # two row groups already on disk under a hidden name
    assert [path.name.startswith(".part-") for path in (tmp_path / "images").iterdir()] == [True]
    failed.abort()
    assert list((tmp_path / "images").iterdir()) == []

    for count in (3, 2):  # the same partition written twice: the second attempt's part stays
        writer = PartWriter(url, 0, SCHEMA, row_group_bytes=1500, rows=count)
        add(writer, rows(range(count)))
        writer.commit()
    assert pq.read_table(tmp_path / "images" / "part-00000.parquet").num_rows == 2
    assert [path.name for path in (tmp_path / "images").iterdir()] == ["part-00000.parquet"]


def test_a_task_without_rows_writes_no_part(tmp_path):
    PartWriter(f"file://{tmp_path}/images", 1, SCHEMA, row_group_bytes=1000, rows=0).commit()
    assert not (tmp_path / "images").exists()


def test_an_empty_dataset_still_has_its_schema(tmp_path):
    write_empty(f"file://{tmp_path}/images", SCHEMA)
    part = pq.ParquetFile(tmp_path / "images" / "part-00000.parquet")
    # Not even an empty row group: Petastorm divides by the rows of each group it reads.
    assert part.num_row_groups == 0 and part.schema_arrow == arrow_schema(SCHEMA)


def test_metadata_from_the_footers_lets_petastorm_read_every_row(tmp_path):
    from petastorm import make_reader
    from petastorm.etl.dataset_metadata import get_schema_from_dataset_url

    url = f"file://{tmp_path}/images"
    for part, numbers in ((0, range(7)), (1, range(7, 10))):
        writer = PartWriter(url, part, SCHEMA, row_group_bytes=2500, rows=len(numbers))
        add(writer, rows(numbers))
        writer.commit()
    footers = read_footers(url)
    assert footers == {"part-00000.parquet": (7, 3), "part-00001.parquet": (3, 1)}
    write_metadata(url, SCHEMA, {name: groups for name, (_, groups) in footers.items()})
    assert get_schema_from_dataset_url(url).fields.keys() == SCHEMA.fields.keys()
    # Only the ids: these rows hold made-up bytes, not PNGs.
    with make_reader(url, schema_fields=["image_id"], num_epochs=1, workers_count=1) as reader:
        assert sorted(row.image_id for row in reader) == [f"ISIC_{number:07d}" for number in range(10)]


def test_unknown_field_types_are_refused():
    from petastorm.codecs import ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql.types import LongType

    odd = Unischema("Odd", [UnischemaField("count", np.int64, (), ScalarCodec(LongType()), False)])
    with pytest.raises(ValueError, match="count"):
        arrow_schema(odd)


def test_parts_reach_s3_as_petastorm_readers_do(s3_store, monkeypatch):
    from conftest import s3_filesystem

    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    writer = PartWriter("s3a://dermspark/ingest-parts/images_2x3", 2, SCHEMA, row_group_bytes=2500, rows=5)
    add(writer, rows(range(5)))
    writer.commit()
    s3 = s3_filesystem(s3_store)
    assert s3.ls("dermspark/ingest-parts/images_2x3") == ["dermspark/ingest-parts/images_2x3/part-00002.parquet"]
    with s3.open("dermspark/ingest-parts/images_2x3/part-00002.parquet", "rb") as handle:
        part = pq.ParquetFile(handle)
        assert (part.num_row_groups, part.metadata.num_rows) == (2, 5)
