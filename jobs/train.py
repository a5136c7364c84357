"""spark-submit entry point: train a registered model with Horovod on Spark."""

from dermspark.runtime import run_job
from dermspark.settings.train import TrainSettings
from dermspark.train.job import run_train


def main(argv=None):
    run_job(__file__, TrainSettings, run_train, __doc__, argv)


if __name__ == "__main__":
    main()
