"""The monitor job: drift measures that can tell a shift from sampling noise, a report that flags
the periods whose predicted-class mix or confidence moved and not the others, and reruns that
read only the runs scored since."""

import json
import struct
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from dermspark import DermsparkError
from dermspark.commit import mark
from dermspark.monitor.job import run_monitor
from dermspark.report import drift
from dermspark.settings.monitor import MonitorSettings

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
TRAINING_MIX = (0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02)


def _predictions(rng, mix, rows: int, confidence=(6, 2)) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.choice(len(CLASSES), size=rows, p=np.asarray(mix) / sum(mix))
    return labels, rng.beta(*confidence, size=rows) * 0.85 + 0.15


def _reference(rng) -> dict:
    labels, confidence = _predictions(rng, TRAINING_MIX, 1500)
    probabilities = np.full((len(labels), len(CLASSES)), 0.0)
    probabilities[np.arange(len(labels)), labels] = confidence
    return drift.reference(probabilities, CLASSES, "validation")


def test_drift_tells_a_shift_from_a_sample_of_the_reference():
    rng = np.random.default_rng(0)
    reference = _reference(rng)
    same = [
        drift.compare(
            reference,
            dict(zip(CLASSES, np.bincount(labels, minlength=7), strict=True)),
            np.bincount(drift.confidence_bin(confidence), minlength=drift.HISTOGRAM_BINS),
        )
        for labels, confidence in (_predictions(rng, TRAINING_MIX, 300) for _ in range(20))
    ]
    assert not any(found["flagged"] for found in same)
    labels, confidence = _predictions(rng, (0.02, 0.2, 0.3, 0.01, 0.3, 0.15, 0.02), 300)
    shifted = drift.compare(
        reference,
        dict(zip(CLASSES, np.bincount(labels, minlength=7), strict=True)),
        np.bincount(drift.confidence_bin(confidence), minlength=drift.HISTOGRAM_BINS),
    )
    assert shifted["flagged"] and "psi_class_mix" in shifted["over"]
    assert drift.psi([1, 2, 3], [1, 2, 3]) == pytest.approx(0) and drift.js_distance([1, 0], [0, 1]) == 1


def test_quantiles_from_the_histogram_are_within_a_bin():
    values = np.random.default_rng(1).beta(5, 2, size=5000)
    found = drift.quantiles(np.bincount(drift.confidence_bin(values), minlength=drift.HISTOGRAM_BINS))
    for name, q in zip(found, drift.QUANTILES, strict=True):
        assert abs(found[name] - np.quantile(values, q)) <= 0.011


def _table(spark, root, runs: list[tuple], version="run-a/1234", sha="abc123") -> None:
    """A scoring output whose runs predict the given mixes: (date, run id, mix, rows, confidence)."""
    rng = np.random.default_rng(len(runs))
    frames = []
    for day, run_id, mix, rows, confidence in runs:
        labels, scores = _predictions(rng, mix, rows, confidence)
        errors = rng.random(rows) < 0.02
        frames.append(
            pd.DataFrame(
                {
                    "path": [f"file:///archive/{run_id}/{index}.jpg" for index in range(rows)],
                    "predicted_label": np.where(errors, None, np.asarray(CLASSES, dtype=object)[labels]),
                    "confidence": np.where(errors, np.nan, scores),
                    "melanoma_flag": np.where(errors, None, labels == 4),
                    "review": np.where(errors, None, scores < 0.4),
                    "review_reason": np.where(~errors & (scores < 0.4), "uncertain", None),
                    "error": np.where(errors, "truncated", None),
                    "bundle_sha256": sha,
                    "scored_at": pd.Timestamp(f"{day} 02:00:00"),
                    "model_version": version,
                    "scoring_date": day,
                    "run_id": run_id,
                }
            )
        )
    frame = spark.createDataFrame(
        pd.concat(frames, ignore_index=True).astype({"melanoma_flag": object, "review": object})
    )
    frame.write.mode("append").partitionBy("model_version", "scoring_date", "run_id").parquet(str(root / "predictions"))
    mark(str(root), "score")


