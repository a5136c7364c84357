"""Petastorm part files written by the decode tasks themselves, one per task and size.

A decode task writes its images straight into each dataset's folder, so image bytes never cross
into the JVM, are never cached, and are written once; Spark carries only the small rows (ids,
split, reason) that accounting, the report and the manifest read. The files follow the dataset's
Unischema; the driver then reads their footers, checks the rows and writes Petastorm's metadata
from them (`write_metadata`): what `materialize_dataset` writes when its block ends, without the
Spark job of one task per part file it runs to count row groups (1.2 to 1.7 s for 22 parts on
local[2], where reading 22 footers on the driver takes milliseconds).

A part is written under a hidden name and renamed when complete. Its name comes from the Spark
partition, whose rows are the same on every attempt, so a retried task replaces a failed
attempt's part instead of adding a second one; hidden leftovers of killed attempts are invisible
to Parquet readers and removed before the commit.
"""

import json
import math
import pickle
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from petastorm.etl.dataset_metadata import ROW_GROUPS_PER_FILE_KEY, UNISCHEMA_KEY
from petastorm.unischema import Unischema

from dermspark import storage
from dermspark.storage import open_url

HIDDEN_PREFIX = ".part-"
_SCALARS = {np.str_: pa.string(), np.int32: pa.int32(), np.float64: pa.float64(), np.bool_: pa.bool_()}


def arrow_schema(schema: Unischema) -> pa.Schema:
    """Every column nullable, as Spark writes them: ISIC images may lack a lesion id."""
    fields = []
    for name, field in schema.fields.items():
        kind = pa.binary() if field.shape else _SCALARS.get(field.numpy_dtype)
        if kind is None:
            raise ValueError(f"field {name} has a type the part writer does not know: {field.numpy_dtype}")
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


class PartWriter:
    """Rows of one dataset from one task, in row groups of equal rows and about `row_group_bytes`
    of images each.

    Petastorm shards a dataset by row group (group i to rank i % ranks), so a small last group in
    every part would land on the same rank in every part: on 8 files of 4 groups, 4 ranks read
    1,685, 1,685, 1,709 and 926 training rows, and the last rank's images weighed 1.8 times the
    others' (each rank takes the same steps). So the task's `rows` (planned, before rejects)
    are cut into equal groups, as many as the bytes of the first rows say the part needs."""

    def __init__(self, dataset_url: str, part: int, schema: Unischema, row_group_bytes: int, rows: int):
        self._fs, folder = open_url(dataset_url)
        self._folder = folder.rstrip("/")
        self._schema = arrow_schema(schema)
        self._others = pa.schema([field for field in self._schema if field.name != "image"])
        self._final = f"{self._folder}/part-{part:05d}.parquet"
        self._staged = f"{self._folder}/{HIDDEN_PREFIX}{part:05d}-{uuid.uuid4().hex[:12]}.parquet"
        self._row_group_bytes = row_group_bytes
        self._planned_rows = rows
        self._group_rows: list[int] | None = None  # known once the first group's bytes are in
        self._pending: list[pa.Table] = []
        self._pending_rows = self._pending_bytes = self._groups = 0
        self._handle: Any = None  # the store's open file
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def arrow_rows(self, rows: pd.DataFrame) -> pa.Table:
        """The dataset's columns but the image, converted once for a task's rows: per batch,
        pandas' conversion cost 13 us an image, as much as 3% of decoding a small one."""
        # from_pandas: a missing age arrives as NaN and must be written as null.
        return pa.Table.from_pandas(rows[self._others.names], schema=self._others, preserve_index=False)

    def add(self, rows: pa.Table, images: list[bytes]) -> None:
        """A batch: rows from arrow_rows and their encoded images."""
        image = pa.array(images, pa.binary())
        table = pa.Table.from_arrays(
            [image if name == "image" else rows.column(name) for name in self._schema.names], schema=self._schema
        )
        if self._group_rows is None and images:
            running = self._pending_bytes + np.cumsum([len(encoded) for encoded in images])
            reached = np.flatnonzero(running >= self._row_group_bytes)
            if reached.size:
                self._group_rows = equal_groups(self._planned_rows, self._pending_rows + int(reached[0]) + 1)
            self._pending_bytes = int(running[-1])
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._group_rows is not None and self._pending_rows >= self._next_group_rows():
            self._flush(self._next_group_rows())

    def _next_group_rows(self) -> int:
        # More rows than planned cannot come; if they did, they would fill groups of the last size.
        sizes = self._group_rows or [0]  # called once they are known
        return sizes[min(self._groups, len(sizes) - 1)]

    def _flush(self, count: int | None = None) -> None:
        """Writes the first `count` pending rows (all of them: None) as one row group."""
        if not self._pending:
            return
        if self._writer is None:
            self._fs.makedirs(self._folder, exist_ok=True)
            self._handle = self._fs.open(self._staged, "wb")
            # PNG is compressed already: snappy over it costs time and saves nothing; a dictionary
            # or min/max statistics of image bytes serve no reader either.
            others = [name for name in self._schema.names if name != "image"]
            self._writer = pq.ParquetWriter(
                self._handle,
                self._schema,
                compression={name: "SNAPPY" for name in others} | {"image": "NONE"},
                use_dictionary=others,
                write_statistics=others,
            )
        # Chunks as they came, sliced without a copy: combining them first would copy every
        # image once more into fresh memory.
        pending = pa.concat_tables(self._pending)
        count = pending.num_rows if count is None else count
        self._writer.write_table(pending.slice(0, count), row_group_size=count)
        self._pending = [pending.slice(count)] if count < pending.num_rows else []
        self._pending_rows -= count
        self._groups += 1

    def commit(self) -> None:
        """Writes what is pending and moves the part into place; a task with no rows writes none."""
        self._flush()
        if self._writer is None:
            return
        self._writer.close()
        self._handle.close()
        self._writer = None
        self._fs.mv(self._staged, self._final)

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
                self._handle.close()
            if self._fs.exists(self._staged):
                self._fs.rm(self._staged)
        except OSError:
            pass  # the hidden leftover is removed before the commit


