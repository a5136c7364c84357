"""spark-submit entry point: an image archive in, a Petastorm dataset with manifest out."""

from dermspark.ingest.pipeline import run_ingest
from dermspark.runtime import run_job
from dermspark.settings.ingest import IngestSettings


def main(argv=None):
    run_job(__file__, IngestSettings, run_ingest, __doc__, argv)


if __name__ == "__main__":
    main()
