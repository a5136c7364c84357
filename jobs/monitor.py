"""spark-submit entry point: watch a predictions table over time (volume, class mix, confidence,
flags, drift from the bundle's held-out predictions) in a report a person reads."""

from dermspark.monitor.job import run_monitor
from dermspark.runtime import run_job
from dermspark.settings.monitor import MonitorSettings


def main(argv=None):
    run_job(__file__, MonitorSettings, run_monitor, __doc__, argv)


if __name__ == "__main__":
    main()