def equal_groups(rows: int, first_group_rows: int) -> list[int]:
    """Rows per group for a part of `rows` whose first `first_group_rows` reached the group's
    bytes: as many groups as that makes, their sizes differing by one row at most."""
    groups = max(1, math.ceil(rows / first_group_rows))
    return [rows // groups + (index < rows % groups) for index in range(groups)]


def write_empty(dataset_url: str, schema: Unischema) -> None:
    """A part with the schema and no rows, for a size of which no image was written: Petastorm
    needs at least one file to hang its metadata on."""
    fs, folder = open_url(dataset_url)
    fs.makedirs(folder, exist_ok=True)
    with fs.open(f"{folder.rstrip('/')}/part-00000.parquet", "wb") as handle:
        # No row group at all: Petastorm divides by the rows of every group it finds.
        pq.ParquetWriter(handle, arrow_schema(schema)).close()


def read_footers(dataset_url: str) -> dict[str, tuple[int, int]]:
    """Each part's file name -> (rows, row groups), from its footer: what a reader of the dataset
    will find. Several at a time: on an object store each footer is a round trip or two."""
    fs, folder = open_url(dataset_url)

    def footer(path: str) -> tuple[str, tuple[int, int]]:
        with fs.open(path, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
        return path.rsplit("/", 1)[-1], (metadata.num_rows, metadata.num_row_groups)

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(footer, sorted(fs.glob(f"{folder.rstrip('/')}/part-*.parquet"))))


def write_metadata(dataset_url: str, schema: Unischema, row_groups: dict[str, int]) -> None:
    """The dataset's _common_metadata, as Petastorm's `materialize_dataset` writes it: the parts'
    Arrow schema carrying the pickled Unischema and each part file's row groups under Petastorm's
    keys, which its readers need. Written through the storage layer, like the parts."""
    metadata = {UNISCHEMA_KEY: pickle.dumps(schema), ROW_GROUPS_PER_FILE_KEY: json.dumps(row_groups)}
    sink = pa.BufferOutputStream()
    pq.write_metadata(arrow_schema(schema).with_metadata(metadata), sink)
    storage.write_bytes(storage.join(dataset_url, "_common_metadata"), sink.getvalue().to_pybytes())
