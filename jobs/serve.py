"""Entry point: serve one trained bundle over HTTP (POST /predict, GET /health, GET /).

Runs no Spark job: spark-submit.sh starts it with the project's Python, so every dermspark
command has the same entry script.
"""

import argparse
import os
import sys

from dermspark.runtime import configure_logging, job_errors
from dermspark.serve.app import make_app
from dermspark.settings import ServeSettings, resolve

DEFAULT_SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf", "serve.yaml")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="spark-submit.sh serve", description=__doc__)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="YAML service settings")
    parser.add_argument("--model", help="bundle written by the train job: a folder or a URL (s3://, hdfs://)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port to listen on")
    parser.add_argument("--max-upload-mb", type=float, dest="max_upload_mb",
                        help="larger uploads get 413")
    parser.add_argument("--cors-origins", dest="cors_origins",
                        help="comma-separated origins whose pages may call the API (default: none)")
    parser.add_argument("--melanoma-threshold", type=float, dest="melanoma_threshold",
                        help="melanoma probability at or above which melanoma_flag is set")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    overrides = {key: value for key, value in vars(args).items() if key != "settings"}
    with job_errors("serve"):
        settings = resolve(ServeSettings, args.settings, overrides)
        app = make_app(settings)
    import uvicorn

    print(f"[dermspark] serving {settings.model} at http://{settings.host}:{settings.port}/", flush=True)
    # One process: the model is loaded once and calls into it are serialised anyway.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
