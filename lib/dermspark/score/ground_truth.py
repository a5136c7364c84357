"""Labels for a scoring run (`--labels`): a HAM10000 metadata file or ISIC 2019 ground truth,
joined to predictions by image id and mapped into the bundle's label space."""

from itertools import chain

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dermspark import DermsparkError
from dermspark.labels import ISIC2019_DIAGNOSES, label_mapping, space_of
from dermspark.metadata import one_hot_diagnosis, read_table

METADATA = ("age", "sex", "localization", "dx_type")


def read_label_file(spark: SparkSession, url: str) -> tuple[DataFrame, str]:
    """image_id, dx (lowercased, in the file's vocabulary), lesion_id (HAM10000's; null for ISIC
    2019, whose ground truth has none) and the vocabulary's name. Read on the driver (a short row
    per image), the way ingest reads metadata."""
    table = read_table(url, (), "labels file")
    header = set(table.columns)
    if {"image_id", "dx"} <= header:
        lesion = table["lesion_id"] if "lesion_id" in header else None
        labels, vocabulary = (
            pd.DataFrame({"image_id": table["image_id"], "dx": table["dx"].str.lower(), "lesion_id": lesion}),
            "ham10000",
        )
    elif {"image", *ISIC2019_DIAGNOSES} <= header:
        labels, vocabulary = (
            pd.DataFrame(
                {"image_id": table["image"], "dx": one_hot_diagnosis(table, ISIC2019_DIAGNOSES), "lesion_id": None}
            ),
            "isic2019",
        )
    else:
        raise DermsparkError(
            f"{url} is neither HAM10000 metadata (image_id, dx) nor ISIC 2019 ground truth "
            f"(image, {', '.join(ISIC2019_DIAGNOSES)})"
        )
    # The subgroups' columns, where the file has them (HAM10000's metadata does).
    for name in METADATA:
        labels[name] = table[name] if name in header else None
    labels = labels[~table["_malformed"]].astype(object)
    labels = labels.where(pd.notna(labels), None)
    schema = "image_id string, dx string, lesion_id string, " + ", ".join(f"{name} string" for name in METADATA)
    return spark.createDataFrame(labels, schema), vocabulary


def true_classes(labels: DataFrame, vocabulary: str, classes: list[str]) -> DataFrame:
    """image_id, true_label: the class in the bundle's space (null when the diagnosis has none
    there, e.g. HAM's akiec for an ISIC 2019 model), and lesion_id. The first row of an image id
    counts."""
    mapping = label_mapping(vocabulary, space_of(classes))
    lookup = F.create_map(*[F.lit(value) for value in chain.from_iterable(mapping.items())])
    first = Window.partitionBy("image_id").orderBy("_row")
    return (
        labels.withColumn("_row", F.monotonically_increasing_id())
        .withColumn("_n", F.row_number().over(first))
        .filter("_n = 1")
        .select(
            "image_id",
            lookup[F.col("dx")].alias("true_label"),
            "lesion_id",
            *[(F.col(name) if name in labels.columns else F.lit(None)).cast("string").alias(name) for name in METADATA],
        )
    )
