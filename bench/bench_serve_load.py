"""A bounded load test of the guarded ``counteroffer serve`` on loopback: many concurrent clients, a mix of valid,
unauthorised, oversized and malformed requests.

    python bench/bench_serve_load.py [--clients 64] [--requests 384] [--json bench/results/serve_load.json]

The server is the real one (a subprocess running ``counteroffer serve smollm2-135m --api-key ...`` with limits),
the valid requests are short real completions (``max_tokens`` 4, seeded). Every request must get what it should:
a valid one a 200 with a completion (none lost, none refused), each bad one its status in the OpenAI error shape.
Reported per kind: count, statuses, p50 / p99 latency; overall: requests per second over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from counteroffer.serve.load import KEY, LIMITS, MODEL, run_load, summarise


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, max_batch: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "counteroffer", "serve", MODEL, "--port", str(port), "--api-key", KEY,
        "--max-batch", str(max_batch), "--max-body-bytes", str(LIMITS["max_body_bytes"]),
        "--max-messages", str(LIMITS["max_messages"]), "--max-tokens", str(LIMITS["max_tokens"]),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the server exited while starting")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become healthy in 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=384)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args.max_batch)
    try:
        started = time.perf_counter()
        outcomes = asyncio.run(run_load(f"http://127.0.0.1:{port}/v1", args.clients, args.requests))
        result = summarise(outcomes, time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=60)
    result.update({"clients": args.clients, "max_batch": args.max_batch, "limits": LIMITS})
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if result["as_expected"] != result["requests"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
