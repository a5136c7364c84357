"""The Petastorm Unischema of an ingested dataset, alone in its module as Petastorm advises."""

import numpy as np
from petastorm.codecs import CompressedImageCodec, NdarrayCodec, ScalarCodec
from petastorm.unischema import Unischema, UnischemaField
from pyspark.sql.types import BooleanType, DoubleType, IntegerType, StringType

from dermspark.png import encode_png

# Both lossless: the pixels training reads are the pixels ingest produced. PNG takes about half
# raw's bytes; raw uint8 arrays cost nothing to encode (dermspark.png's encode is about a third
# of a 75x100 image's ingest work) and little to decode. Readers take the codec from the
# dataset's own schema.
CODECS = {"png": lambda: CompressedImageCodec("png"), "raw": NdarrayCodec}


def make_schema(height: int, width: int, codec: str = "png") -> Unischema:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
    return Unischema(
        f"DermImage{height}x{width}",
        [
            UnischemaField("image_id", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("lesion_id", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("dx", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), False),
            UnischemaField("split", np.str_, (), ScalarCodec(StringType()), False),
            # ingest --folds: the lesion's cross-validation fold; null without folds.
            UnischemaField("fold", np.int32, (), ScalarCodec(IntegerType()), True),
            # Null only when no training image has an age to impute from.
            UnischemaField("age", np.float64, (), ScalarCodec(DoubleType()), True),
            UnischemaField("age_imputed", np.bool_, (), ScalarCodec(BooleanType()), False),
            UnischemaField("sex", np.str_, (), ScalarCodec(StringType()), True),
            UnischemaField("localization", np.str_, (), ScalarCodec(StringType()), True),
            UnischemaField("dx_type", np.str_, (), ScalarCodec(StringType()), True),
            # DICOM: the frame of the instance (0 for a single-frame file); null for other files.
            UnischemaField("frame", np.int32, (), ScalarCodec(IntegerType()), True),
            UnischemaField("image", np.uint8, (height, width, 3), CODECS[codec](), False),
        ],
    )


def image_encoder(schema: Unischema):
    """array -> the bytes ingest stores for it. PNG through dermspark.png, 2.5 to 4 times faster
    than the codec's OpenCV and read back by that codec to the same pixels; raw through the codec."""
    field = schema.fields["image"]
    if isinstance(field.codec, CompressedImageCodec) and field.codec.image_codec == "png":
        return encode_png
    return lambda array: bytes(field.codec.encode(field, array))


def dataset_dirname(height: int, width: int) -> str:
    return f"images_{height}x{width}"
