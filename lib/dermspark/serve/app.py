"""The FastAPI app over one bundle: POST /predict, GET /health, GET / (the upload page).

An upload goes through `score.predict.predict_bytes`, the batch job's own path from bytes to
probabilities, so the service and the job give the same numbers for the same file.
"""

import base64
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse

from dermspark import DermsparkError
from dermspark.bundle import Bundle, load_bundle, model_version
from dermspark.explain import heatmap_png
from dermspark.labels import display_name
from dermspark.score.predict import describe, output_settings, predict_bytes
from dermspark.score.predict import explain as explain_predictions
from dermspark.serve.auth import BearerToken, configured_token
from dermspark.serve.upload_limit import UploadLimit
from dermspark.settings.serve import ServeSettings
from dermspark.settings_core import require
from dermspark.tracking import registry

NOTICE = (
    "Not a diagnosis: this is a research model's output, not a medical opinion. "
    "Show any lesion that worries you to a doctor."
)
DICOM_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# 415: the bytes are in no image format at all; 422 (the rest): an image that cannot be decoded.
STATUS_BY_REASON = {"not_an_image": 415}


def upload_limit_bytes(settings: ServeSettings) -> int:
    limit = int(settings.max_upload_mb * 1024 * 1024)
    if limit <= 0:
        raise DermsparkError(f"max_upload_mb must be above 0, got {settings.max_upload_mb}")
    return limit


def cors_origins(settings: ServeSettings) -> list[str]:
    origins = [origin.strip() for origin in (settings.cors_origins or "").split(",") if origin.strip()]
    if "*" in origins:
        raise DermsparkError("cors_origins must name origins; '*' would let any web page call the service")
    return origins


def listen_options(settings: ServeSettings) -> dict:
    """uvicorn.run's host, port and TLS options; the certificate and key are checked here, so a
    wrong one stops the launcher in one line before it listens."""
    options = {"host": settings.host, "port": settings.port}
    certfile, keyfile = settings.tls_certfile, settings.tls_keyfile
    if not certfile or not keyfile:  # both or neither (ServeSettings.rules)
        return options
    import ssl

    for flag, path in (("--tls-certfile", certfile), ("--tls-keyfile", keyfile)):
        if not os.path.isfile(path):
            raise DermsparkError(f"{flag} {path} does not exist")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, ValueError) as error:
        raise DermsparkError(f"--tls-certfile and --tls-keyfile are not a usable pair: {error}") from None
    return {**options, "ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile}


def serve(settings: ServeSettings) -> None:
    """The bundle loaded and TLS checked (a problem is one line before anything listens), then
    the app served until stopped."""
    app, options = make_app(settings), listen_options(settings)
    import uvicorn

    scheme = "https" if "ssl_certfile" in options else "http"
    print(f"[dermspark] serving {settings.model} at {scheme}://{settings.host}:{settings.port}/", flush=True)
    # One process: the model is loaded once and calls into it are serialised anyway.
    uvicorn.run(app, log_level="warning", **options)


@dataclass
class Served:
    """What every request reads: the bundle and how its answers are made."""

    bundle: Bundle
    temperature: float
    threshold: float
    review_confidence: float | None
    identity: dict  # the model's name and version, as /health and every answer say
    registered: dict | None  # the registry's name and version (and the alias asked by)
    limit: int  # upload bytes
    token: str | None
    # One model call at a time: Keras models are not documented as safe to call from several
    # threads, and on a CPU one call already uses the cores TensorFlow was given.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def classes(self) -> list[str]:
        return list(self.bundle.classes)


def make_app(settings: ServeSettings, bundle=None) -> FastAPI:
    """The app for settings.model (or an already loaded bundle). The bundle is loaded here, not on
    the first request, so a bad bundle stops the launcher before it listens."""
    require(settings)
    served = _served(settings, bundle)
    page = resources.files("dermspark.serve").joinpath("page.html").read_text(encoding="utf-8")
    app = _app(settings, served)

    @app.get("/health")
    def health() -> dict:
        return _health(served)

    @app.post("/predict")
    def predict(
        file: Annotated[UploadFile, File(description="an image file (JPEG, PNG, ..., or DICOM)")], explain: bool = False
    ) -> dict:
        return _predict(served, file, explain)

    @app.get("/", response_class=HTMLResponse)
    def upload_page() -> str:
        return page

    return app


def _served(settings: ServeSettings, bundle) -> Served:
    limit, registered = upload_limit_bytes(settings), None
    cors_origins(settings)  # checked before the bundle loads
    if bundle is None:
        location, tracking_uri, registered = registry.locate(settings.model, settings.mlflow_uri)
        bundle = load_bundle(location, tracking_uri)
    temperature, threshold = output_settings(bundle.manifest, settings.calibration, settings.melanoma_threshold)
    identity = {
        "model": bundle.manifest.model_name,
        "version": model_version(bundle.manifest, registered.label if registered else ""),
    }
    return Served(
        bundle,
        temperature,
        threshold,
        settings.review_confidence,
        identity,
        registered.describe() if registered else None,
        limit,
        configured_token(settings.auth_token_file),
    )


def _app(settings: ServeSettings, served: Served) -> FastAPI:
    # The generated API pages announce every endpoint: off unless asked for.
    docs: dict[str, Any] = {} if settings.api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="dermspark", summary="Skin-lesion classification of one uploaded image", **docs)
    app.add_middleware(UploadLimit, limit_bytes=served.limit)
    if served.token:
        app.add_middleware(BearerToken, token=served.token)
    origins = cors_origins(settings)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"])
    return app


