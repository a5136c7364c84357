"""The service's settings."""

from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.settings.common import CALIBRATIONS, CONFIDENCE_HELP, THRESHOLD_HELP, mlflow_uri_setting
from dermspark.settings_core import required, setting


@dataclass(kw_only=True)
class ServeSettings:
    model: str = required(
        "bundle written by the train job: a folder, a URL, or a registered "
        "model (models:/NAME/VERSION, models:/NAME@ALIAS)"
    )
    # Loopback by default: serving to a network is a choice made with --host.
    host: str = setting("127.0.0.1", "address to listen on; 0.0.0.0 serves every interface")
    port: int = setting(8000, "port to listen on", minimum=1, maximum=65535)
    max_upload_mb: float = setting(10.0, "larger uploads get 413 before they are read", above=0)
    cors_origins: str | None = setting(
        None, "comma-separated origins whose web pages may call the API; default: none (CORS closed)"
    )
    calibration: str = setting(
        "temperature", "temperature: the bundle's calibrated probabilities; none: the model's own", choices=CALIBRATIONS
    )
    melanoma_threshold: float | None = setting(None, THRESHOLD_HELP, minimum=0, maximum=1)
    review_confidence: float | None = setting(None, CONFIDENCE_HELP, minimum=0, maximum=1)
    auth_token_file: str | None = setting(
        None,
        "a file holding the token every request but /health and the page "
        "must carry as 'Authorization: Bearer TOKEN'; default: "
        "DERMSPARK_API_TOKEN, else none (no token asked)",
    )
    api_docs: bool = setting(False, "serve FastAPI's generated API pages (/docs, /redoc, /openapi.json)")
    tls_certfile: str | None = setting(
        None, "PEM certificate (chain) to serve HTTPS with, beside --tls-keyfile; default: plain HTTP"
    )
    tls_keyfile: str | None = setting(None, "PEM private key of --tls-certfile")
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise DermsparkError("--tls-certfile and --tls-keyfile go together: give both, or neither for plain HTTP")
