"""The prediction service through FastAPI's TestClient: every endpoint, every kind of bad input,
and the same probabilities as the batch job for the same files."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from dermspark import DermsparkError
from dermspark.bundle import cache_key, load_bundle
from dermspark.serve.app import make_app
from dermspark.serve.upload_limit import FRAMING_BYTES
from dermspark.settings.serve import ServeSettings
from fastapi.testclient import TestClient

LIMIT_MB = 0.05  # 52,428 bytes: the synthetic JPEGs are far below it
LIMIT_BYTES = int(LIMIT_MB * 1024 * 1024)


@pytest.fixture(scope="module")
def bundle(pipeline):
    return load_bundle(str(pipeline / "model" / "model"))


@pytest.fixture(scope="module")
def client(bundle):
    return TestClient(make_app(ServeSettings(model="(loaded)", max_upload_mb=LIMIT_MB), bundle=bundle))


@pytest.fixture(scope="module")
def images(archive_jpegs) -> list[Path]:
    return archive_jpegs


def upload(client, content: bytes, name: str = "lesion.jpg"):
    return client.post("/predict", files={"file": (name, content, "image/jpeg")})


def test_health_names_the_bundle(client, bundle, pipeline):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["model"] == "benbrahim_cnn"
    assert health["classes"] == bundle.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert health["class_names"]["mel"] == "Melanoma"
    assert health["input_size"] == [75, 100]
    # The version is the one batch scoring files its rows under.
    versions = [path.name for path in (pipeline / "scores" / "predictions").iterdir()]
    assert versions == [f"model_version={health['version']}"]


def test_predictions_equal_the_batch_jobs(client, bundle, images, pipeline):
    table = pd.read_parquet(pipeline / "scores" / "predictions")
    threshold = bundle.manifest.threshold("temperature")
    by_hash = table.set_index("sha256")
    for path in images:
        content = path.read_bytes()
        answer = upload(client, content, path.name).json()
        row = by_hash.loc[hashlib.sha256(content).hexdigest()]
        assert answer["sha256"] == hashlib.sha256(content).hexdigest()
        assert answer["predicted_class"] == row["predicted_label"]
        assert answer["confidence"] == pytest.approx(row["confidence"], abs=1e-6)
        for label, probability in answer["probabilities"].items():
            assert probability == pytest.approx(row[f"prob_{label}"], abs=1e-6), label
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        # The same flag wherever the probabilities, equal to 1e-6, cannot straddle the threshold:
        # the threshold is a validation image's probability, and one image predicted alone can
        # differ from the same image in a batch in the last float32 digits.
        if abs(row["prob_mel"] - threshold) > 1e-6:
            assert answer["melanoma_flag"] == bool(row["melanoma_flag"])


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (b"", 422, "unreadable"),
        (b"patient notes, not a picture", 415, "not_an_image"),
        ("truncated", 422, "truncated"),
    ],
)
def test_bad_images_get_a_reason_and_the_service_keeps_serving(client, images, content, status, reason):
    if content == "truncated":
        content = images[0].read_bytes()[:600]
    answer = upload(client, content)
    assert answer.status_code == status
    assert answer.json()["detail"]["reason"] == reason
    assert reason in answer.json()["detail"]["message"]
    assert upload(client, images[1].read_bytes()).status_code == 200


def test_a_png_named_jpg_is_judged_by_its_content(client, images):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(images[0]).resize((200, 150)).save(buffer, format="PNG")
    assert upload(client, buffer.getvalue(), "really-a-png.jpg").status_code == 200


def test_a_dicom_upload_is_answered_as_its_image_with_its_uids(client, images):
    """The same pixels as DICOM (lossless, any file name): the same answer, plus the UIDs; a
    DICOM file cut short is a 422 with its reason."""
    import io

    import numpy as np
    import pydicom
    from dermspark.dicom_archive import FAKE_PATIENT, to_dicom
    from PIL import Image

    # Small, so that the uncompressed-size RLE file stays under the test's upload limit.
    pixels = np.asarray(Image.open(images[0]).convert("RGB").resize((100, 75)))
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    content = to_dicom(pixels, "rle", "x")
    as_image, as_dicom = upload(client, png.getvalue()).json(), upload(client, content, "export.bin")
    assert as_dicom.status_code == 200
    answer = as_dicom.json()
    assert answer["probabilities"] == as_image["probabilities"] and as_image["dicom"] is None
    header = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)
    assert answer["dicom"] == {
        "frame": 0,
        "StudyInstanceUID": header.StudyInstanceUID,
        "SeriesInstanceUID": header.SeriesInstanceUID,
        "SOPInstanceUID": header.SOPInstanceUID,
    }
    assert all(value not in as_dicom.text for value in FAKE_PATIENT.values())
    cut = upload(client, content[: len(content) // 2])
    assert cut.status_code == 422 and cut.json()["detail"]["reason"] == "corrupt"


def test_missing_file_field_is_422(client):
    answer = client.post("/predict", data={"image": "x"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "file"]
    assert client.post("/predict").status_code == 422


def test_uploads_over_the_limit_get_413(client, images):
    # Over the body cap: refused from Content-Length before the body is read.
    assert upload(client, b"\xff" * (LIMIT_BYTES + FRAMING_BYTES + 1)).status_code == 413
    # Under the body cap, over the file cap: refused by the exact size check.
    answer = upload(client, b"\xff" * (LIMIT_BYTES + 1))
    assert answer.status_code == 413 and answer.json()["detail"]["reason"] == "too_large"

    # A chunked body has no Content-Length: reading stops once it passes the cap.
    def chunks():
        for _ in range(200):
            yield b"\0" * 1024

    answer = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413
    assert upload(client, images[0].read_bytes()).status_code == 200


def test_upload_page_previews_and_says_it_is_not_a_diagnosis(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Not a diagnosis" in page.text
    assert 'type="file"' in page.text and "createObjectURL" in page.text and 'fetch("predict?explain=true"' in page.text


def test_cors_is_closed_by_default_and_opens_to_named_origins(client, bundle):
    origin = {"Origin": "https://clinic.example"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/predict", headers=preflight).headers

    opened = TestClient(make_app(ServeSettings(model="(loaded)", cors_origins="https://clinic.example"), bundle=bundle))
    assert opened.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://clinic.example"
    assert opened.options("/predict", headers=preflight).status_code == 200
    other = {"Origin": "https://elsewhere.example"}
    assert "access-control-allow-origin" not in opened.get("/health", headers=other).headers


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (ServeSettings(model=""), "--model"),
        (ServeSettings(model="/nonexistent/bundle"), "not a model bundle"),
        (ServeSettings(model="unused", max_upload_mb=0), "--max-upload-mb must be above 0, got 0"),
        (ServeSettings(model="unused", cors_origins="*"), "any web page"),
        (ServeSettings(model="unused", melanoma_threshold=1.5), "--melanoma-threshold must be at most 1, got 1.5"),
        (ServeSettings(model="unused", port=99999), "--port must be at most 65535, got 99999"),
        (ServeSettings(model="unused", review_confidence=-0.1), "--review-confidence must be at least 0, got -0.1"),
    ],
)
def test_bad_settings_give_one_clear_error(settings, message):
    with pytest.raises(DermsparkError, match=message):
        make_app(settings)


def test_the_service_takes_a_bundle_on_s3(pipeline, s3_store, monkeypatch, tmp_path, archive_jpegs):
    """--model s3://...: fetched into the machine's cache, then served as the local bundle is."""
    from dermspark import storage

    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DERMSPARK_BUNDLE_CACHE", str(tmp_path / "cache"))
    url = f"s3://dermspark/serve-{tmp_path.name}/model"
    storage.put_tree(str(pipeline / "model" / "model"), url)
    remote = TestClient(make_app(ServeSettings(model=url)))
    local = TestClient(make_app(ServeSettings(model=str(pipeline / "model" / "model"))))
    assert remote.get("/health").json() == local.get("/health").json()
    content = archive_jpegs[0].read_bytes()
    assert upload(remote, content).json() == upload(local, content).json()
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [cache_key(load_bundle(url).manifest)]


