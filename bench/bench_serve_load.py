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
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY = "load-test-key"
MODEL = "smollm2-135m"
LIMITS = {"max_body_bytes": 16384, "max_messages": 16, "max_tokens": 64}
# kind → (share of the requests, the status it must get)
MIX = {
    "valid": (0.6, 200),
    "unauthorised": (0.1, 401),
    "oversized": (0.1, 413),
    "malformed": (0.1, 400),
    "too_many_messages": (0.05, 400),
    "too_many_tokens": (0.05, 400),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    status: int | None  # None: the connection failed
    seconds: float
    ok: bool


def request_for(kind: str, index: int) -> tuple[dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    chat = [{"role": "user", "content": f"Offer a price for item {index}."}]
    body: dict = {"model": MODEL, "messages": chat, "max_tokens": 4, "seed": index, "temperature": 1.0}
    if kind == "unauthorised":
        headers["Authorization"] = "Bearer wrong"
    elif kind == "oversized":
        body["messages"] = [{"role": "user", "content": "x" * (LIMITS["max_body_bytes"] + 1)}]
    elif kind == "malformed":
        return headers, b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": '
    elif kind == "too_many_messages":
        body["messages"] = chat * (LIMITS["max_messages"] + 1)
    elif kind == "too_many_tokens":
        body["max_tokens"] = LIMITS["max_tokens"] + 1
    return headers, json.dumps(body).encode()


def judge(kind: str, response: httpx.Response) -> bool:
    expected = MIX[kind][1]
    if response.status_code != expected:
        return False
    body = response.json()
    if kind == "valid":
        return body["choices"][0]["message"]["content"] is not None and body["usage"]["completion_tokens"] >= 1
    return set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])


async def run_load(base_url: str, clients: int, requests: int, seed: int = 0) -> list[Outcome]:
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=[share for share, _ in MIX.values()], k=requests)
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for index, kind in enumerate(kinds):
        queue.put_nowait((index, kind))
    outcomes: list[Outcome] = []

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, kind = queue.get_nowait()
            headers, content = request_for(kind, index)
            started = time.perf_counter()
            try:
                response = await client.post(f"{base_url}/chat/completions", headers=headers, content=content)
                outcomes.append(
                    Outcome(kind, response.status_code, time.perf_counter() - started, judge(kind, response))
                )
            except httpx.HTTPError:
                outcomes.append(Outcome(kind, None, time.perf_counter() - started, False))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return outcomes


def summarise(outcomes: list[Outcome], seconds: float) -> dict:
    def percentile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    kinds = {}
    for kind in MIX:
        mine = [o for o in outcomes if o.kind == kind]
        if not mine:
            continue
        latencies = [o.seconds for o in mine]
        statuses: dict[str, int] = {}
        for o in mine:
            statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
        kinds[kind] = {
            "requests": len(mine),
            "as_expected": sum(o.ok for o in mine),
            "statuses": statuses,
            "p50_seconds": round(statistics.median(latencies), 4),
            "p99_seconds": round(percentile(latencies, 0.99), 4),
        }
    return {
        "requests": len(outcomes),
        "as_expected": sum(o.ok for o in outcomes),
        "connection_failures": sum(o.status is None for o in outcomes),
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(outcomes) / seconds, 2),
        "valid_per_second": round(sum(o.kind == "valid" and o.ok for o in outcomes) / seconds, 2),
        "kinds": kinds,
    }


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
