"""What each ingest task runs: the planned rows of one output file read (any store), decoded
once into every size, and written into each size's dataset as Parquet parts (ingest.parts);
each row's outcome goes back to the driver.

A picklable object, not a closure: Spark ships it to executors, which import dermspark
themselves; the modules only executors need are imported where it runs.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from dermspark import storage

if TYPE_CHECKING:
    from dermspark.images import DecodeOptions

# What the decode returns for each candidate: its id and why it was rejected (null when its
# images were written). The rest of its row is on the driver already, in the plan.
OUTCOME_COLUMNS = ["image_id", "reason", "detail"]


@dataclass(frozen=True)
class DecodeTask:
    sizes: list[tuple[int, int]]
    options: "DecodeOptions"
    classes: tuple[str, ...]
    dataset_urls: list[str]  # one per size
    schemas: list
    row_group_bytes: int
    batch_rows: int  # rows decoded before their images are written
    root: str | None  # the archive's local folder, out of which links are not followed

    def __call__(self, planned):
        """mapPartitions' function: the task's planned frames in, one frame of outcomes out."""
        from pyspark import TaskContext

        from dermspark.ingest.parts import PartWriter
        from dermspark.schema import image_encoder
        from dermspark.workers import steady_worker

        steady_worker()
        encoders = [image_encoder(schema) for schema in self.schemas]
        context = TaskContext.get()
        assert context is not None  # this runs in a Spark task
        part = context.partitionId()
        planned = list(planned)  # the task's one frame, its file's rows: their count sizes the row groups
        rows = sum(len(frame) for frame in planned)
        writers = [
            PartWriter(url, part, schema, self.row_group_bytes, rows)
            for url, schema in zip(self.dataset_urls, self.schemas, strict=True)
        ]
        try:
            outcomes = [self._write_frame(frame, writers, encoders) for frame in planned]
            for writer in writers:
                writer.commit()
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        # One frame a task, not one a batch: the driver joins a few dozen frames, not thousands.
        yield pd.concat(outcomes, ignore_index=True) if outcomes else pd.DataFrame(columns=OUTCOME_COLUMNS)

    def _write_frame(self, frame: pd.DataFrame, writers: list, encoders: list) -> pd.DataFrame:
        """A frame's rows decoded batch by batch, the written ones added to every writer."""
        index = {name: position for position, name in enumerate(self.classes)}
        frame = frame.assign(label=frame["class_name"].map(index).astype("int32"))
        tables = [writer.arrow_rows(frame) for writer in writers]
        paths, frames, reasons, details = frame["path"].tolist(), frame["frame"].tolist(), [], []
        for start in range(0, len(paths), self.batch_rows):
            end = start + self.batch_rows
            batch_reasons, batch_details, written, images = self._decode_rows(
                paths[start:end], frames[start:end], encoders
            )
            reasons += batch_reasons
            details += batch_details
            if written:
                taken = [start + position for position in written]
                for writer, table, encoded in zip(writers, tables, images, strict=True):
                    writer.add(table.take(taken), encoded)
        return pd.DataFrame(
            {"image_id": frame["image_id"].to_numpy(), "reason": reasons, "detail": details}, columns=OUTCOME_COLUMNS
        )

    def _decode_rows(self, paths: list[str], frames: list, encoders: list):
        """Each path's reason and detail (None where its images were written), the positions
        written, and their encoded images, one list per size."""
        from dermspark.images import ImageRejected, decode_sizes

        reasons: list[str | None] = []
        details: list[str | None] = []
        written: list[int] = []
        images: list[list[bytes]] = [[] for _ in encoders]
        for position, (path, number) in enumerate(zip(paths, frames, strict=True)):
            try:
                arrays = decode_sizes(self._read(path), self.sizes, self.options, 0 if pd.isna(number) else int(number))
            except ImageRejected as rejected:
                reasons.append(rejected.reason)
                details.append(rejected.detail[:300])
                continue
            for encoded, encode, array in zip(images, encoders, arrays, strict=True):
                encoded.append(encode(array))
            written.append(position)
            reasons.append(None)
            details.append(None)
        return reasons, details, written, images

    def _read(self, path: str) -> bytes:
        """Every store read here, by the task that decodes the file: image bytes never cross the
        JVM nor a shuffle, and the partitions keep the --num-files layout."""
        from dermspark.files import OutsideArchive, read_local
        from dermspark.images import ImageRejected

        try:
            return read_local(path, self.root) if path.startswith("file:") else storage.read_bytes(path)
        except OutsideArchive as error:
            raise ImageRejected("outside_archive", error.strerror or str(error)) from None
        except OSError as error:
            raise ImageRejected("unreadable", f"cannot read the file: {error.strerror or error}") from None
