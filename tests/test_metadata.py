"""Metadata tables: Arrow's fast reader and Python's csv module give the same frame.

read_table parses a well-formed table without quotes in Arrow and anything else with the csv
module, line by line. Both must give equal frames (values, None for empty fields, dtypes, the
_malformed and _row columns), or an archive's rows would change with its formatting.
"""

import csv
import io

import pandas as pd
import pytest
from dermspark import metadata

# name: (file text, whether Arrow reads it)
TABLES = {
    "plain": ("a,b,c\n1,2,3\n4,5,6\n", True),
    "spaces, tabs and Unicode blanks": (" a , b ,c\n 1 ,\t2\t, 3 \n\xa0x\u3000,\x1cy\x1f,\u2028z\n", True),
    "empty fields": ("a,b,c\n,,\n1,,\n , , \n", True),
    "CRLF and blank lines": ("a,b\r\n1,2\r\n\r\n3,4\r\n\r\n", True),
    "CR line ends": ("a,b\r1,2\r3,4", True),
    "no line end at the end": ("a,b\n1,2", True),
    "header only": ("a,b\n", True),
    "one column with a blank field": ("a\n1\n \n\n2\n", True),
    "non-ASCII": ("a,b\nlésion,字\n", True),
    "byte order mark": ("\ufeffa,b\n1,2\n", True),
    "trailing comma": ("a,b,\n1,2,\n", True),
    "a line of spaces": ("a,b\n1,2\n   \n3,4\n", False),
    "wrong field counts": ("a,b\n1,2,3\n4\n", False),
    "quoted comma": ('a,b\n"1,x",2\n', False),
    "duplicate column": ("a, a\n1,2\n", False),
}


def _by_csv_module(text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    frame = metadata._read_any(reader, [name.strip() for name in next(reader)])
    frame["_row"] = pd.Series(range(len(frame)), dtype="int64")
    return frame


@pytest.mark.parametrize("name", TABLES)
def test_arrow_and_the_csv_module_read_a_table_alike(tmp_path, monkeypatch, name):
    text, by_arrow = TABLES[name]
    path = tmp_path / "metadata.csv"
    path.write_bytes(text.encode("utf-8"))
    calls = []
    fast = metadata._read_unquoted
    monkeypatch.setattr(metadata, "_read_unquoted", lambda *args: calls.append(fast(*args)) or calls[-1])
    table = metadata.read_table("file://" + str(path), ())
    assert (calls[0] is not None) == by_arrow
    pd.testing.assert_frame_equal(table, _by_csv_module(text))


def test_the_real_metadata_reads_alike(real_data):
    path = real_data / "ham10000-200x150" / "HAM10000_metadata.csv"
    table = metadata.read_table("file://" + str(path), ("image_id",))
    assert len(table) == 10015 and not table["_malformed"].any()
    pd.testing.assert_frame_equal(table, _by_csv_module(path.read_text("utf-8")))


def test_whitespace_is_what_str_strip_removes():
    assert "".join(chr(code) for code in range(0x110000) if chr(code).isspace()) == metadata.WHITESPACE
