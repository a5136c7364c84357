"""The service as users start it (spark-submit.sh serve) on 127.0.0.1: the upload page in headless
Chromium, a bounded load test, and the launcher's errors."""

import os
import subprocess

import pytest
from conftest import SPARK_SUBMIT
from dermspark.serve.load import free_port, run_load, wait_until_healthy

CHROMIUM = os.environ.get("DERMSPARK_CHROMIUM", "/usr/bin/chromium")
# As root and on a closed network, Chromium needs no sandbox and none of its background fetches.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _start(pipeline, env=None):
    port = free_port()
    process = subprocess.Popen(
        [SPARK_SUBMIT, "serve", "--model", str(pipeline / "model" / "model"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def service(pipeline):
    process, url = _start(pipeline)
    try:
        wait_until_healthy(url, timeout=120, process=process)
        yield url
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        print(output[-3000:])


def test_browser_uploads_an_image_and_sees_a_prediction(service, archive_jpegs, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh --with-browser installs Debian's chromium package"
        )
    from dermspark.ood_set import make_ood_set

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a picture")
    make_ood_set(str(tmp_path / "ood"), per_kind=1)
    document = next((tmp_path / "ood" / "documents").iterdir())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(service + "/")
            expect(page.locator("#notice")).to_contain_text("Not a diagnosis")
            expect(page.locator("#model")).to_contain_text("benbrahim_cnn")

            page.set_input_files("#file", str(archive_jpegs[0]))
            expect(page.locator("#preview")).to_be_visible()
            page.click("#submit")
            expect(page.locator("#result")).to_be_visible(timeout=30_000)
            shown = page.locator("#label").inner_text()
            assert shown in {
                "Actinic keratosis / intraepithelial carcinoma",
                "Basal cell carcinoma",
                "Benign keratosis-like lesion",
                "Dermatofibroma",
                "Melanoma",
                "Melanocytic nevus",
                "Vascular lesion",
            }
            expect(page.locator("#confidence")).to_contain_text("Confidence")
            expect(page.locator("#probabilities tr")).to_have_count(7)
            expect(page.locator("#melanoma")).to_contain_text("Melanoma flag")
            # The heatmap over the image, and the toggle that hides it.
            expect(page.locator("#heatmap")).to_be_visible()
            assert page.locator("#heatmap").get_attribute("src").startswith("data:image/png;base64,")
            page.uncheck("#show-heatmap")
            expect(page.locator("#heatmap")).to_be_hidden()
            page.check("#show-heatmap")
            page.screenshot(path=str(tmp_path / "result.png"))

            # A page of text is no lesion: the warning comes first, with its reason.
            page.set_input_files("#file", str(document))
            page.click("#submit")
            expect(page.locator("#review")).to_be_visible(timeout=30_000)
            expect(page.locator("#review")).to_contain_text("Do not rely on this result")
            expect(page.locator("#review")).to_contain_text("review: not_dermoscopy")
            review_box, result_box = page.locator("#review").bounding_box(), page.locator("#result").bounding_box()
            assert review_box["y"] < result_box["y"]

            page.set_input_files("#file", str(not_an_image))
            page.click("#submit")
            expect(page.locator("#error")).to_contain_text("not_an_image")
            expect(page.locator("#result")).to_be_hidden()
        finally:
            browser.close()


def test_the_page_asks_once_for_the_token_of_a_guarded_service(pipeline, archive_jpegs):
    """Started with DERMSPARK_API_TOKEN: the page asks for the token, once, and sends it."""
    from playwright.sync_api import expect, sync_playwright

    process, url = _start(pipeline, {"DERMSPARK_API_TOKEN": "tok-123"})
    asked = []
    try:
        wait_until_healthy(url, timeout=120, process=process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept("tok-123")))
                page.goto(url + "/")
                expect(page.locator("#model")).to_contain_text("benbrahim_cnn")
                for path in archive_jpegs[:2]:
                    page.set_input_files("#file", str(path))
                    page.click("#submit")
                    expect(page.locator("#result")).to_be_visible(timeout=30_000)
            finally:
                browser.close()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert asked == ["This service needs its access token:"]


def test_bounded_load_has_no_failures(service, archive_jpegs):
    result = run_load(service, [path.read_bytes() for path in archive_jpegs], requests=160, clients=4)
    print(f"\nload: {result}")
    assert result["failed"] == 0, result["failures"]
    assert result["succeeded"] == 160
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_launcher_stops_with_one_message_for_a_missing_bundle(tmp_path):
    result = subprocess.run(
        [SPARK_SUBMIT, "serve", "--model", str(tmp_path / "none")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "serve failed" in result.stderr and "not a model bundle" in result.stderr
    assert "Traceback" not in result.stderr


def test_launcher_rejects_spark_options(pipeline):
    # serve runs no Spark job: a --master would be a mistake worth saying, not ignoring.
    result = subprocess.run(
        [SPARK_SUBMIT, "serve", "--model", str(pipeline / "model" / "model"), "--master", "local[2]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "--master" in result.stderr


def _self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made here (nothing fetched)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert), str(private)


def test_the_service_serves_https_with_its_own_certificate(pipeline, tmp_path):
    import http.client
    import ssl
    import time
    import urllib.request

    cert, key = _self_signed(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [
            SPARK_SUBMIT,
            "serve",
            "--model",
            str(pipeline / "model" / "model"),
            "--port",
            str(port),
            "--tls-certfile",
            cert,
            "--tls-keyfile",
            key,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url, trusting = f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=cert)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the service ended before it answered"
            try:
                with urllib.request.urlopen(f"{url}/health", context=trusting, timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "no HTTPS answer within 120 s"
                time.sleep(0.5)
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"{url}/health", context=ssl.create_default_context(), timeout=5)
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"at https://127.0.0.1:{port}/" in output


def test_a_half_or_wrong_tls_pair_stops_the_launcher_in_one_line(pipeline, tmp_path):
    cert, _ = _self_signed(tmp_path)
    model = str(pipeline / "model" / "model")
    for extra, message in (
        (["--tls-certfile", cert], "--tls-certfile and --tls-keyfile go together"),
        (["--tls-certfile", cert, "--tls-keyfile", cert], "are not a usable pair"),
    ):
        result = subprocess.run(
            [SPARK_SUBMIT, "serve", "--model", model, *extra], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "serving" not in result.stdout
