"""A bounded load test of an OpenAI-compatible ``counteroffer serve``: many concurrent clients, a mix of valid,
unauthorised, oversized and malformed requests, each judged by the status and body it must get.

``bench/bench_serve_load.py`` runs it against a real server subprocess and reports the numbers; the test suite runs a
smaller load against an in-process server. Send it to loopback only: it is a load generator.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass

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
