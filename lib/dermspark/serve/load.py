"""A bounded load test of a running service: a fixed number of POST /predict requests from a few
concurrent clients, each on its own kept-alive connection: for a deployment's own checks, and
used by bench/serve_bench.py and the tests. Standard library and numpy only.
"""

import http.client
import json
import socket
import threading
import time
import urllib.parse
import uuid

import numpy as np

from dermspark import DermsparkError


def _connect(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    if not parts.hostname:
        raise DermsparkError(f"{parts.geturl()} names no host")
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def multipart_body(content: bytes, filename: str = "image.jpg") -> tuple[bytes, str]:
    """What a browser's FormData sends for one file field named "file"."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    """A port nothing listens on now, for a service started next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(base_url: str, timeout: float, process=None) -> dict:
    """GET /health until it answers; fails early when the process serving it has ended."""
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(base_url)
    while True:
        if process is not None and process.poll() is not None:
            raise DermsparkError(f"the service ended (exit status {process.returncode}) before it answered")
        try:
            connection = _connect(parts, 2)
            try:
                connection.request("GET", "/health")
                response = connection.getresponse()
                if response.status == 200:
                    return json.loads(response.read())
            finally:
                connection.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DermsparkError(f"{base_url} did not answer /health within {timeout:.0f} s")
        time.sleep(0.25)


def run_load(base_url: str, images: list[bytes], requests: int, clients: int, timeout: float = 60) -> dict:
    """Sends `requests` uploads (images taken in turn) from `clients` threads; every request is
    timed from send to the end of the answer. A failure is any status but 200 or any error."""
    if not images or requests < 1 or clients < 1:
        raise ValueError("run_load needs images, and requests and clients of at least 1")
    bodies = [multipart_body(image) for image in images]
    parts = urllib.parse.urlsplit(base_url)
    latencies, failures, lock = [], [], threading.Lock()
    shares = [requests // clients + (index < requests % clients) for index in range(clients)]

    def client(index: int, count: int) -> None:
        connection = _connect(parts, timeout)
        for number in range(count):
            body, content_type = bodies[(index + number * clients) % len(bodies)]
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and "predicted_class" in json.loads(answer)
                outcome = None if ok else f"status {response.status}: {answer[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as error:
                outcome = f"{type(error).__name__}: {error}"
                connection.close()
                connection = _connect(parts, timeout)
            elapsed = time.perf_counter() - started
            with lock:
                (failures.append(outcome) if outcome else latencies.append(elapsed))
        connection.close()

    threads = [threading.Thread(target=client, args=(index, count)) for index, count in enumerate(shares)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    milliseconds = np.asarray(latencies) * 1000
    return {
        "requests": requests,
        "clients": clients,
        "succeeded": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "p50_ms": float(np.percentile(milliseconds, 50)) if latencies else None,
        "p99_ms": float(np.percentile(milliseconds, 99)) if latencies else None,
        "max_ms": float(milliseconds.max()) if latencies else None,
        "requests_per_second": len(latencies) / wall,
    }
