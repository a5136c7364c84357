"""Reading metadata tables (CSV) without losing rows: shared by ingest and by scoring's labels."""

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dermspark import DermsparkError


def read_csv(spark: SparkSession, url: str, required: tuple[str, ...]) -> DataFrame:
    """All columns as strings, names stripped, plus `_malformed`: a line with too few or too many
    fields, which Spark's permissive parser would otherwise pad or cut without a word."""
    header = [column.strip() for column in spark.read.csv(url, header=True).columns]
    missing = [column for column in required if column not in header]
    if missing:
        raise DermsparkError(
            f"{url} lacks the column(s) {', '.join(missing)}; found "
            f"{', '.join(header) or 'no header'} (expected {','.join(required)})"
        )
    schema = StructType([StructField(name, StringType()) for name in [*header, "_corrupt"]])
    frame = spark.read.csv(
        url, header=True, schema=schema, mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt"
    )
    # Spark checks a line's field count only against the columns a query reads (CSV column
    # pruning), so a line with surplus fields would pass whenever they are not read. Parsing
    # every column once into a cache makes the check complete; metadata is a row per image.
    frame = frame.select(*frame.columns).persist(StorageLevel.MEMORY_AND_DISK)
    return frame.withColumn("_malformed", F.col("_corrupt").isNotNull()).drop("_corrupt")


def one_hot_diagnosis(columns: tuple[str, ...]):
    """ISIC's one-hot ground truth (0/1 or 0.0/1.0) as one lowercased diagnosis: the column whose
    value is 1. None or several make it null, which callers treat as a bad row."""
    ones = sum(F.when(F.trim(name).cast("double") == 1.0, 1).otherwise(0) for name in columns)
    chosen = F.coalesce(*[F.when(F.trim(name).cast("double") == 1.0, F.lit(name.lower())) for name in columns])
    return F.when(ones == 1, chosen)
