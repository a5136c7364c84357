"""Prediction service latency: `spark-submit.sh serve` on 127.0.0.1 under a bounded load, a fixed
number of POST /predict uploads of real HAM10000 JPEGs from a few concurrent clients, each on a
kept-alive connection. Prints p50, p99 and max latency, requests per second and failures.

The bundle is --bundle DIR, or an untrained one of --model NAME (latency does not depend on the
weights). A warm-up of 2 requests a client runs first and is not counted.

    .venv/bin/python bench/serve_bench.py [--model benbrahim_cnn | --bundle DIR] [--requests 400] [--clients 4]
"""

import argparse
import glob
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--model", default="benbrahim_cnn")
    parser.add_argument("--bundle", help="a trained bundle instead of an untrained --model")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--images", type=int, default=64, help="distinct images uploaded in turn")
    args = parser.parse_args()

    from dermspark.serve.load import free_port, run_load, wait_until_healthy
    from score_bench import make_bundle

    files = sorted(glob.glob(os.path.join(args.data, "ham10000-200x150", "**", "*.jpg"), recursive=True))
    if not files:
        sys.exit(f"no JPEGs under {args.data}/ham10000-200x150: pass --data")
    images = [pathlib.Path(path).read_bytes() for path in files[: args.images]]
    with tempfile.TemporaryDirectory() as work:
        bundle = args.bundle or make_bundle(work, args.model)
        port = free_port()
        service = subprocess.Popen(
            [os.path.join(ROOT, "spark-submit.sh"), "serve", "--model", bundle, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            health = wait_until_healthy(url, timeout=180, process=service)
            run_load(url, images, requests=2 * args.clients, clients=args.clients)
            result = run_load(url, images, requests=args.requests, clients=args.clients)
        finally:
            service.terminate()
            service.wait(timeout=30)
    size = "x".join(str(side) for side in health["input_size"])
    print(f"model {health['model']} ({size}), {len(images)} distinct 200x150 JPEGs, {os.cpu_count()} cores")
    print(
        f"requests {result['requests']} from {result['clients']} clients: {result['succeeded']} ok, "
        f"{result['failed']} failed"
    )
    print(
        f"latency p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
        f"{result['requests_per_second']:.1f} requests/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
