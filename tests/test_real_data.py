"""The real HAM10000 archive layout from ../shared/data: an incomplete archive, fully accounted."""

import json

from dermspark.ingest.pipeline import run_ingest
from dermspark.settings import IngestSettings


def test_real_partial_archive_is_fully_accounted(spark, real_data, tmp_path):
    output = tmp_path / "real"
    run_ingest(spark, IngestSettings(input=str(real_data / "ham10000-600x450"), output=str(output)))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["inputs"] == 10_015
    assert manifest["written"] == 250
    assert manifest["rejected"] == 9_765
    assert manifest["by_reason"] == {"missing_file": 9_765}
    assert manifest["per_class"] == {
        "akiec": 7, "bcc": 18, "bkl": 20, "df": 9, "mel": 24, "nv": 164, "vasc": 8
    }