def test_a_token_guards_every_request_but_health_and_the_page(bundle, images, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    guarded = TestClient(make_app(ServeSettings(model="(loaded)", auth_token_file=str(token_file)), bundle=bundle))
    content = images[0].read_bytes()
    assert guarded.get("/health").json()["auth_required"] is True
    assert guarded.get("/").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
        refused = guarded.post("/predict", files={"file": ("a.jpg", content, "image/jpeg")}, headers=headers)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["detail"]["reason"] == "unauthorized"
    answered = guarded.post(
        "/predict", files={"file": ("a.jpg", content, "image/jpeg")}, headers={"Authorization": "Bearer s3cret-token"}
    )
    assert answered.status_code == 200 and answered.json()["predicted_class"] in bundle.classes
    # From the environment too; an empty file is one clear error.
    monkeypatch.setenv("DERMSPARK_API_TOKEN", "from-env")
    assert (
        TestClient(make_app(ServeSettings(model="(loaded)"), bundle=bundle))
        .post("/predict", files={"file": ("a.jpg", content, "image/jpeg")})
        .status_code
        == 401
    )
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(DermsparkError, match="is empty"):
        make_app(ServeSettings(model="(loaded)", auth_token_file=str(tmp_path / "empty")), bundle=bundle)


def test_api_pages_are_off_unless_asked_for(bundle, client):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404
    documented = TestClient(make_app(ServeSettings(model="(loaded)", api_docs=True), bundle=bundle))
    assert documented.get("/docs").status_code == 200 and "/predict" in documented.get("/openapi.json").json()["paths"]