def _health(served: Served) -> dict:
    bundle = served.bundle
    return {
        "status": "ok",
        **served.identity,
        "registered_model": served.registered,
        "classes": served.classes,
        "class_names": {label: display_name(label) for label in served.classes},
        "input_size": list(bundle.input_size),
        "temperature": served.temperature,
        "melanoma_threshold": served.threshold,
        "review_flag": bundle.reviewer is not None,
        "auth_required": served.token is not None,
        "max_upload_bytes": served.limit,
        "notice": NOTICE,
    }


def _predict(served: Served, file: UploadFile, explain: bool) -> dict:
    # The middleware bounds the request; this bounds the file itself, exactly.
    content = file.file.read(served.limit + 1)
    if len(content) > served.limit:
        raise HTTPException(413, {"reason": "too_large", "message": f"the image is over {served.limit} bytes"})
    with served.lock:
        [prediction] = predict_bytes(served.bundle, [content], served.temperature, served.review_confidence)
        heatmap = explain_predictions(served.bundle, [prediction])[0] if explain else None
    if prediction.error is not None:
        raise HTTPException(
            STATUS_BY_REASON.get(prediction.error, 422),
            {
                "reason": prediction.error,
                "message": f"not a usable image ({prediction.error}): {prediction.error_detail}",
            },
        )
    return _answer(served, prediction, heatmap)


def _answer(served: Served, prediction, heatmap) -> dict:
    classes = served.classes
    columns = describe([prediction], classes, top_k=len(classes), melanoma_threshold=served.threshold)
    label = columns["predicted_label"][0]
    return {
        "predicted_class": label,
        "predicted_name": display_name(label),
        "confidence": columns["confidence"][0],
        "probabilities": {name: float(value) for name, value in zip(classes, prediction.probabilities, strict=True)},
        "melanoma_flag": columns["melanoma_flag"][0],
        "melanoma_threshold": served.threshold,
        # null for a bundle trained before the review flag
        "ood_score": prediction.ood_score,
        "review": prediction.review,
        "review_reason": prediction.review_reason,
        # explain=true: Grad-CAM of the predicted class, a PNG layer to lay over the image.
        "heatmap_png": None if heatmap is None else base64.b64encode(heatmap_png(heatmap)).decode("ascii"),
        "sha256": prediction.sha256,
        # A DICOM upload (its first frame): the UIDs to file the answer by; null otherwise.
        "dicom": None
        if prediction.dicom is None
        else {"frame": prediction.frame, **{name: prediction.dicom.get(name) for name in DICOM_UIDS}},
        **served.identity,
        "notice": NOTICE,
    }
