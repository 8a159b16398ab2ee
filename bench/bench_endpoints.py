"""Endpoint throughput and bench memory (issue 6), each measured as ratios within one run.

``concurrency``: a bench whose seller is ``counteroffer serve`` on the bundled SmolLM2-135M (a real model behind
the project's own OpenAI-compatible server, in a subprocess) at concurrency 1, 8, 32 and 128, in episodes per
second; then the same benches against an endpoint that answers at once (the fake server of the tests, in this
process): its episodes per second bound the client side's cost (prompt building, HTTP, parsing, the game, the
records), so ``client share`` = real-run time that was not the server's = (1 / fake rate) / (1 / real rate).

``memory``: peak RSS (VmHWM) of benches of 250 to 4,000 episodes (the same 250 products, 1 to 16 rollouts) against
the instant endpoint, each in a fresh process, and the growth per 1,000 episodes.

Usage: python bench/bench_endpoints.py [--parts concurrency memory] [--servers URL[,URL...]] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake OpenAI-compatible server

from fake_openai_server import FakeOpenAI, serve  # noqa: E402

from counteroffer.evaluate.bench import BenchConfig, run_bench  # noqa: E402

MODEL = "smollm2-135m"
LEVELS = (1, 8, 32, 128)


def episodes_per_second(seller: str, concurrency: int, episodes: int, out: Path) -> float:
    rollouts = max(1, episodes // 32)
    config = BenchConfig(buyers=["scripted:anchor"], seller=seller, split="test", limit=episodes // rollouts,
                         rollouts=rollouts, max_turns=2, concurrency=concurrency, out=out)  # fmt: skip
    started = time.perf_counter()
    result = run_bench(config)
    elapsed = time.perf_counter() - started
    assert result.rows[0].errored == 0, "an episode failed"
    return result.played / elapsed


def start_server(port: int, max_batch: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "counteroffer", "serve", MODEL, "--port", str(port), "--max-batch", str(max_batch)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("counteroffer serve did not start")


def concurrency_part(work: Path, servers: str | None) -> dict:
    """``servers``: base URLs (comma-separated) of running servers of ``MODEL`` to measure instead of starting
    ``counteroffer serve`` here."""
    params = "max_new_tokens=16&reasks=0&timeout=600&concurrency={c}"
    server = None if servers else start_server(8765, max_batch=32)
    urls = servers or "http://127.0.0.1:8765/v1"
    rows = []
    try:
        for level in LEVELS:
            episodes = max(16, 2 * level)
            seller = f"openai:{MODEL}@{urls}?{params.format(c=level)}"
            real = episodes_per_second(seller, level, episodes, work / f"real-{level}")
            rows.append({"concurrency": level, "episodes": episodes, "real_episodes_per_s": real})
            print(rows[-1], flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    with serve(FakeOpenAI(keep_requests=False)) as fake:
        for row in rows:
            level = row["concurrency"]
            seller = fake.spec(params.format(c=level))
            fast = episodes_per_second(seller, level, 512, work / f"fake-{level}")
            row["instant_endpoint_episodes_per_s"] = fast
            row["client_share"] = row["real_episodes_per_s"] / fast
            row["speedup_vs_concurrency_1"] = row["real_episodes_per_s"] / rows[0]["real_episodes_per_s"]
            print(row, flush=True)
    return {"seller": f"counteroffer serve {MODEL} --max-batch 32, max_new_tokens 16, 2-turn games", "rows": rows}


MEMORY_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from fake_openai_server import FakeOpenAI, serve
from counteroffer.evaluate.bench import BenchConfig, run_bench
episodes = int(sys.argv[1])
with serve(FakeOpenAI(keep_requests=False)) as fake:
    # The same 250 products every time, more rollouts: only the number of episodes changes.
    config = BenchConfig(buyers=[fake.spec()], seller="scripted:boulware", split="all", limit=250,
                         rollouts=episodes // 250, max_turns=6, concurrency=64, out=Path(sys.argv[2]))
    result = run_bench(config)
assert result.played == episodes, result.played
# VmHWM, not getrusage: a child's ru_maxrss starts from its parent's RSS at fork, which would hide the bench's own.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def memory_part(work: Path) -> dict:
    rows = []
    for episodes in (250, 500, 1000, 2000, 4000):
        output = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD.format(tests=str(ROOT / "tests")), str(episodes),
             str(work / f"memory-{episodes}")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append({"episodes": episodes, "peak_rss_mb": int(output.stdout.split()[-1]) / 1024})
        print(rows[-1], flush=True)
    first, last = rows[0], rows[-1]
    growth = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["episodes"] - first["episodes"]) * 1000
    return {"buyer": "openai: endpoint agent (instant fake server)", "rows": rows, "mb_per_1000_episodes": growth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["concurrency", "memory"], choices=["concurrency", "memory"])
    parser.add_argument("--servers", help="measure these running servers (comma-separated base URLs) instead")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "endpoints.json")
    args = parser.parse_args()
    # Parts run separately update the same file.
    results: dict = json.loads(args.json.read_text()) if args.json.exists() else {}
    results.update(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                   python=platform.python_version())  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        for part in args.parts:
            results[part] = (
                concurrency_part(Path(work), args.servers) if part == "concurrency" else memory_part(Path(work))
            )
    results["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
