"""Entry point: serve one trained bundle over HTTP (POST /predict, GET /health, GET /).

Runs no Spark job: spark-submit.sh starts it with the project's Python, so every dermspark
command has the same entry script.
"""

from dermspark.runtime import run_job
from dermspark.serve.app import serve
from dermspark.settings.serve import ServeSettings


def main(argv=None):
    run_job(__file__, ServeSettings, serve, __doc__, argv, spark=False)


if __name__ == "__main__":
    main()