def _bundle(folder, sha="abc123") -> str:
    folder.mkdir()
    manifest = {
        "model_sha256": sha,
        "reference": _reference(np.random.default_rng(7)),
        "training_settings": {"run_id": "trained"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


def _png_size(path) -> tuple[int, int]:
    content = path.read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", content[16:24])


def test_the_report_flags_the_shifted_runs_and_a_rerun_reads_only_new_ones(spark, tmp_path):
    shifted = (0.02, 0.2, 0.3, 0.01, 0.3, 0.15, 0.02)
    runs = [
        ("2026-11-02", "r1", TRAINING_MIX, 400, (6, 2)),
        ("2026-11-03", "r2", TRAINING_MIX, 400, (6, 2)),
        ("2026-11-04", "r3", shifted, 400, (6, 2)),
        ("2026-11-05", "r4", TRAINING_MIX, 400, (2, 6)),
        ("2026-11-06", "r5", TRAINING_MIX, 60, (6, 2)),
    ]
    _table(spark, tmp_path / "scores", runs)
    settings = MonitorSettings(
        predictions=str(tmp_path / "scores"), output=str(tmp_path / "report"), model=_bundle(tmp_path / "bundle")
    )
    result = run_monitor(spark, settings)
    by_run = {entry["period"]: entry for entry in result.report["periods"]["run"]}
    assert {run for run, entry in by_run.items() if entry["drift"]["flagged"]} == {"r3", "r4"}
    assert "psi_class_mix" in by_run["r3"]["drift"]["over"] and "psi_confidence" in by_run["r4"]["drift"]["over"]
    assert not by_run["r5"]["drift"]["judged"]  # 60 predictions: too few
    assert by_run["r1"]["rows"] == 400 and by_run["r1"]["errors"] + by_run["r1"]["scored"] == 400
    assert by_run["r1"]["review_rate_by_reason"].keys() == {"uncertain"}
    assert result.report["reference"]["matched"] and result.report["new_runs"] == 5
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| run-a/1234 | run | r3 |" in report and "| run-a/1234 | run | r1 |" not in report
    for image in ("volume", "class_mix", "confidence", "drift"):
        width, height = _png_size(tmp_path / "report" / "plots" / "run-a_1234" / "run" / f"{image}.png")
        assert width > 500 and height > 250

    _table(spark, tmp_path / "scores", [("2026-11-09", "r6", shifted, 300, (6, 2))])
    again = run_monitor(spark, settings)
    assert (again.report["new_runs"], again.report["runs"]) == (1, 6)
    assert [entry["period"] for entry in again.report["periods"]["run"] if entry["drift"]["flagged"]] == [
        "r3",
        "r4",
        "r6",
    ]
    weeks = {entry["period"]: entry["runs"] for entry in again.report["periods"]["week"]}
    assert weeks == {"2026-W45": 5, "2026-W46": 1}
    since = run_monitor(
        spark, MonitorSettings(predictions=settings.predictions, output=str(tmp_path / "recent"), since="2026-11-05")
    )
    assert since.report["runs"] == 3 and since.report["reference"] is None and since.report["flagged"] == 0
    with pytest.raises(DermsparkError, match="is not a scoring output"):
        run_monitor(spark, MonitorSettings(predictions=str(tmp_path / "report"), output=str(tmp_path / "x")))
    with pytest.raises(DermsparkError, match="YYYY-MM-DD"):
        run_monitor(spark, MonitorSettings(predictions=settings.predictions, output=str(tmp_path / "x"), since="5 Nov"))
    assert datetime.fromisoformat(again.report["written_at"])


def test_the_monitor_job_on_a_real_scoring_run_logs_to_the_training_run(pipeline, mlflow_server, tmp_path):
    """spark-submit.sh monitor over the pipeline's scoring output, against the bundle that scored
    it: its reference was recorded at training, and the report lands in that training's MLflow run."""
    from conftest import ok, submit
    from mlflow import MlflowClient

    printed = ok(
        submit(
            "monitor",
            "--predictions",
            str(pipeline / "scores"),
            "--output",
            str(tmp_path / "report"),
            "--model",
            str(pipeline / "model" / "model"),
            "--mlflow-uri",
            mlflow_server,
        )
    )
    assert "monitor done" in printed and "runs: 1 (1 read this time)" in printed
    result = json.loads((tmp_path / "report" / "monitor.json").read_text())
    manifest = json.loads((pipeline / "model" / "model" / "manifest.json").read_text())
    assert result["reference"]["matched"] and result["reference"]["split"] == manifest["reference"]["split"]
    (run,) = result["periods"]["run"]
    summary = json.loads(next((pipeline / "scores" / "runs").glob("*/summary.json")).read_text())
    assert (run["scored"], run["errors"]) == (summary["scored"], summary["errors"])
    assert run["drift"] is not None and run["drift"]["judged"] is (run["scored"] >= drift.MIN_PREDICTIONS)
    assert f"## {summary['model_version']}" in (tmp_path / "report" / "report.md").read_text()
    client = MlflowClient(mlflow_server)
    (trained,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dermspark.run_id` = 'pipeline'"
    )
    logged = {item.path for item in client.list_artifacts(trained.info.run_id, "monitor")}
    assert {"monitor/report.md", "monitor/monitor.json", "monitor/plots"} <= logged


def test_the_documented_ways_to_read_the_predictions_work(pipeline):
    """docs/outputs.md's three snippets and the line score printed, run as written."""
    import re
    import subprocess

    from conftest import ROOT

    text = (ROOT / "docs" / "outputs.md").read_text()
    section = text.split("#### Reading the predictions", 1)[1].split("\n### ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(snippets) == 3
    printed = (pipeline / "score.out").read_text()
    line = next(line.split("read them:", 1)[1].strip() for line in printed.splitlines() if "read them:" in line)
    for code in snippets:
        shown = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", code.replace("PREDICTIONS", str(pipeline / "scores"))],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        assert re.search(r"\b(nv|mel|bkl|bcc|akiec|df|vasc)\b|\brun_id\b", shown), shown
    shown = subprocess.run(["bash", "-c", line], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "predicted_label" in shown.stdout


def test_a_run_summed_by_an_earlier_report_loads_from_its_state_file():
    """runs.json keeps each run's counts; a record stored before the run's input was kept takes
    None for it, and goes back to the file key for key."""
    from dermspark.monitor.aggregate import RunCounts

    stored = {
        "model_version": "pipeline-3512b97d",
        "scoring_date": "2026-12-04",
        "run_id": "score-20261204-101500-abcdef",
        "bundle_sha256": "3512b97d" * 8,
        "started": "2026-12-04T10:15:02",
        "rows": 3,
        "scored": 2,
        "errors": {"undecodable": 1},
        "class_counts": {"nv": 2},
        "confidence_histogram": [0] * 99 + [2],
        "melanoma_flags": 0,
        "review": {"flagged": 1, "by_reason": {"uncertain": 1}},
    }
    record = RunCounts.from_dict(stored)
    assert record.input is None and record.review["flagged"] == 1
    assert record.to_dict() == {**stored, "input": None}
    assert RunCounts.from_dict(json.loads(json.dumps(record.to_dict()))) == record
