"""Entry point: serve one trained bundle over HTTP (POST /predict, GET /health, GET /).

Runs no Spark job: spark-submit.sh starts it with the project's Python, so every dermspark
command has the same entry script.
"""

from dermspark.cli import parse
from dermspark.runtime import configure_logging, job_errors
from dermspark.serve.app import make_app
from dermspark.settings import ServeSettings, resolve


def main(argv=None):
    settings_file, overrides = parse(ServeSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("serve"):
        settings = resolve(ServeSettings, settings_file, overrides)
        app = make_app(settings)
    import uvicorn

    print(f"[dermspark] serving {settings.model} at http://{settings.host}:{settings.port}/", flush=True)
    # One process: the model is loaded once and calls into it are serialised anyway.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
