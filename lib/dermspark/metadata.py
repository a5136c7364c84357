"""Reading metadata tables (CSV) without losing rows: shared by ingest and by scoring's labels.

A metadata table holds one short row per image (about 100 bytes: 100 MB for a million images),
so it is read whole on the driver, through the storage layer (any store), in one pass that costs
milliseconds where Spark's CSV source costs a job or two. Reading it there also sees every line's
field count, which Spark's permissive parser checks only for the columns a query reads.
"""

import csv
import io

import pandas as pd

from dermspark import DermsparkError, storage


def read_table(url: str, required: tuple[str, ...], name: str = "metadata file") -> pd.DataFrame:
    """Every column as stripped strings, an empty field as None; `_malformed`: a line with too
    few or too many fields (its fields padded with None or cut, as Spark's parser would, but
    marked); `_row`: the line's order among the data lines. Blank lines are skipped."""
    try:
        text = storage.read_text(url)
    except (FileNotFoundError, IsADirectoryError, OSError) as error:
        raise DermsparkError(f"cannot read {name} {url}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise DermsparkError(f"cannot read {name} {url}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = [name.strip() for name in next(reader, [])]
    missing = [column for column in required if column not in header]
    if missing:
        raise DermsparkError(
            f"{url} lacks the column(s) {', '.join(missing)}; found "
            f"{', '.join(header) or 'no header'} (expected {','.join(required)})"
        )
    width = len(header)
    rows, malformed = [], []
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip() and width > 1):
            continue
        malformed.append(len(fields) != width)
        rows.append([field.strip() or None for field in (fields + [""] * width)[:width]])
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    frame["_malformed"] = pd.Series(malformed, dtype=bool)
    frame["_row"] = pd.Series(range(len(frame)), dtype="int64")
    return frame


def to_number(values: pd.Series) -> pd.Series:
    """Strings to floats; a non-number becomes NaN (an age that is not a number is imputed like
    a missing one)."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


def one_hot_diagnosis(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """ISIC's one-hot ground truth (0/1 or 0.0/1.0) as one lowercased diagnosis: the column whose
    value is 1. None or several make it None, which callers treat as a bad row."""
    ones = pd.DataFrame({name: to_number(frame[name]) == 1.0 for name in columns})
    chosen = ones.idxmax(axis=1).str.lower() if len(ones) else pd.Series([], dtype=object)
    return chosen.where(ones.sum(axis=1) == 1, None).astype(object)
