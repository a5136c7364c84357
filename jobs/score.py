"""spark-submit entry point: batch-score a folder of images with a trained bundle."""

from dermspark.runtime import run_job
from dermspark.score.job import run_score
from dermspark.settings.score import ScoreSettings


def main(argv=None):
    run_job(__file__, ScoreSettings, run_score, __doc__, argv)


if __name__ == "__main__":
    main()
