"""The monitor job's settings."""

from dataclasses import dataclass
from datetime import date

from dermspark import DermsparkError
from dermspark.settings.common import mlflow_uri_setting
from dermspark.settings_core import required, setting


@dataclass(kw_only=True)
class MonitorSettings:
    predictions: str = required("a scoring output (score's --output: predictions/ and runs/)")
    output: str = required(
        "report folder: monitor.json, report.md, plots; a rerun reads only the "
        "runs scored since the last and replaces the report"
    )
    model: str | None = setting(
        None,
        "bundle to compare with: its held-out predictions, recorded at training, are "
        "the reference for drift; default: no drift figures",
    )
    since: str | None = setting(None, "only runs scored on or after this date (YYYY-MM-DD)")
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        try:
            if self.since is not None:
                date.fromisoformat(self.since)
        except ValueError:
            raise DermsparkError(f"--since must be a date, YYYY-MM-DD, got {self.since!r}") from None
