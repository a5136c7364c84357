"""Entry point: serve one trained bundle over HTTP (POST /predict, GET /health, GET /).

Runs no Spark job: spark-submit.sh starts it with the project's Python, so every dermspark
command has the same entry script.
"""

from dermspark.cli import parse
from dermspark.runtime import configure_logging, job_errors
from dermspark.serve.app import listen_options, make_app
from dermspark.settings import ServeSettings, resolve


def main(argv=None):
    settings_file, overrides = parse(ServeSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("serve"):
        settings = resolve(ServeSettings, settings_file, overrides)
        app = make_app(settings)
        options = listen_options(settings)
    import uvicorn

    scheme = "https" if "ssl_certfile" in options else "http"
    print(f"[dermspark] serving {settings.model} at {scheme}://{settings.host}:{settings.port}/", flush=True)
    # One process: the model is loaded once and calls into it are serialised anyway.
    uvicorn.run(app, log_level="warning", **options)


if __name__ == "__main__":
    main()
